package wechat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// Message and event types the service acts on. Everything else is logged
// and acknowledged.
const (
	MsgTypeEvent = string(message.MsgTypeEvent)
	MsgTypeText  = string(message.MsgTypeText)

	EventSubscribe      = string(message.EventSubscribe)
	EventUnsubscribe    = string(message.EventUnsubscribe)
	EventScan           = string(message.EventScan)
	EventClick          = string(message.EventClick)
	EventTemplateFinish = string(message.EventTemplateSendJobFinish)
)

// Event is one message or event pushed by WeChat to an official account,
// verified and decrypted.
type Event struct {
	MerchantID uint64
	// DedupeKey identifies the push across WeChat's retries: a hash of the
	// MsgId for user messages, of the MsgID for template receipts, and of
	// FromUserName+CreateTime+Event for other events (WeChat's own advice).
	DedupeKey  string
	MsgType    string // "event", "text", "image", ...
	EventType  string // for MsgType "event": subscribe, unsubscribe, SCAN, CLICK, TEMPLATESENDJOBFINISH
	OpenID     string // FromUserName
	AccountID  string // ToUserName: the official account's original id (gh_...)
	EventKey   string // qrscene_<scene> on subscribe, <scene> on SCAN, the button key on CLICK
	Ticket     string
	Content    string // text messages only
	MsgID      int64  // MsgId of a user message, or MsgID of a template receipt
	Status     string // template receipt status
	CreateTime time.Time
}

// Scene returns the QR scene of a subscribe or SCAN event ("" without one).
func (e Event) Scene() string {
	switch e.EventType {
	case EventSubscribe:
		return strings.TrimPrefix(e.EventKey, "qrscene_")
	case EventScan:
		return e.EventKey
	}
	return ""
}

// IsUserMessage reports whether the event is a message the user sent
// (which also opens the 48-hour customer-service window).
func (e Event) IsUserMessage() bool { return e.MsgType != MsgTypeEvent }

// Sink takes verified events. Accept must make the event durable, or
// recognise it as a duplicate, before it returns nil: WeChat is told
// "success" only after that, and retries otherwise.
type Sink interface {
	Accept(ctx context.Context, ev Event) error
}

// KeywordFunc may answer a text message or menu click with a text reply
// (ok=false lets the next registered function try). It runs inside WeChat's
// 5-second deadline, so it must be quick.
type KeywordFunc func(ctx context.Context, ev Event) (reply string, ok bool)

// Keywords is the keyword-reply hook features register with (points answers
// "积分" with the balance, for example). Register before serving.
type Keywords struct {
	mu    sync.RWMutex
	funcs []KeywordFunc
}

// Register adds a reply function; functions are tried in registration order.
func (k *Keywords) Register(f KeywordFunc) {
	k.mu.Lock()
	k.funcs = append(k.funcs, f)
	k.mu.Unlock()
}

// Reply returns the first reply a registered function gives.
func (k *Keywords) Reply(ctx context.Context, ev Event) (string, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, f := range k.funcs {
		if reply, ok := f(ctx, ev); ok {
			return reply, true
		}
	}
	return "", false
}

// AccountSource finds a merchant's account (Accounts satisfies it).
type AccountSource interface {
	Get(ctx context.Context, merchantID uint64) (*Account, error)
}

// CallbackHandler serves /wechat/:merchant_id/callback: URL verification
// (GET echostr) and pushed messages and events in plaintext and safe (AES)
// mode. It answers within WeChat's 5-second limit by only verifying,
// decrypting, parsing and handing the event to the Sink; the work an event
// causes happens after the answer.
//
// It does not use the SDK's server.Server: that logs the raw decrypted XML
// (personal data) through the global logrus at debug level, parses into a
// very large struct, and in safe mode answers an empty reply with an
// encrypted empty payload instead of "success".
type CallbackHandler struct {
	accounts AccountSource
	sink     Sink
	keywords *Keywords
	log      *slog.Logger
	now      func() time.Time
	bodies   sync.Pool // *bytes.Buffer for request bodies
}

// MaxCallbackBody bounds a pushed message; real ones are a few hundred bytes.
const MaxCallbackBody = 64 << 10

// maxClockSkew is how far a callback's timestamp may be from our clock. It
// bounds how long a captured, validly signed request can be replayed.
const maxClockSkew = 5 * time.Minute

// NewCallbackHandler returns the handler. keywords may be nil.
func NewCallbackHandler(accounts AccountSource, sink Sink, keywords *Keywords, log *slog.Logger, now func() time.Time) *CallbackHandler {
	if keywords == nil {
		keywords = &Keywords{}
	}
	if now == nil {
		now = time.Now
	}
	h := &CallbackHandler{accounts: accounts, sink: sink, keywords: keywords, log: log, now: now}
	h.bodies.New = func() any { return new(bytes.Buffer) }
	return h
}

// Serve handles one callback request for the merchant.
func (h *CallbackHandler) Serve(w http.ResponseWriter, r *http.Request, merchantID uint64) {
	ctx := r.Context()
	acct, err := h.accounts.Get(ctx, merchantID)
	if err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			http.Error(w, "unknown merchant", http.StatusNotFound)
			return
		}
		h.log.ErrorContext(ctx, "wechat callback: load account", "merchant_id", merchantID, "error", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	creds := acct.Credentials()
	q := parseCallbackQuery(r.URL.RawQuery)
	timestamp, nonce := q.timestamp, q.nonce
	if !validSignature(q.signature, creds.Token, timestamp, nonce) {
		h.reject(ctx, w, merchantID, "bad signature")
		return
	}
	if r.Method == http.MethodGet {
		// URL verification when the merchant saves the callback URL.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, q.echostr)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if ts, err := strconv.ParseInt(timestamp, 10, 64); err != nil || absDuration(h.now().Sub(time.Unix(ts, 0))) > maxClockSkew {
		h.reject(ctx, w, merchantID, "stale timestamp")
		return
	}
	buf := h.bodies.Get().(*bytes.Buffer)
	defer h.bodies.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxCallbackBody)); err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	body := buf.Bytes() // parsing copies what it keeps, so the buffer can be reused
	safe := q.encryptType == "aes"
	if safe {
		var err error
		if body, err = decryptBody(body, creds, timestamp, nonce, q.msgSignature); err != nil {
			h.reject(ctx, w, merchantID, err.Error())
			return
		}
	}
	in, err := parseInbound(body)
	if err != nil || in.FromUserName == "" || in.MsgType == "" {
		http.Error(w, "malformed message", http.StatusBadRequest)
		return
	}
	ev := in.event(merchantID)
	if !stored(ev) {
		// LOCATION reports (every 5 s per user when enabled), menu views and
		// the like: nothing here acts on them.
		h.log.DebugContext(ctx, "wechat callback: ignored", "merchant_id", merchantID, "msg_type", ev.MsgType, "event", ev.EventType)
		writeSuccess(w)
		return
	}
	if err := h.sink.Accept(ctx, ev); err != nil {
		// No "success": WeChat retries, so nothing is lost.
		h.log.ErrorContext(ctx, "wechat callback: store event", "merchant_id", merchantID, "error", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	if ev.MsgType == MsgTypeText || ev.EventType == EventClick {
		if reply, ok := h.keywords.Reply(ctx, ev); ok {
			if err := writeReply(w, ev, reply, creds, safe, nonce, h.now()); err != nil {
				h.log.ErrorContext(ctx, "wechat callback: reply", "merchant_id", merchantID, "error", err)
				writeSuccess(w)
			}
			return
		}
	}
	writeSuccess(w)
}

func (h *CallbackHandler) reject(ctx context.Context, w http.ResponseWriter, merchantID uint64, why string) {
	h.log.WarnContext(ctx, "wechat callback rejected", "merchant_id", merchantID, "reason", why)
	http.Error(w, "forbidden", http.StatusForbidden)
}

// stored reports whether an event is worth keeping: user messages (they open
// the customer-service window and may be keywords) and the events the
// service acts on.
func stored(ev Event) bool {
	if ev.MsgType != MsgTypeEvent {
		return true
	}
	switch ev.EventType {
	case EventSubscribe, EventUnsubscribe, EventScan, EventClick, EventTemplateFinish:
		return true
	}
	return false
}

// inbound is the subset of WeChat's push XML the service reads. Element
// names are case-sensitive: user messages carry <MsgId>, template receipts
// <MsgID>.
type inbound struct {
	ToUserName    string `xml:"ToUserName"`
	FromUserName  string `xml:"FromUserName"`
	CreateTime    int64  `xml:"CreateTime"`
	MsgType       string `xml:"MsgType"`
	Event         string `xml:"Event"`
	EventKey      string `xml:"EventKey"`
	Ticket        string `xml:"Ticket"`
	Content       string `xml:"Content"`
	MsgID         int64  `xml:"MsgId"`
	TemplateMsgID int64  `xml:"MsgID"`
	Status        string `xml:"Status"`
	Encrypt       string `xml:"Encrypt"` // safe mode: the encrypted message
}

func (in inbound) event(merchantID uint64) Event {
	ev := Event{MerchantID: merchantID, MsgType: in.MsgType, EventType: in.Event, OpenID: in.FromUserName,
		AccountID: in.ToUserName, EventKey: in.EventKey, Ticket: in.Ticket, Content: in.Content,
		MsgID: in.MsgID, Status: in.Status, CreateTime: time.Unix(in.CreateTime, 0).UTC()}
	var buf [192]byte // the key before hashing; longer ones spill to the heap
	var key []byte
	switch {
	case in.MsgType != MsgTypeEvent && in.MsgID != 0:
		key = strconv.AppendInt(append(buf[:0], "msg|"...), in.MsgID, 10)
	case in.Event == EventTemplateFinish && in.TemplateMsgID != 0:
		ev.MsgID = in.TemplateMsgID
		key = strconv.AppendInt(append(buf[:0], "tpl|"...), in.TemplateMsgID, 10)
	default:
		key = append(append(buf[:0], "evt|"...), in.FromUserName...)
		key = strconv.AppendInt(append(key, '|'), in.CreateTime, 10)
		key = append(append(append(append(key, '|'), in.MsgType...), '|'), in.Event...)
	}
	sum := sha256.Sum256(key)
	ev.DedupeKey = hex.EncodeToString(sum[:])
	return ev
}

// validSignature checks WeChat's signature, the hex SHA-1 of the sorted
// concatenation of the token and the other parts, in constant time. It is
// util.Signature without its allocations (it runs on every callback).
func validSignature(got, token string, parts ...string) bool {
	if len(got) != 2*sha1.Size || token == "" || len(parts) > 3 {
		return false
	}
	var arr [4]string
	all := append(arr[:0], token)
	all = append(all, parts...)
	slices.Sort(all)
	var buf [256]byte // enough unless a safe-mode ciphertext is signed
	joined := buf[:0]
	for _, p := range all {
		joined = append(joined, p...)
	}
	sum := sha1.Sum(joined)
	var want [2 * sha1.Size]byte
	hex.Encode(want[:], sum[:])
	return subtle.ConstantTimeCompare([]byte(got), want[:]) == 1
}

// callbackQuery holds the query parameters of a push.
type callbackQuery struct {
	signature, timestamp, nonce, echostr, encryptType, msgSignature string
}

// parseCallbackQuery reads the parameters as url.Values.Get would (the
// first value of each). WeChat's are plain (digits, hex, a word), so they
// are found in the raw query without allocating; a query with escapes or
// separators that need decoding goes through url.ParseQuery.
func parseCallbackQuery(raw string) callbackQuery {
	get := func(key string) string {
		for rest := raw; rest != ""; {
			var pair string
			pair, rest, _ = strings.Cut(rest, "&")
			if k, v, _ := strings.Cut(pair, "="); k == key {
				return v
			}
		}
		return ""
	}
	if strings.ContainsAny(raw, "%+;") {
		v, _ := url.ParseQuery(raw) // like URL.Query: bad pairs are dropped
		get = v.Get
	}
	return callbackQuery{signature: get("signature"), timestamp: get("timestamp"), nonce: get("nonce"),
		echostr: get("echostr"), encryptType: get("encrypt_type"), msgSignature: get("msg_signature")}
}

var errSafeModeOff = errors.New("safe-mode message but no EncodingAESKey configured")

// decryptBody verifies msg_signature over the ciphertext and decrypts it
// (AES-CBC; the plaintext ends with the AppID, which is checked too).
func decryptBody(body []byte, creds Credentials, timestamp, nonce, msgSignature string) ([]byte, error) {
	if creds.EncodingAESKey == "" {
		return nil, errSafeModeOff
	}
	env, err := parseInbound(body)
	if err != nil || env.Encrypt == "" {
		return nil, errors.New("malformed encrypted envelope")
	}
	if !validSignature(msgSignature, creds.Token, timestamp, nonce, env.Encrypt) {
		return nil, errors.New("bad msg_signature")
	}
	_, plain, err := util.DecryptMsg(creds.AppID, env.Encrypt, creds.EncodingAESKey)
	if err != nil {
		return nil, errors.New("cannot decrypt message")
	}
	return plain, nil
}

// textReply is WeChat's passive text reply.
type textReply struct {
	XMLName      xml.Name      `xml:"xml"`
	ToUserName   message.CDATA `xml:"ToUserName"`
	FromUserName message.CDATA `xml:"FromUserName"`
	CreateTime   int64         `xml:"CreateTime"`
	MsgType      message.CDATA `xml:"MsgType"`
	Content      message.CDATA `xml:"Content"`
}

func writeReply(w http.ResponseWriter, ev Event, text string, creds Credentials, safe bool, nonce string, now time.Time) error {
	plain, err := xml.Marshal(textReply{ToUserName: message.CDATA(ev.OpenID), FromUserName: message.CDATA(ev.AccountID),
		CreateTime: now.Unix(), MsgType: "text", Content: message.CDATA(text)})
	if err != nil {
		return err
	}
	out := plain
	if safe {
		random := make([]byte, 16)
		_, _ = rand.Read(random)
		enc, err := util.EncryptMsg(random, plain, creds.AppID, creds.EncodingAESKey)
		if err != nil {
			return err
		}
		ts := now.Unix()
		out, err = xml.Marshal(message.ResponseEncryptedXMLMsg{
			EncryptedMsg: string(enc),
			MsgSignature: util.Signature(creds.Token, strconv.FormatInt(ts, 10), nonce, string(enc)),
			Timestamp:    ts, Nonce: nonce,
		})
		if err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	_, err = w.Write(out)
	return err
}

var success = []byte("success")

var textPlain = []string{"text/plain; charset=utf-8"}

// writeSuccess is WeChat's "received, no reply" answer, valid in both modes.
func writeSuccess(w http.ResponseWriter) {
	w.Header()["Content-Type"] = textPlain // canonical key, shared value: nothing to allocate
	_, _ = w.Write(success)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
