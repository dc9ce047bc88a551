// Package wechat is the one place that talks to WeChat. It wraps
// github.com/silenceper/wechat/v2 so that the rest of the service sees small
// typed calls with context, typed errors (errors.Is with the Err* kinds),
// stable access tokens from a shared cache, and one retry after a rejected
// token. It also verifies and parses official-account callbacks.
//
// Feature packages never import the SDK: they declare the few methods they
// need as an interface and receive an *Account (or a fake) that satisfies it.
package wechat

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/credential"
	"github.com/silenceper/wechat/v2/miniprogram"
	mpauth "github.com/silenceper/wechat/v2/miniprogram/auth"
	mpconfig "github.com/silenceper/wechat/v2/miniprogram/config"
	mpsubscribe "github.com/silenceper/wechat/v2/miniprogram/subscribe"
	"github.com/silenceper/wechat/v2/officialaccount"
	"github.com/silenceper/wechat/v2/officialaccount/basic"
	oaconfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/menu"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/officialaccount/oauth"
	"github.com/silenceper/wechat/v2/officialaccount/user"
)

// Observer receives the outcome of every WeChat call (for metrics).
type Observer interface {
	ObserveCall(api string, err error, took time.Duration)
}

type nopObserver struct{}

func (nopObserver) ObserveCall(string, error, time.Duration) {}

// ErrNoMiniProgram is returned by mini-program calls when the merchant has
// none configured.
var ErrNoMiniProgram = fmt.Errorf("wechat: no mini-program configured: %w", ErrUnauthorized)

// Account is one merchant's WeChat applications. Every SDK sub-client is
// created here, once: the SDK's GetXxx() getters create them lazily without
// locking, which races under concurrent first use.
type Account struct {
	creds    Credentials
	endpoint Endpoint
	obs      Observer

	oaToken     *tokenSource
	template    *message.Template
	oaSubscribe *message.Subscribe
	custom      *message.Manager
	users       *user.User
	qr          *basic.Basic
	oauth       *oauth.Oauth
	ticket      *ticketSource // the JS-SDK's jsapi_ticket (jsapi.go)
	menu        *menu.Menu    // the custom menu (menu.go)

	mpToken     *tokenSource
	mpAuth      *mpauth.Auth
	mpSubscribe *mpsubscribe.Subscribe
}

// NewAccount builds the clients for one merchant. The SDK's HTTP client must
// already be installed (InstallHTTPClient).
func NewAccount(creds Credentials, endpoint Endpoint, tokens TokenCache, obs Observer) *Account {
	if obs == nil {
		obs = nopObserver{}
	}
	a := &Account{creds: creds, endpoint: endpoint, obs: obs}

	a.oaToken = newTokenSource("oa", creds.AppID, creds.AppSecret, tokens, obs)
	a.ticket = newTicketSource(creds.AppID, tokens)
	oa := officialaccount.NewOfficialAccount(&oaconfig.Config{
		AppID: creds.AppID, AppSecret: creds.AppSecret, Token: creds.Token,
		EncodingAESKey: creds.EncodingAESKey, Cache: noCache{}, UseStableAK: true,
	})
	oa.SetAccessTokenHandle(a.oaToken)
	oactx := oa.GetContext()
	a.template = message.NewTemplate(oactx)
	a.oaSubscribe = message.NewSubscribe(oactx)
	a.custom = message.NewMessageManager(oactx)
	a.users = user.NewUser(oactx)
	a.qr = basic.NewBasic(oactx)
	a.oauth = oauth.NewOauth(oactx)
	a.menu = menu.NewMenu(oactx)

	if creds.HasMiniProgram() {
		a.mpToken = newTokenSource("mp", creds.MPAppID, creds.MPAppSecret, tokens, obs)
		mp := miniprogram.NewMiniProgram(&mpconfig.Config{
			AppID: creds.MPAppID, AppSecret: creds.MPAppSecret, Cache: noCache{}, UseStableAK: true,
		})
		mp.SetAccessTokenContextHandle(a.mpToken)
		mpctx := mp.GetContext()
		a.mpAuth = mpauth.NewAuth(mpctx)
		a.mpSubscribe = mpsubscribe.NewSubscribe(mpctx)
	}
	return a
}

// Credentials returns the account's credentials (for callback verification).
func (a *Account) Credentials() Credentials { return a.creds }

// do runs one SDK call with the token retry, classification and metrics.
// On a rejected token it drops the cached token and tries exactly once more:
// with stable tokens the refetch returns the currently valid token.
func (a *Account) do(ctx context.Context, api string, tokens *tokenSource, call func() error) error {
	if err := ctx.Err(); err != nil {
		return classify(api, err)
	}
	start := time.Now()
	err := classify(api, call())
	if err != nil && tokens != nil && errors.Is(err, ErrTokenInvalid) {
		tokens.invalidate(ctx)
		err = classify(api, call())
	}
	a.obs.ObserveCall(api, errOrNil(err), time.Since(start))
	return errOrNil(err)
}

// errOrNil avoids returning a typed nil *APIError as a non-nil error.
func errOrNil(e *APIError) error {
	if e == nil {
		return nil
	}
	return e
}

func (a *Account) mp(api string) error {
	if a.mpAuth == nil {
		return &APIError{API: api, Msg: "no mini-program configured", Kind: ErrNoMiniProgram}
	}
	return nil
}

// TemplateMessage is an official-account template message to one follower.
type TemplateMessage struct {
	OpenID     string
	TemplateID string
	Data       map[string]string // keyword -> value
	URL        string            // optional link
	MiniAppID  string            // optional mini-program to open instead of URL
	MiniPage   string
	// ClientMsgID lets WeChat drop a repeat of the same message to the same
	// openid for a while (our delivery id fits).
	ClientMsgID string
}

// SendTemplate sends a template message and returns WeChat's msgid, which
// the TEMPLATESENDJOBFINISH receipt carries.
func (a *Account) SendTemplate(ctx context.Context, m TemplateMessage) (int64, error) {
	msg := &message.TemplateMessage{ToUser: m.OpenID, TemplateID: m.TemplateID, URL: m.URL,
		ClientMsgID: m.ClientMsgID, Data: make(map[string]*message.TemplateDataItem, len(m.Data))}
	for k, v := range m.Data {
		msg.Data[k] = &message.TemplateDataItem{Value: v}
	}
	msg.MiniProgram.AppID, msg.MiniProgram.PagePath = m.MiniAppID, m.MiniPage
	var id int64
	err := a.do(ctx, "template.send", a.oaToken, func() (err error) {
		id, err = a.template.Send(msg)
		return err
	})
	return id, err
}

// SubscribeMessage is a one-time subscribe message (official-account
// subscribe notification or mini-program subscribe message).
type SubscribeMessage struct {
	OpenID     string
	TemplateID string
	Data       map[string]string
	Page       string // mini-program page, or the link for the official account
}

// SendOASubscribe sends an official-account subscribe notification
// (bizsend). WeChat returns no msgid for it.
func (a *Account) SendOASubscribe(ctx context.Context, m SubscribeMessage) error {
	msg := &message.SubscribeMessage{ToUser: m.OpenID, TemplateID: m.TemplateID, Page: m.Page,
		Data: make(map[string]*message.SubscribeDataItem, len(m.Data))}
	for k, v := range m.Data {
		msg.Data[k] = &message.SubscribeDataItem{Value: v}
	}
	return a.do(ctx, "oa_subscribe.send", a.oaToken, func() error { return a.oaSubscribe.Send(msg) })
}

// SendMPSubscribe sends a mini-program subscribe message and returns its
// msgid.
func (a *Account) SendMPSubscribe(ctx context.Context, m SubscribeMessage) (int64, error) {
	if err := a.mp("mp_subscribe.send"); err != nil {
		return 0, err
	}
	msg := &mpsubscribe.Message{ToUser: m.OpenID, TemplateID: m.TemplateID, Page: m.Page,
		Data: make(map[string]*mpsubscribe.DataItem, len(m.Data))}
	for k, v := range m.Data {
		msg.Data[k] = &mpsubscribe.DataItem{Value: v}
	}
	var id int64
	err := a.do(ctx, "mp_subscribe.send", a.mpToken, func() (err error) {
		id, err = a.mpSubscribe.SendGetMsgID(msg)
		return err
	})
	return id, err
}

// SendCustomerText sends a customer-service text message (allowed only
// within 48 hours of the user's last interaction).
func (a *Account) SendCustomerText(ctx context.Context, openID, text string) error {
	return a.do(ctx, "custom.send", a.oaToken, func() error {
		return a.custom.Send(message.NewCustomerTextMessage(openID, text))
	})
}

// UserInfo is what the official account knows about a follower.
type UserInfo struct {
	OpenID      string
	UnionID     string
	Subscribed  bool
	SubscribeAt time.Time
	Scene       string // subscribe_scene, e.g. ADD_SCENE_QR_CODE
	QRScene     string // qr_scene_str, or qr_scene as text
}

// UserInfo fetches a follower's info (the unionid, when the official account
// is bound to an Open Platform account).
func (a *Account) UserInfo(ctx context.Context, openID string) (UserInfo, error) {
	var info *user.Info
	err := a.do(ctx, "user.info", a.oaToken, func() (err error) {
		info, err = a.users.GetUserInfo(openID)
		return err
	})
	if err != nil {
		return UserInfo{}, err
	}
	out := UserInfo{OpenID: info.OpenID, UnionID: info.UnionID, Subscribed: info.Subscribe == 1,
		Scene: info.SubscribeScene, QRScene: info.QrSceneStr}
	if info.SubscribeTime > 0 {
		out.SubscribeAt = time.Unix(int64(info.SubscribeTime), 0).UTC()
	}
	if out.QRScene == "" && info.QrScene != 0 {
		out.QRScene = fmt.Sprint(info.QrScene)
	}
	return out, nil
}

// QRRequest asks for a parametric QR code with a string scene.
type QRRequest struct {
	Scene     string        // 1-64 characters
	Permanent bool          // permanent codes are limited to 100,000 per account
	ExpiresIn time.Duration // temporary codes: up to 30 days
}

// QRCode is a created QR code.
type QRCode struct {
	Ticket    string
	URL       string    // the URL encoded in the code
	ImageURL  string    // where the image can be fetched
	ExpiresAt time.Time // zero for permanent codes
}

// CreateQRCode creates a parametric QR code. Followers who scan it arrive
// with the scene (qrscene_<scene> in the subscribe event).
func (a *Account) CreateQRCode(ctx context.Context, r QRRequest) (QRCode, error) {
	if r.Scene == "" || len(r.Scene) > 64 {
		return QRCode{}, &APIError{API: "qrcode.create", Msg: "scene must be 1-64 characters", Kind: ErrRejected}
	}
	// String scenes only: the SDK's request builders panic on integer kinds
	// other than int.
	var req *basic.Request
	if r.Permanent {
		req = basic.NewLimitQrRequest(r.Scene)
	} else {
		req = basic.NewTmpQrRequest(r.ExpiresIn, r.Scene)
	}
	var t *basic.Ticket
	err := a.do(ctx, "qrcode.create", a.oaToken, func() (err error) {
		t, err = a.qr.GetQRTicket(req)
		return err
	})
	if err != nil {
		return QRCode{}, err
	}
	out := QRCode{Ticket: t.Ticket, URL: t.URL, ImageURL: a.endpoint.Rewrite(basic.ShowQRCode(t))}
	if !r.Permanent && t.ExpireSeconds > 0 {
		out.ExpiresAt = time.Now().Add(time.Duration(t.ExpireSeconds) * time.Second).UTC()
	}
	return out, nil
}

// Session is the result of a mini-program login. The session_key is
// deliberately dropped: nothing here needs it (phone numbers come through
// the phone-number API) and not storing it is safer.
type Session struct {
	OpenID  string
	UnionID string
}

// Code2Session exchanges a mini-program wx.login code.
func (a *Account) Code2Session(ctx context.Context, code string) (Session, error) {
	if err := a.mp("mp.code2session"); err != nil {
		return Session{}, err
	}
	var res mpauth.ResCode2Session
	err := a.do(ctx, "mp.code2session", nil, func() (err error) {
		res, err = a.mpAuth.Code2SessionContext(ctx, code)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	return Session{OpenID: res.OpenID, UnionID: res.UnionID}, nil
}

// Phone is a verified phone number.
type Phone struct {
	Number      string // without country code, as WeChat's purePhoneNumber
	CountryCode string
}

// PhoneNumber exchanges a getPhoneNumber button code for the user's number.
func (a *Account) PhoneNumber(ctx context.Context, code string) (Phone, error) {
	if err := a.mp("mp.phone_number"); err != nil {
		return Phone{}, err
	}
	var res *mpauth.GetPhoneNumberResponse
	err := a.do(ctx, "mp.phone_number", a.mpToken, func() (err error) {
		res, err = a.mpAuth.GetPhoneNumberContext(ctx, code)
		return err
	})
	if err != nil {
		return Phone{}, err
	}
	return Phone{Number: res.PhoneInfo.PurePhoneNumber, CountryCode: res.PhoneInfo.CountryCode}, nil
}

// OAuthURL returns the official-account web authorization URL (snsapi_base:
// silent, openid only) that sends the browser back to redirectURI with a
// code and state.
func (a *Account) OAuthURL(redirectURI, state string) string {
	return a.OAuthURLScope(redirectURI, state, "snsapi_base")
}

// OAuthURLScope is OAuthURL with another scope (snsapi_userinfo: WeChat
// asks the user to share their name and avatar).
func (a *Account) OAuthURLScope(redirectURI, state, scope string) string {
	u, _ := a.oauth.GetRedirectURL(redirectURI, scope, state) // never fails
	return a.endpoint.Rewrite(u)
}

// OAuthUser is the identity behind an H5 OAuth code.
type OAuthUser struct {
	OpenID  string
	UnionID string
	// Snapshot is set for the virtual users of WeChat's Moments "snapshot
	// page" mode; they are not real people and must not become members.
	Snapshot bool
	// Nickname and AvatarURL are what a user who granted snsapi_userinfo
	// shares; empty for snsapi_base. ProfileErr is why they are missing
	// when the user granted it but reading them failed (the sign-in
	// itself stands: the code is spent, and the identity is known).
	Nickname, AvatarURL string
	ProfileErr          error
}

// OAuthExchange exchanges an H5 OAuth code.
func (a *Account) OAuthExchange(ctx context.Context, code string) (OAuthUser, error) {
	var res oauth.ResAccessToken
	err := a.do(ctx, "oauth.access_token", nil, func() (err error) {
		res, err = a.oauth.GetUserAccessTokenContext(ctx, code)
		return err
	})
	if err != nil {
		return OAuthUser{}, err
	}
	u := OAuthUser{OpenID: res.OpenID, UnionID: res.UnionID, Snapshot: res.IsSnapShotUser == 1}
	if strings.Contains(res.Scope, "snsapi_userinfo") && !u.Snapshot {
		var info oauth.UserInfo
		u.ProfileErr = a.do(ctx, "oauth.userinfo", nil, func() (err error) {
			info, err = a.oauth.GetUserInfoContext(ctx, res.AccessToken, res.OpenID, "zh_CN")
			return err
		})
		if u.ProfileErr == nil {
			u.Nickname, u.AvatarURL = info.Nickname, info.HeadImgURL
		}
	}
	return u, nil
}

// noCache satisfies the SDK configs, which insist on a cache; tokens are
// cached by tokenSource instead, and nothing else in the used clients
// caches.
type noCache struct{}

func (noCache) Get(string) any                       { return nil }
func (noCache) Set(string, any, time.Duration) error { return nil }
func (noCache) IsExist(string) bool                  { return false }
func (noCache) Delete(string) error                  { return nil }

var _ credential.AccessTokenContextHandle = (*tokenSource)(nil)

// Template is a message template of an official account (template
// message) or of a mini-program (subscribe message).
type Template struct {
	ID      string
	Title   string
	Content string
	// Fields are the names a message fills, from the content's
	// {{name.DATA}} placeholders, in order.
	Fields []string
}

var templateField = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\.DATA\s*\}\}`)

func newTemplate(id, title, content string) Template {
	t := Template{ID: id, Title: title, Content: content}
	for _, m := range templateField.FindAllStringSubmatch(content, -1) {
		if !slices.Contains(t.Fields, m[1]) {
			t.Fields = append(t.Fields, m[1])
		}
	}
	return t
}

// Templates lists the official account's template-message templates.
func (a *Account) Templates(ctx context.Context) ([]Template, error) {
	var list []*message.TemplateItem
	err := a.do(ctx, "template.list", a.oaToken, func() (err error) {
		list, err = a.template.List()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Template, 0, len(list))
	for _, t := range list {
		out = append(out, newTemplate(t.TemplateID, t.Title, t.Content))
	}
	return out, nil
}

// MPTemplates lists the mini-program's subscribe-message templates.
func (a *Account) MPTemplates(ctx context.Context) ([]Template, error) {
	if err := a.mp("mp_subscribe.templates"); err != nil {
		return nil, err
	}
	var list *mpsubscribe.TemplateList
	err := a.do(ctx, "mp_subscribe.templates", a.mpToken, func() (err error) {
		list, err = a.mpSubscribe.ListTemplates()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Template, 0, len(list.Data))
	for _, t := range list.Data {
		out = append(out, newTemplate(t.PriTmplID, t.Title, t.Content))
	}
	return out, nil
}
