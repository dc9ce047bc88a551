// Package wechattest is a fake WeChat API server (a "simulator") for tests
// and for the loyalty service's sandbox mode.
//
// A Simulator is an http.Handler that answers the WeChat endpoints the
// backend reaches through the silenceper SDK (access tokens, template and
// subscribe messages, customer-service messages, user info, QR codes,
// mini-program login and phone number, H5 OAuth) with the JSON shapes the SDK
// parses. Requests for *.weixin.qq.com hosts are expected to be rewritten to
// the simulator's base URL with path and query kept, so a request arrives as
// e.g. "/cgi-bin/token?grant_type=...".
//
// When the simulator is mounted under a path prefix, pass
// WithPathPrefix("/sandbox/wechat-api"): a request path that starts with the
// prefix has it stripped before routing, and everything the simulator reports
// (Request.Path, Script and CountRequests paths) uses the bare WeChat path.
// Requests that do not carry the prefix are routed as they are.
//
// WeChat-side state (apps, followers, templates, grants, codes) is set up
// directly through methods such as AddOfficialAccount, Follow and LoginCode;
// failures are scripted with Script, SetFault and SetLatency; what the backend did is
// observed with Requests and Sent. Endpoint builds the signed callback
// requests WeChat itself would POST to the backend.
//
// Errors are answered the way WeChat does: HTTP 200 with
// {"errcode":N,"errmsg":"..."}.
package wechattest

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// tokenTTL is the lifetime WeChat gives every access_token.
	tokenTTL = 7200 * time.Second
	// tokenGrace is how long a superseded access_token keeps working
	// after a new one was issued, as WeChat does.
	tokenGrace = 5 * time.Minute
	// codeTTL is the lifetime of login, phone and OAuth codes.
	codeTTL = 5 * time.Minute
	// serviceWindow is how long after a user's last interaction the
	// official account may send customer-service messages.
	serviceWindow = 48 * time.Hour
	// pruneAfter is how long expired tokens, codes and tickets are
	// remembered (to answer "expired" rather than "invalid") before they
	// are forgotten, so a long-running sandbox does not grow forever.
	pruneAfter = 24 * time.Hour
	// firstMsgID is the first msgid handed out by the simulator.
	firstMsgID = 1000001
	// maxBody caps the request bodies the simulator reads.
	maxBody = 10 << 20
)

// appKind tells official accounts and mini programs apart: their tokens are
// not interchangeable.
type appKind int

const (
	kindUnknown appKind = iota // referenced by a state method before registration
	kindOA
	kindMP
)

// Simulator is a fake WeChat API server. It implements http.Handler and is
// safe for concurrent use. Create it with New.
type Simulator struct {
	now    func() time.Time
	prefix string

	mu        sync.Mutex
	apps      map[string]*appState
	tokens    map[string]*tokenState
	codes     map[string]*codeState
	tickets   map[string]*ticketState
	jsapi     map[string]*jsapiTicket // app id -> its jsapi_ticket (jsapi.go)
	menus     map[string][]simButton  // app id -> its custom menu (menu.go)
	webTokens map[string]*webToken    // H5 OAuth access tokens (userinfo.go)
	nextMsgID int64
	requests  []Request
	sent      []Sent
	scripts   map[string][]Fault
	latency   map[string]time.Duration
	standing  map[string]Fault
}

type appState struct {
	secret    string
	kind      appKind
	templates map[string]string // template id -> content ("{{first.DATA}}...")
	titles    map[string]string // template id -> title, when not the id
	users     map[string]*userState
	grants    map[grantKey]int
	current   string // latest token from /cgi-bin/token
	stable    string // latest token from /cgi-bin/stable_token
}

type grantKey struct{ openID, templateID string }

type userState struct {
	unionID       string
	follower      bool
	subscribeTime time.Time
	lastInteract  time.Time
	scene         string // QR scene the user followed through, "" = none
	nickname      string // what snsapi_userinfo shares (userinfo.go)
	avatar        string
}

type tokenState struct {
	appID      string
	kind       appKind
	expires    time.Time
	superseded bool // a newer token exists; expiry was shortened to the grace period
	revoked    bool // InvalidateTokens
}

type codeKind int

const (
	codeLogin codeKind = iota
	codePhone
	codeOAuth
)

type codeState struct {
	kind     codeKind
	appID    string
	openID   string
	unionID  string
	phone    string
	scope    string
	snapshot bool
	expires  time.Time
	used     bool
}

type ticketState struct {
	appID   string
	scene   string
	expires time.Time // zero = permanent
}

// Option configures a Simulator.
type Option func(*Simulator)

// WithClock sets the clock used for token expiry, code expiry and the 48 h
// customer-service window. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Simulator) {
		if now != nil {
			s.now = now
		}
	}
}

// WithPathPrefix makes the simulator strip prefix (e.g. "/sandbox/wechat-api")
// from request paths before routing. Paths without the prefix are routed
// unchanged.
func WithPathPrefix(prefix string) Option {
	return func(s *Simulator) {
		s.prefix = strings.TrimRight(prefix, "/")
	}
}

// New returns an empty simulator: no apps, no users.
func New(opts ...Option) *Simulator {
	s := &Simulator{
		now:       time.Now,
		apps:      map[string]*appState{},
		tokens:    map[string]*tokenState{},
		codes:     map[string]*codeState{},
		tickets:   map[string]*ticketState{},
		jsapi:     map[string]*jsapiTicket{},
		menus:     map[string][]simButton{},
		webTokens: map[string]*webToken{},
		nextMsgID: firstMsgID,
		scripts:   map[string][]Fault{},
		latency:   map[string]time.Duration{},
		standing:  map[string]Fault{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// App is a registered WeChat application.
type App struct {
	AppID, Secret string
}

// AddOfficialAccount registers (or re-registers with a new secret) an
// official account.
func (s *Simulator) AddOfficialAccount(a App) { s.addApp(a, kindOA) }

// AddMiniProgram registers (or re-registers with a new secret) a mini program.
func (s *Simulator) AddMiniProgram(a App) { s.addApp(a, kindMP) }

func (s *Simulator) addApp(a App, kind appKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.appLocked(a.AppID)
	st.secret = a.Secret
	st.kind = kind
}

// appLocked returns the state of appID, creating an unregistered record if
// needed. Creating it lazily lets tests set up users before (or without)
// registering the app; an unregistered app can never obtain a token.
func (s *Simulator) appLocked(appID string) *appState {
	a := s.apps[appID]
	if a == nil {
		a = &appState{
			templates: map[string]string{},
			users:     map[string]*userState{},
			grants:    map[grantKey]int{},
		}
		s.apps[appID] = a
	}
	return a
}

// userLocked returns the user openID of app a, creating it (as known to the
// app but not a follower) if needed. A non-empty unionID is recorded.
func (a *appState) userLocked(openID, unionID string) *userState {
	u := a.users[openID]
	if u == nil {
		u = &userState{}
		a.users[openID] = u
	}
	if unionID != "" {
		u.unionID = unionID
	}
	return u
}

// AddTemplate registers templateID for appID. The set is shared by official
// account template messages and official account / mini program subscribe
// messages.
func (s *Simulator) AddTemplate(appID, templateID string) {
	s.AddTemplateContent(appID, templateID, DefaultTemplateContent)
}

// DefaultTemplateContent is the content of templates added with
// AddTemplate: the classic first / keyword1-3 / remark layout.
const DefaultTemplateContent = "{{first.DATA}}\n会员：{{keyword1.DATA}}\n内容：{{keyword2.DATA}}\n时间：{{keyword3.DATA}}\n{{remark.DATA}}"

// AddTemplateContent registers a template with its content, whose
// {{name.DATA}} placeholders are the fields a message fills.
func (s *Simulator) AddTemplateContent(appID, templateID, content string) {
	s.AddTemplateTitled(appID, templateID, templateID, content)
}

// AddTemplateTitled registers a template with the title the template list
// reports (WeChat's library title, e.g. 会员积分变动提醒) and its content.
func (s *Simulator) AddTemplateTitled(appID, templateID, title, content string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appLocked(appID)
	a.templates[templateID] = content
	if a.titles == nil {
		a.titles = map[string]string{}
	}
	a.titles[templateID] = title
}

// Follow makes openID a follower of the official account appID. unionID is
// optional ("" = none, or keep the one already known). Following counts as an
// interaction and opens the 48 h customer-service window.
func (s *Simulator) Follow(appID, openID, unionID string) {
	s.FollowScene(appID, openID, unionID, "")
}

// FollowScene is Follow through a parametric QR code: user info then reports
// subscribe_scene ADD_SCENE_QR_CODE and the scene in qr_scene (numeric
// scenes) or qr_scene_str.
func (s *Simulator) FollowScene(appID, openID, unionID, scene string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	u := s.appLocked(appID).userLocked(openID, unionID)
	u.follower = true
	u.subscribeTime = now
	u.lastInteract = now
	u.scene = scene
}

// Unfollow makes openID stop following appID. The user stays known to the
// app (user info answers subscribe 0). Unknown users are ignored.
func (s *Simulator) Unfollow(appID, openID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.appLocked(appID).users[openID]; u != nil {
		u.follower = false
	}
}

// Interact records that openID sent a message to or clicked in appID, which
// opens the 48 h customer-service window.
func (s *Simulator) Interact(appID, openID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appLocked(appID).userLocked(openID, "").lastInteract = s.now()
}

// Grant gives openID n more one-time subscribe grants for templateID of
// appID. Each successful OA bizsend or MP subscribe send spends one. The
// user becomes known to the app.
func (s *Simulator) Grant(appID, openID, templateID string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appLocked(appID)
	a.userLocked(openID, "")
	k := grantKey{openID, templateID}
	a.grants[k] += n
	if a.grants[k] <= 0 {
		delete(a.grants, k)
	}
}

// LoginCode returns a mini-program wx.login code for openID (unionID optional)
// to be exchanged by /sns/jscode2session. It is single use and valid 5 min.
// The user becomes known to the app.
func (s *Simulator) LoginCode(appID, openID, unionID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appLocked(appID).userLocked(openID, unionID)
	return s.newCodeLocked(&codeState{kind: codeLogin, appID: appID, openID: openID, unionID: unionID})
}

// PhoneCode returns a code for /wxa/business/getuserphonenumber. It is single
// use and valid 5 min. phone is a mainland number such as "13800138000"
// (country code 86); other countries can be given as "+852 61234567".
func (s *Simulator) PhoneCode(appID, phone string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newCodeLocked(&codeState{kind: codePhone, appID: appID, phone: phone})
}

// OAuthCode returns an H5 OAuth code (scope snsapi_base) for openID to be
// exchanged by /sns/oauth2/access_token. snapshot marks a "snapshot page"
// virtual user (is_snapshotuser=1). It is single use and valid 5 min. The
// user becomes known to the app.
func (s *Simulator) OAuthCode(appID, openID, unionID string, snapshot bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oauthCodeLocked(appID, openID, unionID, "snsapi_base", snapshot)
}

func (s *Simulator) oauthCodeLocked(appID, openID, unionID, scope string, snapshot bool) string {
	u := s.appLocked(appID).userLocked(openID, unionID)
	return s.newCodeLocked(&codeState{
		kind: codeOAuth, appID: appID, openID: openID, unionID: u.unionID,
		scope: scope, snapshot: snapshot,
	})
}

func (s *Simulator) newCodeLocked(c *codeState) string {
	now := s.now()
	for k, old := range s.codes {
		if now.Sub(old.expires) > pruneAfter {
			delete(s.codes, k)
		}
	}
	c.expires = now.Add(codeTTL)
	code := randHex(16)
	s.codes[code] = c
	return code
}

// InvalidateTokens simulates someone else force-refreshing appID's
// credentials: every token issued so far for appID becomes invalid (40001).
func (s *Simulator) InvalidateTokens(appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if t.appID == appID {
			t.revoked = true
		}
	}
	if a := s.apps[appID]; a != nil {
		a.current, a.stable = "", ""
	}
}

// QRScene reports the app and scene of a ticket returned by
// /cgi-bin/qrcode/create, e.g. to build the SubscribeEvent or ScanEvent a
// user scanning that code would cause. Expired tickets are still reported.
func (s *Simulator) QRScene(ticket string) (appID, scene string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tickets[ticket]
	if t == nil {
		return "", "", false
	}
	return t.appID, t.scene, true
}

// Fault is a scripted misbehaviour for one request.
type Fault struct {
	ErrCode    int           // WeChat errcode to answer with (0 = none)
	ErrMsg     string        // default: a realistic message for known codes
	HTTPStatus int           // if non-zero, answer with this HTTP status and an empty body instead (e.g. 502); wins over ErrCode
	Body       string        // if non-empty, answer 200 with this body as JSON (a broken or odd answer); wins over ErrCode
	Latency    time.Duration // sleep before answering (respects request context cancellation)
	Hang       bool          // never answer until the client gives up (request context done)
}

// Script queues faults for path (the bare WeChat path, e.g.
// "/cgi-bin/message/template/send"). Each matching request consumes the next
// fault, in order; once the queue is empty requests are handled normally. A
// fault with only Latency delays the request and then handles it normally.
func (s *Simulator) Script(path string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[path] = append(s.scripts[path], faults...)
}

// SetLatency sets a persistent latency for path ("" = all paths; a
// path-specific latency overrides the "" one). d <= 0 removes it.
func (s *Simulator) SetLatency(path string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.latency, path)
		return
	}
	s.latency[path] = d
}

// SetFault makes every request for path ("" = all paths; a path-specific
// fault overrides the "" one) answer with f until ClearFault or ClearFaults,
// e.g. an outage of the send API answering 45011, or hanging until the
// client times out. A scripted fault (Script) for the request wins over it.
func (s *Simulator) SetFault(path string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.standing[path] = f
}

// ClearFault removes the fault SetFault put on path.
func (s *Simulator) ClearFault(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.standing, path)
}

// ClearFaults drops all scripted and standing faults and latencies.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearFaultsLocked()
}

func (s *Simulator) clearFaultsLocked() {
	s.scripts = map[string][]Fault{}
	s.latency = map[string]time.Duration{}
	s.standing = map[string]Fault{}
}

// nextFault returns the persistent latency for path and pops its next
// scripted fault, if any; without one, the standing fault (SetFault).
func (s *Simulator) nextFault(path string) (time.Duration, *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lat, ok := s.latency[path]
	if !ok {
		lat = s.latency[""]
	}
	q := s.scripts[path]
	if len(q) == 0 {
		if f, ok := s.standing[path]; ok {
			return lat, &f
		}
		if f, ok := s.standing[""]; ok {
			return lat, &f
		}
		return lat, nil
	}
	f := q[0]
	if len(q) == 1 {
		delete(s.scripts, path)
	} else {
		s.scripts[path] = q[1:]
	}
	return lat, &f
}

// Request is one request received by the simulator.
type Request struct {
	Method string
	Path   string // bare WeChat path (prefix stripped)
	Query  url.Values
	Body   []byte
	At     time.Time // simulator clock
}

// Requests returns a copy of every request received (inspection requests
// under /_sim/ excluded), in order.
func (s *Simulator) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Query = cloneValues(r.Query)
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// CountRequests returns how many requests for path were received.
func (s *Simulator) CountRequests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Path == path {
			n++
		}
	}
	return n
}

// Sent is one message WeChat accepted for delivery.
type Sent struct {
	Kind       string            `json:"kind"` // "template", "oa_subscribe", "mp_subscribe", "custom"
	AppID      string            `json:"appid"`
	ToUser     string            `json:"touser"`
	TemplateID string            `json:"template_id,omitempty"`
	Data       map[string]string `json:"data,omitempty"` // keyword -> value (flattened from {"k":{"value":...}}; non-string values as JSON text)
	URL        string            `json:"url,omitempty"`  // template "url"
	Page       string            `json:"page,omitempty"` // template miniprogram.pagepath; subscribe "page" (OA bizsend: miniprogram.pagepath when "page" is empty)
	Content    string            `json:"content,omitempty"`
	MsgID      int64             `json:"msgid,omitempty"` // 0 where WeChat returns none (bizsend, custom)
	At         time.Time         `json:"at"`
}

// NextMsgID is the msgid the next message sent will get (msgids count up),
// so a test can deliver a message's receipt before the sender has recorded
// the send, as WeChat sometimes does.
func (s *Simulator) NextMsgID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextMsgID
}

// Sent returns a copy of the successfully sent messages, in order.
func (s *Simulator) Sent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Sent, len(s.sent))
	for i, m := range s.sent {
		if m.Data != nil {
			d := make(map[string]string, len(m.Data))
			for k, v := range m.Data {
				d[k] = v
			}
			m.Data = d
		}
		out[i] = m
	}
	return out
}

// Reset forgets requests, sent messages and faults. Apps, users, templates,
// grants, tokens and codes stay.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.sent = nil
	s.clearFaultsLocked()
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// stripPrefix maps a request path to the bare WeChat path.
func (s *Simulator) stripPrefix(p string) string {
	if s.prefix == "" {
		return p
	}
	if p == s.prefix {
		return "/"
	}
	if strings.HasPrefix(p, s.prefix+"/") {
		return p[len(s.prefix):]
	}
	return p
}

// sleepCtx sleeps for d or until ctx is done; it reports whether the full
// duration elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ServeHTTP records the request, applies faults and answers like WeChat.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := s.stripPrefix(r.URL.Path)
	if strings.HasPrefix(path, "/_sim/") {
		// Inspection endpoints are not WeChat traffic: not recorded, no faults.
		s.serveInspect(w, r, path)
		return
	}
	var body []byte
	if r.Body != nil {
		// A truncated body is recorded as read; handlers then see malformed JSON.
		body, _ = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method,
		Path:   path,
		Query:  cloneValues(r.URL.Query()),
		Body:   body,
		At:     s.now(),
	})
	s.mu.Unlock()

	ctx := r.Context()
	lat, f := s.nextFault(path)
	if !sleepCtx(ctx, lat) {
		return
	}
	if f != nil {
		if f.Hang {
			<-ctx.Done()
			return
		}
		if !sleepCtx(ctx, f.Latency) {
			return
		}
		if f.HTTPStatus != 0 {
			w.WriteHeader(f.HTTPStatus)
			return
		}
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, f.Body)
			return
		}
		if f.ErrCode != 0 {
			msg := f.ErrMsg
			if msg == "" {
				msg = errMsg(f.ErrCode)
			}
			writeJSON(w, http.StatusOK, errBody{f.ErrCode, msg})
			return
		}
	}
	s.route(r, path, body).write(w, r)
}
