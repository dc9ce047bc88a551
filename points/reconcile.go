package points

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/member"
)

// ReconcileOptions tune Reconcile.
type ReconcileOptions struct {
	MerchantID uint64 // only this merchant (0: all)
	Chunk      int    // accounts per round (default 5000)
	Facts      bool   // also compare members' purchase facts with their orders
	MaxReport  int    // mismatches kept in the report (default 100; all are counted)
}

// Mismatch is one disagreement between stored and derived figures.
type Mismatch struct {
	MerchantID uint64 `json:"merchant_id"`
	MemberID   uint64 `json:"member_id"`
	Check      string `json:"check"`
	Stored     int64  `json:"stored"`
	Derived    int64  `json:"derived"`
}

func (m Mismatch) String() string {
	return fmt.Sprintf("merchant %d member %d: %s stored %d, derived %d", m.MerchantID, m.MemberID, m.Check, m.Stored, m.Derived)
}

// ReconcileReport is the outcome of Reconcile.
type ReconcileReport struct {
	Merchants     int
	Accounts      int64
	Entries       int64
	MismatchCount int64
	Mismatches    []Mismatch
	Duration      time.Duration
}

// ErrMismatch is returned by RunReconcile when any figure disagrees.
var ErrMismatch = errors.New("points: reconcile found mismatches")

// Checks of Reconcile.
const (
	checkAvailable = "available != sum of entries' points"
	checkPending   = "pending != sum of entries' pending"
	checkLots      = "available + debt != active lots' remaining"
	checkHeld      = "pending != held lots' remaining"
	checkNegative  = "available < 0 without debt"
	checkDebtLots  = "debt owed while active lots hold points"
	checkNoAccount = "entries without an account"
	checkCount     = "members.order_count != orders not fully refunded"
	checkSpend     = "members.total_spend_fen != paid - refunded"
	checkTimes     = "members first/last order time != orders'"
)

// Reconcile re-derives every member's balances from the ledger and the lots
// and compares them with the materialised accounts (and, with Facts, the
// members' purchase facts with their orders). It walks each merchant's
// accounts in member-id chunks; each chunk is a handful of range queries
// (the ledger's sums come from idx_points_ledger_member alone), so memory
// stays flat whatever the table sizes. It reads without locks: run it when
// the books are quiet, or expect in-flight operations to show up (a rerun
// tells real mismatches from those).
func Reconcile(ctx context.Context, gdb *gorm.DB, o ReconcileOptions) (ReconcileReport, error) {
	start := time.Now()
	if o.Chunk <= 0 {
		o.Chunk = 5000
	}
	if o.MaxReport <= 0 {
		o.MaxReport = 100
	}
	rep := ReconcileReport{}
	merchants := []uint64{o.MerchantID}
	if o.MerchantID == 0 {
		merchants = nil
		// Loose index scans over the leading merchant_id of each table.
		err := gdb.WithContext(ctx).Raw(`SELECT merchant_id FROM (SELECT DISTINCT merchant_id FROM points_accounts
  UNION SELECT DISTINCT merchant_id FROM points_ledger) m ORDER BY merchant_id`).Scan(&merchants).Error
		if err != nil {
			return rep, fmt.Errorf("points: reconcile merchants: %w", err)
		}
	}
	add := func(m Mismatch) {
		rep.MismatchCount++
		if len(rep.Mismatches) < o.MaxReport {
			rep.Mismatches = append(rep.Mismatches, m)
		}
	}
	for _, mid := range merchants {
		rep.Merchants++
		var lo uint64
		for {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			var accts []account
			if err := gdb.WithContext(ctx).Select("member_id, available, pending, debt").
				Where("merchant_id = ? AND member_id > ?", mid, lo).Order("member_id").Limit(o.Chunk).
				Find(&accts).Error; err != nil {
				return rep, fmt.Errorf("points: reconcile accounts: %w", err)
			}
			hi := uint64(math.MaxInt64)
			if len(accts) == o.Chunk {
				hi = accts[len(accts)-1].MemberID
			}
			if err := reconcileChunk(ctx, gdb, mid, lo, hi, accts, o.Facts, &rep, add); err != nil {
				return rep, err
			}
			rep.Accounts += int64(len(accts))
			if len(accts) < o.Chunk {
				break
			}
			lo = hi
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

type sums struct {
	points, pending, entries int64
	active, held             int64
}

// reconcileChunk checks the members in (lo, hi].
func reconcileChunk(ctx context.Context, gdb *gorm.DB, mid, lo, hi uint64, accts []account, facts bool,
	rep *ReconcileReport, add func(Mismatch)) error {
	derived := map[uint64]*sums{}
	get := func(id uint64) *sums {
		x := derived[id]
		if x == nil {
			x = &sums{}
			derived[id] = x
		}
		return x
	}
	rows, err := gdb.WithContext(ctx).Raw(`SELECT member_id, SUM(points), SUM(pending), COUNT(*) FROM points_ledger
WHERE merchant_id = ? AND member_id > ? AND member_id <= ? GROUP BY member_id`, mid, lo, hi).Rows()
	if err != nil {
		return fmt.Errorf("points: reconcile ledger: %w", err)
	}
	for rows.Next() {
		var id uint64
		var p, pe, n int64
		if err := rows.Scan(&id, &p, &pe, &n); err != nil {
			_ = rows.Close()
			return fmt.Errorf("points: reconcile ledger: %w", err)
		}
		x := get(id)
		x.points, x.pending, x.entries = p, pe, n
		rep.Entries += n
	}
	if err := rows.Close(); err != nil {
		return err
	}
	rows, err = gdb.WithContext(ctx).Raw(`SELECT member_id, status, SUM(remaining) FROM points_lots
WHERE merchant_id = ? AND member_id > ? AND member_id <= ? AND status IN (?, ?) GROUP BY member_id, status`,
		mid, lo, hi, lotActive, lotPending).Rows()
	if err != nil {
		return fmt.Errorf("points: reconcile lots: %w", err)
	}
	for rows.Next() {
		var id uint64
		var status string
		var n int64
		if err := rows.Scan(&id, &status, &n); err != nil {
			_ = rows.Close()
			return fmt.Errorf("points: reconcile lots: %w", err)
		}
		if status == lotActive {
			get(id).active = n
		} else {
			get(id).held = n
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	seen := make(map[uint64]bool, len(accts))
	for _, a := range accts {
		seen[a.MemberID] = true
		d := get(a.MemberID)
		m := func(check string, stored, derived int64) {
			if stored != derived {
				add(Mismatch{MerchantID: mid, MemberID: a.MemberID, Check: check, Stored: stored, Derived: derived})
			}
		}
		m(checkAvailable, a.Available, d.points)
		m(checkPending, a.Pending, d.pending)
		m(checkLots, a.Available+a.Debt, d.active)
		m(checkHeld, a.Pending, d.held)
		if a.Available < 0 && a.Debt == 0 {
			m(checkNegative, a.Available, 0)
		}
		if a.Debt > 0 && d.active > 0 {
			m(checkDebtLots, a.Debt, 0)
		}
	}
	for id, d := range derived {
		if !seen[id] && (d.entries > 0 || d.active != 0 || d.held != 0) {
			add(Mismatch{MerchantID: mid, MemberID: id, Check: checkNoAccount, Stored: 0, Derived: d.points + d.pending})
		}
	}
	if facts {
		return reconcileFacts(ctx, gdb, mid, lo, hi, add)
	}
	return nil
}

// reconcileFacts compares the members' purchase facts in (lo, hi] with
// their orders.
func reconcileFacts(ctx context.Context, gdb *gorm.DB, mid, lo, hi uint64, add func(Mismatch)) error {
	if hi == math.MaxInt64 {
		hi = math.MaxInt64 - 1
	}
	stored, err := member.PurchaseFactsRange(ctx, gdb, mid, lo+1, hi)
	if err != nil {
		return err
	}
	var rows []struct {
		MemberID      uint64
		OrderCount    int64
		TotalSpendFen int64
		FirstOrderAt  *string
		LastOrderAt   *string
	}
	if err := gdb.WithContext(ctx).Raw(`SELECT member_id,
  SUM(CASE WHEN refunded_fen < amount_fen THEN 1 ELSE 0 END) AS order_count,
  SUM(amount_fen - refunded_fen) AS total_spend_fen,
  MIN(CASE WHEN refunded_fen < amount_fen THEN ordered_at END) AS first_order_at,
  MAX(CASE WHEN refunded_fen < amount_fen THEN ordered_at END) AS last_order_at
FROM points_orders WHERE merchant_id = ? AND member_id > ? AND member_id <= ? GROUP BY member_id`, mid, lo, hi).
		Scan(&rows).Error; err != nil {
		return fmt.Errorf("points: reconcile orders: %w", err)
	}
	for _, r := range rows {
		f := stored[r.MemberID]
		delete(stored, r.MemberID)
		if f.OrderCount != r.OrderCount {
			add(Mismatch{MerchantID: mid, MemberID: r.MemberID, Check: checkCount, Stored: f.OrderCount, Derived: r.OrderCount})
		}
		if f.TotalSpendFen != r.TotalSpendFen {
			add(Mismatch{MerchantID: mid, MemberID: r.MemberID, Check: checkSpend, Stored: f.TotalSpendFen, Derived: r.TotalSpendFen})
		}
		first, err1 := parseDBTime(r.FirstOrderAt)
		last, err2 := parseDBTime(r.LastOrderAt)
		if err1 != nil || err2 != nil || !sameTime(first, f.FirstOrderAt) || !sameTime(last, f.LastOrderAt) {
			add(Mismatch{MerchantID: mid, MemberID: r.MemberID, Check: checkTimes})
		}
	}
	for id, f := range stored {
		// Facts without any order behind them.
		add(Mismatch{MerchantID: mid, MemberID: id, Check: checkSpend, Stored: f.TotalSpendFen, Derived: 0})
	}
	return nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// RunReconcile is `loyalty points reconcile`: it parses args, reconciles,
// prints the report to stdout and returns ErrMismatch when anything
// disagrees (the command then exits non-zero).
//
//	loyalty points reconcile [-merchant ID] [-chunk N] [-facts=false] [-max-report N]
func RunReconcile(ctx context.Context, gdb *gorm.DB, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("points reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o ReconcileOptions
	fs.Uint64Var(&o.MerchantID, "merchant", 0, "only this merchant (default: all)")
	fs.IntVar(&o.Chunk, "chunk", 5000, "accounts per round")
	fs.BoolVar(&o.Facts, "facts", true, "also check members' purchase facts against their orders")
	fs.IntVar(&o.MaxReport, "max-report", 100, "mismatches to print (all are counted)")
	if err := fs.Parse(args); err != nil {
		return &UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return &UsageError{Err: fmt.Errorf("unexpected arguments %v", fs.Args())}
	}
	rep, err := Reconcile(ctx, gdb, o)
	if err != nil {
		return err
	}
	for _, m := range rep.Mismatches {
		fmt.Fprintln(stdout, m.String())
	}
	fmt.Fprintf(stdout, "reconciled %d merchants, %d accounts, %d entries in %s: %d mismatches\n",
		rep.Merchants, rep.Accounts, rep.Entries, rep.Duration.Round(time.Millisecond), rep.MismatchCount)
	if rep.MismatchCount > 0 {
		return ErrMismatch
	}
	return nil
}

// UsageError is a mistake in RunReconcile's arguments (exit status 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }
