package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

// MemberDashboard is the member side of the dashboard; *member.Dashboard
// satisfies it.
type MemberDashboard interface {
	Figures(ctx context.Context, merchantID uint64, period, compare member.Period) (member.MemberFigures, error)
}

// PointsDashboard is the orders and points side of the dashboard;
// *points.Dashboard satisfies it.
type PointsDashboard interface {
	Figures(ctx context.Context, merchantID uint64, loc *time.Location, period, compare points.Period) (points.PointsFigures, error)
}

// WinBackReports is the win-back program's figures; *campaign.WinBack
// satisfies it.
type WinBackReports interface {
	Report(ctx context.Context, merchantID uint64, from, to time.Time) (campaign.WinBackReport, error)
}

// DashboardZones gives a merchant's time zone; *Merchants satisfies it.
type DashboardZones interface {
	Location(ctx context.Context, merchantID uint64) (*time.Location, error)
}

// Dashboard limits and defaults.
const (
	// DashboardTTL is how long a computed dashboard is served from the
	// cache.
	DashboardTTL = 5 * time.Minute
	// DefaultDashboardDays is the length of the default period (ending
	// today) and of its comparison (the days just before).
	DefaultDashboardDays = 30
	// MaxDashboardDays bounds a period.
	MaxDashboardDays = 366
	// maxDashboardEntries bounds the cache: each entry is a few kB.
	maxDashboardEntries = 512
	// dashboardTimeout bounds one computation, which runs detached from
	// the request that started it (others may be waiting for it).
	dashboardTimeout = time.Minute
	// DashboardPerMerchant bounds one merchant's cold computations running
	// at once in a process, DashboardOverall all merchants'. A computation
	// runs up to eight statements at once (four per feature), so these
	// bound the database connections and CPU the dashboard can take from
	// every other request (the member list of another merchant).
	DashboardPerMerchant = 2
	DashboardOverall     = 4
	// DashboardQueue is how many more of one merchant's cold computations
	// may wait for a slot; a request beyond that is 429.
	DashboardQueue = 8
	// dashboardWait bounds how long a computation waits for a slot (503
	// after that).
	dashboardWait = 30 * time.Second
)

// DashboardHandler serves GET /dashboard: the merchant's figures for a
// period and a comparison period, and the current distributions.
//
// Computed dashboards are cached in this process per (merchant, periods)
// for DashboardTTL, and concurrent requests for the same key share one
// computation. In-process is enough: the figures are aggregates that may
// be minutes old (the answer says when they were computed), each instance
// computes a key at most once per TTL, and nothing depends on the cache
// for correctness; a shared store would add writes and a dependency for no
// better answer.
//
// Cold computations are bounded per merchant and overall (see
// computeSlots), so a merchant asking for many periods at once waits for
// its own computations instead of slowing every other merchant down.
type DashboardHandler struct {
	members MemberDashboard
	points  PointsDashboard
	zones   DashboardZones
	winBack WinBackReports // nil: no win-back program figures
	now     func() time.Time
	ttl     time.Duration

	flight singleflight.Group
	slots  *computeSlots
	mu     sync.Mutex
	cache  map[dashboardKey]dashboardEntry
}

type dashboardKey struct {
	merchantID                 uint64
	from, to, compFrom, compTo string
}

type dashboardEntry struct {
	body    DashboardView
	expires time.Time
}

// NewDashboardHandler returns the dashboard handler; now is the clock of
// the default periods and of the cache.
func NewDashboardHandler(members MemberDashboard, points PointsDashboard, zones DashboardZones, now func() time.Time) *DashboardHandler {
	return &DashboardHandler{members: members, points: points, zones: zones, now: now, ttl: DashboardTTL,
		slots: newComputeSlots(DashboardPerMerchant, DashboardOverall, DashboardQueue), cache: map[dashboardKey]dashboardEntry{}}
}

// UseWinBack adds the win-back program's figures (win_back_program) to
// each period. Set before serving.
func (h *DashboardHandler) UseWinBack(w WinBackReports) { h.winBack = w }

// Register adds the route under the authenticated admin group:
//
//	GET /dashboard?from=&to=&compare_from=&compare_to=   members:read
func (h *DashboardHandler) Register(r gin.IRouter) {
	r.GET("/dashboard", authz.Require(authz.MembersRead), h.get)
}

// DateRange is a period as local dates, both inclusive.
type DateRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// PeriodView is the figures of one period.
type PeriodView struct {
	DateRange
	NewFollowers   member.ByChannel      `json:"new_followers"`
	NewMembers     member.ByChannel      `json:"new_members"`
	Unfollows      int64                 `json:"unfollows"`
	ActiveMembers  int64                 `json:"active_members"`
	RepeatPurchase points.RepeatPurchase `json:"repeat_purchase"`
	Retention      []points.Cohort       `json:"retention"`
	Churn          member.StageRate      `json:"churn"`
	WinBack        member.StageRate      `json:"win_back"`
	// WinBackProgram is the win-back program's figures for the episodes
	// that started in the period: win-back rate, cost per won-back member.
	WinBackProgram *campaign.WinBackReport `json:"win_back_program,omitempty"`
}

// CurrentView is the figures as they are now.
type CurrentView struct {
	member.CurrentMembers
	PointsLiability LiabilityView `json:"points_liability"`
}

// LiabilityView is the liability report's totals and expiry schedule.
type LiabilityView struct {
	AsOf            time.Time            `json:"as_of"`
	Accounts        int64                `json:"accounts"`
	Outstanding     int64                `json:"outstanding"`
	Pending         int64                `json:"pending"`
	Debt            int64                `json:"debt"`
	ValueFen        int64                `json:"value_fen"`
	ExpiringByMonth []points.MonthPoints `json:"expiring_by_month"`
	NeverExpiring   int64                `json:"never_expiring"`
}

// DashboardView is the answer of GET /dashboard.
type DashboardView struct {
	TimeZone   string      `json:"time_zone"`
	Period     PeriodView  `json:"period"`
	Compare    PeriodView  `json:"compare"`
	Current    CurrentView `json:"current"`
	ComputedAt time.Time   `json:"computed_at"`
	Cached     bool        `json:"cached"`
	// ExpiresAt is when the cached answer will be computed afresh.
	ExpiresAt time.Time `json:"expires_at"`
}

func (h *DashboardHandler) get(c *gin.Context) {
	p := authz.MustFrom(c)
	ctx := c.Request.Context()
	loc, err := h.zones.Location(ctx, p.MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	period, compare, err := ParseDashboardPeriods(c.Query("from"), c.Query("to"), c.Query("compare_from"),
		c.Query("compare_to"), h.now().In(loc))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	key := dashboardKey{merchantID: p.MerchantID, from: period.From, to: period.To, compFrom: compare.From, compTo: compare.To}
	if v, ok := h.lookup(key); ok {
		h.respond(c, v)
		return
	}
	res, err, _ := h.flight.Do(flightKey(key), func() (any, error) {
		if v, ok := h.lookup(key); ok { // computed while this call waited for the flight
			return v, nil
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dashboardWait)
		release, err := h.slots.acquire(wctx, p.MerchantID)
		cancel()
		if err != nil {
			return DashboardView{}, err
		}
		defer release()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dashboardTimeout)
		defer cancel()
		v, err := h.compute(cctx, p.MerchantID, loc, period, compare)
		if err != nil {
			return DashboardView{}, err
		}
		h.store(key, v)
		return v, nil
	})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := res.(DashboardView)
	v.Cached = false
	h.respond(c, v)
}

func (h *DashboardHandler) respond(c *gin.Context, v DashboardView) {
	if left := v.ExpiresAt.Sub(h.now()); left > 0 {
		c.Header("Cache-Control", "private, max-age="+strconv.Itoa(int(left.Seconds())))
	}
	c.JSON(http.StatusOK, v)
}

func flightKey(k dashboardKey) string {
	return fmt.Sprintf("%d|%s|%s|%s|%s", k.merchantID, k.from, k.to, k.compFrom, k.compTo)
}

func (h *DashboardHandler) lookup(k dashboardKey) (DashboardView, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.cache[k]
	if !ok || !h.now().Before(e.expires) {
		return DashboardView{}, false
	}
	v := e.body
	v.Cached = true
	return v, true
}

// store keeps v, dropping expired entries and, when still full, the one
// that expires first.
func (h *DashboardHandler) store(k dashboardKey, v DashboardView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if len(h.cache) >= maxDashboardEntries {
		var oldest dashboardKey
		var first time.Time
		for key, e := range h.cache {
			if !now.Before(e.expires) {
				delete(h.cache, key)
				continue
			}
			if first.IsZero() || e.expires.Before(first) {
				oldest, first = key, e.expires
			}
		}
		if len(h.cache) >= maxDashboardEntries {
			delete(h.cache, oldest)
		}
	}
	h.cache[k] = dashboardEntry{body: v, expires: v.ExpiresAt}
}

// compute asks both feature packages for their figures at once.
func (h *DashboardHandler) compute(ctx context.Context, merchantID uint64, loc *time.Location, period, compare DateRange) (DashboardView, error) {
	mp, mc := instants(period, loc), instants(compare, loc)
	var mf member.MemberFigures
	var pf points.PointsFigures
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		mf, err = h.members.Figures(gctx, merchantID, member.Period{From: mp[0], To: mp[1]}, member.Period{From: mc[0], To: mc[1]})
		return err
	})
	g.Go(func() error {
		var err error
		pf, err = h.points.Figures(gctx, merchantID, loc, points.Period{From: mp[0], To: mp[1]}, points.Period{From: mc[0], To: mc[1]})
		return err
	})
	var wp, wc *campaign.WinBackReport
	if h.winBack != nil {
		for _, x := range []struct {
			r   [2]time.Time
			out **campaign.WinBackReport
		}{{mp, &wp}, {mc, &wc}} {
			g.Go(func() error {
				r, err := h.winBack.Report(gctx, merchantID, x.r[0], x.r[1])
				*x.out = &r
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return DashboardView{}, err
	}
	now := h.now()
	l := pf.Liability
	expiring := l.ExpiringByMonth
	if expiring == nil {
		expiring = []points.MonthPoints{}
	}
	return DashboardView{
		TimeZone: loc.String(),
		Period:   periodView(period, mf.Period, pf.Period, wp),
		Compare:  periodView(compare, mf.Compare, pf.Compare, wc),
		Current: CurrentView{CurrentMembers: mf.Current, PointsLiability: LiabilityView{AsOf: l.AsOf, Accounts: l.Members,
			Outstanding: l.Outstanding, Pending: l.Pending, Debt: l.Debt, ValueFen: l.ValueFen,
			ExpiringByMonth: expiring, NeverExpiring: l.NeverExpiring}},
		ComputedAt: now,
		ExpiresAt:  now.Add(h.ttl),
	}, nil
}

func periodView(r DateRange, m member.PeriodMembers, p points.PeriodPoints, wb *campaign.WinBackReport) PeriodView {
	return PeriodView{DateRange: r, NewFollowers: m.NewFollowers, NewMembers: m.NewMembers, Unfollows: m.Unfollows,
		ActiveMembers: m.ActiveMembers, RepeatPurchase: p.RepeatPurchase, Retention: p.Retention, Churn: m.Churn,
		WinBack: m.WinBack, WinBackProgram: wb}
}

// instants turns local dates into [start of From, start of the day after
// To) in UTC.
func instants(r DateRange, loc *time.Location) [2]time.Time {
	from, _ := time.ParseInLocation(time.DateOnly, r.From, loc)
	to, _ := time.ParseInLocation(time.DateOnly, r.To, loc)
	return [2]time.Time{from.UTC(), to.AddDate(0, 0, 1).UTC()}
}

// Bounds of the dates a dashboard accepts.
var (
	minDashboardDate = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDashboardDate = time.Date(2100, 12, 31, 0, 0, 0, 0, time.UTC)
)

// ParseDashboardPeriods reads the dashboard's query parameters (local
// dates YYYY-MM-DD, both ends inclusive) with their defaults, given the
// local time now: the period ends today (to) and lasts
// DefaultDashboardDays (from); the comparison is the period of the same
// length just before it. Problems are a validation error naming the
// parameter.
func ParseDashboardPeriods(from, to, compareFrom, compareTo string, now time.Time) (period, compare DateRange, err error) {
	v := &apperr.Validation{}
	// Dates are calendar days: they are parsed as UTC midnights, and only
	// differences in days are taken of them.
	date := func(name, s string) time.Time {
		t, err := time.Parse(time.DateOnly, s)
		switch {
		case err != nil:
			v.Add(name, "must be a date YYYY-MM-DD")
		case t.Before(minDashboardDate) || t.After(maxDashboardDate):
			v.Add(name, "must be between 2000-01-01 and 2100-12-31")
		}
		return t
	}
	var f, t, cf, ct time.Time
	if to != "" {
		t = date("to", to)
	} else {
		t = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	}
	if from != "" {
		f = date("from", from)
	} else {
		f = t.AddDate(0, 0, 1-DefaultDashboardDays)
	}
	switch {
	case compareFrom == "" && compareTo != "":
		v.Add("compare_from", "is required with compare_to")
	case compareFrom != "" && compareTo == "":
		v.Add("compare_to", "is required with compare_from")
	case compareFrom != "":
		cf, ct = date("compare_from", compareFrom), date("compare_to", compareTo)
	}
	if err := v.Err(); err != nil {
		return DateRange{}, DateRange{}, err
	}
	span := func(a, b time.Time, toName string) {
		switch days := int(b.Sub(a).Hours()/24) + 1; {
		case days < 1:
			v.Add(toName, "must not be before "+map[string]string{"to": "from", "compare_to": "compare_from"}[toName])
		case days > MaxDashboardDays:
			v.Add(toName, fmt.Sprintf("the period must be at most %d days", MaxDashboardDays))
		}
	}
	span(f, t, "to")
	if compareFrom == "" {
		days := int(t.Sub(f).Hours()/24) + 1
		ct = f.AddDate(0, 0, -1)
		cf = ct.AddDate(0, 0, 1-days)
	} else {
		span(cf, ct, "compare_to")
	}
	if err := v.Err(); err != nil {
		return DateRange{}, DateRange{}, err
	}
	return DateRange{From: f.Format(time.DateOnly), To: t.Format(time.DateOnly)},
		DateRange{From: cf.Format(time.DateOnly), To: ct.Format(time.DateOnly)}, nil
}
