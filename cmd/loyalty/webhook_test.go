package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/configs"
)

func TestWebhooksEndToEnd(t *testing.T) { eachBackendName(t, testWebhooksEndToEnd) }

// A merchant registers an endpoint over the API; a follow and an order
// reach it as member.created, points.changed, tier.changed and
// stage.changed, signed with the secret the registration showed; the deliveries are listed; the endpoint is edited,
// its secret rotated, and deleted.
func testWebhooksEndToEnd(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend), func(c *configs.Config) { c.Webhooks.AllowPrivateTargets = true })
	token := a.login()

	type hit struct {
		typ  string
		body map[string]any
		ok   bool // the signature verified
	}
	var mu sync.Mutex
	var secret string
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(r.Header.Get("X-Loyalty-Timestamp") + "." + string(raw)))
		h := hit{typ: r.Header.Get("X-Loyalty-Event"),
			ok: hmac.Equal([]byte("v1="+hex.EncodeToString(m.Sum(nil))), []byte(r.Header.Get("X-Loyalty-Signature")))}
		_ = json.Unmarshal(raw, &h.body)
		hits = append(hits, h)
	}))
	defer srv.Close()

	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"url": "ftp://example.com/x", "events": []string{"member.created"}}, `"url"`},
		{map[string]any{"url": srv.URL, "events": []string{"member.deleted"}}, `"events[0]"`},
		{map[string]any{"url": srv.URL}, `"events"`},
		{map[string]any{"url": srv.URL, "events": []string{"member.created"}, "secret": "mine"}, `"secret"`},
	} {
		status, body := a.raw("POST", "/api/admin/v1/webhook-endpoints", token, bad.body)
		if status != http.StatusBadRequest || !strings.Contains(body, bad.field) {
			t.Fatalf("create %v: %d %s, want 400 naming %s", bad.body, status, body, bad.field)
		}
	}
	if n := a.count("webhook_endpoints", "merchant_id = ?", a.merchant); n != 0 {
		t.Fatalf("%d endpoints stored by bad requests", n)
	}

	var ep struct {
		ID     uint64
		Secret string
		Events []string
	}
	if st := a.call("POST", "/api/admin/v1/webhook-endpoints", token, map[string]any{"url": srv.URL + "/loyalty",
		"description": "ERP", "events": []string{"member.created", "points.changed", "tier.changed", "stage.changed"}}, &ep); st != 201 ||
		!strings.HasPrefix(ep.Secret, "whsec_") || len(ep.Events) != 4 {
		t.Fatalf("create: %d %+v", st, ep)
	}
	mu.Lock()
	secret = ep.Secret
	mu.Unlock()
	status, body := a.raw("GET", fmt.Sprintf("/api/admin/v1/webhook-endpoints/%d", ep.ID), token, nil)
	if status != 200 || strings.Contains(body, ep.Secret) || strings.Contains(body, `"secret"`) {
		t.Fatalf("get shows the secret: %d %s", status, body)
	}

	// A tier the first order reaches.
	var tier struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/tiers", token, map[string]any{"name": "Silver", "level": 1, "threshold": 1}, &tier); st != 201 {
		t.Fatalf("tier: %d", st)
	}
	var followed struct {
		MemberID uint64 `json:"member_id"`
	}
	if st := a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{"scene": "hooks"}, &followed); st != 200 {
		t.Fatalf("follow: %d", st)
	}
	if st := a.call("POST", "/api/admin/v1/orders", token, map[string]any{"external_id": "hook-1", "member_id": followed.MemberID,
		"amount_fen": 10000}, nil); st != 201 {
		t.Fatalf("order: %d", st)
	}
	deadline := time.Now().Add(30 * time.Second) // a liveness bound
	for {
		mu.Lock()
		got := map[string]hit{}
		for _, h := range hits {
			got[h.typ] = h
		}
		mu.Unlock()
		created, points, tierHit, stage := got["member.created"], got["points.changed"], got["tier.changed"], got["stage.changed"]
		if created.typ != "" && points.typ != "" && tierHit.typ != "" && stage.typ != "" {
			if !created.ok || !points.ok || !tierHit.ok || !stage.ok {
				t.Fatalf("bad signatures: %+v", got)
			}
			if td := tierHit.body["data"].(map[string]any); td["to_tier_id"] != float64(tier.ID) || td["member_id"] != float64(followed.MemberID) {
				t.Fatalf("tier.changed: %v", tierHit.body)
			}
			if sd := stage.body["data"].(map[string]any); sd["from_stage"] != "potential" || sd["to_stage"] != "new" {
				t.Fatalf("stage.changed: %v", stage.body)
			}
			data := points.body["data"].(map[string]any)
			if created.body["data"].(map[string]any)["member_id"] != float64(followed.MemberID) ||
				data["member_id"] != float64(followed.MemberID) || data["available_change"].(float64) <= 0 {
				t.Fatalf("bodies: %v %v", created.body, points.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events received: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var list struct {
		Deliveries []struct {
			ID        uint64
			Status    string
			EventType string `json:"event_type"`
			EventID   string `json:"event_id"`
		}
	}
	if st := a.call("GET", fmt.Sprintf("/api/admin/v1/webhook-deliveries?endpoint_id=%d&status=delivered", ep.ID), token, nil, &list); st != 200 ||
		len(list.Deliveries) < 2 || !strings.HasPrefix(list.Deliveries[0].EventID, "evt_") {
		t.Fatalf("deliveries: %d %+v", st, list)
	}
	if st, body := a.raw("GET", "/api/admin/v1/webhook-deliveries?status=lost", token, nil); st != 400 || !strings.Contains(body, `"status"`) {
		t.Fatalf("bad status filter: %d %s", st, body)
	}
	// Only a dead delivery can be replayed.
	if st, body := a.raw("POST", fmt.Sprintf("/api/admin/v1/webhook-deliveries/%d/replay", list.Deliveries[0].ID), token, nil); st != 409 {
		t.Fatalf("replay of a delivered one: %d %s", st, body)
	}

	var rotated struct{ Secret string }
	if st := a.call("POST", fmt.Sprintf("/api/admin/v1/webhook-endpoints/%d/rotate-secret", ep.ID), token, nil, &rotated); st != 200 ||
		rotated.Secret == ep.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotate: %d", st)
	}
	var patched struct{ Enabled bool }
	if st := a.call("PATCH", fmt.Sprintf("/api/admin/v1/webhook-endpoints/%d", ep.ID), token, map[string]any{"enabled": false}, &patched); st != 200 || patched.Enabled {
		t.Fatalf("disable: %d %+v", st, patched)
	}
	if st, _ := a.raw("DELETE", fmt.Sprintf("/api/admin/v1/webhook-endpoints/%d", ep.ID), token, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _ := a.raw("GET", fmt.Sprintf("/api/admin/v1/webhook-endpoints/%d", ep.ID), token, nil); st != 404 {
		t.Fatalf("get after delete: %d", st)
	}
	if n := a.count("webhook_deliveries", "endpoint_id = ?", ep.ID); n != 0 {
		t.Fatalf("%d deliveries of the deleted endpoint remain", n)
	}
}
