package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
)

// The real merchant that `merchant create` (validFlags) makes.
const (
	realAppID     = "wx0123456789abcdef"
	realAppSecret = "0123456789abcdef0123456789abcdef"
	realMPAppID   = "wxfedcba9876543210"
)

// createRealMerchant runs `loyalty merchant create` against the database,
// as an operator does from another process, and returns the merchant id.
func createRealMerchant(t *testing.T, env map[string]string, key string) uint64 {
	t.Helper()
	env["LOYALTY_DATA_DIR"], env["LOYALTY_LOG_LEVEL"], env["LOYALTY_SECRET_KEY"] = t.TempDir(), "error", key
	code, out, errOut := runCLI(t, env, validFlags...)
	var got struct {
		MerchantID uint64 `json:"merchant_id"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.MerchantID == 0 {
		t.Fatalf("merchant create: exit %d %q %q", code, out, errOut)
	}
	return got.MerchantID
}

// get fetches a URL of the service without following redirects.
func (a *testApp) get(path string) (int, string, http.Header) {
	a.t.Helper()
	client := a.client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(a.base + path)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

// staffLogin creates a staff account of merchantID and returns its session
// token.
func (a *testApp) staffLogin(merchantID uint64, username string, role admin.Role) string {
	a.t.Helper()
	if _, err := a.staffs.Create(context.Background(), merchantID, username, "staff-password-1", role); err != nil {
		a.t.Fatal(err)
	}
	return a.loginAs(username, "staff-password-1")
}

func (a *testApp) loginAs(username, password string) string {
	a.t.Helper()
	var out struct{ Token string }
	if st := a.call("POST", "/api/admin/v1/login", "", map[string]string{"username": username, "password": password}, &out); st != 200 {
		a.t.Fatalf("login %s: %d", username, st)
	}
	return out.Token
}

func sandboxAuto(c *configs.Config) { c.WeChat.Sandbox = configs.SandboxAuto }

// LOYALTY_SANDBOX=on with a real merchant in the database: the service
// warns loudly at startup; the simulator's API is not served over HTTP (it
// would show every merchant's AppSecret and hand out OAuth codes for any
// openid); the simulator does not know the real merchant's apps (so its
// convenience codes cannot log in as the real merchant's members); the
// sandbox tools refuse the real merchant's staff and still serve the
// sandbox merchant.
func TestSandboxOnWithRealMerchant(t *testing.T) {
	eachBackend(t, func(t *testing.T, db func(*configs.Config), env map[string]string) {
		key := strings.Repeat("k", 40)
		realID := createRealMerchant(t, env, key)
		a := startAppOn(t, db, withKeys(key))
		if a.sandbox == nil {
			t.Fatal("LOYALTY_SANDBOX=on did not start sandbox mode")
		}
		if logs := a.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "real merchant") {
			t.Fatalf("no loud warning about sandbox mode with a real merchant; logs:\n%s", logs)
		}
		if !strings.Contains(a.banner.String(), "real merchant") {
			t.Fatalf("the banner does not warn:\n%s", a.banner)
		}
		boss := a.loginAs("boss", "correct horse")
		// Make the service call "WeChat" for the real merchant, so the
		// simulator would have its AppSecret in its request log.
		a.call("POST", "/api/admin/v1/settings/wechat-test", boss, map[string]any{}, nil)

		st, body, _ := a.get(sandboxAPIPath + "/_sim/requests")
		if st != http.StatusConflict || strings.Contains(body, realAppSecret) || !strings.Contains(body, "real merchant") {
			t.Fatalf("simulator request log with a real merchant present: %d %s", st, body)
		}
		q := url.Values{"appid": {realAppID}, "redirect_uri": {"https://evil.example/cb"}, "scope": {"snsapi_base"},
			"sandbox_openid": {"o_victim"}}
		st, body, hdr := a.get(sandboxAPIPath + "/connect/oauth2/authorize?" + q.Encode())
		if st != http.StatusConflict || hdr.Get("Location") != "" {
			t.Fatalf("simulator OAuth authorize for the real merchant: %d %s %v", st, body, hdr.Get("Location"))
		}
		// A convenience code naming any openid must not log in as a member
		// of the real merchant.
		var login struct{ Token string }
		if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", realID), "", map[string]string{"code": "dev:o_victim"}, &login); st == 200 || login.Token != "" {
			t.Fatalf("dev code logged in at the real merchant: %d", st)
		}
		// The sandbox tools refuse the real merchant.
		for _, path := range []string{"follow", "mp-login-code", "oauth-code", "phone-code"} {
			var e errorBody
			if st := a.call("POST", "/api/admin/v1/sandbox/"+path, boss, map[string]string{"phone": "13800000000"}, &e); st != http.StatusForbidden ||
				!strings.Contains(e.Error.Message, "sandbox merchant") {
				t.Errorf("sandbox/%s as the real merchant: %d %+v", path, st, e)
			}
		}
		if st := a.call("GET", "/api/admin/v1/sandbox/sent", boss, nil, nil); st != http.StatusForbidden {
			t.Errorf("sandbox/sent as the real merchant: %d", st)
		}
		// The sandbox merchant keeps its tools, and its simulated WeChat.
		var followed struct{ Processed bool }
		if st := a.call("POST", "/api/admin/v1/sandbox/follow", a.login(), map[string]string{}, &followed); st != 200 || !followed.Processed {
			t.Fatalf("sandbox merchant follow: %d %+v", st, followed)
		}
		if err := a.sandbox.Register(context.Background(), realID); err == nil {
			t.Fatal("the real merchant's apps were registered with the simulator")
		}
	})
}

// The viewer role only reads: no sandbox tools.
func TestSandboxViewerForbidden(t *testing.T) {
	eachBackend(t, func(t *testing.T, db func(*configs.Config), _ map[string]string) {
		a := startAppOn(t, db)
		viewer := a.staffLogin(a.merchant, "viewer1", admin.RoleViewer)
		var e errorBody
		if st := a.call("POST", "/api/admin/v1/sandbox/follow", viewer, map[string]string{}, &e); st != http.StatusForbidden || e.Error.Code != "forbidden" {
			t.Fatalf("viewer follow: %d %+v", st, e)
		}
		if st := a.call("GET", "/api/admin/v1/sandbox/sent", viewer, nil, nil); st != http.StatusForbidden {
			t.Fatalf("viewer sent: %d", st)
		}
		marketer := a.staffLogin(a.merchant, "marketer1", admin.RoleMarketer)
		if st := a.call("POST", "/api/admin/v1/sandbox/follow", marketer, map[string]string{}, nil); st != 200 {
			t.Fatalf("marketer follow: %d", st)
		}
	})
}

// Sandbox mode (auto) ends when a real merchant is created by another
// process: the running instance notices at the next sandbox request, logs
// it, and its sandbox routes and simulator answer 409 saying why; after a
// restart the sandbox routes still say why (409, not 404).
func TestSandboxEndsWhenRealMerchantIsCreated(t *testing.T) {
	eachBackend(t, func(t *testing.T, db func(*configs.Config), env map[string]string) {
		key := strings.Repeat("k", 40)
		a := startAppOn(t, db, withKeys(key), sandboxAuto)
		if a.sandbox == nil {
			t.Fatal("auto mode with an empty database is not sandbox mode")
		}
		demo := a.login()
		if st := a.call("POST", "/api/admin/v1/sandbox/follow", demo, map[string]string{}, nil); st != 200 {
			t.Fatalf("follow in sandbox mode: %d", st)
		}
		if st, _, _ := a.get(sandboxAPIPath + "/_sim/requests"); st != 200 {
			t.Fatalf("simulator in sandbox mode: %d", st)
		}

		createRealMerchant(t, env, key)

		for _, path := range []string{"follow", "mp-login-code"} {
			var e errorBody
			if st := a.call("POST", "/api/admin/v1/sandbox/"+path, demo, map[string]string{}, &e); st != http.StatusConflict ||
				!strings.Contains(e.Error.Message, "real merchant") || !strings.Contains(e.Error.Message, "restart") {
				t.Fatalf("sandbox/%s after a real merchant was created: %d %+v", path, st, e)
			}
		}
		st, body, _ := a.get(sandboxAPIPath + "/_sim/requests")
		if st != http.StatusConflict || !strings.Contains(body, "real merchant") {
			t.Fatalf("simulator after a real merchant was created: %d %s", st, body)
		}
		if logs := a.logs.String(); !strings.Contains(logs, "sandbox mode ended") {
			t.Fatalf("leaving sandbox mode was not logged:\n%s", logs)
		}

		b := startAppOn(t, db, withKeys(key), sandboxAuto)
		if b.sandbox != nil {
			t.Fatal("sandbox mode with a real merchant in the database")
		}
		var e errorBody
		if st := b.call("POST", "/api/admin/v1/sandbox/follow", demo, map[string]string{}, &e); st != http.StatusConflict ||
			!strings.Contains(e.Error.Message, "real merchant") {
			t.Fatalf("sandbox route after restart: %d %+v", st, e)
		}
		if st, body, _ := b.get(sandboxAPIPath + "/_sim/requests"); st != http.StatusConflict || strings.Contains(body, realAppSecret) {
			t.Fatalf("simulator after restart: %d %s", st, body)
		}
	})
}
