// Package points is the points program: orders in, the append-only ledger
// with materialised balances, expiry lots, held (pending) points, earning
// rules, check-ins, tiers, rewards and redemptions, the liability report,
// the official-account keyword reply and the jobs that release, expire and
// review.
//
// # Books
//
// Every change of a member's points is one immutable ledger entry
// (points_ledger: kind earn, redeem, expire, adjust, reverse, gift or
// release; points is the change of the available balance, pending that of
// the held balance) with an idempotency key unique per merchant. The
// member's balance is materialised in points_accounts and updated in the
// same transaction as the entry; credits form lots (points_lots) that
// expire, and debits take from the lots that expire first. Invariants,
// checked by Reconcile (`loyalty points reconcile`):
//
//	available = Σ entries.points          pending = Σ entries.pending
//	available + debt = Σ active lots' remaining
//	pending = Σ held lots' remaining
//
// Debt is what a refund took back after the points were spent: the balance
// shows it as negative and the next credits pay it first. Redemptions and
// adjustments never take a balance below zero.
//
// # Concurrency
//
// Each business operation is one transaction. It locks the member's
// account row first (SELECT ... FOR UPDATE; created on first use with a
// no-op upsert), after the members row when it writes it (purchase facts,
// tier) — the order a member merge takes them in too — so operations on one
// member are serialised on MySQL and on SQLite, and operations on different
// members do not wait for each other (a limited reward's stock row is the
// only shared row, updated last). Replays are found by their unique keys
// (orders by external id, refunds by refund id, redemptions and
// adjustments by the client's request id, jobs by lot id) and answer with
// the first result. Transactions the database aborted (deadlock, lock wait,
// a concurrent duplicate) are retried.
//
// # Rules
//
// Order points = floor(amount_fen × earn.points / earn.per_fen × tier% ×
// birthday-month%), rounded down once at the end, then limited by the
// member's daily cap. Refunds take back floor(points × refunded / amount)
// in total (all when fully refunded). Expiry is at the merchant's local
// midnight: N months after the earn day (the day clamped to the month's
// length), or at the end of the following year, or never. Tiers upgrade at
// once and are reviewed (kept, graced or downgraded) at their review date.
package points
