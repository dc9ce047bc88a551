package webhook

// The delivery state machine. A webhook_deliveries row is one event for
// one endpoint, and this file is the only code that writes the table.
// Every transition names the state it moves rows from and, for leased
// rows, the lease owner, and reports whether the row moved; a worker whose
// lease was swept finds that its row did not move and records nothing.
//
//	  emit (insert)
//	       │
//	       ▼      claim (lease: owner, until)
//	    pending ─────────────────────────────▶ claimed ── 2xx ──▶ delivered
//	     ▲  ▲                                    │  │
//	     │  └──── fail: retry at next_attempt_at ┘  └── fail after give_up_at ──▶ dead
//	     │  └──── sweep: lease expired (the call may have reached the endpoint)
//	     └─────── replay (the merchant) ◀──────────────────────────────────────── dead
//
// At least once, in one paragraph: a row is pending until an attempt got a
// 2xx; a worker lost mid-call leaves it claimed until its lease runs out,
// then the sweep makes it pending again and it is sent again, with the same
// event id (the receiver's idempotency key). Never twice at once: a row is
// sent only by the worker whose claim moved it to claimed, only while its
// lease runs, and the lease outlives the call's timeout.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
)

// deliveryRows writes webhook_deliveries.
type deliveryRows struct {
	db       *gorm.DB
	mysql    bool
	strategy db.ClaimStrategy // on MySQL; SQLite's write lock serialises claims
}

func newDeliveryRows(gdb *gorm.DB) deliveryRows {
	return deliveryRows{db: gdb, mysql: gdb.Dialector.Name() == db.MySQL, strategy: db.ClaimSkipLocked}
}

var errDeliveryNotFound = apperr.New(apperr.ErrNotFound, "webhook delivery not found")

// plan inserts a pending delivery of event eventID for each endpoint, in
// the emitting transaction. uk_webhook_deliveries keeps one per (endpoint,
// event).
func (s deliveryRows) plan(ctx context.Context, tx *gorm.DB, merchantID, eventID uint64, endpoints []uint64, now, giveUp time.Time) error {
	rows := make([]Delivery, len(endpoints))
	for i, id := range endpoints {
		rows[i] = Delivery{MerchantID: merchantID, EndpointID: id, EventID: eventID, Status: StatusPending,
			NextAttemptAt: now, GiveUpAt: giveUp, CreatedAt: now, UpdatedAt: now}
	}
	if err := tx.WithContext(ctx).Create(&rows).Error; err != nil {
		return fmt.Errorf("webhook: plan deliveries of event %d: %w", eventID, err)
	}
	return nil
}

// dueEndpoints returns the enabled endpoints with a pending delivery due
// at now. It reads the endpoints table and probes
// idx_webhook_deliveries_claim once per endpoint (an existence check),
// rather than grouping a backlog of due rows.
func (s deliveryRows) dueEndpoints(ctx context.Context, now time.Time) ([]Endpoint, error) {
	var out []Endpoint
	err := s.db.WithContext(ctx).Where("enabled = ? AND EXISTS (SELECT 1 FROM webhook_deliveries d "+
		"WHERE d.endpoint_id = webhook_endpoints.id AND d.status = ? AND d.next_attempt_at <= ?)", true, StatusPending, now).
		Order("merchant_id, id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("webhook: endpoints with due deliveries: %w", err)
	}
	return out, nil
}

// claim leases up to n of the endpoint's due pending rows, oldest first,
// to owner until until: pending → claimed. held says which rows owner
// already has in flight. On MySQL, instances claiming at once take
// different rows by the configured strategy: the candidates locked with
// SKIP LOCKED, or (update-limit, for TiDB) one UPDATE ... ORDER BY ...
// LIMIT that stamps them with owner and until, then read back; on SQLite
// the write lock serialises claims. Either way the UPDATE repeats the
// guard, and the rows returned are those it moved to owner.
func (s deliveryRows) claim(ctx context.Context, endpointID uint64, owner string, n int, now, until time.Time,
	held func(id uint64) bool) ([]Delivery, error) {
	var rows []Delivery
	set := map[string]any{"status": StatusClaimed, "lease_owner": owner, "lease_until": until, "updated_at": now}
	// idx_webhook_deliveries_claim (endpoint_id, status, next_attempt_at, id).
	due := "endpoint_id = ? AND status = ? AND next_attempt_at <= ?"
	err := s.retry(ctx, func(tx *gorm.DB) error {
		rows = rows[:0]
		if s.mysql && s.strategy == db.ClaimUpdateLimit {
			res := tx.Model(&Delivery{}).Where(due, endpointID, StatusPending, now).
				Order("next_attempt_at, id").Limit(n).UpdateColumns(set)
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error
			}
			// What this claim stamped: owner's rows with this lease, less
			// those owner already has in flight (an earlier claim of the
			// same instant, as with a test's clock).
			var mine []Delivery
			if err := tx.Where("endpoint_id = ? AND status = ? AND lease_owner = ? AND lease_until = ?",
				endpointID, StatusClaimed, owner, until).Order("id").Find(&mine).Error; err != nil {
				return err
			}
			for _, d := range mine {
				if !held(d.ID) {
					rows = append(rows, d)
				}
			}
			return nil
		}
		q := tx.Model(&Delivery{}).Select("id").Where(due, endpointID, StatusPending, now).
			Order("next_attempt_at, id").Limit(n)
		if s.mysql {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var ids []uint64
		if err := q.Find(&ids).Error; err != nil || len(ids) == 0 {
			return err
		}
		if err := tx.Model(&Delivery{}).Where("id IN ? AND status = ?", ids, StatusPending).
			UpdateColumns(set).Error; err != nil {
			return err
		}
		return tx.Where("id IN ? AND status = ? AND lease_owner = ?", ids, StatusClaimed, owner).Order("id").Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: claim deliveries of endpoint %d: %w", endpointID, err)
	}
	return rows, nil
}

// outcome is the result of one attempt.
type outcome struct {
	status int    // the HTTP status (0: no answer)
	err    string // why it failed ("" on success)
}

// delivered records a 2xx: claimed → delivered. It reports whether the
// row was still owner's.
func (s deliveryRows) delivered(ctx context.Context, id uint64, owner string, o outcome, now time.Time) (bool, error) {
	return s.move(ctx, id, owner, map[string]any{"status": StatusDelivered, "attempts": gorm.Expr("attempts + 1"),
		"last_status": o.status, "last_error": "", "delivered_at": now, "lease_owner": nil, "lease_until": nil, "updated_at": now})
}

// failed records a failed attempt: claimed → pending again at next, or
// dead when next is nil (the retry window has passed).
func (s deliveryRows) failed(ctx context.Context, id uint64, owner string, o outcome, next *time.Time, now time.Time) (bool, error) {
	set := map[string]any{"attempts": gorm.Expr("attempts + 1"), "last_status": o.status, "last_error": clip(o.err, 255),
		"lease_owner": nil, "lease_until": nil, "updated_at": now}
	if next == nil {
		set["status"] = StatusDead
	} else {
		set["status"], set["next_attempt_at"] = StatusPending, *next
	}
	return s.move(ctx, id, owner, set)
}

// move is one guarded UPDATE of one row by primary key, on its own (a
// single statement needs no transaction: this is the hot path, one per
// attempt), tried again when it lost a lock wait.
func (s deliveryRows) move(ctx context.Context, id uint64, owner string, set map[string]any) (bool, error) {
	var res *gorm.DB
	for attempt := range 5 {
		res = s.db.WithContext(ctx).Model(&Delivery{}).Where("id = ? AND status = ? AND lease_owner = ?", id, StatusClaimed, owner).
			UpdateColumns(set)
		if res.Error == nil || !db.IsTransient(res.Error) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1)*5*time.Millisecond + time.Duration(rand.IntN(5))*time.Millisecond)
	}
	if res.Error != nil {
		return false, fmt.Errorf("webhook: delivery %d: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// sweep makes claimed rows whose lease ran out pending again: their worker
// was lost (the call may or may not have reached the endpoint; the event id
// lets the receiver tell). idx_webhook_deliveries_due (status, ...).
func (s deliveryRows) sweep(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.retry(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Delivery{}).Where("status = ? AND lease_until < ?", StatusClaimed, now).
			UpdateColumns(map[string]any{"status": StatusPending, "lease_owner": nil, "lease_until": nil,
				"next_attempt_at": now, "updated_at": now})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("webhook: sweep leases: %w", err)
	}
	return n, nil
}

// replay puts a dead delivery back in the queue, due now, with a fresh
// retry window: dead → pending.
func (s deliveryRows) replay(ctx context.Context, merchantID, id uint64, now, giveUp time.Time) error {
	res := s.db.WithContext(ctx).Model(&Delivery{}).Where("merchant_id = ? AND id = ? AND status = ?", merchantID, id, StatusDead).
		UpdateColumns(map[string]any{"status": StatusPending, "attempts": 0, "next_attempt_at": now, "give_up_at": giveUp,
			"updated_at": now})
	if res.Error != nil {
		return fmt.Errorf("webhook: replay delivery %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		var d Delivery
		err := s.db.WithContext(ctx).Select("status").Where("merchant_id = ? AND id = ?", merchantID, id).Take(&d).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			return errDeliveryNotFound
		case err != nil:
			return fmt.Errorf("webhook: replay delivery %d: %w", id, err)
		}
		return apperr.New(apperr.ErrConflict, "only a dead delivery can be replayed; this one is %s", d.Status)
	}
	return nil
}

// retry runs fn in a transaction, again when it lost a deadlock or a lock
// wait to another instance; fn's statements are guarded, so a rerun is safe.
func (s deliveryRows) retry(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := range 5 {
		if err = s.db.WithContext(ctx).Transaction(fn); err == nil || !db.IsTransient(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1)*5*time.Millisecond + time.Duration(rand.IntN(5))*time.Millisecond)
	}
	return err
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		n--
	}
	return s[:n]
}
