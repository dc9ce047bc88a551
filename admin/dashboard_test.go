package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

type dashCall struct {
	merchantID uint64
	period     [2]time.Time
	compare    [2]time.Time
}

// fakeMemberDash answers fixed figures and records its calls.
type fakeMemberDash struct {
	mu    sync.Mutex
	calls []dashCall
	fail  error
	delay time.Duration
}

func (f *fakeMemberDash) Figures(_ context.Context, merchantID uint64, p, c member.Period) (member.MemberFigures, error) {
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, dashCall{merchantID, [2]time.Time{p.From, p.To}, [2]time.Time{c.From, c.To}})
	if f.fail != nil {
		return member.MemberFigures{}, f.fail
	}
	out := member.MemberFigures{}
	out.Period.NewMembers = member.ByChannel{Total: 7, Channels: []member.ChannelCount{{Channel: "store-1", Count: 7}}}
	out.Period.ActiveMembers = int64(merchantID % 1000)
	out.Compare.NewMembers.Total = 3
	out.Current.Lifecycle = map[string]int64{"new": 2}
	return out, nil
}

func (f *fakeMemberDash) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type fakePointsDash struct {
	mu    sync.Mutex
	calls []dashCall
	locs  []string
}

func (f *fakePointsDash) Figures(_ context.Context, merchantID uint64, loc *time.Location, p, c points.Period) (points.PointsFigures, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, dashCall{merchantID, [2]time.Time{p.From, p.To}, [2]time.Time{c.From, c.To}})
	f.locs = append(f.locs, loc.String())
	out := points.PointsFigures{}
	out.Period.RepeatPurchase = points.RepeatPurchase{Buyers: 4, RepeatBuyers: 1}
	out.Liability = points.Liability{Outstanding: 1234, Members: 9}
	return out, nil
}

type dashZones map[uint64]string

func (z dashZones) Location(_ context.Context, id uint64) (*time.Location, error) {
	name, ok := z[id]
	if !ok {
		name = "Asia/Shanghai"
	}
	return time.LoadLocation(name)
}

// dashServer serves the handler behind a stand-in for the authentication
// middleware: the principal comes from test headers.
func dashServer(h *admin.DashboardHandler) *gin.Engine {
	r := gin.New()
	r.Use(func(c *gin.Context) {
		if c.GetHeader("X-Merchant") == "" {
			c.Next()
			return
		}
		id, _ := strconv.ParseUint(c.GetHeader("X-Merchant"), 10, 64)
		p := authz.Principal{MerchantID: id, StaffID: 1, Role: authz.Role(c.GetHeader("X-Role"))}
		if c.GetHeader("X-Role") == "" {
			p = authz.Principal{MerchantID: id, APIKeyID: 1} // an API key without scopes
		}
		c.Request = c.Request.WithContext(authz.WithPrincipal(c.Request.Context(), p))
		c.Next()
	})
	h.Register(r.Group("/api/admin/v1"))
	return r
}

type dashResp struct {
	code   int
	header http.Header
	body   []byte
}

func dashGet(r http.Handler, merchant uint64, role, query string) dashResp {
	req := httptest.NewRequest(http.MethodGet, "/api/admin/v1/dashboard"+query, nil)
	if merchant != 0 {
		req.Header.Set("X-Merchant", strconv.FormatUint(merchant, 10))
		req.Header.Set("X-Role", role)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return dashResp{w.Code, w.Header(), w.Body.Bytes()}
}

func (r dashResp) view(t *testing.T) admin.DashboardView {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	var v admin.DashboardView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func shanghaiMidnight(y, m, d int) time.Time {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, loc).UTC()
}

// Without parameters the dashboard shows the last 30 local days against
// the 30 before, computed once per key and TTL, per merchant.
func TestDashboardDefaultsAndCache(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 3, 15, 20, 0, 0, 0, time.UTC)) // 16 March, 04:00 in Shanghai
	mf, pf := &fakeMemberDash{}, &fakePointsDash{}
	r := dashServer(admin.NewDashboardHandler(mf, pf, dashZones{7: "America/New_York"}, clk.Now))

	v := dashGet(r, 42, "viewer", "").view(t)
	if v.Period.From != "2026-02-15" || v.Period.To != "2026-03-16" || v.Compare.From != "2026-01-16" || v.Compare.To != "2026-02-14" ||
		v.TimeZone != "Asia/Shanghai" || v.Cached || !v.ComputedAt.Equal(clk.Now()) || !v.ExpiresAt.Equal(clk.Now().Add(admin.DashboardTTL)) {
		t.Fatalf("defaults: %+v", v)
	}
	want := dashCall{42, [2]time.Time{shanghaiMidnight(2026, 2, 15), shanghaiMidnight(2026, 3, 17)},
		[2]time.Time{shanghaiMidnight(2026, 1, 16), shanghaiMidnight(2026, 2, 15)}}
	if mf.calls[0] != want || pf.calls[0] != want || pf.locs[0] != "Asia/Shanghai" {
		t.Fatalf("calls %+v %+v, want %+v", mf.calls, pf.calls, want)
	}
	// Both sides' figures are in the answer.
	if v.Period.NewMembers.Total != 7 || v.Period.ActiveMembers != 42 || v.Compare.NewMembers.Total != 3 ||
		v.Period.RepeatPurchase.Buyers != 4 || v.Current.PointsLiability.Outstanding != 1234 ||
		v.Current.PointsLiability.Accounts != 9 || v.Current.Lifecycle["new"] != 2 || v.Current.PointsLiability.ExpiringByMonth == nil {
		t.Fatalf("figures: %+v", v)
	}

	clk.Add(time.Minute)
	res := dashGet(r, 42, "viewer", "")
	c := res.view(t)
	if !c.Cached || !c.ComputedAt.Equal(v.ComputedAt) || mf.count() != 1 || res.header.Get("Cache-Control") != "private, max-age=240" {
		t.Fatalf("second call: cached %v, %d computations, %q", c.Cached, mf.count(), res.header.Get("Cache-Control"))
	}
	// Another merchant, other periods: their own computations.
	if dashGet(r, 43, "viewer", "").view(t).Period.ActiveMembers != 43 || mf.count() != 2 {
		t.Fatal("merchants share a cache entry")
	}
	dashGet(r, 42, "viewer", "?from=2026-03-01&to=2026-03-10")
	if mf.count() != 3 {
		t.Fatal("other periods share a cache entry")
	}
	// The merchant's own zone decides "today" (15 March, 16:00 there).
	ny := dashGet(r, 7, "viewer", "").view(t)
	if ny.Period.To != "2026-03-15" || ny.TimeZone != "America/New_York" {
		t.Fatalf("zone: %+v", ny.Period)
	}
	// After the TTL the figures are computed afresh.
	clk.Add(admin.DashboardTTL)
	if fresh := dashGet(r, 42, "viewer", "").view(t); fresh.Cached || !fresh.ComputedAt.Equal(clk.Now()) || mf.count() != 5 {
		t.Fatalf("after the TTL: %+v, %d computations", fresh, mf.count())
	}
}

// Parameters: local dates, both ends inclusive; a bad or misordered date,
// a half-given comparison or a period over 366 days is a 400 naming the
// parameter.
func TestDashboardPeriodParameters(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 3, 15, 20, 0, 0, 0, time.UTC))
	mf := &fakeMemberDash{}
	r := dashServer(admin.NewDashboardHandler(mf, &fakePointsDash{}, dashZones{}, clk.Now))
	for query, field := range map[string]string{
		"?from=2026-3-1":                                 "from",
		"?from=2026-02-30":                               "from",
		"?to=yesterday":                                  "to",
		"?from=1999-12-31&to=2000-01-05":                 "from",
		"?from=2026-03-10&to=2026-03-09":                 "to",
		"?from=2025-01-01&to=2026-01-02":                 "to",
		"?compare_from=2026-01-01":                       "compare_to",
		"?compare_to=2026-01-01":                         "compare_from",
		"?compare_from=2026-01-05&compare_to=x":          "compare_to",
		"?compare_from=2026-01-05&compare_to=2026-01-04": "compare_to",
		"?compare_from=2024-01-01&compare_to=2025-01-01": "compare_to",
	} {
		res := dashGet(r, 1, "viewer", query)
		var body struct {
			Error struct {
				Code   string            `json:"code"`
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		_ = json.Unmarshal(res.body, &body)
		if res.code != http.StatusBadRequest || body.Error.Fields[field] == "" || len(body.Error.Fields) != 1 {
			t.Errorf("%s: %d %s, want 400 naming %s", query, res.code, res.body, field)
		}
	}
	if mf.count() != 0 {
		t.Fatal("computed for a bad request")
	}
	for query, want := range map[string][4]string{
		"?from=2025-01-01&to=2026-01-01": {"2025-01-01", "2026-01-01", "2024-01-01", "2024-12-31"}, // 366 days, 2024 a leap year
		"?from=2026-03-01":               {"2026-03-01", "2026-03-16", "2026-02-13", "2026-02-28"},
		"?to=2026-02-28":                 {"2026-01-30", "2026-02-28", "2025-12-31", "2026-01-29"},
		"?from=2026-03-01&to=2026-03-01&compare_from=2025-03-01&compare_to=2025-03-31": {"2026-03-01", "2026-03-01", "2025-03-01", "2025-03-31"},
	} {
		v := dashGet(r, 1, "viewer", query).view(t)
		if got := [4]string{v.Period.From, v.Period.To, v.Compare.From, v.Compare.To}; got != want {
			t.Errorf("%s: %v, want %v", query, got, want)
		}
	}
}

// The route needs members:read; without a principal it is 401.
func TestDashboardPermission(t *testing.T) {
	clk := fakeclock.New(time.Now().UTC())
	r := dashServer(admin.NewDashboardHandler(&fakeMemberDash{}, &fakePointsDash{}, dashZones{}, clk.Now))
	if res := dashGet(r, 1, "", ""); res.code != http.StatusForbidden {
		t.Fatalf("API key without members:read: %d", res.code)
	}
	if res := dashGet(r, 0, "", ""); res.code != http.StatusUnauthorized {
		t.Fatalf("no principal: %d", res.code)
	}
	for _, role := range []string{"viewer", "marketer", "admin", "owner"} {
		if res := dashGet(r, 1, role, ""); res.code != http.StatusOK {
			t.Fatalf("%s: %d", role, res.code)
		}
	}
}

// A failure is a 500 and is not cached; concurrent requests for one key
// share one computation.
func TestDashboardFailureAndSharedComputation(t *testing.T) {
	clk := fakeclock.New(time.Now().UTC())
	mf := &fakeMemberDash{fail: errors.New("database down")}
	r := dashServer(admin.NewDashboardHandler(mf, &fakePointsDash{}, dashZones{}, clk.Now))
	if res := dashGet(r, 1, "viewer", ""); res.code != http.StatusInternalServerError {
		t.Fatalf("failure: %d", res.code)
	}
	mf.mu.Lock()
	mf.fail, mf.delay = nil, 50*time.Millisecond
	mf.mu.Unlock()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if dashGet(r, 1, "viewer", "").code == http.StatusOK {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 8 || mf.count() != 2 {
		t.Fatalf("%d answers, %d computations (want 8, 2)", ok.Load(), mf.count())
	}
}

// The handler over the real member and points dashboards.
func TestDashboardEndToEnd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		mid := dbtest.NewMerchantID()
		now := time.Date(2026, 3, 15, 4, 0, 0, 0, time.UTC)
		at := now.Add(-48 * time.Hour)
		for i, stage := range []string{"new", "potential"} {
			if err := gdb.Exec(`INSERT INTO members (merchant_id, oa_openid, source, created_at, updated_at, lifecycle_stage,
  first_order_at, channel_scene) VALUES (?, ?, 'oa_follow', ?, ?, ?, ?, 'door')`, mid, "o_e2e_"+strconv.Itoa(i), at, at, stage, at).Error; err != nil {
				t.Fatal(err)
			}
		}
		var id uint64
		gdb.Raw("SELECT id FROM members WHERE merchant_id = ? AND lifecycle_stage = 'new'", mid).Scan(&id)
		if err := gdb.Create(&points.Order{MerchantID: mid, MemberID: id, ExternalID: "e1", AmountFen: 100, EarnDetail: "{}",
			OrderedAt: at, CreatedAt: at, UpdatedAt: at}).Error; err != nil {
			t.Fatal(err)
		}
		clk := func() time.Time { return now }
		psvc := points.NewService(gdb, nil, dashZones{}, clk, nil)
		h := admin.NewDashboardHandler(member.NewDashboard(gdb, nil), points.NewDashboard(psvc), dashZones{}, clk)
		res := dashGet(dashServer(h), mid, "viewer", "")
		v := res.view(t)
		if v.Period.NewMembers.Total != 2 || v.Period.NewMembers.Channels[0].Channel != "door" || v.Period.ActiveMembers != 1 ||
			v.Period.RepeatPurchase.Buyers != 1 || len(v.Period.Retention) != points.CohortMonths || v.Current.Members != 2 ||
			v.Current.Lifecycle["new"] != 1 || v.Current.Pyramid["none"] != 2 || v.Current.ShareTop20 != nil {
			t.Fatalf("%s", res.body)
		}
		// The JSON names the figures as docs/openapi-dashboard.part.yaml does.
		var raw map[string]map[string]json.RawMessage
		_ = json.Unmarshal(res.body, &raw)
		for _, k := range []string{"from", "to", "new_followers", "new_members", "unfollows", "active_members",
			"repeat_purchase", "retention", "churn", "win_back"} {
			if _, ok := raw["period"][k]; !ok {
				t.Errorf("period has no %q", k)
			}
		}
		for _, k := range []string{"members", "lifecycle", "pyramid", "rfm", "rfm_unscored", "clv", "share_top20", "points_liability"} {
			if _, ok := raw["current"][k]; !ok {
				t.Errorf("current has no %q", k)
			}
		}
	})
}

// blockingMemberDash holds every computation of a merchant not in free
// until release is closed, and reports each computation as it starts.
type blockingMemberDash struct {
	free    map[uint64]bool
	started chan uint64
	release chan struct{}

	mu                  sync.Mutex
	running, maxRunning map[uint64]int
	total, maxTotal     int
}

func newBlockingMemberDash(free ...uint64) *blockingMemberDash {
	f := &blockingMemberDash{free: map[uint64]bool{}, started: make(chan uint64, 100), release: make(chan struct{}),
		running: map[uint64]int{}, maxRunning: map[uint64]int{}}
	for _, id := range free {
		f.free[id] = true
	}
	return f
}

func (f *blockingMemberDash) Figures(_ context.Context, merchantID uint64, _, _ member.Period) (member.MemberFigures, error) {
	f.mu.Lock()
	f.running[merchantID]++
	f.total++
	f.maxRunning[merchantID] = max(f.maxRunning[merchantID], f.running[merchantID])
	f.maxTotal = max(f.maxTotal, f.total)
	f.mu.Unlock()
	f.started <- merchantID
	if !f.free[merchantID] {
		<-f.release
	}
	f.mu.Lock()
	f.running[merchantID]--
	f.total--
	f.mu.Unlock()
	return member.MemberFigures{}, nil
}

type slotWait struct {
	merchant uint64
	slot     string
}

// receive returns the next value of ch; the deadline only keeps a broken
// handler from hanging the test.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// Cold computations are bounded per merchant and overall, and one
// merchant's many concurrent requests do not hold up another's: merchant 1
// asks for many periods at once; two are computed, the rest wait in
// merchant 1's own queue (and beyond the queue are refused with 429),
// while merchant 2's request is computed at once. Merchant 3's two
// computations then fill the shared slots, and merchant 4's waits for
// one. Asserted by where each computation is (started, or waiting for
// which slot), with computations held until the end, not by timing.
func TestDashboardBoundsColdComputations(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 3, 15, 20, 0, 0, 0, time.UTC))
	mf := newBlockingMemberDash(2)
	h := admin.NewDashboardHandler(mf, &fakePointsDash{}, dashZones{}, clk.Now)
	waits := make(chan slotWait, 100)
	admin.OnDashboardWait(h, func(m uint64, slot string) { waits <- slotWait{m, slot} })
	r := dashServer(h)
	var pending []<-chan dashResp
	get := func(merchant uint64, day int) <-chan dashResp {
		ch := make(chan dashResp, 1)
		go func() {
			ch <- dashGet(r, merchant, "owner", fmt.Sprintf("?from=2026-01-%02d&to=2026-01-%02d", day, day))
		}()
		return ch
	}
	// started expects the next computation of merchant to start, not to
	// wait; waited expects it to wait for slot, not to start.
	started := func(merchant uint64) {
		t.Helper()
		select {
		case m := <-mf.started:
			if m != merchant {
				t.Fatalf("merchant %d's computation started, want %d's", m, merchant)
			}
		case w := <-waits:
			t.Fatalf("merchant %d's computation waits for a %s slot, want it started", w.merchant, w.slot)
		case <-time.After(10 * time.Second):
			t.Fatalf("merchant %d's computation neither started nor waits", merchant)
		}
	}
	waited := func(merchant uint64, slot string) {
		t.Helper()
		select {
		case m := <-mf.started:
			t.Fatalf("merchant %d's computation started, want merchant %d's to wait for a %s slot", m, merchant, slot)
		case w := <-waits:
			if w != (slotWait{merchant, slot}) {
				t.Fatalf("%+v waits, want merchant %d for a %s slot", w, merchant, slot)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("merchant %d's computation neither started nor waits", merchant)
		}
	}

	for day := 1; day <= admin.DashboardPerMerchant; day++ {
		pending = append(pending, get(1, day))
		started(1)
	}
	pending = append(pending, get(1, 10))
	waited(1, "merchant")

	// Merchant 2 is not behind merchant 1's queue.
	b := get(2, 1)
	started(2)
	if res := receive(t, b, "answer for merchant 2"); res.code != http.StatusOK {
		t.Fatalf("merchant 2: %d %s", res.code, res.body)
	}

	// Merchant 3 takes the remaining shared slots; merchant 4 waits.
	for day := 1; day <= admin.DashboardOverall-admin.DashboardPerMerchant; day++ {
		pending = append(pending, get(3, day))
		started(3)
	}
	pending = append(pending, get(4, 1))
	waited(4, "overall")

	// Merchant 1's queue holds DashboardQueue computations; one more is
	// refused at once.
	for day := 11; day < 10+admin.DashboardQueue; day++ {
		pending = append(pending, get(1, day))
		waited(1, "merchant")
	}
	res := receive(t, get(1, 28), "answer beyond the queue")
	if res.code != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("beyond merchant 1's queue: %d %s (Retry-After %q), want 429", res.code, res.body, res.header.Get("Retry-After"))
	}

	// Let everything finish: every accepted request is answered.
	close(mf.release)
	for _, ch := range pending {
		if res := receive(t, ch, "answer after release"); res.code != http.StatusOK {
			t.Fatalf("after release: %d %s", res.code, res.body)
		}
	}
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if mf.maxRunning[1] != admin.DashboardPerMerchant || mf.maxTotal > admin.DashboardOverall {
		t.Fatalf("at most %d of merchant 1's and %d in all ran at once, want %d and at most %d",
			mf.maxRunning[1], mf.maxTotal, admin.DashboardPerMerchant, admin.DashboardOverall)
	}
}
