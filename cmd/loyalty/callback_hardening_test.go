package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// signedCallback builds WeChat's signed request for m and returns its URL
// and body, so the same signed query can be sent again.
func signedCallback(t *testing.T, ep wechattest.Endpoint, m wechattest.Message) (string, []byte) {
	t.Helper()
	req, err := ep.Request(m)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req.URL.String(), body
}

// post sends body to the signed URL with WeChat's patience: a client that
// gives up after 5 seconds.
func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	st, answer, err := tryPost(url, body)
	if err != nil {
		t.Fatalf("callback: %v", err)
	}
	return st, answer
}

func tryPost(url string, body []byte) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post(url, "text/xml", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), nil
}

type callbackSettings struct {
	WeChat struct {
		SafeMode       bool   `json:"safe_mode"`
		OriginalID     string `json:"original_id"`
		CompatibleMode bool   `json:"compatible_mode"`
	} `json:"wechat"`
}

// The attacks on a safe-mode account, through the real service: a leaked
// push URL used with plaintext bodies, a message to another account, a
// CreateTime in 2100 and an over-long openid are refused and store nothing;
// genuine encrypted pushes and WeChat's retries of them are applied once;
// the merchant's compatible-mode opt-in lets plaintext in, and only then.
func TestCallbackAttacksOnSafeModeAccount(t *testing.T) {
	a := startApp(t)
	token := a.login()
	var s callbackSettings
	a.call("GET", "/api/admin/v1/settings", token, nil, &s)
	if !s.WeChat.SafeMode || s.WeChat.OriginalID != "" || s.WeChat.CompatibleMode {
		t.Fatalf("demo account: %+v, want safe mode with no original id yet", s.WeChat)
	}
	safe, plain := a.callbackEndpoint(a.merchant, true), a.callbackEndpoint(a.merchant, false)
	const account = "gh_00000000cafe"
	victim := "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"
	a.sandbox.Sim.Follow(safe.AppID, victim, "")
	events := func() int64 { return a.count("wechat_events", "merchant_id = ?", a.merchant) }

	// A leaked URL's signature covers no body: plaintext is refused.
	for _, m := range []wechattest.Message{
		wechattest.UnsubscribeEvent(account, victim),
		wechattest.SubscribeEvent(account, victim, "attacker-channel"),
		wechattest.TextMessage(account, victim, "积分", 7001),
	} {
		req, _ := plain.Request(m)
		if st, body := send(t, req); st != http.StatusForbidden {
			t.Fatalf("plaintext %s%s: %d %q, want 403", m.MsgType, m.Event, st, body)
		}
	}
	if n := events(); n != 0 {
		t.Fatalf("%d events stored from plaintext callbacks", n)
	}

	// The genuine encrypted follow, delivered three times (WeChat's
	// retries of one push): "success" each time, stored and applied once,
	// and the account's original id learnt from it.
	follow := wechattest.SubscribeEvent(account, victim, "spring")
	follow.CreateTime = time.Now().Unix()
	url, body := signedCallback(t, safe, follow)
	for i := range 3 {
		if st, answer := post(t, url, body); st != 200 || answer != "success" {
			t.Fatalf("delivery %d: %d %q", i+1, st, answer)
		}
	}
	a.waitProcessed()
	if n := a.count("wechat_events", "openid = ?", victim); n != 1 {
		t.Fatalf("%d events stored for one push and its retries", n)
	}
	if n := a.count("member_follow_events", "merchant_id = ?", a.merchant); n != 1 {
		t.Fatalf("%d follow rows, want 1", n)
	}
	a.call("GET", "/api/admin/v1/settings", token, nil, &s)
	if s.WeChat.OriginalID != account {
		t.Fatalf("original id %q, want %q learnt from the encrypted push", s.WeChat.OriginalID, account)
	}

	// Now known, the account's id must be the addressee.
	req, _ := safe.Request(wechattest.SubscribeEvent("gh_someone_else", "o_other", ""))
	if st, _ := send(t, req); st != http.StatusForbidden {
		t.Fatalf("message to another account: %d, want 403", st)
	}
	// A CreateTime in 2100 is refused, and a genuine later event still
	// takes effect.
	far := wechattest.SubscribeEvent(account, victim, "attacker-channel")
	far.CreateTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	req, _ = safe.Request(far)
	if st, _ := send(t, req); st != http.StatusForbidden {
		t.Fatalf("CreateTime in 2100: %d, want 403", st)
	}
	// An openid longer than WeChat's is refused, not cut to fit.
	req, _ = safe.Request(wechattest.SubscribeEvent(account, victim+strings.Repeat("x", 40), ""))
	if st, _ := send(t, req); st != http.StatusBadRequest {
		t.Fatalf("over-long openid: %d, want 400", st)
	}
	if n := events(); n != 1 {
		t.Fatalf("%d events stored, want only the genuine follow", n)
	}
	leave := wechattest.UnsubscribeEvent(account, victim)
	leave.CreateTime = follow.CreateTime + 1
	req, _ = safe.Request(leave)
	if st, answer := send(t, req); st != 200 || answer != "success" {
		t.Fatalf("genuine unfollow: %d %q", st, answer)
	}
	a.waitProcessed()
	var status, scene string
	row := a.db.Table("members").Where("merchant_id = ? AND oa_openid = ?", a.merchant, victim).Select("follow_status, channel_scene").Row()
	if err := row.Scan(&status, &scene); err != nil || status != "unfollowed" || scene != "spring" {
		t.Fatalf("member after the genuine events: %q %q %v", status, scene, err)
	}

	// Compatible mode is the merchant's explicit, audited opt-in.
	if st := a.call("PATCH", "/api/admin/v1/settings", token, map[string]any{"wechat": map[string]any{"compatible_mode": true}}, &s); st != 200 || !s.WeChat.CompatibleMode {
		t.Fatalf("compatible mode on: %d %+v", st, s.WeChat)
	}
	req, _ = plain.Request(wechattest.SubscribeEvent(account, "o_compat", ""))
	if st, answer := send(t, req); st != 200 || answer != "success" {
		t.Fatalf("plaintext in compatible mode: %d %q", st, answer)
	}
	a.call("PATCH", "/api/admin/v1/settings", token, map[string]any{"wechat": map[string]any{"compatible_mode": false}}, &s)
	req, _ = plain.Request(wechattest.SubscribeEvent(account, "o_compat2", ""))
	if st, _ := send(t, req); st != http.StatusForbidden {
		t.Fatalf("plaintext after compatible mode off: %d, want 403", st)
	}
	if n := a.count("audit_log", "merchant_id = ? AND action = 'settings.update' AND after_json LIKE ?", a.merchant, `%"compatible_mode":true%`); n != 1 {
		t.Fatalf("%d audit entries for compatible mode on, want 1", n)
	}
	if n := a.count("wechat_events", "openid LIKE 'o_compat%'"); n != 1 {
		t.Fatalf("%d compatible-mode events stored, want 1", n)
	}
}

// On a plaintext-mode account the signed query is all there is: used once
// for a message, it cannot carry another, while WeChat's retries of the
// same message are still answered "success" and applied once.
func TestCallbackSignedQueryReplayOnPlaintextAccount(t *testing.T) {
	a := startApp(t)
	merchantID := a.plaintextMerchant("Plaintext shop")
	ep := a.callbackEndpoint(merchantID, false)
	victim := "oVictim000000000000000000001"
	a.sandbox.Sim.Follow(ep.AppID, victim, "")
	url, body := signedCallback(t, ep, wechattest.SubscribeEvent("gh_x", victim, "store-1"))
	if st, answer := post(t, url, body); st != 200 || answer != "success" {
		t.Fatalf("push: %d %q", st, answer)
	}
	for _, forged := range []wechattest.Message{
		wechattest.UnsubscribeEvent("gh_x", victim),
		wechattest.SubscribeEvent("gh_x", victim, "attacker-channel"),
		wechattest.SubscribeEvent("gh_x", "oSomeoneElse0000000000000001", ""),
	} {
		forged.CreateTime = time.Now().Unix()
		if st, _ := post(t, url, forged.XML()); st != http.StatusForbidden {
			t.Fatalf("signed query reused for %s %s: %d, want 403", forged.Event, forged.FromUserName, st)
		}
	}
	for i := range 2 {
		if st, answer := post(t, url, body); st != 200 || answer != "success" {
			t.Fatalf("retry %d: %d %q", i+1, st, answer)
		}
	}
	a.waitProcessed()
	if n := a.count("wechat_events", "merchant_id = ?", merchantID); n != 1 {
		t.Fatalf("%d events stored, want the one push", n)
	}
	if n := a.count("member_follow_events", "merchant_id = ?", merchantID); n != 1 {
		t.Fatalf("%d follow rows, want 1 (applied once)", n)
	}
	if n := a.count("members", "merchant_id = ? AND follow_status = 'following' AND channel_scene = 'store-1'", merchantID); n != 1 {
		t.Fatalf("%d members following from store-1, want 1", n)
	}
}

// An insert stuck behind a lock does not hold WeChat's callbacks past its 5
// seconds: they are answered 503, and WeChat's retries, once the database
// moves again, are answered "success" with every event stored and applied
// exactly once.
func TestCallbackStalledInsertAnswers503(t *testing.T) {
	a := startApp(t)
	ep := a.callbackEndpoint(a.merchant, true)
	ctx := context.Background()
	sqlDB, err := a.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	// Another connection locks every row and the gap after them (gap locks
	// need REPEATABLE READ; the service's connections run in READ
	// COMMITTED): each insert into wechat_events waits for it.
	tx, err := sqlDB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT id FROM wechat_events FOR UPDATE")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()

	type push struct {
		url  string
		body []byte
	}
	var pushes []push
	for i := range 3 {
		m := wechattest.SubscribeEvent("gh_x", fmt.Sprintf("o_stalled_%d", i), "")
		url, body := signedCallback(t, ep, m)
		pushes = append(pushes, push{url, body})
	}
	var wg sync.WaitGroup
	statuses := make([]int, len(pushes))
	errs := make([]error, len(pushes))
	for i, p := range pushes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, errs[i] = tryPost(p.url, p.body) // an error when WeChat's 5 s pass
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if errs[i] != nil || st != http.StatusServiceUnavailable {
			t.Fatalf("push %d with the insert stalled: %d %v, want a 503 within WeChat's 5 seconds", i, st, errs[i])
		}
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for i, p := range pushes { // WeChat's retries
		if st, answer := post(t, p.url, p.body); st != 200 || answer != "success" {
			t.Fatalf("retry of push %d: %d %q", i, st, answer)
		}
	}
	a.waitProcessed()
	for i := range pushes {
		if n := a.count("wechat_events", "openid = ?", fmt.Sprintf("o_stalled_%d", i)); n != 1 {
			t.Fatalf("push %d stored %d times, want once", i, n)
		}
	}
	if n := a.count("member_follow_events", "merchant_id = ?", a.merchant); n != int64(len(pushes)) {
		t.Fatalf("%d follows applied, want %d", n, len(pushes))
	}
}
