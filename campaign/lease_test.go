package campaign_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// stall is a hook that stops the engine the first time it is reached and
// holds every later arrival too, until resume.
type stall struct {
	once    sync.Once
	reached chan struct{}
	resume  chan struct{}
}

func newStall() *stall { return &stall{reached: make(chan struct{}), resume: make(chan struct{})} }

func (s *stall) hold() {
	s.once.Do(func() { close(s.reached) })
	<-s.resume
}

// runAsync runs one engine round in the background; the returned func
// waits for it.
func runAsync(t *testing.T, eng *campaign.Engine) func() {
	done := make(chan error, 1)
	go func() {
		_, err := eng.RunOnce(context.Background())
		done <- err
	}()
	return func() {
		if err := <-done; err != nil {
			t.Logf("stalled instance's round: %v", err)
		}
	}
}

// The interleaving that sent members two messages: instance A claims rows
// and stalls (a GC pause, a slow database) until its lease expires;
// instance B's sweep returns the rows to the queue, B claims and sends
// them; then A continues to mark them sending. A must send nothing:
// every member gets exactly one message.
func TestStalledWorkerSendsNothingAfterItsClaimWasTaken(t *testing.T) {
	for _, strategy := range campaign.ClaimStrategies {
		t.Run(string(strategy), func(t *testing.T) { stalledWorkerAfterClaimTaken(t, strategy) })
	}
}

func stalledWorkerAfterClaimTaken(t *testing.T, strategy campaign.ClaimStrategy) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(10, "stall"+randHex(3))
		c := e.campaign(e.segment())
		// A's slice is one batch, so nothing of A runs while it stalls.
		a := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "A", SliceTime: time.Nanosecond, Claim: strategy}, nil)
		b := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "B", Claim: strategy}, nil)
		st := newStall()
		campaign.SetHooks(a, campaign.Hooks{BeforeMark: func([]uint64) { st.hold() }})
		wait := runAsync(t, a)
		<-st.reached
		if got := e.statuses(c.ID); got[campaign.DeliveryClaimed] != 10 {
			t.Fatalf("A holds %v, want 10 claimed", got)
		}
		e.clock.Add(2 * time.Minute) // A's lease has expired
		e.drain(b)
		if got := len(e.received()); got != 10 {
			t.Fatalf("B sent to %d members, want 10: %v", got, e.statuses(c.ID))
		}
		close(st.resume)
		wait()
		e.drain(a)
		for openid, n := range e.received() {
			if n != 1 {
				t.Errorf("%s received %d messages", openid, n)
			}
		}
		if got := e.statuses(c.ID); got[campaign.DeliverySent] != 10 {
			t.Errorf("statuses %v, want 10 sent", got)
		}
	})
}

// The same stall one step later: A has marked its rows sending and is
// about to call WeChat when it stalls past its lease. B's sweep leaves the
// rows unknown (WeChat may have them) and sends nothing; A, resuming,
// finds its lease run out and calls nothing. Nobody gets a message twice,
// and the rows say unknown, not sent.
func TestStalledWorkerCallsNothingAfterItsLeaseRanOut(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(10, "late"+randHex(3))
		c := e.campaign(e.segment())
		// A's slice is one batch, so nothing of A runs while it stalls.
		a := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "A", SliceTime: time.Nanosecond}, nil)
		b := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "B"}, nil)
		st := newStall()
		campaign.SetHooks(a, campaign.Hooks{BeforeCall: func(uint64) { st.hold() }})
		wait := runAsync(t, a)
		<-st.reached
		// Rows are marked as their permits come, so the first call can be
		// reached before the last row is marked: every row gets there.
		waitFor(t, func() bool { return e.statuses(c.ID)[campaign.DeliverySending] == 10 },
			func() string { return fmt.Sprintf("A holds %v, want 10 sending", e.statuses(c.ID)) })
		e.clock.Add(2 * time.Minute)
		e.drain(b)
		close(st.resume)
		wait()
		e.drain(a)
		e.drain(b)
		if got := e.received(); len(got) != 0 {
			t.Errorf("messages sent after the lease ran out: %v", got)
		}
		if got := e.statuses(c.ID); got[campaign.DeliveryUnknown] != 10 {
			t.Errorf("statuses %v, want the 10 rows unknown", got)
		}
	})
}

// A lease renewal that finds the slice's rows taken (here: another owner
// written on them, as a sweep and a new claim would) stops the slice
// before its next WeChat call, even with time left on the local clock.
func TestRenewalThatFindsRowsTakenStopsSending(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(10, "renew"+randHex(3))
		c := e.campaign(e.segment())
		// A short lease: renewals every 100 ms of real time, while the
		// fake clock stands still.
		a := e.engine(campaign.EngineOptions{Lease: 300 * time.Millisecond, Owner: "A", Concurrency: 1, SliceTime: time.Nanosecond}, nil)
		st := newStall()
		taken := make(chan int, 100)
		campaign.SetHooks(a, campaign.Hooks{
			BeforeCall: func(uint64) { st.hold() },
			Renewed: func(n int, err error) {
				if err != nil {
					t.Errorf("renewal: %v", err)
				}
				taken <- n
			},
		})
		wait := runAsync(t, a)
		<-st.reached
		if err := gdb.Table("campaign_deliveries").Where("campaign_id = ? AND status IN ?", c.ID,
			[]campaign.DeliveryStatus{campaign.DeliveryClaimed, campaign.DeliverySending}).
			Update("lease_owner", "thief").Error; err != nil {
			t.Fatal(err)
		}
		for found := false; !found; {
			select {
			case n := <-taken:
				found = n > 0
			case <-time.After(time.Minute):
				t.Fatal("no renewal noticed the rows were taken")
			}
		}
		close(st.resume)
		wait()
		if got := e.received(); len(got) != 0 {
			t.Errorf("A sent after losing its lease: %v", got)
		}
	})
}

// waitFor polls cond until it holds, failing with what() after 10 s.
func waitFor(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
	}
}

// gate is a limiter that grants a permit only when told to.
type gate struct {
	waiting chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{waiting: make(chan struct{}, 1000), open: make(chan struct{})} }

func (g *gate) Wait(ctx context.Context, _ string, _ campaign.Lane) error {
	g.waiting <- struct{}{}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A row waiting for its rate permit is still only claimed: marked sending
// only once it holds its permit, just before its call. An instance that
// stalls (or dies) while its rows wait for the rate leaves nothing
// unknown: another instance's sweep returns the rows to the queue and
// sends each once, and the stalled instance, let go, sends nothing.
func TestRowsWaitingForTheRateAreNotSending(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(10, "rate"+randHex(3))
		c := e.campaign(e.segment())
		g := newGate()
		a := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "A", SliceTime: time.Nanosecond}, g)
		b := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "B"}, nil)
		wait := runAsync(t, a)
		for range 10 {
			<-g.waiting
		}
		if got := e.statuses(c.ID); got[campaign.DeliveryClaimed] != 10 {
			t.Fatalf("while A waits for the rate: %v, want 10 claimed", got)
		}
		e.clock.Add(2 * time.Minute) // A's lease has expired
		e.drain(b)
		close(g.open)
		wait()
		e.drain(a)
		for openid, n := range e.received() {
			if n != 1 {
				t.Errorf("%s received %d messages", openid, n)
			}
		}
		if got := e.statuses(c.ID); got[campaign.DeliverySent] != 10 || len(e.received()) != 10 {
			t.Errorf("statuses %v, %d received, want 10 sent once each", got, len(e.received()))
		}
	})
}

// An instance told to stop (a deploy, a scale-down) lets its calls in
// flight finish and records their results before it returns: nothing it
// sent is left sending (and later unknown), and what it had not sent goes
// to the next instance. Every member gets exactly one message.
func TestStoppedInstanceRecordsItsCallsInFlight(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(40, "stop"+randHex(3))
		c := e.campaign(e.segment())
		sim.SetLatency("/cgi-bin/message/template/send", 300*time.Millisecond)
		defer sim.SetLatency("/cgi-bin/message/template/send", 0)
		a := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "A", Concurrency: 8}, nil)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.Run(ctx)
		}()
		waitFor(t, func() bool { return e.statuses(c.ID)[campaign.DeliverySending] > 0 },
			func() string { return fmt.Sprintf("nothing in flight: %v", e.statuses(c.ID)) })
		stop()
		<-done
		if got := e.statuses(c.ID); got[campaign.DeliverySending]+got[campaign.DeliveryClaimed] != 0 {
			t.Fatalf("after the stop: %v, want nothing sending or claimed", got)
		}
		sim.SetLatency("/cgi-bin/message/template/send", 0)
		e.clock.Add(2 * time.Minute)
		e.drain(e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "B"}, nil))
		got := e.statuses(c.ID)
		if got[campaign.DeliverySent] != 40 || got[campaign.DeliveryUnknown] != 0 || len(e.received()) != 40 {
			t.Fatalf("statuses %v, %d received, want 40 sent once each", got, len(e.received()))
		}
		for openid, n := range e.received() {
			if n != 1 {
				t.Errorf("%s received %d messages", openid, n)
			}
		}
	})
}

// The database refuses the results' writes for a while (a restart, a
// failover): the recorder keeps trying, the sends wait for it, and once
// the writes go through every row is recorded as it happened: nothing is
// left unknown, nobody gets two messages.
func TestResultsAreWrittenOnceTheDatabaseIsBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(30, "back"+randHex(3))
		c := e.campaign(e.segment())
		a := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "A"}, nil)
		var refused atomic.Int32
		campaign.SetHooks(a, campaign.Hooks{Record: func() error {
			if refused.Add(1) <= 4 {
				return errors.New("driver: bad connection")
			}
			return nil
		}})
		e.drain(a)
		if refused.Load() <= 4 {
			t.Fatalf("the writes were refused %d times, want more than 4 attempts", refused.Load())
		}
		got := e.statuses(c.ID)
		if got[campaign.DeliverySent] != 30 || len(e.received()) != 30 {
			t.Fatalf("statuses %v, %d received, want 30 sent", got, len(e.received()))
		}
		for openid, n := range e.received() {
			if n != 1 {
				t.Errorf("%s received %d messages", openid, n)
			}
		}
	})
}

// A pause stops the batch being sent, not only the next claim: at the
// account's rate one batch can take a minute, and a marketer who pressed
// pause expects the messages to stop. After the pause is seen (StatusEvery)
// only the calls in flight finish; the rest of the batch goes back to the
// queue and is sent once on resume.
func TestPauseStopsTheBatchBeingSent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(80, "pause"+randHex(3))
		c := e.campaign(e.segment())
		const concurrency = 4
		sim.SetLatency("/cgi-bin/message/template/send", 50*time.Millisecond)
		defer sim.SetLatency("/cgi-bin/message/template/send", 0)
		// One batch holds every row: without the watch the whole of it would go out.
		a := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "A", Concurrency: concurrency, Batch: 80,
			StatusEvery: 20 * time.Millisecond}, nil)
		wait := runAsync(t, a)
		waitFor(t, func() bool { return len(e.received()) >= 8 },
			func() string { return fmt.Sprintf("nothing sent: %v", e.statuses(c.ID)) })
		gdb.Model(&campaign.Campaign{}).Where("id = ?", c.ID).Updates(map[string]any{"status": campaign.StatusPaused})
		atPause := len(e.received())
		wait()
		after := len(e.received())
		// Seen within StatusEvery (20 ms, about one round of calls) plus
		// the calls in flight then: a few rounds of Concurrency at most.
		if after-atPause > 3*concurrency {
			t.Fatalf("%d messages went out after the pause (%d before it), want at most %d", after-atPause, atPause, 3*concurrency)
		}
		if got := e.statuses(c.ID); got[campaign.DeliverySending]+got[campaign.DeliveryClaimed] != 0 || got[campaign.DeliveryUnknown] != 0 {
			t.Fatalf("after the paused slice: %v, want nothing sending, claimed or unknown", got)
		}
		gdb.Model(&campaign.Campaign{}).Where("id = ?", c.ID).Updates(map[string]any{"status": campaign.StatusRunning})
		sim.SetLatency("/cgi-bin/message/template/send", 0)
		e.drain(a)
		if got := e.statuses(c.ID); got[campaign.DeliverySent] != 80 || len(e.received()) != 80 {
			t.Fatalf("after resuming: %v, %d received, want 80 sent once each", got, len(e.received()))
		}
		for openid, n := range e.received() {
			if n != 1 {
				t.Errorf("%s received %d messages", openid, n)
			}
		}
	})
}
