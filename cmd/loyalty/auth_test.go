package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/admin"
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
		resp, err := http.DefaultClient.Do(req)
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
