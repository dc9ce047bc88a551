package campaign_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// merchantGifts grants gifts, failing by merchant: always with an error,
// or a number of times first.
type merchantGifts struct {
	mu      sync.Mutex
	always  map[uint64]error
	failN   map[uint64]int
	calls   map[uint64]int
	granted map[string]int
}

func newMerchantGifts() *merchantGifts {
	return &merchantGifts{always: map[uint64]error{}, failN: map[uint64]int{}, calls: map[uint64]int{}, granted: map[string]int{}}
}

func (g *merchantGifts) Grant(_ context.Context, merchantID, _ uint64, _ campaign.Gift, key, _ string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls[merchantID]++
	if err := g.always[merchantID]; err != nil {
		return err
	}
	if g.failN[merchantID] > 0 {
		g.failN[merchantID]--
		return apperr.New(apperr.ErrUnavailable, "points are unavailable")
	}
	g.granted[key]++
	return nil
}

func (g *merchantGifts) Check(context.Context, uint64, campaign.Gift) error { return nil }

func (g *merchantGifts) callsOf(merchantID uint64) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[merchantID]
}

// warnings counts the engine's warnings per campaign.
type warnings struct {
	mu sync.Mutex
	n  map[uint64]int
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "campaign_id" {
			w.mu.Lock()
			w.n[a.Value.Uint64()]++
			w.mu.Unlock()
		}
		return true
	})
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) of(campaignID uint64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n[campaignID]
}

// giftRows counts a campaign's rows by gift state, and returns their
// attempts and errors.
func giftRows(t *testing.T, gdb *gorm.DB, campaignID uint64) (map[campaign.GiftState]int, map[int]int, map[string]int) {
	t.Helper()
	var rows []campaign.Delivery
	if err := gdb.Where("campaign_id = ?", campaignID).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	states, attempts, errs := map[campaign.GiftState]int{}, map[int]int{}, map[string]int{}
	for _, r := range rows {
		states[r.GiftState]++
		attempts[r.GiftAttempts]++
		errs[r.GiftError]++
	}
	return states, attempts, errs
}

// One merchant's reward is sold out, so every gift of its campaign fails;
// another merchant's gifts fail once (points briefly unavailable); a third
// merchant's reward was deleted. The sold-out gifts are retried with
// backoff, never before their time, and given up with the reason after
// the last attempt; they never hold back the other merchant's retries,
// which all succeed in the first round that is due; the deleted reward is
// given up at once; failures cost one warning per campaign and round.
func TestGiftRetriesBackOffGiveUpAndShareRoundsFairly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		x := newEnv(t, gdb)
		y := newEnvAt(t, gdb, x.clock.Now)
		z := newEnvAt(t, gdb, x.clock.Now)
		x.seed(300, "soldout"+randHex(3))
		y.seed(5, "later"+randHex(3))
		z.seed(3, "gone"+randHex(3))
		withGift := func(g campaign.Gift) func(*campaign.Input) {
			return func(in *campaign.Input) { in.Gift = &g }
		}
		cx := x.campaign(x.segment(), withGift(campaign.Gift{RewardID: 7}))
		cy := y.campaign(y.segment(), withGift(campaign.Gift{Points: 10}))
		cz := z.campaign(z.segment(), withGift(campaign.Gift{RewardID: 8}))
		gifts := newMerchantGifts()
		gifts.always[x.merchantID] = apperr.New(apperr.ErrUnprocessable, "this reward is out of stock")
		gifts.always[z.merchantID] = apperr.New(apperr.ErrNotFound, "reward not found")
		gifts.failN[y.merchantID] = 5
		warned := &warnings{n: map[uint64]int{}}
		const attempts = 3
		eng := x.engineWith(campaign.EngineOptions{GiftAttempts: attempts, GiftRetryBase: time.Minute}, nil, gifts, slog.New(warned))
		rounds := 0
		run := func() {
			t.Helper()
			rounds++
			if _, err := eng.RunOnce(context.Background()); err != nil {
				t.Fatalf("round: %v", err)
			}
		}
		for x.status(cx.ID) != campaign.StatusCompleted || y.status(cy.ID) != campaign.StatusCompleted ||
			z.status(cz.ID) != campaign.StatusCompleted {
			run()
			if rounds > 100 {
				t.Fatal("campaigns not completed")
			}
		}
		// Every gift was tried once as its message went out.
		if gifts.callsOf(x.merchantID) != 300 || gifts.callsOf(y.merchantID) != 5 || gifts.callsOf(z.merchantID) != 3 {
			t.Fatalf("first attempts: %v", gifts.calls)
		}
		if st, at, _ := giftRows(t, gdb, cx.ID); st[campaign.GiftDue] != 300 || at[1] != 300 {
			t.Fatalf("sold-out gifts after the send: %v, attempts %v", st, at)
		}
		if st, at, errs := giftRows(t, gdb, cz.ID); st[campaign.GiftGaveUp] != 3 || at[1] != 3 || errs["reward not found"] != 3 {
			t.Fatalf("gifts of a deleted reward: %v, attempts %v, errors %v", st, at, errs)
		}
		// Not before their time.
		run()
		if gifts.callsOf(x.merchantID) != 300 || gifts.callsOf(y.merchantID) != 5 {
			t.Fatalf("retried before the backoff: %v", gifts.calls)
		}
		// Due now: the first round shares its 100 gifts between the two
		// merchants, so the 5 of y are all granted though 300 of x are due.
		x.clock.Add(2 * time.Minute)
		run()
		if st, _, _ := giftRows(t, gdb, cy.ID); st[campaign.GiftGranted] != 5 {
			t.Fatalf("other merchant's gifts after one due round: %v (x tried %d)", st, gifts.callsOf(x.merchantID)-300)
		}
		// x's gifts: retried until the last attempt, then given up.
		for range 40 {
			x.clock.Add(7 * time.Hour)
			run()
		}
		st, at, errs := giftRows(t, gdb, cx.ID)
		if st[campaign.GiftGaveUp] != 300 || at[attempts] != 300 || errs["this reward is out of stock"] != 300 {
			t.Fatalf("sold-out gifts at the end: %v, attempts %v, errors %v", st, at, errs)
		}
		if got := gifts.callsOf(x.merchantID); got != 300*attempts {
			t.Fatalf("%d attempts at x's gifts, want %d", got, 300*attempts)
		}
		if w := warned.of(cx.ID); w > rounds {
			t.Fatalf("%d warnings about x's gifts in %d rounds", w, rounds)
		}
		if len(gifts.granted) != 5 {
			t.Fatalf("granted %v", gifts.granted)
		}
	})
}
