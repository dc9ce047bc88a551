package inbox

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// conn is what the writer uses of its *sql.DB (tests count its statements).
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ErrStopped is returned by Accept after the writer has stopped.
var ErrStopped = errors.New("inbox: writer stopped")

// Writer stores events with group commit. It implements wechat.Sink.
type Writer struct {
	conn       conn
	onConflict string // the dialect's "skip duplicates" clause
	log        *slog.Logger
	now        func() time.Time
	reqs       chan *writeReq
	maxBatch   int
	flushers   int
	notify     func() // told after each commit, so the dispatcher wakes up

	reqPool sync.Pool
	// mu makes Stop wait for Accepts that are handing a request over, so
	// every request handed over is in the queue before the flushers drain
	// it and exit.
	mu      sync.RWMutex
	closed  bool
	stop    chan struct{}
	stopped sync.WaitGroup
}

type writeReq struct {
	row  Row
	done chan error
}

// WriterOptions tune a Writer. Zero values pick the defaults.
type WriterOptions struct {
	MaxBatch int              // rows per INSERT (default 200)
	Flushers int              // INSERTs in flight at once (default 2)
	Now      func() time.Time // clock (default time.Now)
	Notify   func()           // called after each commit
}

// NewWriter returns a writer; call Start before Accept.
func NewWriter(gdb *gorm.DB, log *slog.Logger, o WriterOptions) *Writer {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 200
	}
	if o.Flushers <= 0 {
		// Two statements in flight keep the database busy while one
		// commits; more only make batches smaller, and the per-statement
		// work (parsing, commit) is what a loaded MariaDB spends on. Under
		// 200 connections of callbacks, 4 flushers wrote ~20 rows a
		// statement and took 18k events/s, 2 wrote ~40 and took 21k.
		o.Flushers = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Notify == nil {
		o.Notify = func() {}
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		panic("inbox: writer needs a *gorm.DB over a *sql.DB: " + err.Error())
	}
	onConflict := " ON CONFLICT (merchant_id, dedupe_key) DO NOTHING"
	if gdb.Dialector.Name() == db.MySQL {
		onConflict = "" // see insert
	}
	w := &Writer{conn: sqlDB, onConflict: onConflict, log: log, now: o.Now, maxBatch: o.MaxBatch, flushers: o.Flushers, notify: o.Notify,
		reqs: make(chan *writeReq, o.MaxBatch*o.Flushers), stop: make(chan struct{})}
	w.reqPool.New = func() any { return &writeReq{done: make(chan error, 1)} }
	return w
}

// Start launches the flushers. They run until Stop.
func (w *Writer) Start() {
	for range w.flushers {
		w.stopped.Add(1)
		go w.flushLoop()
	}
}

// Stop finishes the requests already queued, then stops the flushers. Call
// it after the HTTP server has stopped taking callbacks.
func (w *Writer) Stop() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	w.stopped.Wait()
}

// Accept stores ev, or recognises it as already stored, and returns once
// that is committed. When ctx ends first it returns ctx's error at once,
// and the event may still be stored a moment later: the caller answers
// WeChat with an error, and WeChat's retry finds the event stored (a
// duplicate, so "success") or stores it then.
func (w *Writer) Accept(ctx context.Context, ev wechat.Event) error {
	req := w.reqPool.Get().(*writeReq)
	req.row = rowOf(ev, w.now().UTC().Truncate(time.Millisecond))
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		w.reqPool.Put(req)
		return ErrStopped
	}
	select {
	case w.reqs <- req:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		w.reqPool.Put(req)
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		req.row = Row{}
		w.reqPool.Put(req)
		return err
	case <-ctx.Done():
		// The request is in a flusher's hands (or queue): leave it to the
		// flusher, whose send on the buffered done channel never blocks,
		// and never put it back in the pool, so no other Accept reuses it
		// while the flusher still reads it.
		return fmt.Errorf("inbox: store event: %w", ctx.Err())
	}
}

// flushLoop takes the first waiting request, then whatever else is already
// queued (without waiting for more), and writes them in one statement. Under
// light load every request is flushed at once; under heavy load batches grow
// by themselves.
func (w *Writer) flushLoop() {
	defer w.stopped.Done()
	f := w.newFlusher()
	for {
		var first *writeReq
		select {
		case first = <-w.reqs:
		case <-w.stop:
			// Drain what is queued, then exit.
			for {
				select {
				case first = <-w.reqs:
					f.flush(append(f.batch[:0], first))
				default:
					return
				}
			}
		}
		batch := append(f.batch[:0], first)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		f.flush(batch)
	}
}

// flusher is one flushLoop's state: its buffers, and whether its last
// batch held events stored already.
type flusher struct {
	w     *Writer
	batch []*writeReq
	rows  []Row
	errs  []error // errs[i] is the outcome of rows[i]
	// lookFirst: the last batch held stored events (WeChat retries), so
	// the next batch looks its keys up before inserting rather than
	// after a failed INSERT. Retries come in bursts (after a stall,
	// WeChat retries everything it got no answer to), and then every
	// batch costs one SELECT and at most one INSERT.
	lookFirst bool
	answers   []error // each request's answer, in batch order
}

func (w *Writer) newFlusher() *flusher {
	return &flusher{w: w, batch: make([]*writeReq, 0, w.maxBatch), rows: make([]Row, 0, w.maxBatch),
		errs: make([]error, 0, w.maxBatch)}
}

// flush stores the batch's events and answers each request: nil when its
// event is committed, by this batch or before.
func (f *flusher) flush(batch []*writeReq) {
	f.batch = batch
	// One row per event (a WeChat retry can share the batch with the
	// original), in one key order for every flusher.
	slices.SortFunc(batch, func(a, b *writeReq) int { return compareKeys(a.row, b.row) })
	f.rows = f.rows[:0]
	for i, r := range batch {
		if i == 0 || compareKeys(r.row, batch[i-1].row) != 0 {
			f.rows = append(f.rows, r.row)
		}
	}
	f.errs = slices.Grow(f.errs[:0], len(f.rows))[:len(f.rows)]
	clear(f.errs)
	inserted := f.store()
	// Every answer is worked out before the first is sent: an answered
	// request goes back to its pool and may be reused at once, so its row
	// must not be read again.
	f.answers = f.answers[:0]
	row := -1
	for i, r := range batch {
		if i == 0 || compareKeys(r.row, batch[i-1].row) != 0 {
			row++
		}
		f.answers = append(f.answers, f.errs[row])
	}
	for i, r := range batch {
		r.done <- f.answers[i]
	}
	if inserted {
		f.w.notify()
	}
}

func compareKeys(a, b Row) int {
	return cmp.Or(cmp.Compare(a.MerchantID, b.MerchantID), strings.Compare(a.DedupeKey, b.DedupeKey))
}

// maxInsertRounds bounds the look-up-and-insert rounds of one batch. A
// round after the first happens only when another statement committed one
// of the batch's events between the look-up and the insert (a retry racing
// its original), which removes that event from the batch; more than two
// rounds means something else is wrong, and the rest goes row by row.
const maxInsertRounds = 4

// store writes f.rows and sets f.errs, in a number of statements that does
// not grow with the batch: an INSERT of all rows; if some event is stored
// already (a retry), one SELECT of the batch's keys and an INSERT of the
// rest. A row the database refuses for another reason sends the rows left
// one by one, so it does not fail the callbacks it shares a batch with on
// every retry WeChat makes. It reports whether any row was inserted.
//
// It never uses INSERT ... ON DUPLICATE KEY UPDATE, which with concurrent
// statements holding the same event silently left out other rows of the
// statement on MariaDB 10.11 while reporting success (a test caught 1 to
// 37 events of 300 acknowledged and not stored), nor INSERT IGNORE, which
// also turns real errors into warnings. SQLite, one writer at a time, skips
// stored events with ON CONFLICT DO NOTHING and never looks up.
func (f *flusher) store() (inserted bool) {
	w := f.w
	// WeChat gives up after 5 s and retries; answering within that (with an
	// error if the database is stuck) frees the connection for the retry.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	pending := make([]int, len(f.rows))
	for i := range pending {
		pending[i] = i
	}
	lookup := f.lookFirst && w.onConflict == ""
	sawStored := false
	defer func() { f.lookFirst = sawStored }()
	for round := 1; ; round++ {
		if lookup {
			var err error
			before := len(pending)
			if pending, err = f.dropStored(ctx, pending); err != nil {
				for _, i := range pending {
					f.errs[i] = err
				}
				return false
			}
			sawStored = sawStored || len(pending) < before
			if len(pending) == 0 {
				return false
			}
		}
		err := w.insert(ctx, f.rows, pending)
		if err == nil {
			return true
		}
		if db.IsDuplicate(err) && round < maxInsertRounds {
			lookup = true
			continue
		}
		if len(pending) == 1 {
			f.errs[pending[0]] = err
			return false
		}
		for _, i := range pending {
			err := w.insert(ctx, f.rows, []int{i})
			if db.IsDuplicate(err) {
				err = nil // stored already
			} else if err == nil {
				inserted = true
			}
			f.errs[i] = err
		}
		return inserted
	}
}

// dropStored looks up the keys of f.rows[pending] in one SELECT and returns
// pending without the events already committed. Under READ COMMITTED the
// SELECT sees only committed rows, so an event it finds is stored for good;
// one committed just after it makes the INSERT fail with a duplicate, and
// the next round finds it.
func (f *flusher) dropStored(ctx context.Context, pending []int) ([]int, error) {
	var sb strings.Builder
	sb.Grow(80 + len(pending)*4)
	sb.WriteString("SELECT merchant_id, dedupe_key FROM wechat_events WHERE ")
	args := make([]any, 0, len(pending)+2)
	for j, i := range pending {
		r := f.rows[i]
		switch {
		case j == 0:
			sb.WriteString("(merchant_id = ? AND dedupe_key IN (?")
		case r.MerchantID != f.rows[pending[j-1]].MerchantID:
			sb.WriteString(")) OR (merchant_id = ? AND dedupe_key IN (?")
		default:
			sb.WriteString(",?")
			args = append(args, r.DedupeKey)
			continue
		}
		args = append(args, r.MerchantID, r.DedupeKey)
	}
	sb.WriteString("))")
	rs, err := f.w.conn.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return pending, fmt.Errorf("inbox: look up %d events: %w", len(pending), err)
	}
	defer rs.Close()
	type key struct {
		merchant uint64
		dedupe   string
	}
	found := make(map[key]struct{})
	for rs.Next() {
		var k key
		if err := rs.Scan(&k.merchant, &k.dedupe); err != nil {
			return pending, fmt.Errorf("inbox: look up events: %w", err)
		}
		found[k] = struct{}{}
	}
	if err := rs.Err(); err != nil {
		return pending, fmt.Errorf("inbox: look up events: %w", err)
	}
	if len(found) == 0 {
		return pending, nil
	}
	return slices.DeleteFunc(pending, func(i int) bool {
		_, ok := found[key{f.rows[i].MerchantID, f.rows[i].DedupeKey}]
		return ok
	}), nil
}

// insert writes rows[at] in one plain multi-row INSERT on the pool: on this
// hot path gorm's reflection and, on MariaDB, its INSERT ... RETURNING cost
// more than the statement. An event stored already fails the whole
// statement with a duplicate key on MySQL (see store). A conflict the
// database broke (a deadlock, a lock wait) is tried again.
func (w *Writer) insert(ctx context.Context, rows []Row, at []int) error {
	var sb strings.Builder
	sb.Grow(160 + len(at)*40)
	sb.WriteString("INSERT INTO wechat_events (merchant_id, dedupe_key, msg_type, event, openid, event_key, " +
		"ticket, content, msg_id, status, create_time, received_at) VALUES ")
	args := make([]any, 0, len(at)*12)
	for j, i := range at {
		if j > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?)")
		r := &rows[i]
		args = append(args, r.MerchantID, r.DedupeKey, r.MsgType, r.Event, r.OpenID, r.EventKey,
			r.Ticket, r.Content, r.MsgID, r.Status, r.CreateTime, r.ReceivedAt)
	}
	sb.WriteString(w.onConflict)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = w.conn.ExecContext(ctx, sb.String(), args...); err == nil || !db.IsTransient(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("inbox: store %d events: %w", len(at), err)
	}
	return nil
}
