package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/internal/secrets"
	"github.com/wxloyalty/loyalty/webhook"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// eachIsolated runs fn on SQLite and on a MySQL database of its own: a
// worker serves every merchant's endpoints, so worker tests must not see
// one another's queues.
func eachIsolated(t *testing.T, fn func(t *testing.T, gdb *gorm.DB)) {
	t.Run(dbtest.SQLite, func(t *testing.T) { fn(t, dbtest.OpenSQLite(t)) })
	t.Run(dbtest.MySQL, func(t *testing.T) { fn(t, dbtest.OpenMySQLIsolated(t)) })
}

// fixture is the webhook parts over one database, on a fake clock.
type fixture struct {
	db         *gorm.DB
	clock      *fakeclock.Clock
	endpoints  *webhook.Endpoints
	outbox     *webhook.Outbox
	deliveries *webhook.Deliveries
}

func newFixture(t *testing.T, gdb *gorm.DB) *fixture {
	t.Helper()
	keys, err := secrets.New(strings.Repeat("k", 32))
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	eps := webhook.NewEndpoints(gdb, keys, webhook.Targets{AllowPrivate: true}, clock.Now)
	return &fixture{db: gdb, clock: clock, endpoints: eps, outbox: webhook.NewOutbox(eps, clock.Now, 0),
		deliveries: webhook.NewDeliveries(gdb, clock.Now, 0)}
}

func (f *fixture) worker(o webhook.WorkerOptions) *webhook.Worker {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	return webhook.NewWorker(f.endpoints, f.clock.Now, nil, o)
}

// register adds an endpoint for the merchant and returns it with its secret.
func (f *fixture) register(t *testing.T, merchantID uint64, url string, types ...event.Type) (webhook.Endpoint, string) {
	t.Helper()
	e, secret, err := f.endpoints.Create(context.Background(), merchantID, webhook.EndpointInput{URL: &url, Events: types})
	if err != nil {
		t.Fatal(err)
	}
	return e, secret
}

// emit emits events in a transaction of their own, as a feature would in
// the transaction of its change.
func (f *fixture) emit(t *testing.T, evs ...event.Event) {
	t.Helper()
	if err := f.db.Transaction(func(tx *gorm.DB) error { return f.outbox.Emit(context.Background(), tx, evs...) }); err != nil {
		t.Fatal(err)
	}
}

func pointsEvent(merchantID, memberID uint64, n int64) event.Event {
	return event.Event{MerchantID: merchantID, Type: event.PointsChanged,
		Data: event.Points{MemberID: memberID, Available: n, AvailableChange: n}}
}

// received is one request an endpoint got.
type received struct {
	id, typ, ts, sig string
	body             []byte
}

// receiver is a test endpoint: it records what it gets, answers with
// answer(n) for the n-th request (0-based) and checks every signature.
type receiver struct {
	t      *testing.T
	secret string
	answer func(n int) int

	mu   sync.Mutex
	got  []received
	srv  *httptest.Server
	errs []string
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	r := &receiver{t: t, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rec := received{id: req.Header.Get(webhook.HeaderEventID), typ: req.Header.Get(webhook.HeaderEvent),
			ts: req.Header.Get(webhook.HeaderTimestamp), sig: req.Header.Get(webhook.HeaderSignature), body: body}
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, rec)
		if !r.verify(rec) {
			r.errs = append(r.errs, fmt.Sprintf("request %d: bad signature %q", n, rec.sig))
		}
		r.mu.Unlock()
		w.WriteHeader(r.answer(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// verify checks a signature as a receiver would: HMAC-SHA256 with the
// secret over "<timestamp>.<body>", hex, after "v1=".
func (r *receiver) verify(rec received) bool {
	m := hmac.New(sha256.New, []byte(r.secret))
	m.Write([]byte(rec.ts + "." + string(rec.body)))
	want := "v1=" + hex.EncodeToString(m.Sum(nil))
	return r.secret != "" && hmac.Equal([]byte(want), []byte(rec.sig))
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) > 0 {
		r.t.Errorf("signature check failed: %v", r.errs)
	}
	return append([]received(nil), r.got...)
}

func (f *fixture) delivery(t *testing.T, merchantID uint64) webhook.DeliveryView {
	t.Helper()
	list, err := f.deliveries.List(context.Background(), merchantID, webhook.DeliveryFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("deliveries: %d, want 1", len(list))
	}
	return list[0]
}

func drain(t *testing.T, w *webhook.Worker) int {
	t.Helper()
	n, err := w.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// An endpoint that fails twice gets the event again, with backoff, until it
// answers 2xx; every attempt carries the same event id and a valid
// signature over the timestamp and body.
func TestRetriesUntilDelivered(t *testing.T) {
	eachIsolated(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		mid := dbtest.NewMerchantID()
		r := newReceiver(t, func(n int) int {
			if n < 2 {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		})
		_, r.secret = f.register(t, mid, r.srv.URL+"/hook", event.PointsChanged)
		w := f.worker(webhook.WorkerOptions{MinBackoff: time.Minute, MaxBackoff: time.Hour})
		f.emit(t, pointsEvent(mid, 7, 120))

		if n := drain(t, w); n != 1 {
			t.Fatalf("first round: %d attempts, want 1", n)
		}
		d := f.delivery(t, mid)
		if d.Status != webhook.StatusPending || d.Attempts != 1 || d.LastStatus != 500 {
			t.Fatalf("after a 500: %+v", d.Delivery)
		}
		if wait := d.NextAttemptAt.Sub(f.clock.Now()); wait < 30*time.Second || wait > time.Minute {
			t.Fatalf("first retry in %s, want 30s to 1m (1m with jitter)", wait)
		}
		if n := drain(t, w); n != 0 {
			t.Fatalf("retried before its time: %d attempts", n)
		}
		f.clock.Add(time.Minute)
		drain(t, w)
		d = f.delivery(t, mid)
		if d.Status != webhook.StatusPending || d.Attempts != 2 {
			t.Fatalf("after a second 500: %+v", d.Delivery)
		}
		if wait := d.NextAttemptAt.Sub(f.clock.Now()); wait < time.Minute || wait > 2*time.Minute {
			t.Fatalf("second retry in %s, want 1m to 2m (doubled)", wait)
		}
		f.clock.Add(2 * time.Minute)
		drain(t, w)
		d = f.delivery(t, mid)
		if d.Status != webhook.StatusDelivered || d.Attempts != 3 || d.LastStatus != 204 || d.DeliveredAt == nil {
			t.Fatalf("after a 204: %+v", d.Delivery)
		}
		f.clock.Add(time.Hour)
		if n := drain(t, w); n != 0 {
			t.Fatalf("a delivered event was sent again: %d", n)
		}

		got := r.requests()
		if len(got) != 3 {
			t.Fatalf("%d requests, want 3", len(got))
		}
		for _, g := range got {
			if g.id != got[0].id || g.id != d.EventID || g.typ != "points.changed" {
				t.Fatalf("request %+v: want event %s, points.changed", g, d.EventID)
			}
		}
		var body webhook.Body
		if err := json.Unmarshal(got[2].body, &body); err != nil {
			t.Fatal(err)
		}
		var data event.Points
		if err := json.Unmarshal(body.Data, &data); err != nil {
			t.Fatal(err)
		}
		if body.ID != d.EventID || body.Type != event.PointsChanged || data.MemberID != 7 || data.Available != 120 {
			t.Fatalf("body %s", got[2].body)
		}
		// A tampered body does not verify.
		tampered := got[2]
		tampered.body = []byte(strings.Replace(string(tampered.body), "120", "999", 1))
		if r.verify(tampered) {
			t.Fatal("a tampered body verified")
		}
	})
}

// An endpoint that keeps failing for the retry window lands in the
// dead-letter list; the merchant replays it and it is delivered, with the
// same event id.
func TestDeadLetterAndReplay(t *testing.T) {
	eachIsolated(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		var up sync.Mutex
		healthy := false
		r := newReceiver(t, func(int) int {
			up.Lock()
			defer up.Unlock()
			if healthy {
				return http.StatusOK
			}
			return http.StatusBadGateway
		})
		_, r.secret = f.register(t, mid, r.srv.URL, event.MemberCreated)
		w := f.worker(webhook.WorkerOptions{MinBackoff: time.Minute, MaxBackoff: 2 * time.Hour})
		f.emit(t, event.Event{MerchantID: mid, Type: event.MemberCreated, Data: event.Member{MemberID: 3, Source: "import"}})

		start := f.clock.Now()
		for i := 0; i < 100 && f.delivery(t, mid).Status != webhook.StatusDead; i++ {
			drain(t, w)
			f.clock.Add(2 * time.Hour)
		}
		d := f.delivery(t, mid)
		if d.Status != webhook.StatusDead || d.LastStatus != 502 {
			t.Fatalf("after a day of 502s: %+v", d.Delivery)
		}
		if f.clock.Now().Sub(start) < 24*time.Hour {
			t.Fatalf("dead after %s, before the day of retries ran out", f.clock.Now().Sub(start))
		}
		attempts := len(r.requests())
		if attempts != d.Attempts || attempts < 10 {
			t.Fatalf("%d requests, %d attempts recorded", attempts, d.Attempts)
		}
		f.clock.Add(48 * time.Hour)
		if n := drain(t, w); n != 0 {
			t.Fatalf("a dead delivery was retried: %d", n)
		}

		dead, err := f.deliveries.List(ctx, mid, webhook.DeliveryFilter{Status: webhook.StatusDead, Limit: 50})
		if err != nil || len(dead) != 1 || dead[0].ID != d.ID || dead[0].EventType != event.MemberCreated {
			t.Fatalf("dead-letter list: %+v, %v", dead, err)
		}
		// Another merchant cannot replay it.
		if _, err := f.deliveries.Replay(ctx, dbtest.NewMerchantID(), d.ID); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("replay by another merchant: %v", err)
		}
		up.Lock()
		healthy = true
		up.Unlock()
		replayed, err := f.deliveries.Replay(ctx, mid, d.ID)
		if err != nil || replayed.Status != webhook.StatusPending || replayed.Attempts != 0 {
			t.Fatalf("replay: %+v, %v", replayed, err)
		}
		if _, err := f.deliveries.Replay(ctx, mid, d.ID); !errors.Is(err, apperr.ErrConflict) {
			t.Fatalf("replaying a pending delivery: %v, want a conflict", err)
		}
		if n := drain(t, w); n != 1 {
			t.Fatalf("replay: %d attempts, want 1", n)
		}
		if d2 := f.delivery(t, mid); d2.Status != webhook.StatusDelivered {
			t.Fatalf("after replay: %+v", d2.Delivery)
		}
		got := r.requests()
		if last := got[len(got)-1]; last.id != d.EventID {
			t.Fatalf("replayed with event id %s, want %s", last.id, d.EventID)
		}
	})
}

// An endpoint that does not answer holds only its own slots: another
// merchant's endpoint gets its event while the slow one's requests are
// still hanging.
func TestSlowEndpointDoesNotDelayAnotherMerchant(t *testing.T) {
	eachIsolated(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		slowMerchant, fastMerchant := dbtest.NewMerchantID(), dbtest.NewMerchantID()
		release := make(chan struct{})
		arrived := make(chan struct{}, 100)
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-req.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(release)
		got := make(chan string, 10)
		fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			got <- req.Header.Get(webhook.HeaderEventID)
		}))
		defer fast.Close()
		f.register(t, slowMerchant, slow.URL, event.PointsChanged)
		f.register(t, fastMerchant, fast.URL, event.PointsChanged)
		// The slow merchant's backlog is older and larger than the worker's
		// whole concurrency.
		for i := range 20 {
			f.emit(t, pointsEvent(slowMerchant, uint64(i+1), 10))
		}
		w := f.worker(webhook.WorkerOptions{Concurrency: 4, PerEndpoint: 2, Timeout: time.Minute, Poll: 20 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(ctx) }()
		defer func() { cancel(); <-done }()
		// The slow endpoint's two slots are taken by hanging requests...
		for range 2 {
			select {
			case <-arrived:
			case <-time.After(30 * time.Second): // a liveness bound
				t.Fatal("the slow endpoint got no request")
			}
		}
		// ... when the other merchant's event comes.
		f.emit(t, pointsEvent(fastMerchant, 1, 10))
		select {
		case id := <-got:
			if id == "" {
				t.Fatal("no event id")
			}
		case <-time.After(30 * time.Second): // a liveness bound, not a timing assertion
			t.Fatal("the fast merchant's event was not delivered while the slow endpoint hung")
		}
		var claimed int64
		if err := gdb.Model(&webhook.Delivery{}).Where("merchant_id = ? AND status = ?", slowMerchant, webhook.StatusClaimed).
			Count(&claimed).Error; err != nil {
			t.Fatal(err)
		}
		if claimed != 2 || len(arrived) != 0 {
			t.Fatalf("the slow endpoint holds %d deliveries in flight (%d more requests), want its 2 slots", claimed, len(arrived))
		}
	})
}

// Two workers (two instances) on one queue deliver every event to every
// endpoint once, never the same one twice at once, whichever way they
// claim rows apart.
func TestTwoWorkersDeliverEachEventOnce(t *testing.T) {
	for _, strategy := range db.ClaimStrategies {
		t.Run(string(strategy), func(t *testing.T) { twoWorkersDeliverEachEventOnce(t, strategy) })
	}
}

func twoWorkersDeliverEachEventOnce(t *testing.T, strategy db.ClaimStrategy) {
	eachIsolated(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		mid := dbtest.NewMerchantID()
		var mu sync.Mutex
		count := map[string]int{}
		inflight := map[string]int{}
		overlap := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			key := req.URL.Path + " " + req.Header.Get(webhook.HeaderEventID)
			mu.Lock()
			count[key]++
			if inflight[key]++; inflight[key] > 1 {
				overlap++
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inflight[key]--
			mu.Unlock()
		}))
		defer srv.Close()
		for _, p := range []string{"/a", "/b", "/c"} {
			f.register(t, mid, srv.URL+p, event.PointsChanged)
		}
		const events = 150
		for i := range events {
			f.emit(t, pointsEvent(mid, uint64(i+1), 1))
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := range 2 {
			w := f.worker(webhook.WorkerOptions{Owner: "instance-" + strconv.Itoa(i), Concurrency: 8, PerEndpoint: 3,
				PerMerchant: 8, Poll: 10 * time.Millisecond, Claim: strategy})
			wg.Add(1)
			go func() { defer wg.Done(); w.Run(ctx) }()
		}
		deadline := time.Now().Add(2 * time.Minute) // a liveness bound
		for {
			var delivered int64
			if err := gdb.Model(&webhook.Delivery{}).Where("merchant_id = ? AND status = ?", mid, webhook.StatusDelivered).
				Count(&delivered).Error; err != nil {
				t.Fatal(err)
			}
			if delivered == 3*events {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d delivered", delivered, 3*events)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(count) != 3*events || overlap != 0 {
			t.Fatalf("%d distinct deliveries (want %d), %d overlapping", len(count), 3*events, overlap)
		}
		for k, n := range count {
			if n != 1 {
				t.Fatalf("%s delivered %d times", k, n)
			}
		}
	})
}

// Endpoints on loopback, private or link-local addresses are refused unless
// private targets are allowed, by name or by literal address, and at
// connect time too (a name that changed its address after registration).
func TestRefusesPrivateTargets(t *testing.T) {
	gdb := dbtest.OpenSQLite(t)
	keys, _ := secrets.New(strings.Repeat("k", 32))
	now := time.Now
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "internal.example":
			return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
		case "public.example":
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
		}
		return nil, errors.New("no such host")
	}
	strict := webhook.NewEndpoints(gdb, keys, webhook.Targets{Resolve: resolve}, now)
	mid := dbtest.NewMerchantID()
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://localhost/x", "https://169.254.169.254/latest/meta-data",
		"http://[::1]/x", "https://internal.example/hook", "http://192.168.1.10/", "https://nowhere.example/",
		"ftp://public.example/x", "https://user:pw@public.example/x"} {
		_, _, err := strict.Create(context.Background(), mid, webhook.EndpointInput{URL: &u, Events: []event.Type{event.MemberCreated}})
		var v *apperr.Validation
		if !errors.As(err, &v) || !strings.Contains(err.Error(), "url") {
			t.Errorf("%s: %v, want a validation error on url", u, err)
		}
	}
	ok := "https://public.example/hook"
	if _, _, err := strict.Create(context.Background(), mid, webhook.EndpointInput{URL: &ok, Events: []event.Type{event.MemberCreated}}); err != nil {
		t.Fatalf("public endpoint: %v", err)
	}
	bad := []event.Type{"member.deleted"}
	if _, _, err := strict.Create(context.Background(), mid, webhook.EndpointInput{URL: &ok, Events: bad}); err == nil ||
		!strings.Contains(err.Error(), "events[0]") {
		t.Fatalf("unknown event type: %v", err)
	}

	// Registered while private targets were allowed, delivered by a worker
	// that does not allow them: the dialer refuses.
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	f := newFixture(t, gdb)
	mid = dbtest.NewMerchantID()
	f.register(t, mid, srv.URL, event.MemberCreated)
	f.emit(t, event.Event{MerchantID: mid, Type: event.MemberCreated, Data: event.Member{MemberID: 1}})
	guarded := webhook.NewWorker(webhook.NewEndpoints(gdb, keys, webhook.Targets{}, f.clock.Now), f.clock.Now, nil,
		webhook.WorkerOptions{Timeout: 2 * time.Second})
	if n, err := guarded.Drain(context.Background()); err != nil || n != 1 {
		t.Fatalf("drain: %d, %v", n, err)
	}
	var d webhook.Delivery
	if err := gdb.Where("merchant_id = ? AND endpoint_id <> 0", mid).Order("id DESC").Take(&d).Error; err != nil {
		t.Fatal(err)
	}
	if hit || d.Status != webhook.StatusPending || !strings.Contains(d.LastError, "non-public") {
		t.Fatalf("private target reached: hit %v, delivery %+v", hit, d)
	}
}

// Nothing is written for an event no endpoint subscribes to, and an event
// emitted in a transaction that rolls back does not exist.
func TestOutboxWritesOnlyWhatIsSubscribedAndCommitted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		mid := dbtest.NewMerchantID()
		f.register(t, mid, "http://127.0.0.1:1/x", event.TierChanged)
		f.emit(t, pointsEvent(mid, 1, 5)) // not subscribed
		err := gdb.Transaction(func(tx *gorm.DB) error {
			if err := f.outbox.Emit(context.Background(), tx, event.Event{MerchantID: mid, Type: event.TierChanged,
				Data: event.Tier{MemberID: 1}}); err != nil {
				return err
			}
			return errors.New("the change failed")
		})
		if err == nil {
			t.Fatal("want the transaction's error")
		}
		var n int64
		if err := gdb.Model(&webhook.Delivery{}).Where("merchant_id = ?", mid).Count(&n).Error; err != nil || n != 0 {
			t.Fatalf("%d deliveries, %v; want none", n, err)
		}
		f.emit(t, event.Event{MerchantID: mid, Type: event.TierChanged, Data: event.Tier{MemberID: 1}})
		if err := gdb.Model(&webhook.Delivery{}).Where("merchant_id = ?", mid).Count(&n).Error; err != nil || n != 1 {
			t.Fatalf("%d deliveries, %v; want 1", n, err)
		}
	})
}
