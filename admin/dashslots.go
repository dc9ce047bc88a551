package admin

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// computeSlots bounds the dashboard's cold computations in this process:
// at most perMerchant of one merchant's at a time, at most overall in all,
// and at most queue more of one merchant's waiting for a slot (beyond that
// a request is refused at once).
//
// A computation takes its merchant's slot before a shared one, so one
// merchant asking for many periods at once holds at most perMerchant of
// the shared slots and waits in its own queue: another merchant's request
// finds a shared slot free (overall > perMerchant) instead of queueing
// behind it. Identical requests do not get here twice: they share one
// computation (the handler's singleflight) and so one slot.
type computeSlots struct {
	perMerchant int64
	queue       int
	overall     *semaphore.Weighted

	mu        sync.Mutex
	merchants map[uint64]*merchantSlots // merchants with computations running or waiting

	// onWait, when set (tests), is called when a computation has to wait
	// for its merchant's slot ("merchant") or a shared one ("overall").
	onWait func(merchantID uint64, slot string)
}

type merchantSlots struct {
	sem   *semaphore.Weighted
	users int // computations running or waiting
}

func newComputeSlots(perMerchant, overall, queue int) *computeSlots {
	return &computeSlots{perMerchant: int64(perMerchant), queue: queue, overall: semaphore.NewWeighted(int64(overall)),
		merchants: map[uint64]*merchantSlots{}}
}

var (
	errDashboardQueueFull = &apperr.RetryAfter{Seconds: 5, Err: apperr.New(apperr.ErrTooManyRequests,
		"the dashboard is already computing several other periods for this merchant; try again in a few seconds")}
	errDashboardBusy = &apperr.RetryAfter{Seconds: 10, Err: apperr.New(apperr.ErrUnavailable,
		"the dashboard is busy; try again shortly")}
)

// acquire waits for a slot of the merchant and a shared one (until ctx
// ends) and returns the function that gives both back.
func (s *computeSlots) acquire(ctx context.Context, merchantID uint64) (release func(), err error) {
	s.mu.Lock()
	m := s.merchants[merchantID]
	if m == nil {
		m = &merchantSlots{sem: semaphore.NewWeighted(s.perMerchant)}
		s.merchants[merchantID] = m
	}
	if m.users >= int(s.perMerchant)+s.queue {
		s.mu.Unlock()
		return nil, errDashboardQueueFull
	}
	m.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		// The entry goes with its last user, so the map holds only
		// merchants with computations now.
		if m.users--; m.users == 0 {
			delete(s.merchants, merchantID)
		}
	}
	if err := s.take(ctx, m.sem, merchantID, "merchant"); err != nil {
		leave()
		return nil, err
	}
	if err := s.take(ctx, s.overall, merchantID, "overall"); err != nil {
		m.sem.Release(1)
		leave()
		return nil, err
	}
	return func() {
		s.overall.Release(1)
		m.sem.Release(1)
		leave()
	}, nil
}

func (s *computeSlots) take(ctx context.Context, sem *semaphore.Weighted, merchantID uint64, slot string) error {
	if sem.TryAcquire(1) {
		return nil
	}
	if s.onWait != nil {
		s.onWait(merchantID, slot)
	}
	if err := sem.Acquire(ctx, 1); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errDashboardBusy
		}
		return err
	}
	return nil
}
