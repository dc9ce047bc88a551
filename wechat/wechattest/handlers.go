package wechattest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// devCodePrefix marks convenience codes ("dev:<openid>", "dev:<phone>") that
// sandbox users can type by hand instead of obtaining a real code.
const devCodePrefix = "dev:"

// reply is a handler's answer, computed under the lock and written after it
// is released so a slow client cannot stall the simulator.
type reply struct {
	status      int    // 0 = 200
	json        any    // JSON body when non-nil
	location    string // 302 redirect target when non-empty
	contentType string
	raw         []byte
}

func (rp reply) write(w http.ResponseWriter, r *http.Request) {
	status := rp.status
	if status == 0 {
		status = http.StatusOK
	}
	switch {
	case rp.location != "":
		http.Redirect(w, r, rp.location, http.StatusFound)
	case rp.json != nil:
		writeJSON(w, status, rp.json)
	default:
		if rp.contentType != "" {
			w.Header().Set("Content-Type", rp.contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write(rp.raw)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	// WeChat's own (slightly odd) content type.
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

type errBody struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func errReply(code int) reply { return reply{json: errBody{code, errMsg(code)}} }

func okReply() reply { return reply{json: errBody{0, "ok"}} }

type msgIDBody struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
	MsgID   int64  `json:"msgid"`
}

// errMsg returns WeChat's message for well-known error codes.
func errMsg(code int) string {
	switch code {
	case 0:
		return "ok"
	case -1:
		return "system error"
	case 40001:
		return "invalid credential, access_token is invalid or not latest"
	case 40002:
		return "invalid grant_type"
	case 40003:
		return "invalid openid"
	case 40008:
		return "invalid message type"
	case 40013:
		return "invalid appid"
	case 40029:
		return "invalid code"
	case 40037:
		return "invalid template_id"
	case 40066:
		return "invalid url"
	case 40125:
		return "invalid appsecret"
	case 40163:
		return "code been used"
	case 40164:
		return "invalid ip, not in whitelist"
	case 41001:
		return "access_token missing"
	case 42001:
		return "access_token expired"
	case 43002:
		return "require POST method"
	case 43004:
		return "require subscribe"
	case 43101:
		return "user refuse to accept the msg"
	case 45009:
		return "reach max api daily quota limit"
	case 45011:
		return "api minute-quota reach limit  mustslower  retry next minute"
	case 45015:
		return "response out of time limit or subscription is canceled"
	case 45047:
		return "out of response count limit"
	case 47001:
		return "data format error"
	case 48001:
		return "api unauthorized"
	case 40097:
		return "invalid args"
	case 40016:
		return "invalid button size"
	case 40017:
		return "invalid button type"
	case 40018:
		return "invalid button name size"
	case 40019:
		return "invalid button key size"
	case 40027:
		return "invalid sub button url size"
	case 40055:
		return "invalid button url domain"
	case 46003:
		return "menu no exist"
	case 10003:
		return "redirect_uri domain mismatch"
	case 10005:
		return "unsupported scope"
	}
	return "simulated error"
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}

// route dispatches a request (already recorded, faults already applied).
func (s *Simulator) route(r *http.Request, path string, body []byte) reply {
	switch path {
	case "/cgi-bin/token":
		return s.handleToken(r)
	case "/cgi-bin/stable_token":
		return s.handleStableToken(r, body)
	case "/cgi-bin/message/template/send":
		return s.handleTemplateSend(r, body)
	case "/cgi-bin/message/subscribe/bizsend":
		return s.handleSubscribeSend(r, body, kindOA)
	case "/cgi-bin/message/subscribe/send":
		return s.handleSubscribeSend(r, body, kindMP)
	case "/cgi-bin/message/custom/send":
		return s.handleCustomSend(r, body)
	case "/cgi-bin/template/get_all_private_template":
		return s.handleTemplateList(r, kindOA)
	case "/wxaapi/newtmpl/gettemplate":
		return s.handleTemplateList(r, kindMP)
	case "/cgi-bin/user/info":
		return s.handleUserInfo(r)
	case "/cgi-bin/qrcode/create":
		return s.handleQRCreate(r, body)
	case "/cgi-bin/showqrcode":
		return s.handleShowQR(r)
	case "/cgi-bin/ticket/getticket":
		return s.handleJSAPITicket(r) // jsapi.go
	case "/cgi-bin/menu/create":
		return s.handleMenuCreate(r, body) // menu.go
	case "/cgi-bin/menu/get":
		return s.handleMenuGet(r)
	case "/sns/jscode2session":
		return s.handleCode2Session(r)
	case "/wxa/business/getuserphonenumber":
		return s.handlePhoneNumber(r, body)
	case "/sns/oauth2/access_token":
		return s.handleOAuthToken(r)
	case "/connect/oauth2/authorize":
		return s.handleAuthorize(r)
	case "/sns/userinfo":
		return s.handleWebUserInfo(r) // userinfo.go
	}
	return errReply(40066)
}

// ---- credentials ----

type tokenBody struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// credentialsLocked checks appid/secret; want == kindUnknown accepts any
// registered app.
func (s *Simulator) credentialsLocked(appID, secret string, want appKind) (*appState, int) {
	a := s.apps[appID]
	if a == nil || a.kind == kindUnknown || (want != kindUnknown && a.kind != want) {
		return nil, 40013
	}
	if secret != a.secret {
		return nil, 40125
	}
	return a, 0
}

// issueTokenLocked issues a new token for appID and stores it in slot
// (a.current or a.stable). The token previously in slot keeps working for
// the grace period only.
func (s *Simulator) issueTokenLocked(appID string, a *appState, slot *string) string {
	now := s.now()
	if old := s.tokens[*slot]; old != nil && !old.superseded {
		old.superseded = true
		if g := now.Add(tokenGrace); g.Before(old.expires) {
			old.expires = g
		}
	}
	for k, t := range s.tokens {
		if now.Sub(t.expires) > pruneAfter {
			delete(s.tokens, k)
		}
	}
	tok := randHex(32)
	s.tokens[tok] = &tokenState{appID: appID, kind: a.kind, expires: now.Add(tokenTTL)}
	*slot = tok
	return tok
}

// tokenErr reports why t cannot be used now (0 = usable).
func tokenErr(t *tokenState, now time.Time) int {
	switch {
	case t == nil || t.revoked:
		return 40001
	case now.Before(t.expires):
		return 0
	case t.superseded:
		// Replaced and past the grace period: WeChat says "not latest".
		return 40001
	default:
		return 42001
	}
}

// authLocked validates the access_token query parameter for an endpoint of
// app kind want and returns the app's id and state.
func (s *Simulator) authLocked(r *http.Request, want appKind) (string, *appState, int) {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		return "", nil, 41001
	}
	t := s.tokens[tok]
	if code := tokenErr(t, s.now()); code != 0 {
		return "", nil, code
	}
	a := s.apps[t.appID]
	if t.kind != want || a == nil {
		return "", nil, 40001
	}
	return t.appID, a, 0
}

func (s *Simulator) handleToken(r *http.Request) reply {
	q := r.URL.Query()
	if q.Get("grant_type") != "client_credential" {
		return errReply(40002)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, code := s.credentialsLocked(q.Get("appid"), q.Get("secret"), kindUnknown)
	if code != 0 {
		return errReply(code)
	}
	tok := s.issueTokenLocked(q.Get("appid"), a, &a.current)
	return reply{json: tokenBody{tok, int64(tokenTTL / time.Second)}}
}

func (s *Simulator) handleStableToken(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		return errReply(43002)
	}
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if json.Unmarshal(body, &req) != nil {
		return errReply(47001)
	}
	if req.GrantType != "client_credential" {
		return errReply(40002)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, code := s.credentialsLocked(req.AppID, req.Secret, kindUnknown)
	if code != 0 {
		return errReply(code)
	}
	now := s.now()
	if t := s.tokens[a.stable]; !req.ForceRefresh && t != nil && tokenErr(t, now) == 0 {
		// The stable endpoint hands out the same token while it is valid,
		// reporting the remaining lifetime.
		left := int64((t.expires.Sub(now) + time.Second - 1) / time.Second)
		return reply{json: tokenBody{a.stable, left}}
	}
	tok := s.issueTokenLocked(req.AppID, a, &a.stable)
	return reply{json: tokenBody{tok, int64(tokenTTL / time.Second)}}
}

// ---- messages ----

// dataItem is one {"value": ...} entry of template/subscribe data. The value
// is kept raw because mini-program subscribe values may be non-strings.
type dataItem struct {
	Value json.RawMessage `json:"value"`
}

func flattenData(in map[string]dataItem) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		var str string
		if json.Unmarshal(v.Value, &str) == nil {
			out[k] = str
		} else {
			out[k] = string(v.Value)
		}
	}
	return out
}

func (s *Simulator) newMsgIDLocked() int64 {
	id := s.nextMsgID
	s.nextMsgID++
	return id
}

func (s *Simulator) handleTemplateSend(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		return errReply(43002)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, a, code := s.authLocked(r, kindOA)
	if code != 0 {
		return errReply(code)
	}
	var req struct {
		ToUser      string              `json:"touser"`
		TemplateID  string              `json:"template_id"`
		URL         string              `json:"url"`
		Data        map[string]dataItem `json:"data"`
		MiniProgram struct {
			AppID    string `json:"appid"`
			PagePath string `json:"pagepath"`
		} `json:"miniprogram"`
	}
	if json.Unmarshal(body, &req) != nil {
		return errReply(47001)
	}
	u := a.users[req.ToUser]
	switch {
	case u == nil:
		return errReply(40003)
	case !u.follower:
		return errReply(43004)
	case a.templates[req.TemplateID] == "":
		return errReply(40037)
	}
	id := s.newMsgIDLocked()
	s.sent = append(s.sent, Sent{
		Kind: "template", AppID: appID, ToUser: req.ToUser, TemplateID: req.TemplateID,
		Data: flattenData(req.Data), URL: req.URL, Page: req.MiniProgram.PagePath,
		MsgID: id, At: s.now(),
	})
	return reply{json: msgIDBody{0, "ok", id}}
}

// handleSubscribeSend serves OA bizsend (kind == kindOA) and mini-program
// subscribe send (kind == kindMP); both spend one-time grants.
func (s *Simulator) handleSubscribeSend(r *http.Request, body []byte, kind appKind) reply {
	if r.Method != http.MethodPost {
		return errReply(43002)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, a, code := s.authLocked(r, kind)
	if code != 0 {
		return errReply(code)
	}
	var req struct {
		ToUser      string              `json:"touser"`
		TemplateID  string              `json:"template_id"`
		Page        string              `json:"page"`
		Data        map[string]dataItem `json:"data"`
		MiniProgram struct {
			PagePath string `json:"pagepath"`
		} `json:"miniprogram"`
	}
	if json.Unmarshal(body, &req) != nil {
		return errReply(47001)
	}
	if a.users[req.ToUser] == nil {
		return errReply(40003)
	}
	if a.templates[req.TemplateID] == "" {
		return errReply(40037)
	}
	k := grantKey{req.ToUser, req.TemplateID}
	if a.grants[k] <= 0 {
		return errReply(43101)
	}
	if a.grants[k]--; a.grants[k] == 0 {
		delete(a.grants, k)
	}
	m := Sent{
		AppID: appID, ToUser: req.ToUser, TemplateID: req.TemplateID,
		Data: flattenData(req.Data), Page: req.Page, At: s.now(),
	}
	if kind == kindOA {
		m.Kind = "oa_subscribe"
		if m.Page == "" {
			m.Page = req.MiniProgram.PagePath
		}
		s.sent = append(s.sent, m)
		return okReply() // bizsend returns no msgid
	}
	m.Kind = "mp_subscribe"
	m.MsgID = s.newMsgIDLocked()
	s.sent = append(s.sent, m)
	return reply{json: msgIDBody{0, "ok", m.MsgID}}
}

func (s *Simulator) handleCustomSend(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		return errReply(43002)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, a, code := s.authLocked(r, kindOA)
	if code != 0 {
		return errReply(code)
	}
	var req struct {
		ToUser  string `json:"touser"`
		MsgType string `json:"msgtype"`
		Text    *struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	if json.Unmarshal(body, &req) != nil {
		return errReply(47001)
	}
	if req.MsgType == "" {
		return errReply(40008)
	}
	u := a.users[req.ToUser]
	now := s.now()
	switch {
	case u == nil:
		return errReply(40003)
	case !u.follower:
		return errReply(43004)
	case u.lastInteract.IsZero() || now.Sub(u.lastInteract) > serviceWindow:
		return errReply(45015)
	}
	m := Sent{Kind: "custom", AppID: appID, ToUser: req.ToUser, At: now}
	if req.Text != nil {
		m.Content = req.Text.Content
	}
	s.sent = append(s.sent, m)
	return okReply()
}

// ---- users and QR codes ----

func (s *Simulator) handleUserInfo(r *http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, a, code := s.authLocked(r, kindOA)
	if code != 0 {
		return errReply(code)
	}
	openID := r.URL.Query().Get("openid")
	u := a.users[openID]
	if u == nil {
		return errReply(40003)
	}
	info := map[string]any{"subscribe": 0, "openid": openID}
	if u.unionID != "" {
		info["unionid"] = u.unionID
	}
	if !u.follower {
		// WeChat returns only these fields for non-followers.
		return reply{json: info}
	}
	info["subscribe"] = 1
	info["language"] = "zh_CN"
	info["subscribe_time"] = u.subscribeTime.Unix()
	info["remark"] = ""
	info["groupid"] = 0
	info["tagid_list"] = []int{}
	info["subscribe_scene"] = "ADD_SCENE_OTHERS"
	info["qr_scene"] = 0
	info["qr_scene_str"] = ""
	if u.scene != "" {
		info["subscribe_scene"] = "ADD_SCENE_QR_CODE"
		if n, err := strconv.Atoi(u.scene); err == nil {
			info["qr_scene"] = n
		} else {
			info["qr_scene_str"] = u.scene
		}
	}
	return reply{json: info}
}

const (
	maxTempQRSeconds = 2592000 // 30 days
	defaultQRSeconds = 60
	maxLimitSceneID  = 100000
	maxSceneStrLen   = 64
)

func (s *Simulator) handleQRCreate(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		return errReply(43002)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, _, code := s.authLocked(r, kindOA)
	if code != 0 {
		return errReply(code)
	}
	var req struct {
		ExpireSeconds int64  `json:"expire_seconds"`
		ActionName    string `json:"action_name"`
		ActionInfo    struct {
			Scene struct {
				SceneStr string `json:"scene_str"`
				SceneID  int64  `json:"scene_id"`
			} `json:"scene"`
		} `json:"action_info"`
	}
	if json.Unmarshal(body, &req) != nil {
		return errReply(47001)
	}
	sc := req.ActionInfo.Scene
	strOK := sc.SceneStr != "" && utf8.RuneCountInString(sc.SceneStr) <= maxSceneStrLen
	var scene string
	temporary := false
	switch req.ActionName {
	case "QR_SCENE":
		if sc.SceneID <= 0 || sc.SceneID > 1<<32-1 {
			return errReply(47001)
		}
		scene, temporary = strconv.FormatInt(sc.SceneID, 10), true
	case "QR_STR_SCENE":
		if !strOK {
			return errReply(47001)
		}
		scene, temporary = sc.SceneStr, true
	case "QR_LIMIT_SCENE":
		if sc.SceneID < 1 || sc.SceneID > maxLimitSceneID {
			return errReply(47001)
		}
		scene = strconv.FormatInt(sc.SceneID, 10)
	case "QR_LIMIT_STR_SCENE":
		if !strOK {
			return errReply(47001)
		}
		scene = sc.SceneStr
	default:
		return errReply(47001)
	}
	exp := req.ExpireSeconds
	if temporary {
		switch {
		case exp == 0:
			exp = defaultQRSeconds
		case exp < 0 || exp > maxTempQRSeconds:
			return errReply(47001)
		}
	}
	now := s.now()
	for k, t := range s.tickets {
		if !t.expires.IsZero() && now.Sub(t.expires) > pruneAfter {
			delete(s.tickets, k)
		}
	}
	// Tickets are URL-safe because the SDK's ShowQRCode does not escape them.
	ticket := "gQ" + randHex(24)
	qrURL := "http://weixin.qq.com/q/" + randHex(12)
	st := &ticketState{appID: appID, scene: scene}
	s.tickets[ticket] = st
	// No errcode/errmsg on success: the SDK treats any errmsg as an error.
	if !temporary {
		return reply{json: struct {
			Ticket string `json:"ticket"`
			URL    string `json:"url"`
		}{ticket, qrURL}}
	}
	st.expires = now.Add(time.Duration(exp) * time.Second)
	return reply{json: struct {
		Ticket        string `json:"ticket"`
		ExpireSeconds int64  `json:"expire_seconds"`
		URL           string `json:"url"`
	}{ticket, exp, qrURL}}
}

func (s *Simulator) handleShowQR(r *http.Request) reply {
	s.mu.Lock()
	t := s.tickets[r.URL.Query().Get("ticket")]
	ok := t != nil && (t.expires.IsZero() || s.now().Before(t.expires))
	s.mu.Unlock()
	if !ok {
		return reply{status: http.StatusNotFound, contentType: "text/plain; charset=utf-8", raw: []byte("not found\n")}
	}
	return reply{contentType: "image/png", raw: tinyPNG()}
}

// tinyPNG encodes a 1x1 white image; built per call so there is no
// package-level state.
func tinyPNG() []byte {
	img := image.NewGray(image.Rect(0, 0, 1, 1))
	img.Pix[0] = 0xff
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// ---- codes ----

// useCodeLocked consumes a code of the given kind issued for appID.
func (s *Simulator) useCodeLocked(code string, kind codeKind, appID string) (*codeState, int) {
	c := s.codes[code]
	switch {
	case c == nil || c.kind != kind || c.appID != appID:
		return nil, 40029
	case c.used:
		return nil, 40163
	case !s.now().Before(c.expires):
		return nil, 40029
	}
	c.used = true
	return c, 0
}

func (s *Simulator) handleCode2Session(r *http.Request) reply {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	appID := q.Get("appid")
	a, code := s.credentialsLocked(appID, q.Get("secret"), kindMP)
	if code != 0 {
		return errReply(code)
	}
	if q.Get("grant_type") != "authorization_code" {
		return errReply(40002)
	}
	var openID, unionID string
	if jsCode := q.Get("js_code"); strings.HasPrefix(jsCode, devCodePrefix) {
		openID = strings.TrimPrefix(jsCode, devCodePrefix)
		if openID == "" {
			return errReply(40029)
		}
		unionID = a.userLocked(openID, "").unionID
	} else {
		c, code := s.useCodeLocked(jsCode, codeLogin, appID)
		if code != 0 {
			return errReply(code)
		}
		openID, unionID = c.openID, c.unionID
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	// No errcode on success, like WeChat.
	return reply{json: struct {
		OpenID     string `json:"openid"`
		SessionKey string `json:"session_key"`
		UnionID    string `json:"unionid,omitempty"`
	}{openID, base64.StdEncoding.EncodeToString(key), unionID}}
}

type phoneWatermark struct {
	Timestamp int64  `json:"timestamp"`
	AppID     string `json:"appid"`
}

type phoneInfo struct {
	PhoneNumber     string         `json:"phoneNumber"`
	PurePhoneNumber string         `json:"purePhoneNumber"`
	CountryCode     string         `json:"countryCode"`
	Watermark       phoneWatermark `json:"watermark"`
}

// splitPhone turns "13800138000" or "+852 61234567" into WeChat's
// phoneNumber / purePhoneNumber / countryCode.
func splitPhone(p string) (full, pure, cc string) {
	if strings.HasPrefix(p, "+") {
		if i := strings.IndexByte(p, ' '); i > 1 {
			return p, p[i+1:], p[1:i]
		}
	}
	return p, p, "86"
}

func (s *Simulator) handlePhoneNumber(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		return errReply(43002)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, _, code := s.authLocked(r, kindMP)
	if code != 0 {
		return errReply(code)
	}
	var req struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &req) != nil {
		return errReply(47001)
	}
	var phone string
	if strings.HasPrefix(req.Code, devCodePrefix) && len(req.Code) > len(devCodePrefix) {
		phone = strings.TrimPrefix(req.Code, devCodePrefix)
	} else {
		c, code := s.useCodeLocked(req.Code, codePhone, appID)
		if code != 0 {
			return errReply(code)
		}
		phone = c.phone
	}
	full, pure, cc := splitPhone(phone)
	return reply{json: struct {
		ErrCode   int       `json:"errcode"`
		ErrMsg    string    `json:"errmsg"`
		PhoneInfo phoneInfo `json:"phone_info"`
	}{0, "ok", phoneInfo{full, pure, cc, phoneWatermark{s.now().Unix(), appID}}}}
}

// ---- H5 OAuth ----

func (s *Simulator) handleOAuthToken(r *http.Request) reply {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	appID := q.Get("appid")
	a, code := s.credentialsLocked(appID, q.Get("secret"), kindOA)
	if code != 0 {
		return errReply(code)
	}
	if q.Get("grant_type") != "authorization_code" {
		return errReply(40002)
	}
	c := &codeState{scope: "snsapi_base"}
	if oc := q.Get("code"); strings.HasPrefix(oc, devCodePrefix) {
		c.openID = strings.TrimPrefix(oc, devCodePrefix)
		if c.openID == "" {
			return errReply(40029)
		}
		c.unionID = a.userLocked(c.openID, "").unionID
	} else if c, code = s.useCodeLocked(oc, codeOAuth, appID); code != 0 {
		return errReply(code)
	}
	snap := 0
	if c.snapshot {
		snap = 1
	}
	return reply{json: struct {
		AccessToken    string `json:"access_token"`
		ExpiresIn      int64  `json:"expires_in"`
		RefreshToken   string `json:"refresh_token"`
		OpenID         string `json:"openid"`
		Scope          string `json:"scope"`
		IsSnapshotUser int    `json:"is_snapshotuser,omitempty"`
		UnionID        string `json:"unionid,omitempty"`
	}{s.issueWebTokenLocked(appID, c.openID, c.scope), int64(tokenTTL / time.Second), randHex(32), c.openID, c.scope, snap, c.unionID}}
}

// handleAuthorize plays the WeChat OAuth page: it immediately redirects to
// redirect_uri with a fresh code and the state. Sandbox-only query
// parameters choose the user: sandbox_openid (default: a new random
// o_sandbox_<hex>), sandbox_unionid and sandbox_snapshot=1.
func (s *Simulator) handleAuthorize(r *http.Request) reply {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	appID := q.Get("appid")
	if a := s.apps[appID]; a == nil || a.kind != kindOA {
		return errReply(40013)
	}
	target, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !target.IsAbs() || target.Host == "" {
		return errReply(10003)
	}
	scope := q.Get("scope")
	if scope == "" {
		scope = "snsapi_base"
	}
	if scope != "snsapi_base" && scope != "snsapi_userinfo" {
		return errReply(10005)
	}
	openID := q.Get("sandbox_openid")
	if openID == "" {
		openID = "o_sandbox_" + randHex(8)
	}
	code := s.oauthCodeLocked(appID, openID, q.Get("sandbox_unionid"), scope, q.Get("sandbox_snapshot") == "1")
	tq := target.Query()
	tq.Set("code", code)
	tq.Set("state", q.Get("state"))
	target.RawQuery = tq.Encode()
	return reply{location: target.String()}
}

// ---- inspection ----

func (s *Simulator) serveInspect(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, errBody{43002, "require GET method"})
		return
	}
	switch path {
	case "/_sim/sent":
		writeJSON(w, http.StatusOK, s.Sent())
	case "/_sim/requests":
		type jsonRequest struct {
			Method string     `json:"method"`
			Path   string     `json:"path"`
			Query  url.Values `json:"query"`
			Body   string     `json:"body"`
			At     time.Time  `json:"at"`
		}
		reqs := s.Requests()
		out := make([]jsonRequest, len(reqs))
		for i, rq := range reqs {
			out[i] = jsonRequest{rq.Method, rq.Path, rq.Query, string(rq.Body), rq.At}
		}
		writeJSON(w, http.StatusOK, out)
	default:
		writeJSON(w, http.StatusNotFound, errBody{40066, errMsg(40066)})
	}
}

// templateField is a {{name.DATA}} placeholder of a template's content.
var templateField = regexp.MustCompile(`\{\{\s*[A-Za-z0-9_]+\.DATA\s*\}\}`)

// title is a template's title: the one it was added with, else its id.
func (a *appState) title(id string) string {
	if t := a.titles[id]; t != "" {
		return t
	}
	return id
}

// handleTemplateList lists an official account's templates
// (get_all_private_template) or a mini-program's subscribe templates
// (newtmpl/gettemplate), in id order.
func (s *Simulator) handleTemplateList(r *http.Request, kind appKind) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, a, code := s.authLocked(r, kind)
	if code != 0 {
		return errReply(code)
	}
	ids := make([]string, 0, len(a.templates))
	for id := range a.templates {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if kind == kindOA {
		// WeChat's shape: the account's industries and an example with
		// each template.
		type item struct {
			TemplateID      string `json:"template_id"`
			Title           string `json:"title"`
			PrimaryIndustry string `json:"primary_industry"`
			DeputyIndustry  string `json:"deputy_industry"`
			Content         string `json:"content"`
			Example         string `json:"example"`
		}
		list := make([]item, len(ids))
		for i, id := range ids {
			list[i] = item{TemplateID: id, Title: a.title(id), PrimaryIndustry: "IT科技", DeputyIndustry: "互联网|电子商务",
				Content: a.templates[id], Example: templateField.ReplaceAllString(a.templates[id], "示例")}
		}
		return reply{json: map[string]any{"template_list": list}}
	}
	type item struct {
		PriTmplID string `json:"priTmplId"`
		Title     string `json:"title"`
		Content   string `json:"content"`
		Type      int    `json:"type"`
	}
	list := make([]item, len(ids))
	for i, id := range ids {
		list[i] = item{PriTmplID: id, Title: a.title(id), Content: a.templates[id], Type: 2}
	}
	return reply{json: map[string]any{"errcode": 0, "errmsg": "ok", "data": list}}
}
