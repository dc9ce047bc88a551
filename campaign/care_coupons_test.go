package campaign_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/points"
)

// fakeCoupons is a points service with settable coupons.
type fakeCoupons struct {
	mu  sync.Mutex
	now func() time.Time
	all []points.ExpiringCoupon
}

func (f *fakeCoupons) CouponsExpiringSoon(_ context.Context, _ uint64, within time.Duration, after uint64, limit int) ([]points.ExpiringCoupon, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []points.ExpiringCoupon
	for _, c := range f.all {
		if c.ID > after && c.ExpiresAt.After(f.now()) && !c.ExpiresAt.After(f.now().Add(within)) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out[:min(limit, len(out))], nil
}

// A coupon reminder goes out once per coupon, on the first day it is
// within the rule's days, and not again on the following days; a member
// with two coupons coming into the window on one day gets one message.
func TestCareCouponExpiring(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		cp := &fakeCoupons{}
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{Coupons: cp})
		cp.now = c.now
		ids := c.seed(2, "cx"+randHex(3))
		cp.all = []points.ExpiringCoupon{
			{ID: 11, MemberID: ids[0], ExpiresAt: time.Date(2026, 11, 26, 20, 0, 0, 0, shanghai)},
			{ID: 12, MemberID: ids[0], ExpiresAt: time.Date(2026, 11, 26, 21, 0, 0, 0, shanghai)},
			{ID: 13, MemberID: ids[1], ExpiresAt: time.Date(2026, 12, 2, 12, 0, 0, 0, shanghai)},
		}
		r := c.rule(campaign.CareCouponExpiring, "coupon", func(in *campaign.CareInput) { in.WithinDays = intPtr(3) })
		if r.Days != 3 {
			t.Fatalf("rule %+v", r)
		}
		for day := 0; day <= 10; day++ { // 2026-11-23 to 2026-12-03
			c.at(2026, 11, 23+day, 12, 0)
			c.tick()
			c.tick()
		}
		got := c.careSends(r.ID)
		if !slices.Equal(got[ids[0]], []string{"coupon:11", "coupon:12"}) || !slices.Equal(got[ids[1]], []string{"coupon:13"}) ||
			len(got) != 2 {
			t.Fatalf("coupon reminders %v", got)
		}
		dates := c.sendDates(nil)[r.ID]
		if !slices.Equal(dates[ids[0]], []string{"2026-11-24"}) || !slices.Equal(dates[ids[1]], []string{"2026-11-29"}) {
			t.Fatalf("sent on %v", dates)
		}
	})
}
