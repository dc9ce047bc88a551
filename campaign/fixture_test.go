package campaign_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// clock is the tests' settable clock.
type clock = fakeclock.Clock

// The SDK has one process-wide HTTP client, so the package's tests share
// one simulator; each test registers its own apps.
var (
	sim      *wechattest.Simulator
	endpoint wechat.Endpoint
	quiet    = slog.New(slog.DiscardHandler)
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	sim = wechattest.New()
	srv := httptest.NewServer(sim)
	var err error
	if endpoint, err = wechat.ParseEndpoint(srv.URL); err != nil {
		panic(err)
	}
	wechat.InstallHTTPClient(wechat.NewHTTPClient(endpoint, 5*time.Second))
	code := dbtest.Main(m)
	srv.Close()
	os.Exit(code)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// merchantDir is the merchants the engine knows: one zone, quiet hours
// and credentials per merchant.
type merchantDir struct {
	mu    sync.Mutex
	creds map[uint64]wechat.Credentials
	quiet map[uint64][2]int
	caps  map[uint64][2]int // messages, window days; absent: the engine's option
}

var merchants = &merchantDir{creds: map[uint64]wechat.Credentials{}, quiet: map[uint64][2]int{}, caps: map[uint64][2]int{}}

func (d *merchantDir) WeChatCredentials(_ context.Context, id uint64) (wechat.Credentials, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.creds[id]
	if !ok {
		return wechat.Credentials{}, fmt.Errorf("merchant %d: %w", id, apperr.ErrNotFound)
	}
	return c, nil
}

func (d *merchantDir) Location(context.Context, uint64) (*time.Location, error) { return shanghai, nil }

func (d *merchantDir) QuietHours(_ context.Context, id uint64) (int, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q, ok := d.quiet[id]
	if !ok {
		return 0, 0, nil // none
	}
	return q[0], q[1], nil
}

func (d *merchantDir) FrequencyCap(_ context.Context, id uint64) (int, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.caps[id]
	return c[0], c[1], nil
}

// env is one merchant on one database with the WeChat simulator, members,
// the segment store and a way to build engines.
type env struct {
	t          *testing.T
	db         *gorm.DB
	merchantID uint64
	creds      wechat.Credentials
	accounts   *wechat.Accounts
	segments   *member.Segments
	members    *member.Service
	clock      *clock           // the fake clock, when the test uses one
	now        func() time.Time // what everything reads the time from
	gifts      *giftLog
	events     *eventLog
	dsn        string // MySQL tests that open a second pool
}

const template = "TPL_PROMO"

// newEnv uses a fake clock starting at 14:00 in Shanghai on 2026-11-23;
// newRealTimeEnv the wall clock (for tests whose leases must expire).
func newEnv(t *testing.T, gdb *gorm.DB) *env {
	c := &clock{}
	c.Set(time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC))
	e := newEnvAt(t, gdb, c.Now)
	e.clock = c
	return e
}

func newRealTimeEnv(t *testing.T, gdb *gorm.DB) *env {
	return newEnvAt(t, gdb, func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) })
}

func newEnvAt(t *testing.T, gdb *gorm.DB, now func() time.Time) *env {
	t.Helper()
	e := &env{t: t, db: gdb, merchantID: dbtest.NewMerchantID(), now: now, gifts: &giftLog{keys: map[string]int{}},
		events: &eventLog{}}
	e.creds = wechat.Credentials{AppID: "wx" + randHex(8), AppSecret: randHex(16), Token: "tok" + randHex(4),
		MPAppID: "wx" + randHex(8), MPAppSecret: randHex(16)}
	sim.AddOfficialAccount(wechattest.App{AppID: e.creds.AppID, Secret: e.creds.AppSecret})
	sim.AddMiniProgram(wechattest.App{AppID: e.creds.MPAppID, Secret: e.creds.MPAppSecret})
	sim.AddTemplate(e.creds.AppID, template)
	merchants.mu.Lock()
	merchants.creds[e.merchantID] = e.creds
	merchants.mu.Unlock()
	e.accounts = wechat.NewAccounts(merchants, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	e.segments = member.NewSegments(gdb, merchants, now)
	e.members = member.NewService(gdb, nil, now, quiet)
	// The MySQL database is shared by the package's tests, and engines and
	// the care scheduler work for every merchant in it: a campaign or care
	// rule a test leaves behind would be run by the next test's (and meet
	// its scripted faults).
	t.Cleanup(func() {
		gdb.Model(&campaign.Campaign{}).Where("merchant_id = ? AND status IN ?", e.merchantID,
			[]campaign.Status{campaign.StatusDraft, campaign.StatusScheduled, campaign.StatusRunning, campaign.StatusPaused}).
			Update("status", campaign.StatusCancelled)
		gdb.Model(&campaign.CareRule{}).Where("merchant_id = ?", e.merchantID).Update("enabled", false)
	})
	return e
}

// engine builds one instance of the engine (one "process").
func (e *env) engine(o campaign.EngineOptions, lim campaign.Limiter) *campaign.Engine {
	return e.engineWith(o, lim, e.gifts, quiet)
}

// engineWith builds an engine with its own gifts and logger.
func (e *env) engineWith(o campaign.EngineOptions, lim campaign.Limiter, gifts campaign.Gifts, log *slog.Logger) *campaign.Engine {
	if lim == nil {
		lim = campaign.NewLocalLimiter(campaign.RateSplit{PerSecond: 100000, ServicePct: 2})
	}
	if o.Poll == 0 {
		o.Poll = 5 * time.Millisecond
	}
	return campaign.NewEngine(e.db, campaign.EngineDeps{WeChat: e.accounts, Audiences: e.segments, Merchants: merchants,
		Variables: names{e.members}, Gifts: gifts, Followers: e.members, Limiter: lim, Events: e.events}, e.now, log, o)
}

// eventLog records the events the engine emits (inside its transactions).
type eventLog struct {
	mu     sync.Mutex
	events []event.Event
}

func (l *eventLog) Emit(_ context.Context, _ *gorm.DB, evs ...event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, evs...)
	return nil
}

func (l *eventLog) all() []event.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event.Event(nil), l.events...)
}

// seed creates n following members with official-account openids, known to
// the simulator as followers, and returns their ids.
func (e *env) seed(n int, prefix string) []uint64 {
	e.t.Helper()
	now := e.now()
	const batch = 1000
	for i := 0; i < n; i += batch {
		var sb strings.Builder
		var args []any
		sb.WriteString("INSERT INTO members (merchant_id, oa_openid, name, source, follow_status, last_interaction_at, created_at, updated_at) VALUES ")
		for j := i; j < min(n, i+batch); j++ {
			if j > i {
				sb.WriteString(",")
			}
			sb.WriteString("(?, ?, ?, 'oa_follow', 'following', ?, ?, ?)")
			openid := fmt.Sprintf("o_%s_%d", prefix, j)
			args = append(args, e.merchantID, openid, fmt.Sprintf("m%d", j), now, now, now)
			sim.Follow(e.creds.AppID, openid, "")
		}
		if err := e.db.Exec(sb.String(), args...).Error; err != nil {
			e.t.Fatal(err)
		}
	}
	var ids []uint64
	e.db.Table("members").Where("merchant_id = ? AND oa_openid LIKE ?", e.merchantID, "o_"+prefix+"_%").Order("id").Pluck("id", &ids)
	if len(ids) != n {
		e.t.Fatalf("seeded %d members, found %d", n, len(ids))
	}
	return ids
}

// segment saves a segment of all following members.
func (e *env) segment() uint64 {
	e.t.Helper()
	seg, err := e.segments.Create(context.Background(), e.merchantID, 1, member.SegmentInput{Name: strPtr("followers " + randHex(3)),
		Rule: []byte(`{"field":"follow_status","op":"eq","value":"following"}`)})
	if err != nil {
		e.t.Fatal(err)
	}
	return seg.ID
}

func strPtr(s string) *string { return &s }

func ptr[T any](v T) *T { return &v }

// campaign creates and schedules a template campaign to the segment.
func (e *env) campaign(segmentID uint64, mutate ...func(*campaign.Input)) campaign.Campaign {
	e.t.Helper()
	in := campaign.Input{Name: strPtr("Autumn sale"), Channel: ptr(campaign.ChannelTemplate), TemplateID: strPtr(template),
		Message: &campaign.Message{Fields: map[string]string{"first": "Hello {{name}}", "keyword1": "50% off"}},
		Target:  &campaign.Target{SegmentID: segmentID}, Schedule: &campaign.ScheduleInput{Kind: campaign.ScheduleNow}}
	for _, m := range mutate {
		m(&in)
	}
	svc := campaign.NewCampaigns(e.engine(campaign.EngineOptions{}, nil))
	c, err := svc.Create(context.Background(), e.merchantID, 1, in)
	if err != nil {
		e.t.Fatalf("create campaign: %v", err)
	}
	if c, err = svc.Act(context.Background(), e.merchantID, c.ID, campaign.ActSchedule); err != nil {
		e.t.Fatalf("schedule campaign: %v", err)
	}
	return c
}

// statuses counts the campaign's rows by status.
func (e *env) statuses(campaignID uint64) map[campaign.DeliveryStatus]int {
	var rows []struct {
		Status campaign.DeliveryStatus
		N      int
	}
	e.db.Table("campaign_deliveries").Select("status, COUNT(*) AS n").Where("campaign_id = ?", campaignID).Group("status").Find(&rows)
	out := map[campaign.DeliveryStatus]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out
}

func (e *env) status(campaignID uint64) campaign.Status {
	var s []campaign.Status
	if err := e.db.Table("campaigns").Where("id = ?", campaignID).Pluck("status", &s).Error; err != nil {
		e.t.Fatalf("campaign %d: status: %v", campaignID, err)
	}
	if len(s) != 1 {
		e.t.Fatalf("campaign %d: %d rows", campaignID, len(s))
	}
	return s[0]
}

// received counts the template messages each openid of the account got.
func (e *env) received() map[string]int {
	out := map[string]int{}
	for _, s := range sim.Sent() {
		if s.AppID == e.creds.AppID && s.Kind == "template" {
			out[s.ToUser]++
		}
	}
	return out
}

// drain runs the engine rounds until nothing more happens.
func (e *env) drain(eng *campaign.Engine) {
	e.t.Helper()
	for range 10000 {
		n, err := eng.RunOnce(context.Background())
		if err != nil {
			e.t.Fatalf("engine round: %v", err)
		}
		if n == 0 {
			// One more round: completion and gifts happen after sends.
			if n, err = eng.RunOnce(context.Background()); err != nil || n == 0 {
				return
			}
		}
	}
	e.t.Fatal("engine never settled")
}

// giftLog records gifts granted, by key.
type giftLog struct {
	mu   sync.Mutex
	keys map[string]int
	fail int // fail this many grants first
}

// Check accepts points and rewards below 1,000,000; larger reward ids are
// another merchant's.
func (g *giftLog) Check(_ context.Context, _ uint64, gift campaign.Gift) error {
	if gift.RewardID >= 1_000_000 {
		return fmt.Errorf("reward %d: %w", gift.RewardID, apperr.ErrNotFound)
	}
	return nil
}

func (g *giftLog) Grant(_ context.Context, _, _ uint64, _ campaign.Gift, key, _ string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail > 0 {
		g.fail--
		return fmt.Errorf("points unavailable")
	}
	g.keys[key]++
	return nil
}

// names fills {{name}} from the member service (the other variables come
// from points in the service; tests use names).
type names struct{ members *member.Service }

func (n names) Values(ctx context.Context, merchantID uint64, ids []uint64, _ []string) (map[uint64]map[string]string, error) {
	got, err := n.members.Names(ctx, merchantID, ids)
	if err != nil {
		return nil, err
	}
	out := map[uint64]map[string]string{}
	for _, id := range ids {
		out[id] = map[string]string{"name": got[id]}
	}
	return out, nil
}
