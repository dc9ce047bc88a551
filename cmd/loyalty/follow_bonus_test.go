package main

import (
	"fmt"
	"testing"
	"time"
)

// A follower gets the first-follow bonus when the follow is applied, not
// only once they open their points in the member centre: staff and the
// POS see it at once, and a second follow (after unfollowing) gives
// nothing more.
func TestFirstFollowBonusOnFollow(t *testing.T) {
	eachBackendName(t, func(t *testing.T, backend string) {
		a := startAppOn(t, onBackend(t, backend))
		token := a.login()
		if st := a.call("PATCH", "/api/admin/v1/points/rules", token,
			map[string]any{"bonuses": map[string]any{"first_follow": 50}}, nil); st != 200 {
			t.Fatalf("rules: %d", st)
		}
		var followed struct {
			MemberID uint64 `json:"member_id"`
			OpenID   string `json:"openid"`
		}
		if st := a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{}, &followed); st != 200 || followed.MemberID == 0 {
			t.Fatalf("follow: %d %+v", st, followed)
		}
		balance := func() int64 {
			var out struct {
				Summary struct{ Available int64 }
			}
			if st := a.call("GET", fmt.Sprintf("/api/admin/v1/members/%d/points", followed.MemberID), token, nil, &out); st != 200 {
				t.Fatalf("points: %d", st)
			}
			return out.Summary.Available
		}
		// The bonus follows the follow's commit.
		deadline := time.Now().Add(10 * time.Second)
		for balance() != 50 {
			if time.Now().After(deadline) {
				t.Fatalf("balance %d after the follow, want the 50-point bonus", balance())
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, path := range []string{"/api/admin/v1/sandbox/unfollow", "/api/admin/v1/sandbox/follow"} {
			if st := a.call("POST", path, token, map[string]string{"openid": followed.OpenID}, nil); st != 200 {
				t.Fatalf("%s: %d", path, st)
			}
		}
		time.Sleep(200 * time.Millisecond)
		if got := balance(); got != 50 {
			t.Fatalf("balance %d after following again, want still 50", got)
		}
	})
}
