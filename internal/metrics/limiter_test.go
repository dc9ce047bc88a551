package metrics

import (
	"context"
	"testing"

	"github.com/wxloyalty/loyalty/campaign"
)

func TestInstrumentedLimiterCountsPermitsByLane(t *testing.T) {
	m := New()
	lim := m.InstrumentLimiter(campaign.NewLocalLimiter(campaign.RateSplit{PerSecond: 1000, ServicePct: 10}), 1000, 50000)
	ctx := context.Background()
	for range 3 {
		if err := lim.Wait(ctx, "wx1", campaign.LaneMarketing); err != nil {
			t.Fatal(err)
		}
	}
	if err := lim.Wait(ctx, "wx1", campaign.LaneService); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := lim.Wait(cancelled, "wx2", campaign.LaneMarketing); err == nil {
		t.Fatal("a cancelled wait was granted")
	}
	g := gauges(t, m)
	want := map[string]float64{"loyalty_send_permits_total{marketing}": 3, "loyalty_send_permits_total{service}": 1,
		"loyalty_send_rate_limit_per_second": 1000, "loyalty_send_daily_quota": 50000}
	for name, v := range want {
		if g[name] != v {
			t.Errorf("%s = %v, want %v", name, g[name], v)
		}
	}
}
