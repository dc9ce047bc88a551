package db

// ClaimStrategy is how workers on several instances claiming rows of one
// queue at once (campaign deliveries, webhook deliveries) take different
// rows on MySQL. SQLite's write lock serialises claims, so it has none.
type ClaimStrategy string

const (
	// ClaimSkipLocked reads the candidates with SELECT ... FOR UPDATE SKIP
	// LOCKED and moves them: concurrent claims skip each other's rows
	// instead of waiting. MySQL 8 and MariaDB 10.6 or later (the default).
	ClaimSkipLocked ClaimStrategy = "skip-locked"
	// ClaimUpdateLimit stamps the rows with one owner-stamped UPDATE ...
	// ORDER BY ... LIMIT n and reads back what it stamped: concurrent claims
	// wait for each other's row locks instead of skipping them, but it
	// needs no SKIP LOCKED (TiDB has none).
	ClaimUpdateLimit ClaimStrategy = "update-limit"
)

// ClaimStrategies lists the strategies, the default first.
var ClaimStrategies = []ClaimStrategy{ClaimSkipLocked, ClaimUpdateLimit}
