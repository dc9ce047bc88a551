package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"
)

// backlogCap bounds each backlog count: a count walks an index range, and a
// scrape must stay cheap however far behind the workers are. A gauge at the
// cap means "at least this many".
const backlogCap = 1_000_000

// backlogTimeout bounds the queries of one scrape.
const backlogTimeout = 5 * time.Second

// deliveryStatuses are the campaign delivery states whose counts matter to
// an operator: the queue (pending), rows leased or in flight (claimed,
// sending) and rows whose fate is unknown (unknown). A closed set.
var deliveryStatuses = []string{"pending", "claimed", "sending", "unknown"}

// backlogCollector reads the database's work queues at scrape time, so
// every instance reports the same figures whichever of them do the work
// (aggregate with max, not sum), and the figures keep coming while no
// worker runs, which is when they matter. Every query walks an index: the
// inbox's idx_wechat_events_pending (processed_at, id), the deliveries'
// idx_deliveries_lease (status, lease_until) and idx_deliveries_gift
// (gift_state, merchant_id, gift_next_at).
type backlogCollector struct {
	db  *gorm.DB
	now func() time.Time
	log *slog.Logger

	inboxPending, inboxAge, deliveries, giftsDue, giftsAge, giftsGaveUp *prometheus.Desc
	errors                                                              prometheus.Counter
}

// WatchBacklogs exports the work queues kept in the database: official
// account events not yet applied and the age of the oldest, campaign
// deliveries by state, and campaign gifts due, overdue and given up. now is
// the clock the rows are written with (UTC).
func (m *Metrics) WatchBacklogs(gdb *gorm.DB, now func() time.Time, log *slog.Logger) {
	c := &backlogCollector{db: gdb, now: now, log: log,
		inboxPending: prometheus.NewDesc("loyalty_inbox_pending_events",
			"Official-account events stored and not yet applied (capped at 1e6).", nil, nil),
		inboxAge: prometheus.NewDesc("loyalty_inbox_oldest_pending_seconds",
			"Age of the oldest official-account event not yet applied (0 when none): the inbox lag.", nil, nil),
		deliveries: prometheus.NewDesc("loyalty_campaign_deliveries",
			"Campaign deliveries by state: pending (queued), claimed, sending (WeChat may have it), unknown (was sending when its worker died; never resent on its own). Capped at 1e6.",
			[]string{"status"}, nil),
		giftsDue: prometheus.NewDesc("loyalty_campaign_gifts_due",
			"Gifts of sent campaign deliveries waiting to be granted (capped at 1e6).", nil, nil),
		giftsAge: prometheus.NewDesc("loyalty_campaign_gifts_overdue_seconds",
			"How long the most overdue gift has been due (0 when none is).", nil, nil),
		giftsGaveUp: prometheus.NewDesc("loyalty_campaign_gifts_gave_up",
			"Gifts given up after a day of failed attempts (capped at 1e6).", nil, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "loyalty_backlog_query_errors_total",
			Help: "Scrapes whose backlog queries failed (those gauges are then missing from the scrape)."}),
	}
	m.register(c)
}

// Describe implements prometheus.Collector.
func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inboxPending, c.inboxAge, c.deliveries, c.giftsDue, c.giftsAge, c.giftsGaveUp} {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector. A failed query drops its gauges
// from this scrape (absent rather than a false zero) and counts an error.
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	tx := c.db.WithContext(ctx)
	now := c.now().UTC()
	failed := false
	fail := func(what string, err error) {
		failed = true
		c.log.Warn("metrics: backlog query", "what", what, "error", err)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	if n, err := cappedCount(tx, "wechat_events", "processed_at IS NULL"); err != nil {
		fail("inbox pending", err)
	} else {
		gauge(c.inboxPending, float64(n))
	}
	var oldest []time.Time
	if err := tx.Table("wechat_events").Where("processed_at IS NULL").Order("id").Limit(1).
		Pluck("received_at", &oldest).Error; err != nil {
		fail("inbox lag", err)
	} else {
		gauge(c.inboxAge, ageSeconds(now, oldest))
	}
	for _, s := range deliveryStatuses {
		if n, err := cappedCount(tx, "campaign_deliveries", "status = ?", s); err != nil {
			fail("deliveries "+s, err)
		} else {
			gauge(c.deliveries, float64(n), s)
		}
	}
	const giftDue, giftGaveUp = 1, 3 // campaign.GiftDue, campaign.GiftGaveUp
	if n, err := cappedCount(tx, "campaign_deliveries", "gift_state = ?", giftDue); err != nil {
		fail("gifts due", err)
	} else {
		gauge(c.giftsDue, float64(n))
	}
	var due []time.Time
	if err := tx.Table("campaign_deliveries").Where("gift_state = ? AND gift_next_at <= ?", giftDue, now).
		Order("gift_next_at").Limit(1).Pluck("gift_next_at", &due).Error; err != nil {
		fail("gifts overdue", err)
	} else {
		gauge(c.giftsAge, ageSeconds(now, due))
	}
	if n, err := cappedCount(tx, "campaign_deliveries", "gift_state = ?", giftGaveUp); err != nil {
		fail("gifts given up", err)
	} else {
		gauge(c.giftsGaveUp, float64(n))
	}
	if failed {
		c.errors.Inc()
	}
	// The error counter is sent from here, after this scrape's queries, and
	// not registered on its own: the registry runs collectors concurrently,
	// so a separately registered counter could be read before this scrape
	// counted its failure.
	c.errors.Collect(ch)
}

// cappedCount counts the rows of table matching where, stopping at
// backlogCap.
func cappedCount(tx *gorm.DB, table, where string, args ...any) (int64, error) {
	var n int64
	sub := tx.Table(table).Select("1").Where(where, args...).Limit(backlogCap)
	err := tx.Table("(?) AS capped", sub).Count(&n).Error
	return n, err
}

// ageSeconds is how long ago the first of times was, or 0 without one.
func ageSeconds(now time.Time, times []time.Time) float64 {
	if len(times) == 0 || times[0].IsZero() {
		return 0
	}
	return max(0, now.Sub(times[0]).Seconds())
}
