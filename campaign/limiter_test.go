package campaign_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/redisx"
	"github.com/wxloyalty/loyalty/internal/redisx/redisxtest"
)

// permit is one permit a sender got: the limiter granted it at some
// moment between asked (when the sender called Wait) and got (when Wait
// returned). Scheduler lag, heavy under -race on a busy machine, only
// widens the interval; it never moves the grant out of it.
type permit struct{ asked, got time.Time }

// hammer has senders wait on the limiters (one per "instance") for d and
// returns the permits they got, in the order they were asked for.
func hammer(t *testing.T, limiters []campaign.Limiter, account string, senders int, d time.Duration) []permit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var got []permit
	var wg sync.WaitGroup
	for i := range senders {
		lim := limiters[i%len(limiters)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				asked := time.Now()
				if lim.Wait(ctx, account, campaign.LaneMarketing) != nil {
					return
				}
				p := permit{asked, time.Now()}
				mu.Lock()
				got = append(got, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(got, func(i, j int) bool { return got[i].asked.Before(got[j].asked) })
	return got
}

// surelyWithin returns the most permits surely granted inside one window of
// length w: those asked for and got within it. However late the senders
// ran, a limiter that keeps its rate never lets this exceed the rate (plus
// its burst); one that overshoots shows it here.
func surelyWithin(ps []permit, w time.Duration) int {
	most := 0
	for i, from := range ps {
		n := 0
		for _, p := range ps[i:] {
			if p.asked.Sub(from.asked) >= w {
				break
			}
			if p.got.Sub(from.asked) < w {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// No second ever carries more than the account's rate, whatever the number
// of senders: in one process, and across "instances" sharing Redis.
// (Whether the rate is reached is a benchmark's business, not a test's.)
// Both bounds are exact: the number of permits over the whole run, and the
// permits surely granted within any one second (see surelyWithin), so the
// test does not depend on how promptly the machine runs the senders.
func TestLimitersNeverExceedTheRate(t *testing.T) {
	split := campaign.RateSplit{PerSecond: 300, ServicePct: 2}
	marketing := 300 - 6 // the service lane's share is set aside
	const run = 2500 * time.Millisecond
	local := campaign.NewLocalLimiter(split)
	ps := hammer(t, []campaign.Limiter{local}, "wxlocal"+randHex(4), 50, run)
	if most := float64(marketing)*run.Seconds() + 1; len(ps) == 0 || float64(len(ps)) > most {
		t.Fatalf("local: %d permits in %v, at most %.0f allowed at %d/s", len(ps), run, most, marketing)
	}
	if b := surelyWithin(ps, time.Second); b > marketing+1 {
		t.Fatalf("local: %d permits granted within one second, rate %d", b, marketing)
	}

	addr := os.Getenv("LOYALTY_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("LOYALTY_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("LOYALTY_TEST_REQUIRE_REDIS=1 but LOYALTY_TEST_REDIS_ADDR is not set")
		}
		t.Skip("the shared limiter needs LOYALTY_TEST_REDIS_ADDR (e.g. 127.0.0.1:6379); .ci/run sets it")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	instances := []campaign.Limiter{campaign.NewRedisLimiter(rdb, split), campaign.NewRedisLimiter(rdb, split),
		campaign.NewRedisLimiter(rdb, split)}
	ps = hammer(t, instances, "wxshared"+randHex(4), 60, run)
	if most := float64(marketing) * run.Seconds(); len(ps) == 0 || float64(len(ps)) > most {
		t.Fatalf("shared: %d permits in %v, at most %.0f allowed at %d/s", len(ps), run, most, marketing)
	}
	if b := surelyWithin(ps, time.Second); b > marketing {
		t.Fatalf("shared: %d permits granted within one second, rate %d", b, marketing)
	}
}

// Redis goes away in the middle of a send and comes back empty: three
// "instances" keep sending (each at a third of the rate while Redis is
// away), never more than the rate in any second, switching either way,
// and go back to the shared limiter once Redis answers.
func TestFallbackLimiterWhileRedisIsAway(t *testing.T) {
	split := campaign.RateSplit{PerSecond: 300, ServicePct: 2}
	marketing := 300 - 6
	proxy := redisxtest.NewProxy(t, redisxtest.Addr(t))
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	defer rdb.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	live := func(context.Context) int { return 3 }
	var healths []*redisx.Health
	var instances []campaign.Limiter
	for range 3 {
		h := redisx.NewHealth(rdb, quiet, 50*time.Millisecond)
		healths = append(healths, h)
		instances = append(instances, campaign.NewFallbackLimiter(campaign.NewRedisLimiter(rdb, split), split, h, live, 50*time.Millisecond))
	}
	const run = 4 * time.Second
	start := time.Now()
	cut, restored := start.Add(time.Second), start.Add(2500*time.Millisecond)
	account := "wxfallback" + randHex(4)
	// Redis comes back empty, as a restarted Redis does: its limiter would
	// grant a full second's permits at once.
	direct := redis.NewClient(&redis.Options{Addr: redisxtest.Addr(t)})
	defer direct.Close()
	go func() {
		time.Sleep(time.Until(cut))
		proxy.Cut()
		time.Sleep(time.Until(restored))
		direct.Del(context.Background(), fmt.Sprintf("loyalty:send:%s:%d", account, campaign.LaneMarketing))
		proxy.Restore()
	}()
	ps := hammer(t, instances, account, 60, run)

	var during int
	for _, p := range ps {
		if p.asked.After(cut.Add(time.Second)) && p.got.Before(restored) {
			during++
		}
	}
	if during == 0 {
		t.Fatal("no permit while Redis was away: sends stopped")
	}
	// Each local limiter may add its one-token burst to its third.
	if b := surelyWithin(ps, time.Second); b > marketing+len(instances) {
		t.Fatalf("%d permits granted within one second, rate %d", b, marketing)
	}
	for i, h := range healths {
		if !h.Up() {
			t.Fatalf("instance %d still falls back after Redis came back", i)
		}
	}
	t.Logf("%d permits, %d while Redis was away", len(ps), during)
}
