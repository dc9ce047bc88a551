package campaign

// What a crash can leave unrecorded, for the tests that kill an instance.
const (
	SendGroup   = sendGroup
	RecordChunk = recordChunk
)
