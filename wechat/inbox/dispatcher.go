package inbox

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// Apply runs fn in the transaction that marks the event processed. It
// returns ErrAlreadyApplied when another run has already processed the
// event; fn's changes are then rolled back.
type Apply func(fn func(tx *gorm.DB) error) error

// Handler applies one kind of event. It may first do slow outside work
// (calls to WeChat) and then call apply once with its database changes. A
// handler that does not call apply has the event marked processed with no
// changes. An error makes the dispatcher retry the event later with backoff.
type Handler func(ctx context.Context, ev Stored, apply Apply) error

// ErrAlreadyApplied means the event was processed by another run.
var ErrAlreadyApplied = errors.New("inbox: event already applied")

// Kind names the handler slot of an event: "message" for anything a user
// sent, otherwise the event name (subscribe, unsubscribe, SCAN, CLICK,
// TEMPLATESENDJOBFINISH).
func Kind(ev wechat.Event) string {
	if ev.IsUserMessage() {
		return KindMessage
	}
	return ev.EventType
}

// KindMessage is the handler slot for user messages.
const KindMessage = "message"

// Observer is told the outcome of each processed event (for metrics).
type Observer interface {
	ObserveEvent(kind, outcome string)
}

type nopObserver struct{}

func (nopObserver) ObserveEvent(string, string) {}

// DispatcherOptions tune a Dispatcher. Zero values pick the defaults.
type DispatcherOptions struct {
	Workers     int              // events processed at once (default 16)
	Batch       int              // events claimed per round (default 256)
	Poll        time.Duration    // idle wait when not woken (default 1s)
	Lease       time.Duration    // how long a claim keeps others away (default 2m)
	MaxAttempts int              // failures before an event is set aside (default 25, ~3h of backoff)
	Retention   time.Duration    // processed events are deleted after this (default 7 days)
	Now         func() time.Time // clock (default time.Now)
	Observer    Observer
}

// Dispatcher claims stored events and runs their handlers. Several
// instances may run against one database: claims (leases) keep them from
// doing the same work, and the processed mark keeps effects single even
// when a lease expires mid-way.
type Dispatcher struct {
	db       *gorm.DB
	log      *slog.Logger
	o        DispatcherOptions
	owner    string
	round    atomic.Uint64
	handlers map[string]Handler
	wake     chan struct{}
}

// NewDispatcher returns a dispatcher with no handlers.
func NewDispatcher(gdb *gorm.DB, log *slog.Logger, o DispatcherOptions) *Dispatcher {
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 25
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return &Dispatcher{db: gdb, log: log, o: o, owner: db.InstanceName(),
		handlers: map[string]Handler{}, wake: make(chan struct{}, 1)}
}

// Handle registers the handler for a kind (see Kind). Register before Run;
// one handler per kind.
func (d *Dispatcher) Handle(kind string, h Handler) {
	if _, dup := d.handlers[kind]; dup {
		panic("inbox: second handler for " + kind)
	}
	d.handlers[kind] = h
}

// Wake makes a waiting Run look for events now (the Writer calls it after
// each commit).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run processes events until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	nextPrune := time.Time{}
	for ctx.Err() == nil {
		n, err := d.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.ErrorContext(ctx, "inbox: dispatch round", "error", err)
		}
		if now := d.now(); now.After(nextPrune) {
			if err := d.Prune(ctx); err != nil && ctx.Err() == nil {
				d.log.ErrorContext(ctx, "inbox: prune", "error", err)
			}
			nextPrune = now.Add(time.Hour)
		}
		if n == d.o.Batch && err == nil {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-time.After(d.o.Poll):
		}
	}
}

func (d *Dispatcher) now() time.Time { return d.o.Now().UTC().Truncate(time.Millisecond) }

// RunOnce claims one batch of due events and processes it. It returns how
// many events it claimed.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	rows, err := d.claim(ctx)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	// Events of one user stay in order on one worker; different users run
	// in parallel.
	parts := make([][]Row, d.o.Workers)
	for _, r := range rows {
		h := fnv.New32a()
		_, _ = h.Write([]byte(r.OpenID))
		i := int(h.Sum32() % uint32(d.o.Workers))
		parts[i] = append(parts[i], r)
	}
	var wg sync.WaitGroup
	for _, part := range parts {
		if len(part) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range part {
				d.process(ctx, r)
			}
		}()
	}
	wg.Wait()
	return len(rows), nil
}

// claim leases up to Batch due events to this round. The ids are read first
// and then leased with a conditional UPDATE, so two instances racing for the
// same rows split them instead of both taking them. The SELECT walks
// idx_wechat_events_pending (processed_at, id): only unprocessed rows, in
// arrival order.
func (d *Dispatcher) claim(ctx context.Context) ([]Row, error) {
	now := d.now()
	var ids []uint64
	err := d.db.WithContext(ctx).Model(&Row{}).
		Where("processed_at IS NULL AND (lease_until IS NULL OR lease_until < ?)", now).
		Order("id").Limit(d.o.Batch).Pluck("id", &ids).Error
	if err != nil || len(ids) == 0 {
		return nil, wrap("find due events", err)
	}
	owner := fmt.Sprintf("%s/%d", d.owner, d.round.Add(1))
	err = d.db.WithContext(ctx).Model(&Row{}).
		Where("id IN ? AND processed_at IS NULL AND (lease_until IS NULL OR lease_until < ?)", ids, now).
		Updates(map[string]any{"lease_owner": owner, "lease_until": now.Add(d.o.Lease)}).Error
	if err != nil {
		return nil, wrap("lease events", err)
	}
	var rows []Row
	err = d.db.WithContext(ctx).Where("id IN ? AND lease_owner = ? AND processed_at IS NULL", ids, owner).
		Order("id").Find(&rows).Error
	return rows, wrap("read leased events", err)
}

func (d *Dispatcher) process(ctx context.Context, r Row) {
	ev := r.stored()
	kind := Kind(ev.Event)
	applied := false
	apply := func(fn func(tx *gorm.DB) error) error {
		if applied {
			return errors.New("inbox: apply called twice")
		}
		applied = true
		return d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			// Mark first: the row lock this takes makes a concurrent run of
			// the same event wait here and then find it processed.
			res := tx.Model(&Row{}).Where("id = ? AND processed_at IS NULL", r.ID).
				Updates(map[string]any{"processed_at": d.now(), "lease_owner": nil, "lease_until": nil})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return ErrAlreadyApplied
			}
			return fn(tx)
		})
	}
	var err error
	if h := d.handlers[kind]; h != nil {
		err = h(ctx, ev, apply)
	}
	if err == nil && !applied {
		err = apply(func(*gorm.DB) error { return nil })
	}
	switch {
	case err == nil:
		d.o.Observer.ObserveEvent(kind, "applied")
	case errors.Is(err, ErrAlreadyApplied):
		d.o.Observer.ObserveEvent(kind, "duplicate")
	case ctx.Err() != nil:
		// Shutting down: the lease expires and another run takes it.
	default:
		d.fail(ctx, r, kind, err)
	}
}

// fail records a failed attempt and schedules the next one with
// exponential backoff and jitter; after MaxAttempts the event is set aside
// (processed_at set, last_error kept) so it stops blocking nothing but is
// visible.
func (d *Dispatcher) fail(ctx context.Context, r Row, kind string, cause error) {
	attempts := r.Attempts + 1
	msg := clip(cause.Error(), 255)
	updates := map[string]any{"attempts": attempts, "last_error": msg}
	now := d.now()
	if attempts >= d.o.MaxAttempts {
		updates["processed_at"] = now
		updates["lease_until"] = nil
		d.log.ErrorContext(ctx, "inbox: giving up on event", "merchant_id", r.MerchantID, "event_id", r.ID,
			"kind", kind, "attempts", attempts, "error", cause)
		d.o.Observer.ObserveEvent(kind, "gave_up")
	} else {
		backoff := min(time.Duration(1<<min(attempts, 10))*time.Second, 10*time.Minute)
		backoff += time.Duration(rand.Int64N(int64(backoff / 2)))
		updates["lease_until"] = now.Add(backoff)
		d.log.WarnContext(ctx, "inbox: event failed, will retry", "merchant_id", r.MerchantID, "event_id", r.ID,
			"kind", kind, "attempts", attempts, "retry_in", backoff.String(), "error", cause)
		d.o.Observer.ObserveEvent(kind, "failed")
	}
	err := d.db.WithContext(context.WithoutCancel(ctx)).Model(&Row{}).
		Where("id = ? AND processed_at IS NULL", r.ID).Updates(updates).Error
	if err != nil {
		d.log.ErrorContext(ctx, "inbox: record failure", "event_id", r.ID, "error", err)
	}
}

// Prune deletes events processed longer ago than the retention, a chunk at
// a time so no statement holds locks for long. WeChat retries within
// seconds, so old rows are no longer needed for deduplication.
func (d *Dispatcher) Prune(ctx context.Context) error {
	cutoff := d.now().Add(-d.o.Retention)
	for {
		var ids []uint64
		err := d.db.WithContext(ctx).Model(&Row{}).Where("processed_at < ?", cutoff).
			Order("processed_at").Limit(1000).Pluck("id", &ids).Error
		if err != nil || len(ids) == 0 {
			return wrap("find old events", err)
		}
		if err := d.db.WithContext(ctx).Where("id IN ?", ids).Delete(&Row{}).Error; err != nil {
			return wrap("delete old events", err)
		}
		if len(ids) < 1000 {
			return nil
		}
	}
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("inbox: %s: %w", what, err)
}
