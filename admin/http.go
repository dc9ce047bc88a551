package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/wechat"
)

// CredentialCheck tests a merchant's stored WeChat credentials;
// *wechat.Accounts satisfies it.
type CredentialCheck interface {
	Check(ctx context.Context, merchantID uint64) ([]wechat.CheckResult, error)
}

// API is the admin API of this package: login, staff, API keys, settings,
// channels and the audit log.
type API struct {
	Staffs    *Staffs
	Keys      *APIKeys
	Throttle  *Throttle
	Merchants *Merchants
	Channels  *Channels
	Audit     *audit.Recorder
	Check     CredentialCheck
	// Menus sets the official account's menu; PublicURL is where the
	// member centre the default menu opens is served (menu.go).
	Menus     Menus
	PublicURL string
}

// PrincipalOf returns the caller authenticated by Authenticate.
func PrincipalOf(c *gin.Context) authz.Principal { return authz.MustFrom(c) }

// Authenticate accepts a staff session token or an API key as a bearer
// token, and puts the caller's authz.Principal in the request context.
func (a *API) Authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := bearer(c)
		if !ok {
			httpx.Fail(c, ErrBadToken)
			return
		}
		var p authz.Principal
		var err error
		if strings.HasPrefix(token, apiKeyPrefix) {
			p, err = a.Keys.Authenticate(c.Request.Context(), token)
		} else {
			p, err = a.Staffs.Authenticate(c.Request.Context(), token)
		}
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		p.ClientIP, p.RequestID = c.ClientIP(), httpx.RequestID(c)
		c.Request = c.Request.WithContext(authz.WithPrincipal(c.Request.Context(), p))
		c.Next()
	}
}

func bearer(c *gin.Context) (string, bool) {
	h := c.GetHeader("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	return token, ok && token != ""
}

// RegisterPublic registers the routes that need no token (login).
func (a *API) RegisterPublic(r gin.IRouter) {
	r.POST("/login", a.login)
}

// Register registers the routes for authenticated callers:
//
//	POST   /logout                    end this staff session
//	GET    /me                        who am I
//	POST   /me/password               change my password
//	GET    /staff                     staff:manage
//	POST   /staff                     staff:manage
//	PATCH  /staff/:staff_id           staff:manage
//	GET    /api-keys                  apikeys:manage
//	POST   /api-keys                  apikeys:manage (the key is shown once)
//	DELETE /api-keys/:api_key_id      apikeys:manage
//	PUT    /api-keys/:api_key_id/owner  owners only: move a key to another staff account
//	GET    /audit                     audit:read
//	GET    /settings                  settings:read
//	PATCH  /settings                  settings:manage
//	POST   /settings/wechat-test      settings:manage
//	GET    /settings/menu             settings:read     the official account's menu, and the default one
//	PUT    /settings/menu             settings:manage   replace the menu {"buttons"}
//	POST   /settings/menu/default     settings:manage   set the default menu (the member centre's pages)
//	GET    /channels                  channels:read
//	POST   /channels                  channels:write
func (a *API) Register(r gin.IRouter) {
	r.POST("/logout", staffOnly, a.logout)
	r.GET("/me", a.me)
	r.POST("/me/password", staffOnly, a.changePassword)
	r.GET("/staff", authz.Require(authz.StaffManage), a.listStaff)
	r.POST("/staff", authz.Require(authz.StaffManage), a.createStaff)
	r.PATCH("/staff/:staff_id", authz.Require(authz.StaffManage), a.updateStaff)
	r.GET("/api-keys", authz.Require(authz.APIKeysManage), a.listKeys)
	r.POST("/api-keys", authz.Require(authz.APIKeysManage), staffOnly, a.createKey)
	r.DELETE("/api-keys/:api_key_id", authz.Require(authz.APIKeysManage), a.revokeKey)
	r.PUT("/api-keys/:api_key_id/owner", authz.Require(authz.APIKeysManage), staffOnly, a.reownKey)
	r.GET("/audit", authz.Require(authz.AuditRead), a.listAudit)
	r.GET("/settings", authz.Require(authz.SettingsRead), a.settings)
	r.PATCH("/settings", authz.Require(authz.SettingsManage), a.updateSettings)
	r.POST("/settings/wechat-test", authz.Require(authz.SettingsManage), a.testWeChat)
	r.GET("/settings/menu", authz.Require(authz.SettingsRead), a.getMenu) // menu.go
	r.PUT("/settings/menu", authz.Require(authz.SettingsManage), a.putMenu)
	r.POST("/settings/menu/default", authz.Require(authz.SettingsManage), a.resetMenu)
	r.GET("/channels", authz.Require(authz.ChannelsRead), a.listChannels)
	r.POST("/channels", authz.Require(authz.ChannelsWrite), a.createChannel)
}

// staffOnly refuses API keys on routes that only make sense for a person.
func staffOnly(c *gin.Context) {
	if !authz.MustFrom(c).IsStaff() {
		httpx.Fail(c, apperr.New(apperr.ErrForbidden, "this action is for staff accounts, not API keys"))
		return
	}
	c.Next()
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) login(c *gin.Context) {
	var req loginRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	if req.Username == "" || len(req.Username) > 128 {
		v.Add("username", "is required (at most 128 characters)")
	}
	if req.Password == "" {
		v.Add("password", "is required")
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	var token string
	var expires time.Time
	err := a.throttled(c, req.Username, func(ctx context.Context) (bool, error) {
		var err error
		token, expires, err = a.Staffs.Login(ctx, req.Username, req.Password)
		return errors.Is(err, ErrBadLogin), err
	})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, loginResponse{Token: token, ExpiresAt: expires})
}

// throttled runs a password check of username under the login throttle:
// the attempt is counted against the username and the client address
// before check runs, so parallel guesses cannot outrun the lock. check
// reports whether the password was wrong, and its error; any other error
// means the password was never judged (busy, bad input, database trouble)
// and the attempt is uncounted.
func (a *API) throttled(c *gin.Context, username string, check func(ctx context.Context) (wrong bool, err error)) error {
	ctx := c.Request.Context()
	att, err := a.Throttle.Reserve(ctx,
		ThrottleKey{Key: "user:" + normalizeUsername(username), Policy: UserThrottle},
		ThrottleKey{Key: "ip:" + c.ClientIP(), Policy: IPThrottle})
	if err != nil {
		return err
	}
	wrong, err := check(ctx)
	// Record the outcome even if the client gives up now.
	fctx := context.WithoutCancel(ctx)
	var terr error
	switch {
	case wrong:
		terr = att.Failed(fctx)
	case err != nil:
		terr = att.Cancel(fctx)
	default:
		terr = att.Succeeded(fctx)
	}
	if terr != nil {
		httpx.Logger(c).ErrorContext(ctx, "login throttle not updated", "error", terr)
	}
	return err
}

func (a *API) logout(c *gin.Context) {
	token, _ := bearer(c)
	if err := a.Staffs.Logout(c.Request.Context(), token); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type meResponse struct {
	MerchantID  uint64       `json:"merchant_id"`
	StaffID     uint64       `json:"staff_id,omitempty"`
	APIKeyID    uint64       `json:"api_key_id,omitempty"`
	Name        string       `json:"name"`
	Role        authz.Role   `json:"role,omitempty"`
	Permissions []authz.Perm `json:"permissions"`
}

func (a *API) me(c *gin.Context) {
	p := authz.MustFrom(c)
	perms := []authz.Perm{}
	for _, perm := range authz.AllPerms {
		if p.Can(perm) {
			perms = append(perms, perm)
		}
	}
	c.JSON(http.StatusOK, meResponse{MerchantID: p.MerchantID, StaffID: p.StaffID, APIKeyID: p.APIKeyID,
		Name: p.Name, Role: p.Role, Permissions: perms})
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (a *API) changePassword(c *gin.Context) {
	var req passwordRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	token, _ := bearer(c)
	p := authz.MustFrom(c)
	// The current password is guessed like a login's (a stolen session
	// must not become a free password oracle): same throttle, same keys.
	err := a.throttled(c, p.Name, func(ctx context.Context) (bool, error) {
		err := a.Staffs.ChangePassword(ctx, p, token, req.CurrentPassword, req.NewPassword)
		return errors.Is(err, ErrWrongPassword), err
	})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type staffView struct {
	ID        uint64     `json:"id"`
	Username  string     `json:"username"`
	Role      authz.Role `json:"role"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Password is shown once, when the server generated it.
	Password string `json:"password,omitempty"`
}

func viewOfStaff(s Staff) staffView {
	return staffView{ID: s.ID, Username: s.Username, Role: s.Role, Disabled: s.DisabledAt != nil,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

func (a *API) listStaff(c *gin.Context) {
	list, err := a.Staffs.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]staffView, len(list))
	for i, s := range list {
		out[i] = viewOfStaff(s)
	}
	c.JSON(http.StatusOK, gin.H{"staff": out})
}

func (a *API) createStaff(c *gin.Context) {
	var in StaffInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	st, password, err := a.Staffs.CreateBy(c.Request.Context(), authz.MustFrom(c), in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := viewOfStaff(st)
	v.Password = password
	c.JSON(http.StatusCreated, v)
}

func (a *API) updateStaff(c *gin.Context) {
	id, ok := httpx.PathID(c, "staff_id", errStaffNotFound)
	if !ok {
		return
	}
	var in StaffUpdate
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	st, err := a.Staffs.UpdateBy(c.Request.Context(), authz.MustFrom(c), id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOfStaff(st))
}

type keyView struct {
	ID         uint64       `json:"id"`
	Name       string       `json:"name"`
	Prefix     string       `json:"prefix"`
	Scopes     []authz.Perm `json:"scopes"`
	ExpiresAt  *time.Time   `json:"expires_at"`
	LastUsedAt *time.Time   `json:"last_used_at"`
	RevokedAt  *time.Time   `json:"revoked_at"`
	CreatedAt  time.Time    `json:"created_at"`
	// OwnerStaffID is the staff account the key acts for; it works only
	// while that account is enabled (OwnerActive, in lists).
	OwnerStaffID uint64 `json:"owner_staff_id"`
	OwnerActive  *bool  `json:"owner_active,omitempty"`
	// Key is the secret, present only in the answer to its creation.
	Key string `json:"key,omitempty"`
}

func viewOfKey(k APIKey) keyView {
	return keyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.ScopeList(), ExpiresAt: k.ExpiresAt,
		LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt, CreatedAt: k.CreatedAt, OwnerStaffID: k.CreatedBy}
}

func (a *API) listKeys(c *gin.Context) {
	keys, err := a.Keys.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]keyView, len(keys))
	for i, k := range keys {
		out[i] = viewOfKey(k.APIKey)
		out[i].OwnerActive = &keys[i].OwnerActive
	}
	c.JSON(http.StatusOK, gin.H{"api_keys": out})
}

func (a *API) createKey(c *gin.Context) {
	var in APIKeyInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	k, secret, err := a.Keys.Create(c.Request.Context(), authz.MustFrom(c), in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := viewOfKey(k)
	v.Key = secret
	c.JSON(http.StatusCreated, v)
}

func (a *API) revokeKey(c *gin.Context) {
	id, ok := httpx.PathID(c, "api_key_id", errKeyNotFound)
	if !ok {
		return
	}
	k, err := a.Keys.Revoke(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOfKey(k))
}

type reownRequest struct {
	StaffID uint64 `json:"staff_id"`
}

func (a *API) reownKey(c *gin.Context) {
	id, ok := httpx.PathID(c, "api_key_id", errKeyNotFound)
	if !ok {
		return
	}
	var req reownRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	k, err := a.Keys.Reown(c.Request.Context(), authz.MustFrom(c), id, req.StaffID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOfKey(k))
}

func (a *API) settings(c *gin.Context) {
	s, err := a.Merchants.Settings(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

func (a *API) updateSettings(c *gin.Context) {
	var u SettingsUpdate
	if err := httpx.BindJSON(c, &u); err != nil {
		httpx.Fail(c, err)
		return
	}
	s, err := a.Merchants.UpdateSettings(c.Request.Context(), authz.MustFrom(c).MerchantID, u)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

type checkView struct {
	App     string `json:"app"`
	AppID   string `json:"app_id"`
	OK      bool   `json:"ok"`
	ErrCode int    `json:"errcode"`
	Message string `json:"message"`
}

func (a *API) testWeChat(c *gin.Context) {
	results, err := a.Check.Check(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]checkView, len(results))
	allOK := true
	for i, r := range results {
		out[i] = checkView{App: r.App, AppID: r.AppID, OK: r.OK, ErrCode: r.ErrCode, Message: r.Message}
		allOK = allOK && r.OK
	}
	c.JSON(http.StatusOK, gin.H{"ok": allOK, "results": out})
}

type channelView struct {
	ID        uint64     `json:"id"`
	Name      string     `json:"name"`
	Scene     string     `json:"scene"`
	Permanent bool       `json:"permanent"`
	URL       string     `json:"url"`
	ImageURL  string     `json:"image_url"`
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
	Followers *int64     `json:"followers,omitempty"`
	Members   *int64     `json:"members,omitempty"`
	Orders    *int64     `json:"orders,omitempty"`
}

func viewOfChannel(ch Channel) channelView {
	return channelView{ID: ch.ID, Name: ch.Name, Scene: ch.Scene, Permanent: ch.Permanent, URL: ch.URL,
		ImageURL: ch.ImageURL, ExpiresAt: ch.ExpiresAt, CreatedAt: ch.CreatedAt}
}

func (a *API) listChannels(c *gin.Context) {
	list, err := a.Channels.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]channelView, len(list))
	for i, r := range list {
		out[i] = viewOfChannel(r.Channel)
		out[i].Followers, out[i].Members, out[i].Orders = &list[i].Followers, &list[i].Members, &list[i].Orders
	}
	c.JSON(http.StatusOK, gin.H{"channels": out})
}

func (a *API) createChannel(c *gin.Context) {
	var in ChannelInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	ch, err := a.Channels.Create(c.Request.Context(), authz.MustFrom(c), in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, viewOfChannel(ch))
}

type auditView struct {
	ID         uint64          `json:"id"`
	ActorType  string          `json:"actor_type"`
	ActorID    uint64          `json:"actor_id"`
	ActorName  string          `json:"actor_name"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetIDs  json.RawMessage `json:"target_ids"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	RequestID  string          `json:"request_id"`
	ClientIP   string          `json:"client_ip"`
	CreatedAt  time.Time       `json:"created_at"`
}

func rawOrNull(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

// auditParams are the query parameters of GET /audit.
var auditParams = map[string]bool{"actor_type": true, "actor_id": true, "action": true, "target_type": true,
	"target_id": true, "since": true, "until": true, "before": true, "limit": true}

func parseAuditQuery(c *gin.Context) (audit.Query, error) {
	q := audit.Query{Limit: 50}
	v := &apperr.Validation{}
	query := c.Request.URL.Query()
	for k := range query {
		if !auditParams[k] {
			v.Add(k, "is not a known parameter")
		}
	}
	uintParam := func(name string, dst *uint64) {
		if s := query.Get(name); s != "" {
			n, ok := httpx.ParseID(s)
			if !ok {
				v.Add(name, "must be an id")
			}
			*dst = n
		}
	}
	timeParam := func(name string) *time.Time {
		s := query.Get(name)
		if s == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			v.Add(name, "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00+08:00")
			return nil
		}
		t = t.UTC()
		return &t
	}
	q.ActorType = query.Get("actor_type")
	switch q.ActorType {
	case "", audit.ActorStaff, audit.ActorAPIKey, audit.ActorSystem:
	default:
		v.Add("actor_type", "must be staff, api_key or system")
	}
	uintParam("actor_id", &q.ActorID)
	q.Action = query.Get("action")
	if len(q.Action) > 64 {
		v.Add("action", "must be at most 64 characters")
	}
	q.TargetType = query.Get("target_type")
	if len(q.TargetType) > 32 {
		v.Add("target_type", "must be at most 32 characters")
	}
	uintParam("target_id", &q.TargetID)
	if q.TargetID != 0 && q.TargetType == "" {
		v.Add("target_type", "is required with target_id")
	}
	uintParam("before", &q.Before)
	q.Since, q.Until = timeParam("since"), timeParam("until")
	if s := query.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			v.Add("limit", "must be 1 to 200")
		}
		q.Limit = n
	}
	return q, v.Err()
}

func (a *API) listAudit(c *gin.Context) {
	q, err := parseAuditQuery(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	rows, err := a.Audit.List(c.Request.Context(), authz.MustFrom(c).MerchantID, q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]auditView, len(rows))
	for i, r := range rows {
		out[i] = auditView{ID: r.ID, ActorType: r.ActorType, ActorID: r.ActorID, ActorName: r.ActorName,
			Action: r.Action, TargetType: r.TargetType, TargetIDs: rawOrNull(r.TargetIDs), Before: rawOrNull(r.Before),
			After: rawOrNull(r.After), RequestID: r.RequestID, ClientIP: r.ClientIP, CreatedAt: r.CreatedAt}
	}
	var next *uint64
	if len(rows) == q.Limit {
		next = &rows[len(rows)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"entries": out, "next_before": next})
}
