package metrics

import (
	"log/slog"
	"os"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// gauges returns the values of the gathered gauges, keyed by name and, for
// labelled ones, name{value of the first label}.
func gauges(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetType() != dto.MetricType_GAUGE && f.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, s := range f.GetMetric() {
			key := f.GetName()
			if ls := s.GetLabel(); len(ls) > 0 {
				key += "{" + ls[0].GetValue() + "}"
			}
			if g := s.GetGauge(); g != nil {
				out[key] = g.GetValue()
			} else {
				out[key] = s.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestBacklogsReadTheQueues(t *testing.T) {
	run := func(t *testing.T, gdb *gorm.DB) {
		now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		m := New()
		m.WatchBacklogs(gdb, func() time.Time { return now }, slog.New(slog.DiscardHandler))

		g := gauges(t, m)
		for _, name := range []string{"loyalty_inbox_pending_events", "loyalty_inbox_oldest_pending_seconds",
			"loyalty_campaign_deliveries{pending}", "loyalty_campaign_deliveries{unknown}",
			"loyalty_campaign_gifts_due", "loyalty_campaign_gifts_overdue_seconds", "loyalty_campaign_gifts_gave_up"} {
			if v, ok := g[name]; !ok || v != 0 {
				t.Errorf("empty database: %s = %v (present %v), want 0", name, v, ok)
			}
		}

		event := func(key string, received time.Time, processed *time.Time) {
			t.Helper()
			if err := gdb.Exec("INSERT INTO wechat_events (merchant_id, dedupe_key, msg_type, openid, create_time, received_at, processed_at) "+
				"VALUES (1, ?, 'event', 'o1', ?, ?, ?)", key, received, received, processed).Error; err != nil {
				t.Fatal(err)
			}
		}
		done := now.Add(-time.Hour)
		event("a", now.Add(-2*time.Hour), &done) // applied: not pending
		event("b", now.Add(-90*time.Second), nil)
		event("c", now.Add(-10*time.Second), nil)

		delivery := func(member int, status string, gift int, giftAt *time.Time) {
			t.Helper()
			if err := gdb.Exec("INSERT INTO campaign_deliveries (merchant_id, campaign_id, step, member_id, status, gift_state, gift_next_at, created_at, updated_at) "+
				"VALUES (1, 7, 0, ?, ?, ?, ?, ?, ?)", member, status, gift, giftAt, now, now).Error; err != nil {
				t.Fatal(err)
			}
		}
		overdue, later := now.Add(-5*time.Minute), now.Add(time.Hour)
		delivery(1, "pending", 0, nil)
		delivery(2, "pending", 0, nil)
		delivery(3, "sending", 0, nil)
		delivery(4, "unknown", 0, nil)
		delivery(5, "sent", 1, &overdue)
		delivery(6, "sent", 1, &later)
		delivery(7, "sent", 3, nil)
		delivery(8, "delivered", 2, nil)

		g = gauges(t, m)
		want := map[string]float64{
			"loyalty_inbox_pending_events": 2, "loyalty_inbox_oldest_pending_seconds": 90,
			"loyalty_campaign_deliveries{pending}": 2, "loyalty_campaign_deliveries{claimed}": 0,
			"loyalty_campaign_deliveries{sending}": 1, "loyalty_campaign_deliveries{unknown}": 1,
			"loyalty_campaign_gifts_due": 2, "loyalty_campaign_gifts_overdue_seconds": 300,
			"loyalty_campaign_gifts_gave_up": 1, "loyalty_backlog_query_errors_total": 0,
		}
		for name, v := range want {
			if got, ok := g[name]; !ok || got != v {
				t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
			}
		}
	}
	t.Run(dbtest.SQLite, func(t *testing.T) { run(t, dbtest.OpenSQLite(t)) })
	t.Run(dbtest.MySQL, func(t *testing.T) { run(t, dbtest.OpenMySQLIsolated(t)) })
}

func TestBacklogQueryFailureIsCountedNotZero(t *testing.T) {
	gdb := dbtest.OpenSQLite(t)
	m := New()
	m.WatchBacklogs(gdb, time.Now, slog.New(slog.DiscardHandler))
	if err := gdb.Exec("DROP TABLE wechat_events").Error; err != nil {
		t.Fatal(err)
	}
	g := gauges(t, m)
	if _, ok := g["loyalty_inbox_pending_events"]; ok {
		t.Error("inbox gauge reported although its query failed")
	}
	if g["loyalty_backlog_query_errors_total"] != 1 {
		t.Errorf("errors = %v, want 1", g["loyalty_backlog_query_errors_total"])
	}
	if _, ok := g["loyalty_campaign_deliveries{pending}"]; !ok {
		t.Error("deliveries gauge missing although its query works")
	}
}
