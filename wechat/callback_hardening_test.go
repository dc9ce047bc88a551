package wechat_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// signed builds WeChat's signed request for m and returns it with its body,
// so the same signed query can be sent again (with this body or another).
func (f *callbackFixture) signed(t *testing.T, safe bool, m wechattest.Message) (*http.Request, []byte) {
	t.Helper()
	req, err := f.endpoint(safe).Request(m)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req, body
}

// again is req (its signed query) carrying body.
func again(req *http.Request, body []byte) *http.Request {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return r
}

func balanceReply(_ context.Context, ev wechat.Event) (string, bool) {
	if ev.Content == "积分" {
		return "您的积分：120", true
	}
	return "", false
}

// A leaked plaintext push URL must not let anyone post events to an
// account in safe mode: plaintext bodies are refused (nothing stored, no
// keyword reply) unless the merchant opted into compatible mode.
func TestCallbackSafeAccountRefusesPlaintext(t *testing.T) {
	f := newCallbackFixture(t, true)
	f.keywords.Register(balanceReply)
	for _, m := range []wechattest.Message{
		wechattest.UnsubscribeEvent("gh_x", "o_victim"),
		wechattest.SubscribeEvent("gh_x", "o_victim", "attacker-channel"),
		wechattest.TextMessage("gh_x", "o_victim", "积分", 501),
	} {
		rec := f.post(t, false, m)
		if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "您的积分") {
			t.Fatalf("plaintext %s to a safe-mode account: %d %q, want 403", m.MsgType+m.Event, rec.Code, rec.Body.String())
		}
	}
	if n := len(f.sink.got()); n != 0 {
		t.Fatalf("%d events stored from refused plaintext callbacks", n)
	}

	// Encrypted pushes keep working.
	if rec := f.post(t, true, wechattest.SubscribeEvent("gh_x", "o_1", "")); rec.Code != 200 || rec.Body.String() != "success" {
		t.Fatalf("encrypted push: %d %q", rec.Code, rec.Body.String())
	}

	// Compatible mode, the merchant's explicit opt-in while switching the
	// account's encryption: plaintext is accepted and answered in plaintext;
	// encrypted requests still get encrypted replies.
	f.reconfigure(func(c *wechat.Credentials) { c.CompatibleMode = true })
	rec := f.post(t, false, wechattest.SubscribeEvent("gh_x", "o_2", ""))
	if rec.Code != 200 || rec.Body.String() != "success" {
		t.Fatalf("plaintext in compatible mode: %d %q", rec.Code, rec.Body.String())
	}
	rec = f.post(t, false, wechattest.TextMessage("gh_x", "o_2", "积分", 502))
	var plain struct{ Content string }
	if err := xml.Unmarshal(rec.Body.Bytes(), &plain); err != nil || plain.Content != "您的积分：120" {
		t.Fatalf("plaintext reply in compatible mode: %q (%v)", rec.Body.String(), err)
	}
	rec = f.post(t, true, wechattest.TextMessage("gh_x", "o_2", "积分", 503))
	if strings.Contains(rec.Body.String(), "您的积分") {
		t.Fatalf("reply to an encrypted request sent in clear: %q", rec.Body.String())
	}
	decrypted, err := f.endpoint(true).DecryptReply(rec.Body.Bytes())
	if err != nil || !strings.Contains(string(decrypted), "您的积分：120") {
		t.Fatalf("encrypted reply: %q (%v)", decrypted, err)
	}
	if n := len(f.sink.got()); n != 4 {
		t.Fatalf("%d events stored, want 4 (the encrypted ones and the compatible-mode ones)", n)
	}
}

// Once the account's original id is known, a message addressed to another
// account is refused, in both modes.
func TestCallbackWrongToUserNameRefused(t *testing.T) {
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		f.reconfigure(func(c *wechat.Credentials) { c.OriginalID = "gh_0123456789ab" })
		for _, to := range []string{"gh_other", "", "gh_0123456789abc"} {
			if rec := f.post(t, safe, wechattest.SubscribeEvent(to, "o_1", "")); rec.Code != http.StatusForbidden {
				t.Fatalf("ToUserName %q: %d, want 403", to, rec.Code)
			}
		}
		if n := len(f.sink.got()); n != 0 {
			t.Fatalf("%d events stored for another account", n)
		}
		if rec := f.post(t, safe, wechattest.SubscribeEvent("gh_0123456789ab", "o_1", "")); rec.Code != 200 {
			t.Fatalf("right ToUserName: %d", rec.Code)
		}
		if len(f.sink.got()) != 1 || len(f.learnt.got()) != 0 {
			t.Fatalf("stored %d, learnt %v (an id set already is not learnt again)", len(f.sink.got()), f.learnt.got())
		}
	})
}

// The original id is learnt from a verified encrypted callback only: never
// from a plaintext one, whose body nobody signed.
func TestCallbackLearnsOriginalIDFromEncryptedCallbacksOnly(t *testing.T) {
	f := newCallbackFixture(t, true)
	f.reconfigure(func(c *wechat.Credentials) { c.CompatibleMode = true })
	f.post(t, false, wechattest.SubscribeEvent("gh_plaintext", "o_1", ""))
	if got := f.learnt.got(); len(got) != 0 {
		t.Fatalf("learnt %v from a plaintext callback", got)
	}
	f.post(t, true, wechattest.SubscribeEvent("not an id", "o_1", ""))
	if got := f.learnt.got(); len(got) != 0 {
		t.Fatalf("learnt %v, which is not shaped like an original id", got)
	}
	f.post(t, true, wechattest.SubscribeEvent("gh_genuine", "o_2", ""))
	if got := f.learnt.got(); len(got) != 1 || got[0] != "gh_genuine" {
		t.Fatalf("learnt %v, want [gh_genuine]", got)
	}
}

// A CreateTime far from now (the year 2100 once made genuine events look
// older than a forged one) is refused like a stale timestamp.
func TestCallbackCreateTimeOutOfRangeRefused(t *testing.T) {
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		y2100 := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
		for name, at := range map[string]int64{
			"year 2100": y2100, "an hour ahead": f.now.Add(time.Hour).Unix(), "an hour ago": f.now.Add(-time.Hour).Unix(),
			"six minutes ahead": f.now.Add(6 * time.Minute).Unix(), "negative": -1,
		} {
			m := wechattest.SubscribeEvent("gh_x", "o_1", "")
			m.CreateTime = at
			if rec := f.post(t, safe, m); rec.Code != http.StatusForbidden {
				t.Errorf("CreateTime %s: %d, want 403", name, rec.Code)
			}
		}
		if n := len(f.sink.got()); n != 0 {
			t.Fatalf("%d events stored with a CreateTime out of range", n)
		}
		for _, d := range []time.Duration{-4 * time.Minute, 0, 4 * time.Minute} {
			m := wechattest.SubscribeEvent("gh_x", "o_1", "")
			m.CreateTime = f.now.Add(d).Unix()
			if rec := f.post(t, safe, m); rec.Code != 200 {
				t.Fatalf("CreateTime %v from now: %d, want 200", d, rec.Code)
			}
		}
	})
}

// A signed query is accepted once per message: WeChat's retry of a push
// (same query, same body) is answered "success" with the same dedupe key,
// while the same query carrying another message is refused.
func TestCallbackSignedQueryBoundToItsMessage(t *testing.T) {
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		req, body := f.signed(t, safe, wechattest.SubscribeEvent("gh_x", "o_1", "poster"))
		for i := range 3 { // the push and two retries
			if rec := f.serve(again(req, body), merchant); rec.Code != 200 || rec.Body.String() != "success" {
				t.Fatalf("delivery %d: %d %q, want 200 success", i+1, rec.Code, rec.Body.String())
			}
		}
		// The same query with another message. (In safe mode nobody
		// without the token can encrypt and sign another message, so what
		// is left to try is a plaintext body.)
		forged := wechattest.UnsubscribeEvent("gh_x", "o_1")
		forged.CreateTime = f.now.Unix()
		if rec := f.serve(again(req, forged.XML()), merchant); rec.Code != http.StatusForbidden {
			t.Fatalf("same signed query, another message: %d, want 403", rec.Code)
		}
		got := f.sink.got()
		if len(got) != 3 || got[0].DedupeKey != got[1].DedupeKey || got[1].DedupeKey != got[2].DedupeKey {
			t.Fatalf("accepted %d events, want the push and its retries under one dedupe key: %+v", len(got), got)
		}
		for _, ev := range got {
			if ev.EventType != wechat.EventSubscribe {
				t.Fatalf("a forged %s got through", ev.EventType)
			}
		}
	})
}

// In compatible mode plaintext is accepted, but the query of an encrypted
// push cannot be reused in plaintext for another message.
func TestCallbackEncryptedQueryNotReusableInPlaintext(t *testing.T) {
	f := newCallbackFixture(t, true)
	f.reconfigure(func(c *wechat.Credentials) { c.CompatibleMode = true })
	req, body := f.signed(t, true, wechattest.SubscribeEvent("gh_x", "o_1", ""))
	if rec := f.serve(again(req, body), merchant); rec.Code != 200 {
		t.Fatalf("encrypted push: %d", rec.Code)
	}
	forged := wechattest.UnsubscribeEvent("gh_x", "o_1")
	forged.CreateTime = f.now.Unix()
	downgraded := again(req, forged.XML())
	q := downgraded.URL.Query()
	q.Del("encrypt_type")
	q.Del("msg_signature")
	downgraded.URL.RawQuery = q.Encode()
	if rec := f.serve(downgraded, merchant); rec.Code != http.StatusForbidden {
		t.Fatalf("encrypted push's query reused in plaintext: %d, want 403", rec.Code)
	}
	if got := f.sink.got(); len(got) != 1 || got[0].EventType != wechat.EventSubscribe {
		t.Fatalf("stored %+v, want the subscribe only", got)
	}
}

// An openid longer than any WeChat issues, or not shaped like one, is
// refused rather than cut to fit (a cut id could be someone else's).
func TestCallbackBadOpenIDRefused(t *testing.T) {
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		for name, openID := range map[string]string{
			"65 characters":     "o" + strings.Repeat("A", wechat.MaxOpenIDLength),
			"a kilobyte":        strings.Repeat("o", 1024),
			"not ASCII":         "o_用户",
			"with a space":      "o 1",
			"with a line break": "o\n1",
			"empty":             "",
		} {
			if rec := f.post(t, safe, wechattest.SubscribeEvent("gh_x", openID, "")); rec.Code != http.StatusBadRequest {
				t.Errorf("openid %s: %d, want 400", name, rec.Code)
			}
		}
		if n := len(f.sink.got()); n != 0 {
			t.Fatalf("%d events stored with bad openids", n)
		}
		for _, openID := range []string{"oLVPpjqs9BhvzwPj5A-vTYAX3GLc", "o_" + strings.Repeat("x", wechat.MaxOpenIDLength-2)} {
			if rec := f.post(t, safe, wechattest.SubscribeEvent("gh_x", openID, "")); rec.Code != 200 {
				t.Fatalf("openid %q: %d, want 200", openID, rec.Code)
			}
		}
		for _, ev := range f.sink.got() {
			if len(ev.OpenID) != 28 && len(ev.OpenID) != wechat.MaxOpenIDLength {
				t.Fatalf("openid stored as %q", ev.OpenID)
			}
		}
	})
}

// stallSink never stores: it holds each event until the request's context
// ends, like an insert stuck behind a lock.
type stallSink struct{ entered chan struct{} }

func (s stallSink) Accept(ctx context.Context, _ wechat.Event) error {
	s.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// A stalled store does not hold the answer past WeChat's 5 seconds: the
// handler answers 503 (WeChat then retries) instead of waiting.
func TestCallbackStalledStoreAnswers503(t *testing.T) {
	f := newCallbackFixture(t, false)
	sink := stallSink{entered: make(chan struct{}, 1)}
	reg := wechat.NewAccounts(credMap{merchant: f.creds}, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	h := wechat.NewCallbackHandler(wechat.CallbackDeps{Accounts: reg, Sink: sink, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return f.now }})
	req, _ := f.endpoint(false).Request(wechattest.SubscribeEvent("gh_x", "o_1", ""))
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Serve(rec, req, merchant)
	}()
	select {
	case <-sink.entered:
	case <-done:
		t.Fatalf("answered %d before the store was tried", rec.Code)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second): // WeChat's limit, as its client would see it
		t.Fatal("no answer within WeChat's 5 seconds while the store is stalled")
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() == "success" {
		t.Fatalf("stalled store: %d %q, want 503", rec.Code, rec.Body.String())
	}
}
