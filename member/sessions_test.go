package member_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apicontract"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
)

// memberCall sends a member-API request (no admin principal) with an
// optional access token and decodes a JSON answer into out.
func (a *adminAPI) memberCall(method, path, token string, body, out any) int {
	a.t.Helper()
	raw, _ := json.Marshal(body)
	req := httptest.NewRequest(method, "/api"+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.engine.ServeHTTP(w, req)
	apicontract.Recorded(a.t, req, w.Code, w.Header(), w.Body.Bytes())
	if out != nil && w.Code/100 == 2 && w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, w.Body)
		}
	}
	return w.Code
}

type memberTokens struct {
	Token            string
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	Member           struct{ ID uint64 }
}

// Access tokens last two hours; the refresh token gets a new pair once,
// rotating; a copied refresh token used twice ends the whole login;
// logout ends it too; erasure ends every login of the member.
func TestMemberTokenRefreshAndRevocation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		mid := a.merchantID
		login := func(openID string) memberTokens {
			t.Helper()
			var out memberTokens
			code := sim.LoginCode(a.creds.MPAppID, openID, "")
			if st := a.memberCall("POST", fmt.Sprintf("/mp/v1/%d/login", mid), "", map[string]string{"code": code}, &out); st != 200 {
				t.Fatalf("login: %d", st)
			}
			return out
		}
		profile := fmt.Sprintf("/member/v1/%d/profile", mid)
		refresh := func(token string) (memberTokens, int) {
			var out memberTokens
			st := a.memberCall("POST", fmt.Sprintf("/member/v1/%d/refresh", mid), "", map[string]string{"refresh_token": token}, &out)
			return out, st
		}

		first := login("mp_refresh")
		now := a.clock.Now()
		if first.RefreshToken == "" || !first.ExpiresAt.Equal(now.Add(2*time.Hour)) ||
			!first.RefreshExpiresAt.Equal(now.Add(member.RefreshTokenTTL)) {
			t.Fatalf("login tokens: %+v (now %v)", first, now)
		}
		var stored int64
		gdb.Table("member_refresh_tokens").Where("token_hash = ? OR token_hash = ?", first.RefreshToken, first.Token).Count(&stored)
		if stored != 0 {
			t.Fatal("a raw token was stored")
		}
		if st := a.memberCall("GET", profile, first.Token, nil, nil); st != 200 {
			t.Fatalf("fresh access token: %d", st)
		}
		// Two hours later the access token is refused; the refresh token
		// gets a new pair, for the same member.
		a.clock.Add(2*time.Hour + time.Minute)
		if st := a.memberCall("GET", profile, first.Token, nil, nil); st != http.StatusUnauthorized {
			t.Fatalf("access token after 2h: %d", st)
		}
		second, st := refresh(first.RefreshToken)
		if st != 200 || second.Token == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh: %d %+v", st, second)
		}
		if st := a.memberCall("GET", profile, second.Token, nil, nil); st != 200 {
			t.Fatalf("refreshed access token: %d", st)
		}
		// Used twice: refused, and the whole login with it, the newest
		// refresh token included.
		if _, st := refresh(first.RefreshToken); st != http.StatusUnauthorized {
			t.Fatalf("reused refresh token: %d", st)
		}
		if _, st := refresh(second.RefreshToken); st != http.StatusUnauthorized {
			t.Fatalf("a login whose refresh token was reused still refreshes: %d", st)
		}
		// Bad input and another merchant's path: refused, nothing changes.
		other := login("mp_other")
		for _, body := range []any{map[string]string{"refresh_token": "lmr_forged"}, map[string]string{"refresh_token": other.Token},
			map[string]string{}, "[]"} {
			if st := a.memberCall("POST", fmt.Sprintf("/member/v1/%d/refresh", mid), "", body, nil); st != 401 && st != 400 {
				t.Errorf("refresh with %v: %d", body, st)
			}
		}
		if st := a.memberCall("POST", fmt.Sprintf("/member/v1/%d/refresh", a.otherID), "", map[string]string{"refresh_token": other.RefreshToken}, nil); st != 401 {
			t.Fatalf("refresh at another merchant: %d", st)
		}
		// Logout ends the login; logging out twice is fine.
		for range 2 {
			if st := a.memberCall("POST", fmt.Sprintf("/member/v1/%d/logout", mid), "", map[string]string{"refresh_token": other.RefreshToken}, nil); st != 204 {
				t.Fatalf("logout: %d", st)
			}
		}
		if _, st := refresh(other.RefreshToken); st != http.StatusUnauthorized {
			t.Fatalf("refresh after logout: %d", st)
		}
		// Erasure: every login of the member ends, the access token too.
		third := login("mp_refresh")
		fourth := login("mp_refresh")
		a.ok("POST", fmt.Sprintf("/members/%d/erase", third.Member.ID), nil, nil)
		var live int64
		gdb.Table("member_refresh_tokens").Where("merchant_id = ? AND member_id = ? AND revoked_at IS NULL", mid, third.Member.ID).Count(&live)
		if live != 0 {
			t.Fatalf("%d refresh tokens of the erased member still live", live)
		}
		for _, s := range []memberTokens{third, fourth} {
			if _, st := refresh(s.RefreshToken); st != http.StatusUnauthorized {
				t.Fatalf("refresh after erasure: %d", st)
			}
			if st := a.memberCall("GET", profile, s.Token, nil, nil); st != http.StatusUnauthorized {
				t.Fatalf("access token after erasure: %d", st)
			}
		}
		// Unfollowing the official account signs nobody out (the policy):
		// the member, their points and their mini-program login outlive
		// following, so the tokens keep working.
		a.follow("o_fan", "u_fan", "", 0)
		var fan memberTokens
		code := sim.LoginCode(a.creds.MPAppID, "mp_fan", "u_fan")
		if st := a.memberCall("POST", fmt.Sprintf("/mp/v1/%d/login", mid), "", map[string]string{"code": code}, &fan); st != 200 ||
			fan.Member.ID != a.byOpenID("o_fan").ID {
			t.Fatalf("fan's login: %d %+v", st, fan)
		}
		a.deliver(a.event(wechat.EventUnsubscribe, "o_fan", "", 60))
		if m := a.byOpenID("o_fan"); m.FollowStatus != member.FollowUnfollowed {
			t.Fatalf("after unfollow: %+v", m)
		}
		if st := a.memberCall("GET", profile, fan.Token, nil, nil); st != 200 {
			t.Fatalf("access token after unfollow: %d", st)
		}
		if _, st := refresh(fan.RefreshToken); st != 200 {
			t.Fatalf("refresh after unfollow: %d", st)
		}
	})
}
