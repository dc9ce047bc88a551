package campaign

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lease is a send slice's hold on the delivery rows it claimed. In the
// database each row carries its owner and lease_until; here the slice
// keeps, for each row it holds, the lease_until it last wrote, so it can
// answer the one question a send asks just before it calls WeChat: is
// this row still mine, for long enough? A row whose lease has run out may
// have been swept by another instance (claimed rows back to the queue,
// sending rows to unknown), so it is not sent.
//
// The lease is lost as a whole (and the slice stops calling WeChat) when
// a renewal fails, or when a row the slice holds turns out not to be its
// own any more (a renewal or a transition did not find it): whatever
// delayed this instance may have cost it other rows too.
type lease struct {
	owner string
	ttl   time.Duration
	// margin is how much of a row's lease must be left for a send to
	// start: other instances' clocks may run ahead of this one's.
	margin time.Duration

	mu   sync.Mutex
	held map[uint64]*heldRow
	lost atomic.Bool
}

// heldRow is a row the slice holds.
type heldRow struct {
	until time.Time // the lease_until this slice last wrote
	// moving: a transition of this slice is writing the row, and may
	// release it; moves counts the transitions begun. A renewal that did
	// not find a row a transition of this slice was writing meanwhile (it
	// released the row, or held its lock) has not found a theft.
	moving bool
	moves  int
}

func newLease(owner string, ttl time.Duration) *lease {
	return &lease{owner: owner, ttl: ttl, margin: ttl / 4, held: map[uint64]*heldRow{}}
}

// hold records rows claimed until until.
func (l *lease) hold(ids []uint64, until time.Time) {
	l.mu.Lock()
	for _, id := range ids {
		l.held[id] = &heldRow{until: until}
	}
	l.mu.Unlock()
}

// holds tells whether the slice holds row id.
func (l *lease) holds(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[id]
	return ok
}

// begin marks rows a transition of this slice is about to write: a
// renewal leaves them to it (it holds their locks, and writes their lease
// itself if it keeps them), and they may be released by it without the
// lease counting them as taken.
func (l *lease) begin(ids []uint64) {
	l.mu.Lock()
	for _, id := range ids {
		if r, ok := l.held[id]; ok {
			r.moving = true
			r.moves++
		}
	}
	l.mu.Unlock()
}

// end ends the transition begun on ids: the rows in kept are still this
// slice's (leased until until, when the transition wrote it); the others
// are not held any more.
func (l *lease) end(ids, kept []uint64, until time.Time) {
	keep := make(map[uint64]bool, len(kept))
	for _, id := range kept {
		keep[id] = true
	}
	l.mu.Lock()
	for _, id := range ids {
		if r, ok := l.held[id]; ok {
			if keep[id] {
				r.moving = false
				if !until.IsZero() {
					r.until = until
				}
			} else {
				delete(l.held, id)
			}
		}
	}
	l.mu.Unlock()
}

// valid reports whether row id may be sent at now.
func (l *lease) valid(id uint64, now time.Time) bool {
	if l.lost.Load() {
		return false
	}
	l.mu.Lock()
	r, ok := l.held[id]
	ok = ok && now.Add(l.margin).Before(r.until)
	l.mu.Unlock()
	return ok
}

// lose marks the lease lost: no further sends.
func (l *lease) lose() { l.lost.Store(true) }

// expiring reports whether a held row's lease is about to run out at
// now (within the margin).
func (l *lease) expiring(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.held {
		if !now.Add(l.margin).Before(r.until) {
			return true
		}
	}
	return false
}

// snapshot is the rows held when a renewal starts, with their moves.
type snapshot map[uint64]int

// snapshot returns the rows held now that no transition is writing.
func (l *lease) snapshot() snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(snapshot, len(l.held))
	for id, r := range l.held {
		if !r.moving {
			out[id] = r.moves
		}
	}
	return out
}

func (s snapshot) ids() []uint64 {
	out := make([]uint64, 0, len(s))
	for id := range s {
		out = append(out, id)
	}
	return out
}

// renewed records a renewal of the rows in asked that found only got still
// leased to this slice, until until, and returns how many rows were taken:
// held before the renewal and still held, not renewed, and not written by
// a transition of this slice since the renewal began.
func (l *lease) renewed(asked snapshot, got []uint64, until time.Time) int {
	ok := make(map[uint64]bool, len(got))
	for _, id := range got {
		ok[id] = true
	}
	taken := 0
	l.mu.Lock()
	for id, moves := range asked {
		r, held := l.held[id]
		switch {
		case !held:
		case ok[id]:
			r.until = until
		case !r.moving && r.moves == moves:
			taken++
		}
	}
	l.mu.Unlock()
	return taken
}

// keepAlive renews the lease every ttl/3 until the returned func is
// called (which waits for a renewal in progress). A renewal that finds
// rows taken loses the lease. A renewal that fails (a deadlock lost five
// times, the database away) is tried again soon; the lease is lost when a
// row's lease is about to run out unrenewed (sends stop before that
// anyway: see valid). stop is told why the lease was lost.
func (e *Engine) keepAlive(ctx context.Context, l *lease, stop func(why string, err error)) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every := l.ttl / 3
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			asked := l.snapshot()
			until := e.now().Add(l.ttl)
			got, err := e.rows.renew(ctx, asked.ids(), l.owner, until)
			taken := 0
			if err == nil {
				taken = l.renewed(asked, got, until)
			}
			// The lease is lost before anyone hears of the renewal (the
			// test hook included), so no send can start in between.
			switch {
			case err != nil && ctx.Err() != nil:
			case err != nil && l.expiring(e.now()):
				l.lose()
				stop("the lease could not be renewed in time", err)
			case err != nil:
				e.log.WarnContext(ctx, "campaign: lease renewal failed; trying again", "owner", l.owner, "error", err)
			case taken > 0:
				l.lose()
				stop("rows of the lease were taken by another instance", nil)
			}
			if e.hooks.renewed != nil {
				e.hooks.renewed(taken, err)
			}
			switch {
			case ctx.Err() != nil || l.lost.Load():
				return
			case err != nil:
				t.Reset(every / 4)
				continue
			}
			t.Reset(every)
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
