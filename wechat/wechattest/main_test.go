package wechattest

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/miniprogram"
	mpConfig "github.com/silenceper/wechat/v2/miniprogram/config"
	"github.com/silenceper/wechat/v2/officialaccount"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/util"
)

// target is where the SDK's requests are sent: the current test's server
// URL, plus the mount prefix if any. Tests using it must not run in parallel.
var target atomic.Pointer[url.URL]

// rewriteTransport sends every request to target, keeping path and query,
// like the RoundTripper the service uses in sandbox mode.
type rewriteTransport struct{ base http.RoundTripper }

func (t rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	to := target.Load()
	if to == nil {
		return nil, errors.New("no simulator target set")
	}
	r2 := r.Clone(r.Context())
	r2.URL.Scheme = to.Scheme
	r2.URL.Host = to.Host
	r2.URL.Path = to.Path + r.URL.Path
	r2.URL.RawPath = ""
	r2.Host = ""
	return t.base.RoundTrip(r2)
}

func TestMain(m *testing.M) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	util.DefaultHTTPClient = &http.Client{Transport: rewriteTransport{base: base}}
	os.Exit(m.Run())
}

var (
	oaApp = App{AppID: "wxoa0000000000001", Secret: "oa-secret"}
	mpApp = App{AppID: "wxmp0000000000001", Secret: "mp-secret"}
)

const (
	tplPoints = "tpl-points-changed"
	tplSub    = "tpl-subscribe-coupon"
)

// newSim starts a simulator with oaApp and mpApp registered and points the
// SDK at it. prefix is the mount path ("" = root).
func newSim(t *testing.T, prefix string, opts ...Option) (*Simulator, string) {
	t.Helper()
	sim := New(opts...)
	sim.AddOfficialAccount(oaApp)
	sim.AddMiniProgram(mpApp)
	sim.AddTemplate(oaApp.AppID, tplPoints)
	sim.AddTemplate(oaApp.AppID, tplSub)
	sim.AddTemplate(mpApp.AppID, tplSub)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL + prefix)
	if err != nil {
		t.Fatal(err)
	}
	target.Store(u)
	return sim, srv.URL + prefix
}

func newOA(a App) *officialaccount.OfficialAccount {
	return officialaccount.NewOfficialAccount(&offConfig.Config{
		AppID: a.AppID, AppSecret: a.Secret, Token: "cb-token", Cache: cache.NewMemory(), UseStableAK: true,
	})
}

func newMP(a App) *miniprogram.MiniProgram {
	return miniprogram.NewMiniProgram(&mpConfig.Config{
		AppID: a.AppID, AppSecret: a.Secret, Cache: cache.NewMemory(), UseStableAK: true,
	})
}

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// wantCode fails unless err mentions WeChat errcode code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want errcode %s, got nil error", code)
	}
	if !strings.Contains(err.Error(), code) {
		t.Fatalf("want errcode %s, got %v", code, err)
	}
}

// get performs a plain GET against the simulator and returns status and body.
func get(t *testing.T, rawURL string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// post performs a plain POST of a JSON body against the simulator.
func post(t *testing.T, rawURL, body string) []byte {
	t.Helper()
	resp, err := http.Post(rawURL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
