package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/db"
)

// Headers of a delivery (see README.md, "Webhooks").
const (
	HeaderEventID   = "X-Loyalty-Event-Id"  // evt_<id>: the same on every attempt; the receiver's idempotency key
	HeaderEvent     = "X-Loyalty-Event"     // the event type
	HeaderTimestamp = "X-Loyalty-Timestamp" // Unix seconds of this attempt
	HeaderSignature = "X-Loyalty-Signature" // v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
)

// Sign returns the signature header value of body sent at timestamp ts
// (Unix seconds) with secret.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// WorkerOptions tune the delivery worker; zero values take the defaults.
type WorkerOptions struct {
	Concurrency int              // deliveries in flight on this instance (default 32)
	PerEndpoint int              // in flight per endpoint on this instance (default 2)
	PerMerchant int              // in flight per merchant on this instance (default Concurrency/4, at least PerEndpoint)
	Timeout     time.Duration    // one attempt, connect to last byte (default 10 s)
	Lease       time.Duration    // a claim's lease; must outlive Timeout (default 3×Timeout + 10 s)
	Poll        time.Duration    // how often an idle worker looks for due deliveries (default 1 s)
	MinBackoff  time.Duration    // the wait after the first failure (default 10 s); doubled per failure
	MaxBackoff  time.Duration    // the longest wait between attempts (default 1 h)
	Retention   time.Duration    // a replayed delivery's new retry window (default 24 h)
	Owner       string           // this worker's lease owner name (default host, pid and a random suffix)
	Claim       db.ClaimStrategy // how MySQL instances claim rows apart (default db.ClaimSkipLocked)
}

func (o *WorkerOptions) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 2
	}
	if o.PerMerchant <= 0 {
		o.PerMerchant = max(o.Concurrency/4, o.PerEndpoint)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Lease <= o.Timeout {
		o.Lease = 3*o.Timeout + 10*time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 10 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(time.Hour, o.MinBackoff)
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Owner == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		o.Owner = clip(db.InstanceName(), 50) + "/" + hex.EncodeToString(b)
	}
}

// Worker delivers due webhook deliveries. Any number of instances may run
// one: claims are leased rows (deliveries.go).
//
// Fairness: every endpoint has its own small number of slots
// (PerEndpoint) and every merchant its share (PerMerchant) of the
// instance's Concurrency, and each round visits the merchants in turn, so
// an endpoint that answers slowly (or not at all, until Timeout) holds only
// its own slots: other endpoints, and other merchants, keep being served.
type Worker struct {
	db        *gorm.DB
	rows      deliveryRows
	endpoints *Endpoints
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger
	o         WorkerOptions

	mu          sync.Mutex
	inflight    int
	perEndpoint map[uint64]int
	perMerchant map[uint64]int
	held        map[uint64]struct{} // the deliveries in flight
	turn        int                 // rotates the merchant a round starts with
	wg          sync.WaitGroup
	wake        chan struct{}
}

// NewWorker returns a delivery worker.
func NewWorker(endpoints *Endpoints, now func() time.Time, log *slog.Logger, o WorkerOptions) *Worker {
	o.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rows := newDeliveryRows(endpoints.db)
	if o.Claim != "" {
		rows.strategy = o.Claim
	}
	return &Worker{db: endpoints.db, rows: rows, endpoints: endpoints,
		client: endpoints.targets.client(o.Timeout, o.PerEndpoint), now: now, log: log, o: o,
		perEndpoint: map[uint64]int{}, perMerchant: map[uint64]int{}, held: map[uint64]struct{}{}, wake: make(chan struct{}, 1)}
}

// Run delivers until ctx ends, then waits for the attempts in flight.
func (w *Worker) Run(ctx context.Context) {
	defer w.wg.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	lastSweep := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
		if time.Since(lastSweep) > w.o.Lease/4 {
			lastSweep = time.Now()
			if n, err := w.rows.sweep(ctx, w.now()); err != nil && ctx.Err() == nil {
				w.log.WarnContext(ctx, "webhook: sweep", "error", err)
			} else if n > 0 {
				w.log.WarnContext(ctx, "webhook: deliveries whose worker was lost are due again", "count", n)
			}
		}
		if _, err := w.round(ctx); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "webhook: round", "error", err)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(w.o.Poll)
	}
}

// Drain delivers everything due now, waiting for each round's attempts,
// until a round finds nothing to claim. (Tests, and `loyalty webhooks
// drain`-style tools; Run is the service's loop.)
func (w *Worker) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		if _, err := w.rows.sweep(ctx, w.now()); err != nil {
			return total, err
		}
		n, err := w.round(ctx)
		w.wg.Wait()
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// round claims what the free slots allow, merchant by merchant in turn, and
// starts the attempts. It returns how many it started.
func (w *Worker) round(ctx context.Context) (int, error) {
	if w.free() == 0 {
		return 0, nil
	}
	now := w.now()
	due, err := w.rows.dueEndpoints(ctx, now)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	started := 0
	for _, e := range w.interleave(due) {
		if w.free() == 0 {
			break
		}
		n := w.slots(e)
		if n == 0 {
			continue
		}
		rows, err := w.rows.claim(ctx, e.ID, w.o.Owner, n, now, now.Add(w.o.Lease), w.holds)
		if err != nil {
			return started, err
		}
		if len(rows) == 0 {
			continue
		}
		events, err := w.events(ctx, rows)
		if err != nil {
			return started, err // the claimed rows are swept when their lease ends
		}
		secret, err := w.endpoints.secret(e)
		if err != nil {
			return started, err
		}
		for _, d := range rows {
			w.take(e, d.ID)
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				defer w.release(e, d.ID)
				w.attempt(ctx, e, secret, d, events[d.EventID])
			}()
			started++
		}
	}
	return started, nil
}

// interleave orders endpoints merchant by merchant in turn (the first
// endpoint of each merchant, then the second of each, ...), starting with
// a different merchant each round.
func (w *Worker) interleave(eps []Endpoint) []Endpoint {
	var merchants []uint64
	by := map[uint64][]Endpoint{}
	for _, e := range eps {
		if by[e.MerchantID] == nil {
			merchants = append(merchants, e.MerchantID)
		}
		by[e.MerchantID] = append(by[e.MerchantID], e)
	}
	w.mu.Lock()
	start := w.turn % len(merchants)
	w.turn++
	w.mu.Unlock()
	merchants = append(merchants[start:], merchants[:start]...)
	out := make([]Endpoint, 0, len(eps))
	for i := 0; len(out) < len(eps); i++ {
		for _, m := range merchants {
			if i < len(by[m]) {
				out = append(out, by[m][i])
			}
		}
	}
	return out
}

func (w *Worker) free() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(0, w.o.Concurrency-w.inflight)
}

// slots is how many more attempts endpoint e may have in flight now.
func (w *Worker) slots(e Endpoint) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(0, min(w.o.PerEndpoint-w.perEndpoint[e.ID], w.o.PerMerchant-w.perMerchant[e.MerchantID],
		w.o.Concurrency-w.inflight))
}

// take counts delivery id of endpoint e in flight.
func (w *Worker) take(e Endpoint, id uint64) {
	w.mu.Lock()
	w.inflight++
	w.perEndpoint[e.ID]++
	w.perMerchant[e.MerchantID]++
	w.held[id] = struct{}{}
	w.mu.Unlock()
}

// holds reports whether delivery id is in flight here.
func (w *Worker) holds(id uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.held[id]
	return ok
}

// release frees an attempt's slot and wakes Run: the endpoint may have
// more due.
func (w *Worker) release(e Endpoint, id uint64) {
	w.mu.Lock()
	w.inflight--
	delete(w.held, id)
	if w.perEndpoint[e.ID]--; w.perEndpoint[e.ID] <= 0 {
		delete(w.perEndpoint, e.ID)
	}
	if w.perMerchant[e.MerchantID]--; w.perMerchant[e.MerchantID] <= 0 {
		delete(w.perMerchant, e.MerchantID)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// events loads the events of the claimed rows.
func (w *Worker) events(ctx context.Context, rows []Delivery) (map[uint64]eventRow, error) {
	ids := make([]uint64, len(rows))
	for i, d := range rows {
		ids[i] = d.EventID
	}
	var evs []eventRow
	if err := w.db.WithContext(ctx).Where("id IN ?", ids).Find(&evs).Error; err != nil {
		return nil, fmt.Errorf("webhook: events: %w", err)
	}
	out := make(map[uint64]eventRow, len(evs))
	for _, e := range evs {
		out[e.ID] = e
	}
	return out, nil
}

// Body is the JSON a delivery posts.
type Body struct {
	ID        string          `json:"id"` // evt_<id>, as in X-Loyalty-Event-Id
	Type      event.Type      `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// EventID is the public id of event row id.
func EventID(id uint64) string { return "evt_" + strconv.FormatUint(id, 10) }

// attempt posts one delivery and records the outcome.
func (w *Worker) attempt(ctx context.Context, e Endpoint, secret string, d Delivery, ev eventRow) {
	log := w.log.With("merchant_id", d.MerchantID, "endpoint_id", e.ID, "delivery_id", d.ID)
	var o outcome
	if ev.ID == 0 {
		o = outcome{err: "the event is gone"}
	} else {
		o = w.post(ctx, e, secret, ev)
	}
	if ctx.Err() != nil {
		return // shutting down: the row is swept when its lease ends, and sent again
	}
	now := w.now()
	var moved bool
	var err error
	if o.err == "" {
		moved, err = w.rows.delivered(ctx, d.ID, w.o.Owner, o, now)
	} else {
		var next *time.Time
		if t := now.Add(w.backoff(d.Attempts + 1)); t.Before(d.GiveUpAt) && ev.ID != 0 {
			next = &t
		}
		moved, err = w.rows.failed(ctx, d.ID, w.o.Owner, o, next, now)
		if moved && next == nil {
			log.WarnContext(ctx, "webhook: delivery parked in the dead-letter list", "attempts", d.Attempts+1, "error", o.err)
		}
	}
	switch {
	case err != nil:
		log.WarnContext(ctx, "webhook: record attempt", "error", err)
	case !moved:
		log.WarnContext(ctx, "webhook: the delivery's lease was lost before its outcome was recorded")
	}
}

// post sends ev to e, signed.
func (w *Worker) post(ctx context.Context, e Endpoint, secret string, ev eventRow) outcome {
	body, err := json.Marshal(Body{ID: EventID(ev.ID), Type: ev.Type, CreatedAt: ev.CreatedAt, Data: json.RawMessage(ev.Data)})
	if err != nil {
		return outcome{err: "encode: " + err.Error()}
	}
	ts := w.now().Unix()
	rctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: "request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "loyalty-webhooks/1")
	req.Header.Set(HeaderEventID, EventID(ev.ID))
	req.Header.Set(HeaderEvent, string(ev.Type))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return outcome{err: err.Error()}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return outcome{status: resp.StatusCode, err: "the endpoint answered " + resp.Status}
	}
	return outcome{status: resp.StatusCode}
}

// backoff is the wait before attempt n+1 after n failures: MinBackoff
// doubled per failure up to MaxBackoff, with jitter (between half and all
// of it) so endpoints that failed together do not retry together.
func (w *Worker) backoff(failures int) time.Duration {
	d := w.o.MinBackoff
	for i := 1; i < failures && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.o.MaxBackoff)
	return d/2 + mrand.N(d/2+1)
}

// Deliveries is the merchant's view of its deliveries: the dead-letter list
// and replay.
type Deliveries struct {
	rows      deliveryRows
	now       func() time.Time
	retention time.Duration
}

// NewDeliveries returns the deliveries view.
func NewDeliveries(gdb *gorm.DB, now func() time.Time, retention time.Duration) *Deliveries {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &Deliveries{rows: newDeliveryRows(gdb), now: now, retention: retention}
}

// DeliveryFilter narrows a listing of deliveries.
type DeliveryFilter struct {
	Status     Status // "" : any
	EndpointID uint64 // 0: any
	Before     uint64 // ids below it (0: from the newest)
	Limit      int
}

// DeliveryView is a delivery as the API shows it, with its event.
type DeliveryView struct {
	Delivery
	EventID   string     `json:"event_id"`
	EventType event.Type `json:"event_type"`
}

// List returns the merchant's deliveries, newest first
// (idx_webhook_deliveries_list with a status; the primary key otherwise).
func (d *Deliveries) List(ctx context.Context, merchantID uint64, f DeliveryFilter) ([]DeliveryView, error) {
	q := d.rows.db.WithContext(ctx).Table("webhook_deliveries d").
		Select("d.*, e.type AS event_type").Joins("JOIN webhook_events e ON e.id = d.event_id").
		Where("d.merchant_id = ?", merchantID)
	if f.Status != "" {
		q = q.Where("d.status = ?", f.Status)
	}
	if f.EndpointID != 0 {
		q = q.Where("d.endpoint_id = ?", f.EndpointID)
	}
	if f.Before != 0 {
		q = q.Where("d.id < ?", f.Before)
	}
	var rows []struct {
		Delivery
		EventType event.Type
	}
	if err := q.Order("d.id DESC").Limit(f.Limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("webhook: list deliveries: %w", err)
	}
	out := make([]DeliveryView, len(rows))
	for i, r := range rows {
		out[i] = DeliveryView{Delivery: r.Delivery, EventID: EventID(r.EventID), EventType: r.EventType}
	}
	return out, nil
}

// Get returns one of the merchant's deliveries.
func (d *Deliveries) Get(ctx context.Context, merchantID, id uint64) (DeliveryView, error) {
	var r struct {
		Delivery
		EventType event.Type
	}
	res := d.rows.db.WithContext(ctx).Table("webhook_deliveries d").Select("d.*, e.type AS event_type").
		Joins("JOIN webhook_events e ON e.id = d.event_id").Where("d.merchant_id = ? AND d.id = ?", merchantID, id).Limit(1).Find(&r)
	if res.Error != nil {
		return DeliveryView{}, fmt.Errorf("webhook: delivery %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return DeliveryView{}, errDeliveryNotFound
	}
	return DeliveryView{Delivery: r.Delivery, EventID: EventID(r.EventID), EventType: r.EventType}, nil
}

// Replay puts a dead delivery back in the queue, due now, retried again
// for the retention window; the event keeps its id.
func (d *Deliveries) Replay(ctx context.Context, merchantID, id uint64) (DeliveryView, error) {
	now := d.now()
	if err := d.rows.replay(ctx, merchantID, id, now, now.Add(d.retention)); err != nil {
		return DeliveryView{}, err
	}
	return d.Get(ctx, merchantID, id)
}
