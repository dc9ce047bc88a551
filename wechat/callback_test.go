package wechat_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// memSink records accepted events. (The database-backed sink is tested in
// package inbox and end to end in cmd/loyalty.)
type memSink struct {
	mu     sync.Mutex
	events []wechat.Event
	err    error
}

func (s *memSink) Accept(_ context.Context, ev wechat.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.events = append(s.events, ev)
	return nil
}

func (s *memSink) got() []wechat.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wechat.Event(nil), s.events...)
}

type callbackFixture struct {
	creds    wechat.Credentials
	sink     *memSink
	keywords *wechat.Keywords
	learnt   *learnStore
	nonces   *wechat.MemoryNonceCache
	handler  *wechat.CallbackHandler
	now      time.Time
}

const merchant = 42

// newCallbackFixture serves one merchant: an account in safe mode (with an
// EncodingAESKey) when safe is true, in plaintext mode otherwise.
func newCallbackFixture(t *testing.T, safe bool) *callbackFixture {
	f := &callbackFixture{creds: newCreds(t), sink: &memSink{}, keywords: &wechat.Keywords{}, learnt: &learnStore{}, now: time.Now()}
	if !safe {
		f.creds.EncodingAESKey = ""
	}
	f.nonces = wechat.NewMemoryNonceCache(0, func() time.Time { return f.now })
	f.reconfigure(nil)
	return f
}

// reconfigure changes the merchant's credentials (nil: none) and rebuilds
// the handler around the same sink, nonce cache and clock, as a settings
// change does.
func (f *callbackFixture) reconfigure(change func(*wechat.Credentials)) {
	if change != nil {
		change(&f.creds)
	}
	reg := wechat.NewAccounts(credMap{merchant: f.creds}, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	f.handler = wechat.NewCallbackHandler(wechat.CallbackDeps{Accounts: reg, Sink: f.sink, Keywords: f.keywords,
		Nonces: f.nonces, OriginalIDs: f.learnt, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return f.now }})
}

// learnStore records the original ids the handler learns.
type learnStore struct {
	mu  sync.Mutex
	ids []string
}

func (s *learnStore) LearnOriginalID(_ context.Context, merchantID uint64, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if merchantID != merchant {
		return fmt.Errorf("learnt for merchant %d", merchantID)
	}
	s.ids = append(s.ids, id)
	return nil
}

func (s *learnStore) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func (f *callbackFixture) endpoint(safe bool) wechattest.Endpoint {
	return wechattest.Endpoint{URL: fmt.Sprintf("http://svc/wechat/%d/callback", merchant), AppID: f.creds.AppID,
		Token: f.creds.Token, EncodingAESKey: f.creds.EncodingAESKey, Safe: safe, Now: func() time.Time { return f.now }}
}

func (f *callbackFixture) serve(req *http.Request, merchantID uint64) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.handler.Serve(rec, req, merchantID)
	return rec
}

func (f *callbackFixture) post(t *testing.T, safe bool, m wechattest.Message) *httptest.ResponseRecorder {
	t.Helper()
	req, err := f.endpoint(safe).Request(m)
	if err != nil {
		t.Fatal(err)
	}
	return f.serve(req, merchant)
}

func modes(t *testing.T, fn func(t *testing.T, safe bool)) {
	t.Run("plaintext", func(t *testing.T) { fn(t, false) })
	t.Run("safe", func(t *testing.T) { fn(t, true) })
}

// URL verification (GET echostr) works for every kind of account: it is
// signed like a plaintext push, whatever the account's encryption mode.
func TestCallbackURLVerification(t *testing.T) {
	for name, setup := range map[string]func(*testing.T) *callbackFixture{
		"plaintext account": func(t *testing.T) *callbackFixture { return newCallbackFixture(t, false) },
		"safe account":      func(t *testing.T) *callbackFixture { return newCallbackFixture(t, true) },
		"compatible mode": func(t *testing.T) *callbackFixture {
			f := newCallbackFixture(t, true)
			f.reconfigure(func(c *wechat.Credentials) { c.CompatibleMode = true })
			return f
		},
		"original id known": func(t *testing.T) *callbackFixture {
			f := newCallbackFixture(t, true)
			f.reconfigure(func(c *wechat.Credentials) { c.OriginalID = "gh_account" })
			return f
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := setup(t)
			rec := f.serve(f.endpoint(false).VerifyRequest("echo123"), merchant)
			if rec.Code != 200 || rec.Body.String() != "echo123" {
				t.Fatalf("verification: %d %q", rec.Code, rec.Body.String())
			}
			bad := f.endpoint(false)
			bad.Token = "wrongtoken"
			rec = f.serve(bad.VerifyRequest("echo123"), merchant)
			if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "echo123") {
				t.Fatalf("bad signature verification: %d %q", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestCallbackSignedEventStored(t *testing.T) {
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		rec := f.post(t, safe, wechattest.SubscribeEvent("gh_x", "o_1", "poster-7"))
		if rec.Code != 200 || rec.Body.String() != "success" {
			t.Fatalf("answer %d %q, want 200 success", rec.Code, rec.Body.String())
		}
		got := f.sink.got()
		if len(got) != 1 {
			t.Fatalf("%d events stored", len(got))
		}
		ev := got[0]
		if ev.MerchantID != merchant || ev.OpenID != "o_1" || ev.EventType != wechat.EventSubscribe ||
			ev.Scene() != "poster-7" || ev.DedupeKey == "" || ev.CreateTime.IsZero() {
			t.Fatalf("event %+v", ev)
		}
	})
}

func TestCallbackRejectsBadSignatures(t *testing.T) {
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		good, _ := f.endpoint(safe).Request(wechattest.SubscribeEvent("gh_x", "o_1", ""))
		body, _ := io.ReadAll(good.Body)
		variants := map[string]func(*http.Request){
			"unsigned": func(r *http.Request) {
				q := r.URL.Query()
				q.Del("signature")
				q.Del("msg_signature")
				r.URL.RawQuery = q.Encode()
			},
			"wrong signature": func(r *http.Request) {
				q := r.URL.Query()
				q.Set("signature", strings.Repeat("0", 40))
				r.URL.RawQuery = q.Encode()
			},
			"other nonce": func(r *http.Request) {
				q := r.URL.Query()
				q.Set("nonce", "1")
				r.URL.RawQuery = q.Encode()
			},
		}
		if safe {
			variants["wrong msg_signature"] = func(r *http.Request) {
				q := r.URL.Query()
				q.Set("msg_signature", strings.Repeat("0", 40))
				r.URL.RawQuery = q.Encode()
			}
			variants["tampered ciphertext"] = func(r *http.Request) {
				r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("<Encrypt><![CDATA["), []byte("<Encrypt><![CDATA[A"), 1)))
			}
		}
		for name, mutate := range variants {
			req := good.Clone(context.Background())
			req.Body = io.NopCloser(bytes.NewReader(body))
			mutate(req)
			if rec := f.serve(req, merchant); rec.Code != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", name, rec.Code)
			}
		}
		if n := len(f.sink.got()); n != 0 {
			t.Fatalf("%d events stored from rejected requests", n)
		}
	})
}

func TestCallbackSafeModeWithoutKeyRejected(t *testing.T) {
	f := newCallbackFixture(t, true)
	req, _ := f.endpoint(true).Request(wechattest.SubscribeEvent("gh_x", "o_1", ""))
	noKey := f.creds
	noKey.EncodingAESKey = ""
	reg := wechat.NewAccounts(credMap{merchant: noKey}, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	h := wechat.NewCallbackHandler(wechat.CallbackDeps{Accounts: reg, Sink: f.sink, Log: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	h.Serve(rec, req, merchant)
	if rec.Code != http.StatusForbidden || len(f.sink.got()) != 0 {
		t.Fatalf("status %d, %d stored", rec.Code, len(f.sink.got()))
	}
}

// A captured, validly signed request cannot be replayed hours later.
func TestCallbackStaleTimestampRejected(t *testing.T) {
	f := newCallbackFixture(t, false)
	old := f.endpoint(false)
	old.Now = func() time.Time { return f.now.Add(-10 * time.Minute) }
	req, _ := old.Request(wechattest.SubscribeEvent("gh_x", "o_1", ""))
	if rec := f.serve(req, merchant); rec.Code != http.StatusForbidden {
		t.Fatalf("stale: %d, want 403", rec.Code)
	}
}

func TestCallbackErrors(t *testing.T) {
	f := newCallbackFixture(t, false)
	req, _ := f.endpoint(false).Request(wechattest.SubscribeEvent("gh_x", "o_1", ""))
	if rec := f.serve(req, merchant+1); rec.Code != http.StatusNotFound {
		t.Errorf("unknown merchant: %d, want 404", rec.Code)
	}

	huge := wechattest.TextMessage("gh_x", "o_1", strings.Repeat("x", wechat.MaxCallbackBody), 1)
	req, _ = f.endpoint(false).Request(huge)
	if rec := f.serve(req, merchant); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", rec.Code)
	}

	req, _ = f.endpoint(false).Request(wechattest.SubscribeEvent("gh_x", "o_1", ""))
	req.Body = io.NopCloser(strings.NewReader("<xml><FromUserName>o_1</From"))
	if rec := f.serve(req, merchant); rec.Code != http.StatusBadRequest {
		t.Errorf("malformed XML: %d, want 400", rec.Code)
	}

	// When the event cannot be stored WeChat must not hear "success", so it
	// retries and nothing is lost.
	f.sink.err = errors.New("database down")
	req, _ = f.endpoint(false).Request(wechattest.SubscribeEvent("gh_x", "o_2", ""))
	if rec := f.serve(req, merchant); rec.Code != http.StatusServiceUnavailable || rec.Body.String() == "success" {
		t.Errorf("store failure: %d %q, want 503", rec.Code, rec.Body.String())
	}
	if n := len(f.sink.got()); n != 0 {
		t.Errorf("%d events stored", n)
	}
}

func TestCallbackIgnoresUninterestingEvents(t *testing.T) {
	f := newCallbackFixture(t, false)
	rec := f.post(t, false, wechattest.Message{ToUserName: "gh_x", FromUserName: "o_1", MsgType: "event", Event: "LOCATION"})
	if rec.Code != 200 || rec.Body.String() != "success" || len(f.sink.got()) != 0 {
		t.Fatalf("LOCATION: %d %q, %d stored", rec.Code, rec.Body.String(), len(f.sink.got()))
	}
}

// WeChat's retries of one push carry the same dedupe key; distinct pushes
// differ.
func TestCallbackDedupeKeys(t *testing.T) {
	f := newCallbackFixture(t, false)
	at := f.now.Unix()
	sub := wechattest.SubscribeEvent("gh_x", "o_1", "")
	sub.CreateTime = at
	text := wechattest.TextMessage("gh_x", "o_1", "hi", 6201)
	receipt := wechattest.TemplateFinishEvent("gh_x", "o_1", 1001, "success")
	receipt.CreateTime = at
	receipt2 := wechattest.TemplateFinishEvent("gh_x", "o_1", 1002, "success")
	receipt2.CreateTime = at
	for _, m := range []wechattest.Message{sub, sub, text, text, receipt, receipt, receipt2} {
		f.post(t, false, m)
	}
	keys := map[string]int{}
	for _, ev := range f.sink.got() {
		keys[ev.DedupeKey]++
	}
	if len(keys) != 4 {
		t.Fatalf("%d distinct keys, want 4 (subscribe, text, two receipts): %v", len(keys), keys)
	}
	for _, ev := range f.sink.got() {
		if ev.EventType == wechat.EventTemplateFinish && ev.MsgID != 1001 && ev.MsgID != 1002 {
			t.Fatalf("receipt msgid %d (from <MsgID>)", ev.MsgID)
		}
		if ev.MsgType == wechat.MsgTypeText && ev.MsgID != 6201 {
			t.Fatalf("text msgid %d (from <MsgId>)", ev.MsgID)
		}
	}
}

func TestCallbackKeywordReply(t *testing.T) {
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		f.keywords.Register(func(_ context.Context, ev wechat.Event) (string, bool) {
			if ev.Content == "积分" {
				return "您的积分：120", true
			}
			return "", false
		})
		rec := f.post(t, safe, wechattest.TextMessage("gh_x", "o_1", "积分", 77))
		body := rec.Body.Bytes()
		if safe {
			var err error
			if body, err = f.endpoint(true).DecryptReply(body); err != nil {
				t.Fatalf("decrypt reply: %v (%s)", err, rec.Body.String())
			}
		}
		var reply struct {
			ToUserName   string `xml:"ToUserName"`
			FromUserName string `xml:"FromUserName"`
			MsgType      string `xml:"MsgType"`
			Content      string `xml:"Content"`
		}
		if err := xml.Unmarshal(body, &reply); err != nil {
			t.Fatalf("reply %q: %v", body, err)
		}
		if reply.ToUserName != "o_1" || reply.FromUserName != "gh_x" || reply.MsgType != "text" || reply.Content != "您的积分：120" {
			t.Fatalf("reply %+v", reply)
		}
		// A message no hook answers gets "success".
		rec = f.post(t, safe, wechattest.TextMessage("gh_x", "o_1", "hello", 78))
		if rec.Body.String() != "success" {
			t.Fatalf("unanswered message: %q", rec.Body.String())
		}
		if n := len(f.sink.got()); n != 2 {
			t.Fatalf("%d messages stored, want 2", n)
		}
	})
}

// Callbacks never reach the SDK's global logrus, even at debug level (the
// SDK's own server would log the raw decrypted XML there).
func TestCallbackLogsNoRawXML(t *testing.T) {
	hook := test.NewGlobal()
	logrus.SetLevel(logrus.DebugLevel)
	defer logrus.SetLevel(logrus.InfoLevel)
	modes(t, func(t *testing.T, safe bool) {
		f := newCallbackFixture(t, safe)
		f.post(t, safe, wechattest.SubscribeEvent("gh_x", "o_secret_openid", "s"))
		f.post(t, safe, wechattest.TextMessage("gh_x", "o_secret_openid", "my phone is 13800138000", 5))
		bad, _ := f.endpoint(safe).Request(wechattest.SubscribeEvent("gh_x", "o_secret_openid", ""))
		q := bad.URL.Query()
		q.Set("signature", "x")
		bad.URL.RawQuery = q.Encode()
		f.serve(bad, merchant)
	})
	for _, e := range hook.AllEntries() {
		t.Errorf("SDK logged: %s %v", e.Message, e.Data)
	}
}
