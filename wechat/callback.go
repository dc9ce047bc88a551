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

// OriginalIDStore keeps an official account's original id learnt from a
// callback (admin.Merchants satisfies it). It stores the id only when the
// merchant has none yet, and makes the next AccountSource.Get see it.
type OriginalIDStore interface {
	LearnOriginalID(ctx context.Context, merchantID uint64, originalID string) error
}

// CallbackDeps are what a CallbackHandler works with. Accounts, Sink and Log
// are required.
type CallbackDeps struct {
	Accounts AccountSource
	Sink     Sink
	Keywords *Keywords // nil: no keyword replies
	// Nonces binds each signed query to its message; nil uses an in-memory
	// cache, right for a single instance only (give every instance the
	// same Redis-backed one).
	Nonces NonceCache
	// OriginalIDs learns an account's original id from its first verified
	// encrypted callback; nil: only the merchant's settings set it.
	OriginalIDs OriginalIDStore
	Log         *slog.Logger
	Now         func() time.Time // nil: time.Now
}

// CallbackHandler serves /wechat/:merchant_id/callback: URL verification
// (GET echostr) and pushed messages and events in plaintext and safe (AES)
// mode. It answers within WeChat's 5-second limit by only verifying,
// decrypting, parsing and handing the event to the Sink; the work an event
// causes happens after the answer.
//
// A merchant with an EncodingAESKey gets only encrypted callbacks
// (encrypt_type=aes and a valid msg_signature, which covers the message);
// plaintext ones, whose signature does not cover the body, are refused
// unless the merchant opted into compatible mode. Every push must also come
// from the merchant's account (ToUserName, once known), carry a CreateTime
// and timestamp within maxClockSkew of our clock, and be the one message
// its signed query was first seen with (NonceCache).
//
// It does not use the SDK's server.Server: that logs the raw decrypted XML
// (personal data) through the global logrus at debug level, parses into a
// very large struct, and in safe mode answers an empty reply with an
// encrypted empty payload instead of "success".
type CallbackHandler struct {
	accounts    AccountSource
	sink        Sink
	keywords    *Keywords
	nonces      NonceCache
	originalIDs OriginalIDStore
	log         *slog.Logger
	now         func() time.Time
	bodies      sync.Pool // *bytes.Buffer for request bodies
}

// MaxCallbackBody bounds a pushed message; real ones are a few hundred bytes.
const MaxCallbackBody = 64 << 10

// MaxOpenIDLength bounds a callback's FromUserName. WeChat's openids are 28
// characters of [A-Za-z0-9_-]; the service stores up to 64 (the openid
// columns), and a longer or otherwise shaped one is refused, never cut: a
// cut openid would be another person's id.
const MaxOpenIDLength = 64

// maxClockSkew is how far a callback's timestamp, and its message's
// CreateTime, may be from our clock. It bounds how long a captured, validly
// signed request can be replayed, and keeps a forged far-future CreateTime
// from outranking genuine events.
const maxClockSkew = 5 * time.Minute

// answerWithin bounds how long a callback waits for its event to be stored
// (and for a keyword reply). WeChat drops the connection after 5 seconds
// and retries; answering 503 before that frees the request and the
// connection, and the retry is deduplicated by the inbox whether or not the
// stalled write landed in the end.
const answerWithin = 3 * time.Second

// NewCallbackHandler returns the handler.
func NewCallbackHandler(d CallbackDeps) *CallbackHandler {
	if d.Keywords == nil {
		d.Keywords = &Keywords{}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Nonces == nil {
		d.Nonces = NewMemoryNonceCache(0, d.Now)
	}
	h := &CallbackHandler{accounts: d.Accounts, sink: d.Sink, keywords: d.Keywords, nonces: d.Nonces,
		originalIDs: d.OriginalIDs, log: d.Log, now: d.Now}
	h.bodies.New = func() any { return new(bytes.Buffer) }
	return h
}

// Serve handles one callback request for the merchant.
func (h *CallbackHandler) Serve(w http.ResponseWriter, r *http.Request, merchantID uint64) {
	started := time.Now() // the real clock: WeChat's 5 s run on it
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
	querySum, ok := checkSignature(q.signature, creds.Token, timestamp, nonce)
	if !ok {
		h.reject(ctx, w, merchantID, "bad signature")
		return
	}
	if r.Method == http.MethodGet {
		// URL verification when the merchant saves the callback URL, in
		// every mode: WeChat signs it like a plaintext push.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, q.echostr)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	now := h.now()
	if ts, err := strconv.ParseInt(timestamp, 10, 64); err != nil || !withinSkew(now, ts) {
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
	switch {
	case safe:
		if body, err = decryptBody(body, creds, timestamp, nonce, q.msgSignature); err != nil {
			h.reject(ctx, w, merchantID, err.Error())
			return
		}
	case creds.EncodingAESKey != "" && !creds.CompatibleMode:
		// The plaintext signature does not cover the body: accepting one
		// here would let a leaked push URL carry any message.
		h.reject(ctx, w, merchantID, "plaintext message to a safe-mode account")
		return
	}
	in, err := parseInbound(body)
	if err != nil || in.MsgType == "" {
		http.Error(w, "malformed message", http.StatusBadRequest)
		return
	}
	if !validOpenID(in.FromUserName) {
		http.Error(w, "malformed message: FromUserName is not an openid", http.StatusBadRequest)
		return
	}
	if creds.OriginalID != "" && in.ToUserName != creds.OriginalID {
		// The addressee is logged (cut short) so a mistyped original id in
		// the settings shows at once.
		h.reject(ctx, w, merchantID, "message to another account", "to_user_name", clipASCII(in.ToUserName, 32))
		return
	}
	if !withinSkew(now, in.CreateTime) {
		h.reject(ctx, w, merchantID, "CreateTime out of range")
		return
	}
	// Bound after every other check, so a refused request cannot take the
	// query away from the genuine message it was signed for.
	if fresh, err := h.nonces.Bind(ctx, NonceKey{MerchantID: merchantID, Signature: querySum}, messageSum(body)); err != nil {
		h.log.ErrorContext(ctx, "wechat callback: nonce cache", "merchant_id", merchantID, "error", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	} else if !fresh {
		h.reject(ctx, w, merchantID, "signed query reused with another message")
		return
	}
	if safe && creds.OriginalID == "" && h.originalIDs != nil {
		h.learnOriginalID(ctx, merchantID, in.ToUserName)
	}
	ev := in.event(merchantID)
	if !stored(ev) {
		// LOCATION reports (every 5 s per user when enabled), menu views and
		// the like: nothing here acts on them.
		h.log.DebugContext(ctx, "wechat callback: ignored", "merchant_id", merchantID, "msg_type", ev.MsgType, "event", ev.EventType)
		writeSuccess(w)
		return
	}
	ctx, cancel := context.WithDeadline(ctx, started.Add(answerWithin))
	defer cancel()
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

// learnOriginalID stores the account's original id from a verified
// encrypted callback. That is safe to trust: the message decrypted with the
// merchant's EncodingAESKey, ended with its AppID and matched a
// msg_signature only the token's holders (WeChat, the merchant) can make,
// so its ToUserName is the account WeChat delivers for, not something a
// sender chose. (Plaintext callbacks never teach it: their body is
// unsigned.) A failure only delays learning to a later callback.
func (h *CallbackHandler) learnOriginalID(ctx context.Context, merchantID uint64, originalID string) {
	if !ValidOriginalID(originalID) {
		h.log.WarnContext(ctx, "wechat callback: ToUserName is not an original id", "merchant_id", merchantID)
		return
	}
	if err := h.originalIDs.LearnOriginalID(ctx, merchantID, originalID); err != nil {
		h.log.ErrorContext(ctx, "wechat callback: learn original id", "merchant_id", merchantID, "error", err)
	}
}

// reject answers 403. why is one of a few fixed reasons (logs group by it);
// attrs may add details.
func (h *CallbackHandler) reject(ctx context.Context, w http.ResponseWriter, merchantID uint64, why string, attrs ...any) {
	h.log.WarnContext(ctx, "wechat callback rejected", append([]any{"merchant_id", merchantID, "reason", why}, attrs...)...)
	http.Error(w, "forbidden", http.StatusForbidden)
}

// clipASCII cuts s to n bytes for a log line.
func clipASCII(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// withinSkew reports whether the unix time ts is within maxClockSkew of now.
func withinSkew(now time.Time, ts int64) bool {
	d := now.Unix() - ts
	return d <= int64(maxClockSkew/time.Second) && d >= -int64(maxClockSkew/time.Second)
}

// validOpenID reports whether s is shaped like an openid: 1 to
// MaxOpenIDLength characters of [A-Za-z0-9_-].
func validOpenID(s string) bool {
	if s == "" || len(s) > MaxOpenIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// messageSum is the digest a signed query is bound to: of the message
// itself (decrypted in safe mode), so a plaintext copy of an encrypted
// push does not count as the same message.
func messageSum(msg []byte) MessageSum {
	full := sha256.Sum256(msg)
	return MessageSum(full[:16])
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

// checkSignature checks WeChat's signature, the hex SHA-1 of the sorted
// concatenation of the token and the other parts, in constant time, and
// returns the SHA-1. It is util.Signature without its allocations (it runs
// on every callback).
func checkSignature(got, token string, parts ...string) ([sha1.Size]byte, bool) {
	if len(got) != 2*sha1.Size || token == "" || len(parts) > 3 {
		return [sha1.Size]byte{}, false
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
	return sum, subtle.ConstantTimeCompare([]byte(got), want[:]) == 1
}

// validSignature is checkSignature's verdict alone.
func validSignature(got, token string, parts ...string) bool {
	_, ok := checkSignature(got, token, parts...)
	return ok
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
