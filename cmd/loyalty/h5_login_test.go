package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/member"
)

// oauthState asks the service for an H5 authorization URL of the merchant
// (back to its member centre) and returns the state it carries.
func (a *testApp) oauthState(merchantID uint64) string {
	a.t.Helper()
	var out struct{ URL, State string }
	q := url.Values{"redirect_uri": {fmt.Sprintf("%s/m/%d/", a.base, merchantID)}}
	if st := a.call("GET", fmt.Sprintf("/api/h5/v1/%d/oauth-url?%s", merchantID, q.Encode()), "", nil, &out); st != 200 || out.State == "" {
		a.t.Fatalf("oauth-url: %d %+v", st, out)
	}
	return out.State
}

// The member centre's sign-in: the service hands out the authorization URL
// and its state, WeChat (the simulator) sends the browser back to the
// member centre with a code and that state, and the login takes both. A
// redirect anywhere but the merchant's member centre on the service's own
// origin is refused (the code would sign the member in elsewhere); a state
// the service did not issue for this merchant in the last ten minutes is
// refused before WeChat is asked about the code, and the code still works
// with the right state afterwards.
func TestH5SignInChecksRedirectAndState(t *testing.T) { eachBackendName(t, testH5SignIn) }

func testH5SignIn(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	oauthURL := fmt.Sprintf("/api/h5/v1/%d/oauth-url?", a.merchant)
	login := fmt.Sprintf("/api/h5/v1/%d/login", a.merchant)
	home := fmt.Sprintf("%s/m/%d/", a.base, a.merchant)

	for _, bad := range []struct{ why, redirect, scope, field string }{
		{"another domain", "https://evil.example.com/m/1/", "", "redirect_uri"},
		{"another domain, same path", strings.Replace(home, "127.0.0.1", "localhost", 1), "", "redirect_uri"},
		{"another merchant's member centre", fmt.Sprintf("%s/m/%d/", a.base, a.merchant+1), "", "redirect_uri"},
		{"the admin panel", a.base + "/admin/", "", "redirect_uri"},
		{"a user in the URL", strings.Replace(home, "http://", "http://evil.example.com@", 1), "", "redirect_uri"},
		{"not http", "javascript:alert(1)", "", "redirect_uri"},
		{"no redirect", "", "", "redirect_uri"},
		{"an unknown scope", home, "snsapi_login", "scope"},
	} {
		q := url.Values{"redirect_uri": {bad.redirect}}
		if bad.scope != "" {
			q.Set("scope", bad.scope)
		}
		var e errorBody
		if st := a.call("GET", oauthURL+q.Encode(), "", nil, &e); st != 400 || e.Error.Fields[bad.field] == "" {
			t.Fatalf("%s: %d %+v, want 400 naming %s", bad.why, st, e, bad.field)
		}
	}
	var e errorBody
	if st := a.call("GET", oauthURL+url.Values{"redirect_uri": {home}, "state": {"mine"}}.Encode(), "", nil, &e); st != 400 ||
		e.Error.Fields["state"] == "" {
		t.Fatalf("a caller's own state: %d %+v, want 400 naming state (the service makes it)", st, e)
	}

	// The silent sign-in, through the simulator's authorize page.
	var got struct{ URL, State string }
	deep := home + "coupons?tab=issued"
	if st := a.call("GET", oauthURL+url.Values{"redirect_uri": {deep}}.Encode(), "", nil, &got); st != 200 ||
		!strings.Contains(got.URL, "snsapi_base") || !strings.Contains(got.URL, "state="+got.State) || len(got.State) > 128 {
		t.Fatalf("oauth-url: %d %+v", st, got)
	}
	back := a.authorize(got.URL)
	if !strings.HasPrefix(back.String(), deep[:len(deep)-len("?tab=issued")]) || back.Query().Get("state") != got.State ||
		back.Query().Get("tab") != "issued" {
		t.Fatalf("WeChat sent the browser to %s", back)
	}
	code := back.Query().Get("code")

	exchanges := func() int { return a.sandbox.Sim.CountRequests("/sns/oauth2/access_token") }
	before := exchanges()
	otherMerchant := member.NewTokens(a.keys.SigningKey("member-token"), time.Now).OAuthState(a.merchant + 1)
	expired := member.NewTokens(a.keys.SigningKey("member-token"), func() time.Time {
		return time.Now().Add(-member.OAuthStateTTL - time.Minute)
	}).OAuthState(a.merchant)
	forgedMAC := got.State[:len(got.State)-1] + map[bool]string{true: "0", false: "1"}[strings.HasSuffix(got.State, "1")]
	for _, bad := range []struct {
		why  string
		body map[string]any
	}{
		{"no state", map[string]any{"code": code}},
		{"an empty state", map[string]any{"code": code, "state": ""}},
		{"a made-up state", map[string]any{"code": code, "state": "abc123"}},
		{"a state with a forged MAC", map[string]any{"code": code, "state": forgedMAC}},
		{"another merchant's state", map[string]any{"code": code, "state": otherMerchant}},
		{"an expired state", map[string]any{"code": code, "state": expired}},
	} {
		var e errorBody
		if st := a.call("POST", login, "", bad.body, &e); st != 400 || e.Error.Fields["state"] == "" {
			t.Fatalf("%s: %d %+v, want 400 naming state", bad.why, st, e)
		}
	}
	if n := exchanges() - before; n != 0 {
		t.Fatalf("refused logins asked WeChat %d times", n)
	}
	var mp errorBody
	if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", map[string]any{"code": "x", "state": got.State}, &mp); st != 400 {
		t.Fatalf("mini-program login with a state: %d", st)
	}

	var in struct {
		Token  string
		Member struct{ ID uint64 }
	}
	if st := a.call("POST", login, "", map[string]any{"code": code, "state": got.State}, &in); st != 200 || in.Member.ID == 0 {
		t.Fatalf("login with the state: %d %+v", st, in)
	}
	if st := a.call("GET", fmt.Sprintf("/api/member/v1/%d/profile", a.merchant), in.Token, nil, nil); st != 200 {
		t.Fatalf("profile: %d", st)
	}

	// Sharing name and avatar: the same flow with snsapi_userinfo.
	if st := a.call("GET", oauthURL+url.Values{"redirect_uri": {home}, "scope": {"snsapi_userinfo"}}.Encode(), "", nil, &got); st != 200 ||
		!strings.Contains(got.URL, "snsapi_userinfo") {
		t.Fatalf("userinfo oauth-url: %d %+v", st, got)
	}
	back = a.authorize(got.URL)
	if st := a.call("POST", login, "", map[string]any{"code": back.Query().Get("code"), "state": back.Query().Get("state")}, nil); st != 200 {
		t.Fatalf("userinfo login: %d", st)
	}
}

// authorize opens a WeChat authorization URL (the sandbox's simulator) as a
// browser would and returns where WeChat sends the browser back to.
func (a *testApp) authorize(u string) *url.URL {
	a.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode/100 != 3 || err != nil {
		a.t.Fatalf("authorize %s: %d %q", u, resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc
}
