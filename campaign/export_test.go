package campaign

// What a crash can leave unrecorded, for the tests that kill an instance.
const RecordChunk = recordChunk

// Hooks are the engine's test seams (see testHooks).
type Hooks struct {
	BeforeMark func(ids []uint64)
	BeforeCall func(id uint64)
	Renewed    func(taken int, err error)
	Record     func() error
}

// SetHooks installs test seams in an engine before it runs.
func SetHooks(e *Engine, h Hooks) {
	e.hooks = testHooks{beforeMark: h.BeforeMark, beforeCall: h.BeforeCall, renewed: h.Renewed, record: h.Record}
}
