package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
)

// bcrypt work is bounded: with every slot taken (as by a flood of logins),
// a login waits a bounded time and is refused with 503 and Retry-After,
// while /healthz and token-authenticated requests answer at once; the
// refused logins were never checked, so they count as no failure.
func TestPasswordChecksAreBounded(t *testing.T) {
	a := startAppWith(t, admin.PasswordOptions{Concurrency: 1, MaxWait: 100 * time.Millisecond})
	token := a.login()
	release, err := a.staffs.Passwords().Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := json.Marshal(map[string]string{"username": "demo", "password": a.password})
	for i := range admin.UserThrottle.Free + 3 {
		req, _ := http.NewRequest("POST", a.base+"/api/admin/v1/login", bytes.NewReader(creds))
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("login %d with every bcrypt slot taken: %d Retry-After %q, want 503 with Retry-After",
				i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if st := a.call("GET", "/healthz", "", nil, nil); st != http.StatusOK {
			t.Fatalf("healthz while logins wait: %d", st)
		}
		if st := a.call("GET", "/api/admin/v1/me", token, nil, nil); st != http.StatusOK {
			t.Fatalf("an authenticated request while logins wait: %d", st)
		}
	}
	release()
	a.login() // not locked: the refused attempts were uncounted
}

// memberLogin posts a login code to a member login route as client (an
// address in X-Forwarded-For, believed from the loopback proxy) and
// returns the status and Retry-After.
func (a *testApp) memberLogin(path, code, client string) (int, string) {
	a.t.Helper()
	in := map[string]string{"code": code}
	if strings.HasPrefix(path, "/api/h5/") { // the H5 login takes the state its authorization URL carried
		in["state"] = a.oauthState(a.merchant)
	}
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", a.base+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", client)
	resp, err := a.client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// Every member login spends one of the merchant's WeChat code exchanges,
// so logins are limited per client address and per merchant, and a
// refused login (429 with Retry-After) calls WeChat not at all.
func TestMemberLoginsAreRateLimited(t *testing.T) {
	a := startApp(t, func(c *configs.Config) {
		c.MemberLogin.PerClientPerMinute, c.MemberLogin.PerMerchantPerMinute = 3, 5
		c.HTTP.TrustedProxies = []string{"127.0.0.1"}
	})
	token := a.login()
	code := func(route string) string {
		var out struct{ Code string }
		if st := a.call("POST", "/api/admin/v1/sandbox/"+route, token, map[string]string{}, &out); st != 200 || out.Code == "" {
			t.Fatalf("%s: %d", route, st)
		}
		return out.Code
	}
	sim := a.sandbox.Sim
	exchanges := func() int {
		return sim.CountRequests("/sns/jscode2session") + sim.CountRequests("/sns/oauth2/access_token")
	}
	mp, h5 := fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), fmt.Sprintf("/api/h5/v1/%d/login", a.merchant)
	refused := func(who, path, client string) {
		t.Helper()
		c := code(map[string]string{mp: "mp-login-code", h5: "oauth-code"}[path])
		before := exchanges()
		st, retry := a.memberLogin(path, c, client)
		if st != http.StatusTooManyRequests || retry == "" || retry == "0" {
			t.Fatalf("%s: %d Retry-After %q, want 429 with Retry-After", who, st, retry)
		}
		if n := exchanges() - before; n != 0 {
			t.Fatalf("%s: a refused login made %d WeChat code exchanges", who, n)
		}
	}
	// One client: three logins (mini-program and H5 share the budget),
	// then refused.
	for i, path := range []string{mp, h5, mp} {
		if st, _ := a.memberLogin(path, code(map[string]string{mp: "mp-login-code", h5: "oauth-code"}[path]), "198.51.100.1"); st != 200 {
			t.Fatalf("login %d: %d", i, st)
		}
	}
	if n := exchanges(); n != 3 {
		t.Fatalf("%d code exchanges for 3 logins", n)
	}
	refused("4th login of a client", mp, "198.51.100.1")
	refused("4th login of a client, H5", h5, "198.51.100.1")
	// Other clients share the merchant's five: two more, then everybody
	// is refused at this merchant.
	for i := range 2 {
		if st, _ := a.memberLogin(mp, code("mp-login-code"), "198.51.100.2"); st != 200 {
			t.Fatalf("other client, login %d: %d", i, st)
		}
	}
	refused("merchant's 6th login", mp, "198.51.100.2")
	refused("a new client at a spent merchant", h5, "198.51.100.3")
	// Another merchant is counted apart.
	in := adminSandboxInput("Other shop")
	other, err := a.merchants.Create(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.sandbox.Register(context.Background(), other.ID); err != nil {
		t.Fatal(err)
	}
	c := sim.LoginCode(in.Credentials.MPAppID, "o_other_shop", "")
	if st, _ := a.memberLogin(fmt.Sprintf("/api/mp/v1/%d/login", other.ID), c, "198.51.100.3"); st != 200 {
		t.Fatalf("login at another merchant: %d", st)
	}
}

// The member token pair through the whole service: a mini-program login
// gives a 2-hour access token and a refresh token; the refresh token gives
// a working pair once; logout ends the login.
func TestMemberTokenRefreshEndToEnd(t *testing.T) {
	a := startApp(t)
	token := a.login()
	var code struct{ Code string }
	a.call("POST", "/api/admin/v1/sandbox/mp-login-code", token, map[string]string{}, &code)
	type pair struct {
		Token            string
		ExpiresAt        time.Time `json:"expires_at"`
		RefreshToken     string    `json:"refresh_token"`
		RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	}
	var login pair
	if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", map[string]string{"code": code.Code}, &login); st != 200 ||
		login.RefreshToken == "" || login.ExpiresAt.After(time.Now().Add(2*time.Hour+time.Minute)) {
		t.Fatalf("login: %d %+v", st, login)
	}
	refresh := fmt.Sprintf("/api/member/v1/%d/refresh", a.merchant)
	var next pair
	if st := a.call("POST", refresh, "", map[string]string{"refresh_token": login.RefreshToken}, &next); st != 200 || next.Token == "" {
		t.Fatalf("refresh: %d %+v", st, next)
	}
	for _, path := range []string{"profile", "points"} {
		if st := a.call("GET", fmt.Sprintf("/api/member/v1/%d/%s", a.merchant, path), next.Token, nil, nil); st != 200 {
			t.Fatalf("%s with the refreshed token: %d", path, st)
		}
	}
	if st := a.call("POST", fmt.Sprintf("/api/member/v1/%d/logout", a.merchant), "", map[string]string{"refresh_token": next.RefreshToken}, nil); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	if st := a.call("POST", refresh, "", map[string]string{"refresh_token": next.RefreshToken}, nil); st != http.StatusUnauthorized {
		t.Fatalf("refresh after logout: %d", st)
	}
}
