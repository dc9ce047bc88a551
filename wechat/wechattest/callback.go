package wechattest

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/util"
)

// Endpoint describes the backend's callback URL for one official account and
// builds the signed requests WeChat would send to it.
type Endpoint struct {
	URL            string // full callback URL, e.g. "http://127.0.0.1:8080/wechat/42/callback"
	AppID, Token   string
	EncodingAESKey string           // 43 chars; required when Safe is true
	Safe           bool             // true = safe (AES) mode
	Now            func() time.Time // nil = time.Now
}

func (e Endpoint) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// signedQuery returns the timestamp, nonce and signature WeChat puts on every
// callback request.
func (e Endpoint) signedQuery() (q url.Values, ts, nonce string) {
	ts = strconv.FormatInt(e.now().Unix(), 10)
	nonce = randDigits(10)
	q = url.Values{}
	q.Set("signature", util.Signature(e.Token, ts, nonce))
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	return q, ts, nonce
}

// withQuery adds q to e.URL, keeping any query the URL already has.
func (e Endpoint) withQuery(q url.Values) (string, error) {
	u, err := url.Parse(e.URL)
	if err != nil {
		return "", fmt.Errorf("wechattest: invalid Endpoint.URL %q: %w", e.URL, err)
	}
	all := u.Query()
	for k, vs := range q {
		all[k] = vs
	}
	u.RawQuery = all.Encode()
	return u.String(), nil
}

// VerifyRequest builds the GET WeChat sends to verify a callback URL
// (?signature&timestamp&nonce&echostr); the backend must answer with echostr.
// The request suits both http.Client.Do and calling a handler directly. It
// panics if e.URL cannot be parsed, which is a bug in the test.
func (e Endpoint) VerifyRequest(echostr string) *http.Request {
	q, _, _ := e.signedQuery()
	q.Set("echostr", echostr)
	u, err := e.withQuery(q)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		panic(fmt.Sprintf("wechattest: VerifyRequest: %v", err))
	}
	return req
}

// Request builds the signed POST WeChat sends for m. In plaintext mode the
// query is ?signature&timestamp&nonce&openid and the body is the message XML.
// In safe mode the query also carries encrypt_type=aes and msg_signature and
// the body is <xml><ToUserName/><Encrypt/></xml> with the AES-encrypted
// message. A zero m.CreateTime is set to e.Now().
func (e Endpoint) Request(m Message) (*http.Request, error) {
	if m.CreateTime == 0 {
		m.CreateTime = e.now().Unix()
	}
	q, ts, nonce := e.signedQuery()
	if m.FromUserName != "" {
		q.Set("openid", m.FromUserName)
	}
	body := m.XML()
	if e.Safe {
		if len(e.EncodingAESKey) != 43 {
			return nil, errors.New("wechattest: safe mode needs a 43-character EncodingAESKey")
		}
		enc, err := util.EncryptMsg([]byte(randAlnum(16)), body, e.AppID, e.EncodingAESKey)
		if err != nil {
			return nil, fmt.Errorf("wechattest: encrypt message: %w", err)
		}
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", util.Signature(e.Token, ts, nonce, string(enc)))
		var b strings.Builder
		b.WriteString("<xml>")
		writeCDATA(&b, "ToUserName", m.ToUserName)
		writeCDATA(&b, "Encrypt", string(enc))
		b.WriteString("</xml>")
		body = []byte(b.String())
	}
	u, err := e.withQuery(q)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("wechattest: build request: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	return req, nil
}

// DecryptReply verifies and decrypts a safe-mode reply
// (<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>) and returns
// the plaintext reply XML.
func (e Endpoint) DecryptReply(body []byte) ([]byte, error) {
	var r struct {
		Encrypt      string `xml:"Encrypt"`
		MsgSignature string `xml:"MsgSignature"`
		TimeStamp    string `xml:"TimeStamp"`
		Nonce        string `xml:"Nonce"`
	}
	if err := xml.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("wechattest: parse encrypted reply: %w", err)
	}
	if r.Encrypt == "" {
		return nil, errors.New("wechattest: reply has no <Encrypt> element")
	}
	ts, nonce := strings.TrimSpace(r.TimeStamp), strings.TrimSpace(r.Nonce)
	if want := util.Signature(e.Token, ts, nonce, r.Encrypt); r.MsgSignature != want {
		return nil, errors.New("wechattest: reply MsgSignature mismatch")
	}
	_, plain, err := util.DecryptMsg(e.AppID, r.Encrypt, e.EncodingAESKey)
	if err != nil {
		return nil, fmt.Errorf("wechattest: decrypt reply: %w", err)
	}
	return plain, nil
}

// Message is one message or event WeChat pushes to the backend.
type Message struct {
	ToUserName, FromUserName string
	CreateTime               int64  // unix seconds; 0 = Now()
	MsgType                  string // "event", "text", ...
	Event, EventKey, Ticket  string
	Content                  string
	MsgID                    int64  // text and other messages: element <MsgId>
	TemplateMsgID            int64  // TEMPLATESENDJOBFINISH: element <MsgID> (WeChat really uses both spellings)
	Status                   string // TEMPLATESENDJOBFINISH status: "success", "failed:user block", "failed: system failed"
}

// XML renders m as WeChat's plaintext message XML; empty fields are left
// out and text fields are wrapped in CDATA.
func (m Message) XML() []byte {
	var b strings.Builder
	b.WriteString("<xml>")
	writeCDATA(&b, "ToUserName", m.ToUserName)
	writeCDATA(&b, "FromUserName", m.FromUserName)
	fmt.Fprintf(&b, "<CreateTime>%d</CreateTime>", m.CreateTime)
	writeCDATA(&b, "MsgType", m.MsgType)
	for _, f := range []struct{ name, val string }{
		{"Event", m.Event}, {"EventKey", m.EventKey}, {"Ticket", m.Ticket}, {"Content", m.Content},
	} {
		if f.val != "" {
			writeCDATA(&b, f.name, f.val)
		}
	}
	if m.MsgID != 0 {
		fmt.Fprintf(&b, "<MsgId>%d</MsgId>", m.MsgID)
	}
	if m.TemplateMsgID != 0 {
		fmt.Fprintf(&b, "<MsgID>%d</MsgID>", m.TemplateMsgID)
	}
	if m.Status != "" {
		writeCDATA(&b, "Status", m.Status)
	}
	b.WriteString("</xml>")
	return []byte(b.String())
}

// writeCDATA writes <name><![CDATA[val]]></name>, splitting any "]]>" in
// val so the section cannot be closed early.
func writeCDATA(b *strings.Builder, name, val string) {
	b.WriteString("<" + name + "><![CDATA[")
	b.WriteString(strings.ReplaceAll(val, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]></" + name + ">")
}

// SubscribeEvent is openID following toUser (the account's gh_ id). A
// non-empty scene means the user followed through a parametric QR code:
// EventKey is "qrscene_"+scene and a Ticket is set.
func SubscribeEvent(toUser, openID, scene string) Message {
	m := Message{ToUserName: toUser, FromUserName: openID, MsgType: "event", Event: "subscribe"}
	if scene != "" {
		m.EventKey = "qrscene_" + scene
		m.Ticket = "gQ" + randHex(24)
	}
	return m
}

// UnsubscribeEvent is openID unfollowing toUser.
func UnsubscribeEvent(toUser, openID string) Message {
	return Message{ToUserName: toUser, FromUserName: openID, MsgType: "event", Event: "unsubscribe"}
}

// ScanEvent is a follower scanning a parametric QR code: Event "SCAN",
// EventKey is the scene without prefix, and a Ticket is set.
func ScanEvent(toUser, openID, scene string) Message {
	return Message{
		ToUserName: toUser, FromUserName: openID, MsgType: "event",
		Event: "SCAN", EventKey: scene, Ticket: "gQ" + randHex(24),
	}
}

// ClickEvent is openID clicking the menu item with key.
func ClickEvent(toUser, openID, key string) Message {
	return Message{ToUserName: toUser, FromUserName: openID, MsgType: "event", Event: "CLICK", EventKey: key}
}

// TextMessage is openID sending content to the account.
func TextMessage(toUser, openID, content string, msgID int64) Message {
	return Message{ToUserName: toUser, FromUserName: openID, MsgType: "text", Content: content, MsgID: msgID}
}

// TemplateFinishEvent reports the delivery result of template message msgID
// ("success", "failed:user block", "failed: system failed").
func TemplateFinishEvent(toUser, openID string, msgID int64, status string) Message {
	return Message{
		ToUserName: toUser, FromUserName: openID, MsgType: "event",
		Event: "TEMPLATESENDJOBFINISH", TemplateMsgID: msgID, Status: status,
	}
}

// randDigits returns n random decimal digits (WeChat nonces are numeric),
// never starting with 0.
func randDigits(n int) string {
	const digits = "0123456789"
	b := make([]byte, n)
	for i := range b {
		lo := 0
		if i == 0 {
			lo = 1
		}
		b[i] = digits[lo+randIntn(len(digits)-lo)]
	}
	return string(b)
}

// randAlnum returns n random letters and digits, like the 16-byte random
// prefix WeChat puts in encrypted messages.
func randAlnum(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[randIntn(len(chars))]
	}
	return string(b)
}

func randIntn(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return int(v.Int64())
}
