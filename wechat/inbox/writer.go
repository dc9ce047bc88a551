package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/wechat"
)

// ErrStopped is returned by Accept after the writer has stopped.
var ErrStopped = errors.New("inbox: writer stopped")

// Writer stores events with group commit. It implements wechat.Sink.
type Writer struct {
	db       *gorm.DB
	log      *slog.Logger
	now      func() time.Time
	reqs     chan *writeReq
	maxBatch int
	flushers int
	notify   func() // told after each commit, so the dispatcher wakes up

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
	Flushers int              // INSERTs in flight at once (default 4)
	Now      func() time.Time // clock (default time.Now)
	Notify   func()           // called after each commit
}

// NewWriter returns a writer; call Start before Accept.
func NewWriter(db *gorm.DB, log *slog.Logger, o WriterOptions) *Writer {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 200
	}
	if o.Flushers <= 0 {
		o.Flushers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Notify == nil {
		o.Notify = func() {}
	}
	w := &Writer{db: db, log: log, now: o.Now, maxBatch: o.MaxBatch, flushers: o.Flushers, notify: o.Notify,
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
// that is committed.
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
	// Wait for the flusher even if ctx ends: the request is in a batch and
	// its done channel must be drained before it can be reused.
	err := <-req.done
	req.row = Row{}
	w.reqPool.Put(req)
	return err
}

// flushLoop takes the first waiting request, then whatever else is already
// queued (without waiting for more), and writes them in one statement. Under
// light load every request is flushed at once; under heavy load batches grow
// by themselves.
func (w *Writer) flushLoop() {
	defer w.stopped.Done()
	batch := make([]*writeReq, 0, w.maxBatch)
	rows := make([]Row, 0, w.maxBatch)
	for {
		var first *writeReq
		select {
		case first = <-w.reqs:
		case <-w.stop:
			// Drain what is queued, then exit.
			for {
				select {
				case first = <-w.reqs:
					w.flush(append(batch[:0], first), rows)
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.flush(batch, rows)
	}
}

func (w *Writer) flush(batch []*writeReq, rows []Row) {
	rows = rows[:0]
	for _, r := range batch {
		rows = append(rows, r.row)
	}
	err := w.insert(rows)
	if err != nil && len(batch) > 1 {
		// Find the row that fails so it does not take the others down with
		// it on every retry WeChat makes.
		for _, r := range batch {
			r.done <- w.insert([]Row{r.row})
		}
		w.notify()
		return
	}
	for _, r := range batch {
		r.done <- err
	}
	if err == nil {
		w.notify()
	}
}

// insert writes rows, ignoring those whose (merchant_id, dedupe_key) is
// already stored: that is a WeChat retry of an event we have.
func (w *Writer) insert(rows []Row) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.db.WithContext(ctx).
		Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "merchant_id"}, {Name: "dedupe_key"}}, DoNothing: true}).
		Create(&rows).Error
	if err != nil {
		return fmt.Errorf("inbox: store %d events: %w", len(rows), err)
	}
	return nil
}
