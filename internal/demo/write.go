package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/points"
)

// demoEventBase offsets the event_id of demo follow events: real ones are
// wechat_events ids, far below it, so a later real event of the merchant
// never meets uk_follow_events_event.
const demoEventBase = 1 << 60

// Tables whose ids the generator assigns.
var idTables = []string{"member_follow_events", "member_care_dates", "points_orders", "points_ledger", "points_lots",
	"points_refunds", "member_stage_events"}

// allocator hands out id ranges. The generator assigns ids itself so that
// one multi-row INSERT per table writes rows that refer to each other
// (lots to ledger entries, orders to lots, entries' keys to lots and
// orders). It starts above both the largest id and the auto-increment
// counter; explicit ids move the counter past them, so the service's own
// inserts continue above. Run the seed while nothing else writes these
// tables: a concurrent insert could take an id of a range (the chunk then
// fails on the primary key, and what was written stays consistent).
type allocator struct {
	mu   sync.Mutex
	next map[string]uint64
}

func newAllocator(ctx context.Context, db *sql.DB, mysql bool, tables []string) (*allocator, error) {
	a := &allocator{next: map[string]uint64{}}
	for _, t := range tables {
		var maxID sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT MAX(id) FROM "+t).Scan(&maxID); err != nil {
			return nil, fmt.Errorf("demo: next id of %s: %w", t, err)
		}
		next := uint64(maxID.Int64) + 1
		var counter sql.NullInt64
		var err error
		if mysql {
			err = db.QueryRowContext(ctx, `SELECT AUTO_INCREMENT FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, t).Scan(&counter)
		} else {
			err = db.QueryRowContext(ctx, "SELECT seq + 1 FROM sqlite_sequence WHERE name = ?", t).Scan(&counter)
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("demo: id counter of %s: %w", t, err)
		}
		if counter.Valid && uint64(counter.Int64) > next {
			next = uint64(counter.Int64)
		}
		a.next[t] = next
	}
	return a, nil
}

// take reserves n ids of the table and returns the first.
func (a *allocator) take(table string, n int) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	first := a.next[table]
	a.next[table] += uint64(n)
	return first
}

// inserter writes multi-row INSERTs of one table.
type inserter struct {
	tx    *sql.Tx
	table string
	cols  string
	n     int // columns
	max   int // rows per statement
	rows  int
	args  []any
}

func newInserter(tx *sql.Tx, table, cols string) *inserter {
	n := strings.Count(cols, ",") + 1
	// SQLite allows 32766 parameters per statement; MySQL statements stay
	// well under max_allowed_packet at this size.
	return &inserter{tx: tx, table: table, cols: cols, n: n, max: min(1000, 30000/n)}
}

func (in *inserter) add(ctx context.Context, vals ...any) error {
	if len(vals) != in.n {
		return fmt.Errorf("demo: %s: %d values for %d columns", in.table, len(vals), in.n)
	}
	in.args = append(in.args, vals...)
	in.rows++
	if in.rows == in.max {
		return in.flush(ctx)
	}
	return nil
}

func (in *inserter) flush(ctx context.Context) error {
	if in.rows == 0 {
		return nil
	}
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", in.n), ", ") + ")"
	var b strings.Builder
	b.Grow(len(in.table) + len(in.cols) + in.rows*(len(one)+2) + 32)
	b.WriteString("INSERT INTO " + in.table + " (" + in.cols + ") VALUES ")
	for i := 0; i < in.rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	if _, err := in.tx.ExecContext(ctx, b.String(), in.args...); err != nil {
		return fmt.Errorf("demo: insert into %s: %w", in.table, err)
	}
	in.rows, in.args = 0, in.args[:0]
	return nil
}

// nullable returns nil for a nil pointer and the value otherwise, so the
// drivers see NULL or a plain value.
func nullable[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writer writes chunks.
type writer struct {
	db    *sql.DB
	env   *env
	alloc *allocator
	now   time.Time
}

// write inserts a chunk in one transaction, retrying a deadlock.
func (w *writer) write(ctx context.Context, c *chunk) error {
	ids := map[string]uint64{}
	for t, n := range map[string]int{"member_follow_events": len(c.follows), "member_care_dates": len(c.care),
		"points_orders": len(c.orders), "points_ledger": len(c.entries), "points_lots": len(c.lots),
		"points_refunds": len(c.refunds), "member_stage_events": len(c.stages)} {
		ids[t] = w.alloc.take(t, n)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = w.writeTx(ctx, c, ids); err == nil || !db.IsTransient(err) {
			return err
		}
	}
	return err
}

func (w *writer) writeTx(ctx context.Context, c *chunk, ids map[string]uint64) (err error) {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("demo: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	mid := w.env.merchantID
	orderID := func(i int) uint64 { return ids["points_orders"] + uint64(i) }
	lotID := func(i int) uint64 { return ids["points_lots"] + uint64(i) }
	entryID := func(i int) uint64 { return ids["points_ledger"] + uint64(i) }
	optID := func(i int, id func(int) uint64) any {
		if i < 0 {
			return nil
		}
		return id(i)
	}

	ins := newInserter(tx, "members", "id, merchant_id, oa_openid, mp_openid, unionid, phone, name, gender, birthday_month, "+
		"birthday_day, birthday_year, source, follow_status, followed_at, unfollowed_at, follow_changed_at, channel_scene, "+
		"last_interaction_at, created_at, updated_at, lifecycle_stage, won_back_at, order_count, total_spend_fen, "+
		"first_order_at, last_order_at, city")
	for _, m := range c.members {
		if err := ins.add(ctx, m.id, mid, nullable(m.oaOpenID), nullable(m.mpOpenID), nullable(m.unionID), nullable(m.phone),
			m.name, m.gender, nullable(m.bMonth), nullable(m.bDay), nullable(m.bYear), m.source, m.followStatus,
			nullable(m.followedAt), nullable(m.unfollowedAt), nullable(m.followChanged), nullable(m.channel),
			nullable(m.lastInteraction), m.createdAt, w.now, m.stage, nullable(m.wonBackAt), m.orderCount, m.spend,
			nullable(m.firstOrder), nullable(m.lastOrder), nullable(m.city)); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "member_follow_events", "id, merchant_id, member_id, event_id, kind, scene, occurred_at, created_at")
	for i, f := range c.follows {
		id := ids["member_follow_events"] + uint64(i)
		if err := ins.add(ctx, id, mid, f.member, demoEventBase+id, f.kind, nullable(f.scene), f.at, f.createdAtDB); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "member_care_dates", "id, merchant_id, member_id, kind, label, month, day, year, created_at, updated_at")
	for i, d := range c.care {
		if err := ins.add(ctx, ids["member_care_dates"]+uint64(i), mid, d.member, d.kind, d.label, d.month, d.day,
			nullable(d.year), d.createdAt, d.createdAt); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "member_consents", "merchant_id, member_id, channel, granted, granted_at, revoked_at, updated_at")
	for _, x := range c.consents {
		if err := ins.add(ctx, mid, x.member, x.channel, b2i(x.granted), nullable(x.grantedAt), nullable(x.revokedAt),
			x.updatedAt); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "member_tags", "merchant_id, tag_id, member_id, created_at")
	for _, t := range c.tags {
		if err := ins.add(ctx, mid, t.tag, t.member, t.createdAt); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	rv := w.env.ruleVersion
	ins = newInserter(tx, "points_ledger", "id, merchant_id, member_id, kind, points, pending, balance, reason, ref_type, "+
		"ref_id, rule_version, idempotency_key, expires_at, created_at")
	for i, e := range c.entries {
		var reason, refType, refID, key string
		version := rv
		switch e.kind {
		case points.KindEarn:
			ext := c.orders[e.order].ext
			reason, refType, refID, key = "order "+ext, "order", ext, "order:"+ext
		case points.KindReverse:
			o := c.orders[e.order]
			reason, refType, refID = "refund "+e.refundID+" of order "+o.ext, "refund", e.refundID
			key = "refund:" + strconv.FormatUint(orderID(e.order), 10) + ":" + e.refundID
		case points.KindRelease, points.KindExpire:
			lot := strconv.FormatUint(lotID(e.lot), 10)
			reason, refType, refID, key, version = "hold ended", "lot", lot, "release:lot:"+lot, 0
			if e.kind == points.KindExpire {
				reason, key = "expired", "expire:lot:"+lot
			}
		}
		if err := ins.add(ctx, entryID(i), mid, e.member, e.kind, e.points, e.pending, e.balance, reason, refType, refID,
			version, key, nullable(e.expiresAt), e.createdAt); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "points_lots", "id, merchant_id, member_id, ledger_id, status, points, remaining, available_at, "+
		"expires_at, created_at, updated_at")
	for i, l := range c.lots {
		if err := ins.add(ctx, lotID(i), mid, l.member, entryID(l.entry), l.status, l.points, l.remaining,
			nullable(l.availableAt), nullable(l.expiresAt), l.createdAt, l.updated); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "points_orders", "id, merchant_id, member_id, external_id, amount_fen, refunded_fen, points, "+
		"points_reversed, lot_id, ledger_id, rule_version, earn_detail, campaign_id, items, ordered_at, created_at, updated_at")
	for i, o := range c.orders {
		if err := ins.add(ctx, orderID(i), mid, o.member, o.ext, o.amount, o.refunded, o.points, o.reversed,
			optID(o.lot, lotID), optID(o.entry, entryID), rv, o.earnDetail, nil, o.items, o.orderedAt, o.orderedAt,
			o.updatedAt); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "points_refunds", "id, merchant_id, order_id, member_id, refund_id, amount_fen, points_reversed, "+
		"pending_cancelled, ledger_id, reason, created_at")
	for i, r := range c.refunds {
		if err := ins.add(ctx, ids["points_refunds"]+uint64(i), mid, orderID(r.order), r.member, r.refundID, r.amount,
			r.reversed, r.pendingCancel, optID(r.entry, entryID), r.reason, r.createdAt); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "points_accounts", "merchant_id, member_id, available, pending, debt, cap_day, cap_earned, "+
		"created_at, updated_at")
	for _, a := range c.accounts {
		if err := ins.add(ctx, mid, a.member, a.available, a.pending, a.debt, a.capDay, a.capEarned, a.createdAt,
			a.updatedAt); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}

	ins = newInserter(tx, "member_stage_events", "id, merchant_id, member_id, from_stage, to_stage, reason, occurred_at")
	for i, s := range c.stages {
		if err := ins.add(ctx, ids["member_stage_events"]+uint64(i), mid, s.member, s.from, s.to, s.reason, s.at); err != nil {
			return err
		}
	}
	if err := ins.flush(ctx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("demo: commit: %w", err)
	}
	return nil
}
