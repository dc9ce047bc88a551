package member

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/internal/ratelimit"
)

// Handler serves the member-facing API.
type Handler struct {
	svc    *Service
	tokens *Tokens
	o      HandlerOptions
}

// LoginLimiter takes one login for a key; ratelimit.Local and
// ratelimit.Redis satisfy it.
type LoginLimiter interface {
	Allow(ctx context.Context, key string, l ratelimit.Limit) (retryAfter time.Duration, err error)
}

// LoginLimits bound member logins per minute. Each login (mini-program or
// H5) spends one of the merchant's WeChat code exchanges (code2session or
// the OAuth token call), which WeChat rations; a flood from one client, or
// against one merchant, is refused here before WeChat is called.
type LoginLimits struct {
	PerClient   int // per client address, across merchants
	PerMerchant int // per merchant, across clients
}

// HandlerOptions configure the member API.
type HandlerOptions struct {
	// Limiter counts logins; nil means an in-memory one (one instance).
	Limiter LoginLimiter
	// Limits; zero fields take the defaults (60 per client, 6000 per
	// merchant, per minute).
	Limits LoginLimits
	// Log receives limiter failures; nil discards them.
	Log *slog.Logger
	// Codes issues member codes (GET .../member-code); nil leaves the
	// route out.
	Codes *Codes
	// JSSDK signs JS-SDK configurations (GET .../jssdk-config) for pages
	// under PageOrigin (the service's public URL); nil leaves the route out.
	JSSDK      JSSigner
	PageOrigin string
}

// NewHandler returns the member API handler.
func NewHandler(svc *Service, tokens *Tokens, o HandlerOptions) *Handler {
	if o.Limiter == nil {
		o.Limiter = ratelimit.NewLocal(svc.now)
	}
	if o.Limits.PerClient <= 0 {
		o.Limits.PerClient = 60
	}
	if o.Limits.PerMerchant <= 0 {
		o.Limits.PerMerchant = 6000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{svc: svc, tokens: tokens, o: o}
}

// allowLogin takes one login of the client and then of the merchant, and
// refuses with 429 and Retry-After when either is spent. A client refused
// on its own limit spends nothing of the merchant's. When the limiter
// itself fails (Redis down) the login goes through: the limit guards a
// quota, not an account, and must not take member logins down with it.
func (h *Handler) allowLogin(c *gin.Context, merchantID uint64) error {
	ctx := c.Request.Context()
	for _, k := range []struct {
		key string
		n   int
	}{
		{"member-login:client:" + c.ClientIP(), h.o.Limits.PerClient},
		{"member-login:merchant:" + strconv.FormatUint(merchantID, 10), h.o.Limits.PerMerchant},
	} {
		wait, err := h.o.Limiter.Allow(ctx, k.key, ratelimit.Limit{N: k.n, Per: time.Minute})
		if err != nil {
			h.o.Log.ErrorContext(ctx, "member login limiter failed; letting the login through", "merchant_id", merchantID, "error", err)
			return nil
		}
		if wait > 0 {
			return &apperr.RetryAfter{Seconds: int(math.Ceil(wait.Seconds())),
				Err: apperr.New(apperr.ErrTooManyRequests, "too many logins; try again later")}
		}
	}
	return nil
}

// Register adds the member routes under r (the /api group):
//
//	POST  /mp/v1/:merchant_id/login        mini-program login {"code"}
//	POST  /mp/v1/:merchant_id/phone        bind phone {"code"} (member token)
//	GET   /h5/v1/:merchant_id/oauth-url    H5 authorization URL and its state (?redirect_uri=&scope=)
//	POST  /h5/v1/:merchant_id/login        H5 login {"code", "state"}
//	POST  /member/v1/:merchant_id/refresh  new access and refresh tokens {"refresh_token"}
//	POST  /member/v1/:merchant_id/logout   end this login {"refresh_token"}
//	GET   /member/v1/:merchant_id/profile  own profile (member token)
//	PATCH /member/v1/:merchant_id/profile  edit own profile (member token)
//	GET   /member/v1/:merchant_id/member-code  a member code to show at the till (member token; code.go)
//	GET   /member/v1/:merchant_id/jssdk-config  JS-SDK configuration of a member-centre page ?url= (member token; jssdk.go)
//
// Logins are limited per client and per merchant (HandlerOptions.Limits).
func (h *Handler) Register(r gin.IRouter) {
	r.POST("/mp/v1/:merchant_id/login", h.mpLogin)
	r.POST("/mp/v1/:merchant_id/phone", h.requireMember, h.bindPhone)
	r.GET("/h5/v1/:merchant_id/oauth-url", h.oauthURL)
	r.POST("/h5/v1/:merchant_id/login", h.oauthLogin)
	r.POST("/member/v1/:merchant_id/refresh", h.refresh)
	r.POST("/member/v1/:merchant_id/logout", h.logout)
	r.GET("/member/v1/:merchant_id/profile", h.requireMember, h.profile)
	r.PATCH("/member/v1/:merchant_id/profile", h.requireMember, h.updateProfile)
	if h.o.Codes != nil {
		r.GET("/member/v1/:merchant_id/member-code", h.requireMember, h.memberCode)
	}
	if h.o.JSSDK != nil {
		r.GET("/member/v1/:merchant_id/jssdk-config", h.requireMember, h.jsConfig)
	}
}

var errNoMerchant = apperr.New(apperr.ErrNotFound, "merchant not found")

const memberKey = "member.member"

// requireMember accepts only a member token issued for the merchant in the
// path, for a member that still exists (or was merged into one that does).
func (h *Handler) requireMember(c *gin.Context) {
	mid, ok := httpx.PathID(c, "merchant_id", errNoMerchant)
	if !ok {
		return
	}
	token, found := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !found {
		httpx.Fail(c, ErrBadMemberToken)
		return
	}
	tokMerchant, memberID, err := h.tokens.Check(strings.TrimSpace(token))
	if err != nil || tokMerchant != mid {
		httpx.Fail(c, ErrBadMemberToken)
		return
	}
	m, err := h.svc.Resolve(c.Request.Context(), mid, memberID)
	if err == nil && m.ErasedAt != nil {
		// The person's data was erased (PIPL): their old tokens must not
		// write personal data back into the anonymous row.
		err = errMemberNotFound
	}
	if isNotFound(err) {
		httpx.Fail(c, ErrBadMemberToken)
		return
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Set(memberKey, m)
	c.Next()
}

func currentMember(c *gin.Context) Member { return c.MustGet(memberKey).(Member) }

// RequireMember is the member-token check other features' member routes
// use: it accepts only a token of the merchant in the path.
func (h *Handler) RequireMember(c *gin.Context) { h.requireMember(c) }

// CurrentMember returns the member RequireMember let through.
func CurrentMember(c *gin.Context) Member { return currentMember(c) }

type codeRequest struct {
	Code string `json:"code"`
}

// tokensView is a fresh pair: the access token (short) and the refresh
// token that gets the next pair (once).
type tokensView struct {
	Token            string    `json:"token"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

type loginResponse struct {
	tokensView
	Member profileView `json:"member"`
}

// tokensFor issues an access token for the session's member.
func (h *Handler) tokensFor(merchantID uint64, s Session) (tokensView, error) {
	token, exp, err := h.tokens.Issue(merchantID, s.MemberID)
	if err != nil {
		return tokensView{}, fmt.Errorf("member: issue token: %w", err)
	}
	return tokensView{Token: token, ExpiresAt: exp, RefreshToken: s.RefreshToken, RefreshExpiresAt: s.RefreshExpiresAt}, nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (h *Handler) refresh(c *gin.Context) {
	mid, ok := httpx.PathID(c, "merchant_id", errNoMerchant)
	if !ok {
		return
	}
	var req refreshRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	s, err := h.svc.Refresh(c.Request.Context(), mid, req.RefreshToken)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out, err := h.tokensFor(mid, s)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *Handler) logout(c *gin.Context) {
	mid, ok := httpx.PathID(c, "merchant_id", errNoMerchant)
	if !ok {
		return
	}
	var req refreshRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := h.svc.RevokeSession(c.Request.Context(), mid, req.RefreshToken); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *Handler) mpLogin(c *gin.Context) {
	h.login(c, h.svc.LoginMiniProgramVia, false)
}

// oauthLogin serves POST /h5/v1/:merchant_id/login {"code", "state"}: the
// state must be one oauthURL issued for this merchant within
// OAuthStateTTL; anything else is refused before WeChat is asked (and
// before the login limits are spent).
func (h *Handler) oauthLogin(c *gin.Context) {
	h.login(c, h.svc.LoginOAuthVia, true)
}

// loginRequest is a login's body: the WeChat code, the H5 login's OAuth
// state (oauthURL; the mini-program login has none) and, when the page or
// mini-program was opened through a member's invitation, its code (ref).
type loginRequest struct {
	Code  string  `json:"code"`
	State *string `json:"state"`
	Ref   string  `json:"ref"`
}

// refRe is the shape of an invitation code (referral/codes.go makes them).
var refRe = regexp.MustCompile(`^[A-Za-z0-9]{1,16}$`)

// login signs a member in with do; h5 says the request must carry the
// OAuth state oauthURL issued (the mini-program's login has none).
func (h *Handler) login(c *gin.Context, do func(ctx context.Context, merchantID uint64, code, ref string) (Member, error), h5 bool) {
	mid, ok := httpx.PathID(c, "merchant_id", errNoMerchant)
	if !ok {
		return
	}
	var req loginRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if h5 != (req.State != nil) || (h5 && !h.tokens.CheckOAuthState(mid, *req.State)) {
		if h5 {
			httpx.Fail(c, apperr.Invalid("state", "is not a sign-in this service started for this merchant in the last "+
				"10 minutes; start the sign-in again"))
		} else {
			httpx.Fail(c, apperr.Invalid("state", "is not a known field"))
		}
		return
	}
	if req.Ref != "" && !refRe.MatchString(req.Ref) {
		httpx.Fail(c, apperr.Invalid("ref", "must be an invitation code: 1 to 16 letters or digits"))
		return
	}
	if err := h.allowLogin(c, mid); err != nil {
		httpx.Fail(c, err)
		return
	}
	m, err := do(c.Request.Context(), mid, req.Code, req.Ref)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	s, err := h.svc.OpenSession(c.Request.Context(), mid, m.ID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	tokens, err := h.tokensFor(mid, s)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	p, err := h.svc.Profile(c.Request.Context(), mid, m.ID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, loginResponse{tokensView: tokens, Member: viewOf(p)})
}

// oauthURL serves GET /h5/v1/:merchant_id/oauth-url?redirect_uri=&scope=:
// the WeChat authorization URL and the state it carries. Only pages of the
// merchant's member centre on the service's public origin may be the
// redirect (the code WeChat sends there signs the member in, so it must not
// go to another site), and the state is the service's own (OAuthState).
func (h *Handler) oauthURL(c *gin.Context) {
	mid, ok := httpx.PathID(c, "merchant_id", errNoMerchant)
	if !ok {
		return
	}
	q, err := httpx.QueryOnly(c, "redirect_uri", "scope")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	redirect := q.Get("redirect_uri")
	if h.o.PageOrigin != "" && redirect != "" && !h.memberCentrePage(mid, redirect) {
		httpx.Fail(c, apperr.Invalid("redirect_uri", "must be a page of this merchant's member centre ("+
			h.o.PageOrigin+"/m/"+strconv.FormatUint(mid, 10)+"/...)"))
		return
	}
	state := h.tokens.OAuthState(mid)
	u, err := h.svc.OAuthURLScope(c.Request.Context(), mid, redirect, state, q.Get("scope"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"url": u, "state": state})
}

func (h *Handler) bindPhone(c *gin.Context) {
	m := currentMember(c)
	var req codeRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if _, err := h.svc.BindPhone(c.Request.Context(), m.MerchantID, m.ID, req.Code); err != nil {
		httpx.Fail(c, err)
		return
	}
	h.writeProfile(c, m)
}

func (h *Handler) profile(c *gin.Context) {
	h.writeProfile(c, currentMember(c))
}

func (h *Handler) writeProfile(c *gin.Context, m Member) {
	p, err := h.svc.Profile(c.Request.Context(), m.MerchantID, m.ID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(p))
}

func (h *Handler) updateProfile(c *gin.Context) {
	m := currentMember(c)
	var u ProfileUpdate
	if err := httpx.BindJSON(c, &u); err != nil {
		httpx.Fail(c, err)
		return
	}
	p, err := h.svc.UpdateProfile(c.Request.Context(), m.MerchantID, m.ID, u)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(p))
}

// profileView is the JSON of a profile. Openids and unionids are not shown:
// the member's apps never need them.
type profileView struct {
	ID                 uint64                 `json:"id"`
	MerchantID         uint64                 `json:"merchant_id"`
	Name               string                 `json:"name"`
	AvatarURL          *string                `json:"avatar_url"`
	Gender             string                 `json:"gender"`
	Phone              *string                `json:"phone"`
	Birthday           *DateInput             `json:"birthday"`
	Source             string                 `json:"source"`
	FollowStatus       string                 `json:"follow_status"`
	FollowedAt         *time.Time             `json:"followed_at"`
	UnfollowedAt       *time.Time             `json:"unfollowed_at"`
	ChannelScene       *string                `json:"channel_scene"`
	HasOfficialAccount bool                   `json:"has_official_account"`
	HasMiniProgram     bool                   `json:"has_mini_program"`
	CareDates          []careDateView         `json:"care_dates"`
	Consents           map[string]consentView `json:"consents"`
	FollowHistory      []historyView          `json:"follow_history"`
	CreatedAt          time.Time              `json:"created_at"`
}

type careDateView struct {
	ID    uint64 `json:"id"`
	Kind  string `json:"kind"`
	Label string `json:"label"`
	DateInput
}

type consentView struct {
	Granted   bool       `json:"granted"`
	GrantedAt *time.Time `json:"granted_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

type historyView struct {
	Kind       string    `json:"kind"`
	Scene      *string   `json:"scene"`
	OccurredAt time.Time `json:"occurred_at"`
}

func viewOf(p Profile) profileView {
	m := p.Member
	v := profileView{ID: m.ID, MerchantID: m.MerchantID, Name: m.Name, AvatarURL: m.AvatarURL, Gender: m.Gender.String(), Phone: m.Phone,
		Source: m.Source, FollowStatus: m.FollowStatus, FollowedAt: m.FollowedAt, UnfollowedAt: m.UnfollowedAt,
		ChannelScene: m.ChannelScene, HasOfficialAccount: m.OAOpenID != nil, HasMiniProgram: m.MPOpenID != nil,
		CareDates: []careDateView{}, Consents: map[string]consentView{}, FollowHistory: []historyView{},
		CreatedAt: m.CreatedAt}
	if m.BirthdayMonth != nil && m.BirthdayDay != nil {
		v.Birthday = &DateInput{Month: *m.BirthdayMonth, Day: *m.BirthdayDay, Year: m.BirthdayYear}
	}
	for _, d := range p.CareDates {
		v.CareDates = append(v.CareDates, careDateView{ID: d.ID, Kind: d.Kind, Label: d.Label,
			DateInput: DateInput{Month: d.Month, Day: d.Day, Year: d.Year}})
	}
	for _, c := range p.Consents {
		v.Consents[c.Channel] = consentView{Granted: c.Granted, GrantedAt: c.GrantedAt, RevokedAt: c.RevokedAt}
	}
	for _, e := range p.History {
		v.FollowHistory = append(v.FollowHistory, historyView{Kind: e.Kind, Scene: e.Scene, OccurredAt: e.OccurredAt})
	}
	return v
}
