package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/wechat"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var quiet = slog.New(slog.DiscardHandler)

// each runs fn on SQLite and on a MySQL database of its own (dispatchers
// look at the whole table).
func each(t *testing.T, fn func(t *testing.T, gdb *gorm.DB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, dbtest.OpenSQLite(t)) })
	t.Run("mysql", func(t *testing.T) { fn(t, dbtest.OpenMySQLIsolated(t)) })
}

func event(merchantID uint64, openID string, n int) wechat.Event {
	return wechat.Event{MerchantID: merchantID, DedupeKey: fmt.Sprintf("%064d", n), MsgType: "event",
		EventType: wechat.EventSubscribe, OpenID: openID, CreateTime: time.Unix(1_700_000_000+int64(n), 0).UTC()}
}

func countRows(t *testing.T, gdb *gorm.DB, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := gdb.Model(&Row{}).Where(where, args...).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// Concurrent callbacks, many of them WeChat retries of others: every
// Accept succeeds and each distinct event is stored once. (Retries racing
// their originals in other statements is what made MariaDB drop rows that
// INSERT ... ON DUPLICATE KEY UPDATE reported stored: several rounds make
// such a loss show.)
func TestWriterStoresEachEventOnce(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		var wakes atomic.Int64
		w := NewWriter(gdb, quiet, WriterOptions{Notify: func() { wakes.Add(1) }})
		w.Start()
		const distinct, rounds = 300, 5
		for round := range rounds {
			var wg sync.WaitGroup
			// Each event of the round, half of them twice, and a retry of
			// each event of the round before (stored already): batches mix
			// new events, retries racing their originals and retries
			// found stored.
			for i := range 2*distinct + distinct/2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n := round*distinct + i%distinct
					if i >= distinct+distinct/2 {
						if round == 0 {
							return
						}
						n -= distinct
					}
					if err := w.Accept(context.Background(), event(1, fmt.Sprintf("o_%d", n), n)); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
		}
		w.Stop()
		if got := countRows(t, gdb, "merchant_id = ?", 1); got != distinct*rounds {
			var keys []string
			gdb.Model(&Row{}).Pluck("dedupe_key", &keys)
			var missing []int
			for n := range distinct * rounds {
				if !slices.Contains(keys, fmt.Sprintf("%064d", n)) {
					missing = append(missing, n)
				}
			}
			t.Fatalf("%d rows, want %d: events %v acknowledged and not stored", got, distinct*rounds, missing)
		}
		if wakes.Load() == 0 {
			t.Fatal("dispatcher never woken")
		}
		if err := w.Accept(context.Background(), event(1, "o_late", 99999)); !errors.Is(err, ErrStopped) {
			t.Fatalf("accept after stop: %v, want ErrStopped", err)
		}
	})
}

// One row MySQL refuses must not fail the callbacks it shares an INSERT
// with: they are retried one by one.
func TestWriterIsolatesABadRow(t *testing.T) {
	gdb := dbtest.OpenMySQLIsolated(t)
	w := NewWriter(gdb, quiet, WriterOptions{})
	bad := event(1, "o_bad", 2)
	bad.DedupeKey = strings.Repeat("x", 65) // longer than CHAR(64): refused in strict mode
	good1 := &writeReq{row: rowOf(event(1, "o_1", 1), time.Now()), done: make(chan error, 1)}
	badReq := &writeReq{row: rowOf(bad, time.Now()), done: make(chan error, 1)}
	good3 := &writeReq{row: rowOf(event(1, "o_3", 3), time.Now()), done: make(chan error, 1)}
	w.newFlusher().flush([]*writeReq{good1, badReq, good3}) // (flush sorts the batch)
	if err := <-good1.done; err != nil {
		t.Fatalf("good row 1: %v", err)
	}
	if err := <-badReq.done; err == nil {
		t.Fatal("bad row: want an error")
	}
	if err := <-good3.done; err != nil {
		t.Fatalf("good row 3: %v", err)
	}
	if got := countRows(t, gdb, "merchant_id = ?", 1); got != 2 {
		t.Fatalf("%d rows, want 2", got)
	}
}

// countingConn counts the writer's statements, and runs afterSelect (when
// set) after each SELECT has returned.
type countingConn struct {
	conn
	selects, inserts atomic.Int64
	afterSelect      func()
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.inserts.Add(1)
	return c.conn.ExecContext(ctx, q, args...)
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	rs, err := c.conn.QueryContext(ctx, q, args...)
	c.selects.Add(1)
	if c.afterSelect != nil {
		c.afterSelect()
	}
	return rs, err
}

// counted returns a writer whose statements are counted.
func counted(t *testing.T, gdb *gorm.DB) (*Writer, *countingConn) {
	t.Helper()
	w := NewWriter(gdb, quiet, WriterOptions{})
	c := &countingConn{conn: w.conn}
	w.conn = c
	return w, c
}

// requests makes one write request per event number, as callbacks do.
func requests(merchantID uint64, ns ...int) []*writeReq {
	batch := make([]*writeReq, len(ns))
	for j, n := range ns {
		batch[j] = &writeReq{row: rowOf(event(merchantID, fmt.Sprintf("o_%d", n), n), time.Now()), done: make(chan error, 1)}
	}
	return batch
}

func span(from, to int) []int {
	var ns []int
	for n := from; n < to; n++ {
		ns = append(ns, n)
	}
	return ns
}

// Batches holding WeChat retries (events stored already) cost a fixed
// number of statements, whatever their size, and every callback of them
// is answered success with its event stored once. On MySQL: a batch that
// finds stored events after its INSERT fails looks its keys up and inserts
// the rest; the next batch of the same flusher looks up first, so a batch
// of retries only is one SELECT. SQLite skips stored events in its INSERT.
func TestWriterBatchWithRetriesCostsFixedStatements(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		w, c := counted(t, gdb)
		f := w.newFlusher()
		mysql := gdb.Dialector.Name() == db.MySQL
		for _, step := range []struct {
			name             string
			ns               []int
			stored           int64 // rows after the batch
			selects, inserts int64 // on MySQL
		}{
			{"new events", span(0, 100), 100, 0, 1},
			// 100 stored and 100 new, one of them twice.
			{"half retries", append(append(span(100, 200), span(0, 100)...), 140), 200, 1, 2},
			{"half retries, looked up first", append(span(200, 300), span(100, 200)...), 300, 1, 1},
			{"all retries", span(0, 300), 300, 1, 0},
			{"new events after retries", span(300, 400), 400, 1, 1},
			{"new events again", span(400, 500), 500, 0, 1},
		} {
			c.selects.Store(0)
			c.inserts.Store(0)
			batch := requests(1, step.ns...)
			f.flush(batch)
			for j, r := range batch {
				if err := <-r.done; err != nil {
					t.Fatalf("%s: callback %d: %v", step.name, j, err)
				}
			}
			if got := countRows(t, gdb, "merchant_id = ?", 1); got != step.stored {
				t.Fatalf("%s: %d rows, want %d", step.name, got, step.stored)
			}
			wantSelects, wantInserts := step.selects, step.inserts
			if !mysql {
				wantSelects, wantInserts = 0, 1
			}
			if s, i := c.selects.Load(), c.inserts.Load(); s != wantSelects || i != wantInserts {
				t.Fatalf("%s (%d callbacks): %d SELECTs and %d INSERTs, want %d and %d",
					step.name, len(batch), s, i, wantSelects, wantInserts)
			}
		}
	})
}

// A concurrent writer storing one of the batch's events between the
// batch's look-up and its INSERT (a retry racing its original on another
// flusher or instance) costs one more look-up and INSERT, not a statement
// per row, and the event is stored once: the other writer's row.
func TestWriterRaceBetweenLookupAndInsert(t *testing.T) {
	gdb := dbtest.OpenMySQLIsolated(t)
	w, c := counted(t, gdb)
	f := w.newFlusher()
	f.lookFirst = true
	other := NewWriter(gdb, quiet, WriterOptions{})
	raced := event(1, "o_other_writer", 120)
	var once sync.Once
	c.afterSelect = func() {
		once.Do(func() {
			of := other.newFlusher()
			r := requests(1)
			r = append(r, &writeReq{row: rowOf(raced, time.Now()), done: make(chan error, 1)})
			of.flush(r)
			if err := <-r[0].done; err != nil {
				t.Errorf("the other writer: %v", err)
			}
		})
	}
	seed := requests(1, span(0, 50)...)
	if err := other.insert(context.Background(), rowsOf(seed), span(0, 50)); err != nil {
		t.Fatal(err)
	}
	batch := requests(1, span(0, 200)...)
	f.flush(batch)
	for j, r := range batch {
		if err := <-r.done; err != nil {
			t.Fatalf("callback %d: %v", j, err)
		}
	}
	if got := countRows(t, gdb, "merchant_id = ?", 1); got != 200 {
		t.Fatalf("%d rows, want 200", got)
	}
	if got := countRows(t, gdb, "merchant_id = ? AND openid = ?", 1, "o_other_writer"); got != 1 {
		t.Fatalf("the raced event: %d rows by the other writer, want 1", got)
	}
	if s, i := c.selects.Load(), c.inserts.Load(); s != 2 || i != 2 {
		t.Fatalf("%d SELECTs and %d INSERTs, want 2 and 2 (look up, insert, duplicate, look up, insert)", s, i)
	}
}

func rowsOf(batch []*writeReq) []Row {
	rows := make([]Row, len(batch))
	for i, r := range batch {
		rows[i] = r.row
	}
	return rows
}

// holdInsertLock makes every insert into wechat_events wait, from another
// connection, until release: on MySQL a REPEATABLE READ transaction's gap
// lock past the last row (the service itself runs in READ COMMITTED), on
// SQLite the one write lock.
func holdInsertLock(t *testing.T, gdb *gorm.DB) (release func()) {
	t.Helper()
	sqlDB, err := gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := &sql.TxOptions{}
	if gdb.Dialector.Name() == db.MySQL {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := sqlDB.BeginTx(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	q := "DELETE FROM wechat_events WHERE id = 0" // takes SQLite's write lock
	if gdb.Dialector.Name() == db.MySQL {
		q = "SELECT id FROM wechat_events FOR UPDATE"
	}
	if _, err := tx.ExecContext(ctx, q); err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback() }) }
	t.Cleanup(release)
	return release
}

// While its insert is stalled, Accept returns as soon as the caller's
// context ends (the callback then answers WeChat 503 in time) rather than
// when the statement gives up; WeChat's retry later stores the event, once.
func TestWriterAcceptReturnsWhenItsContextEnds(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		w := NewWriter(gdb, quiet, WriterOptions{})
		w.Start()
		defer w.Stop()
		release := holdInsertLock(t, gdb)
		ctx, cancel := context.WithCancel(context.Background())
		stop := time.AfterFunc(100*time.Millisecond, cancel) // the request is with a flusher by then
		defer stop.Stop()
		// Canceled, not the statement's own deadline: Accept did not wait
		// for the stalled insert to give up.
		if err := w.Accept(ctx, event(1, "o_1", 1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Accept with the insert stalled: %v, want context.Canceled", err)
		}
		release()
		if err := w.Accept(context.Background(), event(1, "o_1", 1)); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if got := countRows(t, gdb, "merchant_id = ?", 1); got != 1 {
			t.Fatalf("%d rows after the stall and a retry, want 1", got)
		}
	})
}

func TestClipKeepsCharacters(t *testing.T) {
	if got := clip("积分积分积分", 4); got != "积分积分" {
		t.Fatalf("clip: %q", got)
	}
	if got := clip("abc", 5); got != "abc" {
		t.Fatalf("clip: %q", got)
	}
}

func store(t *testing.T, gdb *gorm.DB, evs ...wechat.Event) {
	t.Helper()
	w := NewWriter(gdb, quiet, WriterOptions{})
	w.Start()
	defer w.Stop()
	for _, ev := range evs {
		if err := w.Accept(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

// effect records an event's effect in a table with a unique key on the
// event, the way feature handlers do; the count shows how often it applied.
func effect(tx *gorm.DB, ev Stored) error {
	return tx.Exec("INSERT INTO member_merges (merchant_id, from_member_id, into_member_id, reason, created_at) VALUES (?, ?, 0, 'effect', ?)",
		ev.MerchantID, ev.ID, time.Now().UTC()).Error
}

func effects(t *testing.T, gdb *gorm.DB, merchantID uint64) int64 {
	t.Helper()
	var n int64
	if err := gdb.Table("member_merges").Where("merchant_id = ? AND reason = 'effect'", merchantID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// Two dispatchers (two service instances) racing over the same events apply
// each exactly once.
func TestTwoDispatchersApplyEachEventOnce(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		const n = 200
		evs := make([]wechat.Event, n)
		for i := range evs {
			evs[i] = event(5, fmt.Sprintf("o_%d", i%37), i)
		}
		store(t, gdb, evs...)
		var calls atomic.Int64
		handler := func(_ context.Context, ev Stored, apply Apply) error {
			calls.Add(1)
			return apply(func(tx *gorm.DB) error { return effect(tx, ev) })
		}
		ds := []*Dispatcher{
			NewDispatcher(gdb, quiet, DispatcherOptions{Batch: 16, Workers: 4}),
			NewDispatcher(gdb, quiet, DispatcherOptions{Batch: 16, Workers: 4}),
		}
		var wg sync.WaitGroup
		for _, d := range ds {
			d.Handle(wechat.EventSubscribe, handler)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := d.RunOnce(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if got == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		if got := effects(t, gdb, 5); got != n {
			t.Fatalf("%d effects, want %d", got, n)
		}
		if left := countRows(t, gdb, "processed_at IS NULL"); left != 0 {
			t.Fatalf("%d events left unprocessed", left)
		}
		if calls.Load() != n {
			t.Fatalf("%d handler calls for %d events: leases let two instances take the same event", calls.Load(), n)
		}
	})
}

// An instance that stalls past its lease (GC pause, network trouble) loses
// the event to another; when it resumes, its late apply is refused and
// rolled back, so the effect still happens once.
func TestExpiredLeaseStillAppliesOnce(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
		store(t, gdb, event(6, "o_1", 1))
		stalled := make(chan struct{})
		resume := make(chan struct{})
		slow := NewDispatcher(gdb, quiet, DispatcherOptions{Now: clock.Now, Lease: time.Minute})
		slow.Handle(wechat.EventSubscribe, func(_ context.Context, ev Stored, apply Apply) error {
			close(stalled)
			<-resume
			return apply(func(tx *gorm.DB) error { return effect(tx, ev) })
		})
		fast := NewDispatcher(gdb, quiet, DispatcherOptions{Now: clock.Now, Lease: time.Minute})
		fast.Handle(wechat.EventSubscribe, func(_ context.Context, ev Stored, apply Apply) error {
			return apply(func(tx *gorm.DB) error { return effect(tx, ev) })
		})
		done := make(chan error, 1)
		go func() { _, err := slow.RunOnce(context.Background()); done <- err }()
		<-stalled
		if got, _ := fast.RunOnce(context.Background()); got != 0 {
			t.Fatalf("a leased event was claimed again before its lease expired")
		}
		clock.Add(2 * time.Minute)
		if got, err := fast.RunOnce(context.Background()); got != 1 || err != nil {
			t.Fatalf("after the lease expired: claimed %d, %v", got, err)
		}
		close(resume)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := effects(t, gdb, 6); got != 1 {
			t.Fatalf("%d effects, want 1", got)
		}
	})
}

// A failing handler is retried with backoff until it succeeds; after
// MaxAttempts the event is set aside with its error.
func TestFailuresRetryThenGiveUp(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
		store(t, gdb, event(7, "o_flaky", 1), event(7, "o_broken", 2))
		var flaky atomic.Int64
		d := NewDispatcher(gdb, quiet, DispatcherOptions{Now: clock.Now, MaxAttempts: 4})
		d.Handle(wechat.EventSubscribe, func(_ context.Context, ev Stored, apply Apply) error {
			if ev.OpenID == "o_broken" {
				return errors.New("always broken")
			}
			if flaky.Add(1) <= 2 {
				return errors.New("WeChat busy")
			}
			return apply(func(tx *gorm.DB) error { return effect(tx, ev) })
		})
		for range 6 {
			if _, err := d.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Nothing is due again before its backoff has passed.
			if got, _ := d.RunOnce(context.Background()); got != 0 {
				t.Fatalf("%d events retried before their backoff", got)
			}
			clock.Add(20 * time.Minute)
		}
		if got := effects(t, gdb, 7); got != 1 {
			t.Fatalf("%d effects, want 1", got)
		}
		var broken Row
		if err := gdb.Where("merchant_id = ? AND openid = ?", 7, "o_broken").Take(&broken).Error; err != nil {
			t.Fatal(err)
		}
		if broken.ProcessedAt == nil || broken.Attempts != 4 || broken.LastError != "always broken" {
			t.Fatalf("broken event: processed %v attempts %d error %q", broken.ProcessedAt, broken.Attempts, broken.LastError)
		}
	})
}

// Events of one user are applied in the order they arrived.
func TestPerUserOrder(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		var evs []wechat.Event
		for i := range 60 {
			evs = append(evs, event(8, fmt.Sprintf("o_%d", i%3), i))
		}
		store(t, gdb, evs...)
		var mu sync.Mutex
		last := map[string]uint64{}
		d := NewDispatcher(gdb, quiet, DispatcherOptions{Workers: 8})
		d.Handle(wechat.EventSubscribe, func(_ context.Context, ev Stored, _ Apply) error {
			mu.Lock()
			defer mu.Unlock()
			if ev.ID < last[ev.OpenID] {
				t.Errorf("event %d of %s after %d", ev.ID, ev.OpenID, last[ev.OpenID])
			}
			last[ev.OpenID] = ev.ID
			return nil
		})
		if _, err := d.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if left := countRows(t, gdb, "processed_at IS NULL"); left != 0 {
			t.Fatalf("%d left", left)
		}
	})
}

func TestPruneKeepsRecentAndPending(t *testing.T) {
	each(t, func(t *testing.T, gdb *gorm.DB) {
		clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
		store(t, gdb, event(9, "o_old", 1), event(9, "o_pending", 2))
		d := NewDispatcher(gdb, quiet, DispatcherOptions{Now: clock.Now, Retention: 24 * time.Hour})
		old := clock.Now().Add(-48 * time.Hour)
		if err := gdb.Model(&Row{}).Where("openid = ?", "o_old").Update("processed_at", old).Error; err != nil {
			t.Fatal(err)
		}
		if err := d.Prune(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, gdb, "openid = ?", "o_old"); n != 0 {
			t.Fatal("old processed event kept")
		}
		if n := countRows(t, gdb, "openid = ?", "o_pending"); n != 1 {
			t.Fatal("pending event pruned")
		}
	})
}
