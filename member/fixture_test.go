package member_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/inbox"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// clock is the tests' settable clock.
type clock = fakeclock.Clock

// One simulator for the package (the SDK's HTTP client is process-wide);
// each test registers its own merchant and apps.
var (
	sim      *wechattest.Simulator
	endpoint wechat.Endpoint
	creds    = &credStore{m: map[uint64]wechat.Credentials{}}
	quiet    = slog.New(slog.DiscardHandler)
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	sim = wechattest.New()
	srv := httptest.NewServer(sim)
	endpoint, _ = wechat.ParseEndpoint(srv.URL)
	wechat.InstallHTTPClient(wechat.NewHTTPClient(endpoint, 2*time.Second))
	code := dbtest.Main(m)
	srv.Close()
	os.Exit(code)
}

// credStore is the merchants' credentials (admin's store in the service).
type credStore struct {
	mu sync.Mutex
	m  map[uint64]wechat.Credentials
}

func (s *credStore) WeChatCredentials(_ context.Context, id uint64) (wechat.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[id]
	if !ok {
		return wechat.Credentials{}, fmt.Errorf("merchant %d: %w", id, apperr.ErrNotFound)
	}
	return c, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is one merchant with an official account and a mini-program, a
// member service over a real database, and the inbox that feeds it events.
type fixture struct {
	t          *testing.T
	db         *gorm.DB
	merchantID uint64
	creds      wechat.Credentials
	svc        *member.Service
	writer     *inbox.Writer
	dispatcher *inbox.Dispatcher
	clock      *clock
	seq        atomic.Int64
}

func newFixture(t *testing.T, gdb *gorm.DB) *fixture {
	t.Helper()
	f := &fixture{t: t, db: gdb, merchantID: dbtest.NewMerchantID(),
		clock: fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))}
	f.creds = wechat.Credentials{AppID: "wx" + randHex(8), AppSecret: randHex(16), Token: "tok" + randHex(4),
		MPAppID: "wx" + randHex(8), MPAppSecret: randHex(16)}
	sim.AddOfficialAccount(wechattest.App{AppID: f.creds.AppID, Secret: f.creds.AppSecret})
	sim.AddMiniProgram(wechattest.App{AppID: f.creds.MPAppID, Secret: f.creds.MPAppSecret})
	creds.mu.Lock()
	creds.m[f.merchantID] = f.creds
	creds.mu.Unlock()
	accounts := wechat.NewAccounts(creds, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	f.svc = member.NewService(gdb, accounts, f.clock.Now, quiet)
	f.dispatcher = inbox.NewDispatcher(gdb, quiet, inbox.DispatcherOptions{Now: f.clock.Now})
	f.svc.RegisterHandlers(f.dispatcher)
	f.writer = inbox.NewWriter(gdb, quiet, inbox.WriterOptions{Now: f.clock.Now})
	f.writer.Start()
	t.Cleanup(f.writer.Stop)
	return f
}

// event builds a pushed event at the current fake time plus offset seconds.
func (f *fixture) event(kind, openID, key string, offset int) wechat.Event {
	n := f.seq.Add(1)
	ev := wechat.Event{MerchantID: f.merchantID, MsgType: wechat.MsgTypeEvent, EventType: kind, OpenID: openID,
		EventKey: key, CreateTime: f.clock.Now().Add(time.Duration(offset) * time.Second).Truncate(time.Second),
		DedupeKey: fmt.Sprintf("%032x%032x", f.merchantID, n)}
	if kind == wechat.MsgTypeText {
		ev.MsgType, ev.EventType, ev.Content, ev.MsgID = wechat.MsgTypeText, "", key, n
	}
	return ev
}

// deliver stores the events like the callback does, then processes
// everything due.
func (f *fixture) deliver(evs ...wechat.Event) {
	f.t.Helper()
	for _, ev := range evs {
		if err := f.writer.Accept(context.Background(), ev); err != nil {
			f.t.Fatal(err)
		}
	}
	f.drain()
}

func (f *fixture) drain() {
	f.t.Helper()
	for {
		n, err := f.dispatcher.RunOnce(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// follow simulates openID following (with a QR scene and unionid) and
// delivers the event.
func (f *fixture) follow(openID, unionID, scene string, offset int) {
	f.t.Helper()
	sim.FollowScene(f.creds.AppID, openID, unionID, scene)
	key := ""
	if scene != "" {
		key = "qrscene_" + scene
	}
	f.deliver(f.event(wechat.EventSubscribe, openID, key, offset))
}

func (f *fixture) byOpenID(openID string) member.Member {
	f.t.Helper()
	m, err := f.svc.ByOAOpenID(context.Background(), f.merchantID, openID)
	if err != nil {
		f.t.Fatalf("member %s: %v", openID, err)
	}
	return m
}

func (f *fixture) profile(id uint64) member.Profile {
	f.t.Helper()
	p, err := f.svc.Profile(context.Background(), f.merchantID, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) count(table string) int64 {
	f.t.Helper()
	var n int64
	if err := f.db.Table(table).Where("merchant_id = ?", f.merchantID).Count(&n).Error; err != nil {
		f.t.Fatal(err)
	}
	return n
}
