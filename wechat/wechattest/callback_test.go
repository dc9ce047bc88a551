package wechattest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/util"
)

func newAESKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(base64.StdEncoding.EncodeToString(b), "=")
}

// checkSignature verifies the plain signature like the backend does.
func checkSignature(t *testing.T, r *http.Request, token string) {
	t.Helper()
	q := r.URL.Query()
	if q.Get("timestamp") == "" || q.Get("nonce") == "" {
		t.Fatalf("missing timestamp/nonce: %s", r.URL)
	}
	if q.Get("signature") != util.Signature(token, q.Get("timestamp"), q.Get("nonce")) {
		t.Fatalf("bad signature: %s", r.URL)
	}
}

func readBody(t *testing.T, r *http.Request) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyRequest(t *testing.T) {
	ep := Endpoint{URL: "http://backend.test/wechat/42/callback", AppID: oaApp.AppID, Token: "cb-token"}
	r := ep.VerifyRequest("echo-123")
	if r.Method != http.MethodGet || r.URL.Query().Get("echostr") != "echo-123" || r.URL.Path != "/wechat/42/callback" {
		t.Fatalf("request = %s %s", r.Method, r.URL)
	}
	checkSignature(t, r, "cb-token")
}

func TestPlaintextCallback(t *testing.T) {
	now := time.Unix(1700000000, 0)
	ep := Endpoint{
		URL: "http://backend.test/wechat/42/callback?tenant=7", AppID: oaApp.AppID, Token: "cb-token",
		Now: func() time.Time { return now },
	}
	r, err := ep.Request(SubscribeEvent("gh_abc", "o1", "store-42"))
	if err != nil {
		t.Fatal(err)
	}
	q := r.URL.Query()
	if r.Method != http.MethodPost || q.Get("openid") != "o1" || q.Get("tenant") != "7" || q.Get("encrypt_type") != "" ||
		q.Get("timestamp") != "1700000000" {
		t.Fatalf("request = %s %s", r.Method, r.URL)
	}
	checkSignature(t, r, "cb-token")
	body := readBody(t, r)
	if !strings.Contains(string(body), "<FromUserName><![CDATA[o1]]></FromUserName>") {
		t.Fatalf("body not CDATA: %s", body)
	}
	var m message.MixMessage
	if err := xml.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.ToUserName != "gh_abc" || m.FromUserName != "o1" || m.MsgType != "event" || m.Event != "subscribe" ||
		m.EventKey != "qrscene_store-42" || m.Ticket == "" || m.CreateTime != 1700000000 {
		t.Fatalf("message = %+v", m)
	}

	// Two requests never share a nonce.
	r2, _ := ep.Request(ClickEvent("gh_abc", "o1", "MY_POINTS"))
	if r2.URL.Query().Get("nonce") == q.Get("nonce") {
		t.Fatal("nonce reused")
	}
	if err := xml.Unmarshal(readBody(t, r2), &m); err != nil || m.Event != "CLICK" || m.EventKey != "MY_POINTS" {
		t.Fatalf("click = %+v, %v", m, err)
	}
}

func TestSafeModeCallback(t *testing.T) {
	key := newAESKey(t)
	ep := Endpoint{URL: "http://backend.test/cb", AppID: oaApp.AppID, Token: "cb-token", EncodingAESKey: key, Safe: true}

	decrypt := func(m Message) (string, message.MixMessage) {
		t.Helper()
		r, err := ep.Request(m)
		if err != nil {
			t.Fatal(err)
		}
		q := r.URL.Query()
		checkSignature(t, r, "cb-token")
		var env message.EncryptedXMLMsg
		if err := xml.Unmarshal(readBody(t, r), &env); err != nil {
			t.Fatal(err)
		}
		if q.Get("encrypt_type") != "aes" || env.EncryptedMsg == "" || env.ToUserName != m.ToUserName ||
			q.Get("msg_signature") != util.Signature("cb-token", q.Get("timestamp"), q.Get("nonce"), env.EncryptedMsg) {
			t.Fatalf("bad safe-mode envelope: %s %+v", r.URL, env)
		}
		_, plain, err := util.DecryptMsg(oaApp.AppID, env.EncryptedMsg, key)
		if err != nil {
			t.Fatal(err)
		}
		var mm message.MixMessage
		if err := xml.Unmarshal(plain, &mm); err != nil {
			t.Fatal(err)
		}
		return string(plain), mm
	}

	plain, m := decrypt(TemplateFinishEvent("gh_abc", "o1", 1000042, "failed:user block"))
	if !strings.Contains(plain, "<MsgID>1000042</MsgID>") || strings.Contains(plain, "<MsgId>") {
		t.Fatalf("template finish XML: %s", plain)
	}
	if m.Event != message.EventTemplateSendJobFinish || m.TemplateMsgID != 1000042 || m.MsgID != 0 || m.Status != "failed:user block" {
		t.Fatalf("template finish = %+v", m)
	}

	plain, m = decrypt(TextMessage("gh_abc", "o1", "hi <there> ]]> x", 777))
	if !strings.Contains(plain, "<MsgId>777</MsgId>") || strings.Contains(plain, "<MsgID>") {
		t.Fatalf("text XML: %s", plain)
	}
	if m.MsgType != "text" || m.Content != "hi <there> ]]> x" || m.MsgID != 777 || m.TemplateMsgID != 0 {
		t.Fatalf("text = %+v", m)
	}

	_, m = decrypt(ScanEvent("gh_abc", "o1", "store-42"))
	if m.Event != "SCAN" || m.EventKey != "store-42" || m.Ticket == "" {
		t.Fatalf("scan = %+v", m)
	}
	_, m = decrypt(UnsubscribeEvent("gh_abc", "o1"))
	if m.Event != "unsubscribe" || m.EventKey != "" {
		t.Fatalf("unsubscribe = %+v", m)
	}

	if _, err := (Endpoint{URL: "http://x/", Safe: true}).Request(TextMessage("a", "b", "c", 1)); err == nil {
		t.Fatal("safe mode without key must fail")
	}
}

func TestDecryptReply(t *testing.T) {
	key := newAESKey(t)
	ep := Endpoint{URL: "http://backend.test/cb", AppID: oaApp.AppID, Token: "cb-token", EncodingAESKey: key, Safe: true}
	inner := []byte("<xml><ToUserName><![CDATA[o1]]></ToUserName><Content><![CDATA[hello]]></Content></xml>")
	enc, err := util.EncryptMsg([]byte("0123456789abcdef"), inner, oaApp.AppID, key)
	if err != nil {
		t.Fatal(err)
	}
	reply := message.ResponseEncryptedXMLMsg{
		EncryptedMsg: string(enc),
		MsgSignature: util.Signature("cb-token", "1700000000", "12345", string(enc)),
		Timestamp:    1700000000,
		Nonce:        "12345",
	}
	body, err := xml.Marshal(reply)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ep.DecryptReply(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(inner) {
		t.Fatalf("DecryptReply = %s", got)
	}

	reply.MsgSignature = "tampered"
	body, _ = xml.Marshal(reply)
	if _, err := ep.DecryptReply(body); err == nil {
		t.Fatal("tampered signature accepted")
	}
	if _, err := ep.DecryptReply([]byte("success")); err == nil {
		t.Fatal("non-encrypted reply accepted")
	}
}

// TestCallbacksAgainstSDKServer feeds the generated requests to the SDK's own
// callback server, which is what the backend runs.
func TestCallbacksAgainstSDKServer(t *testing.T) {
	key := newAESKey(t)
	oa := officialaccount.NewOfficialAccount(&offConfig.Config{
		AppID: oaApp.AppID, AppSecret: oaApp.Secret, Token: "cb-token", EncodingAESKey: key, Cache: cache.NewMemory(),
	})
	var got []*message.MixMessage
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv := oa.GetServer(r, w)
		srv.SetMessageHandler(func(m *message.MixMessage) *message.Reply {
			got = append(got, m)
			return &message.Reply{MsgType: message.MsgTypeText, MsgData: message.NewText("points: 10")}
		})
		if err := srv.Serve(); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		_ = srv.Send()
	})

	for _, safe := range []bool{false, true} {
		got = nil
		ep := Endpoint{URL: "http://backend.test/cb", AppID: oaApp.AppID, Token: "cb-token", EncodingAESKey: key, Safe: safe}

		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, ep.VerifyRequest("echo-1"))
		if rec.Code != http.StatusOK || rec.Body.String() != "echo-1" {
			t.Fatalf("safe=%v verify: %d %q", safe, rec.Code, rec.Body.String())
		}

		req, err := ep.Request(TextMessage("gh_abc", "o1", "points?", 99))
		if err != nil {
			t.Fatal(err)
		}
		rec = httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || len(got) != 1 || got[0].Content != "points?" || got[0].MsgID != 99 {
			t.Fatalf("safe=%v: %d %q got=%v", safe, rec.Code, rec.Body.String(), got)
		}
		replyXML := rec.Body.Bytes()
		if safe {
			if replyXML, err = ep.DecryptReply(replyXML); err != nil {
				t.Fatalf("DecryptReply: %v (%s)", err, rec.Body.String())
			}
		}
		var text message.Text
		if err := xml.Unmarshal(replyXML, &text); err != nil || text.Content != "points: 10" || text.ToUserName != "o1" {
			t.Fatalf("safe=%v reply %s: %+v %v", safe, replyXML, text, err)
		}
	}
}
