package wechat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// CredentialSource supplies a merchant's WeChat credentials, decrypted. It
// returns an error wrapping apperr.ErrNotFound for an unknown merchant.
type CredentialSource interface {
	WeChatCredentials(ctx context.Context, merchantID uint64) (Credentials, error)
}

// Accounts hands out one *Account per merchant, built on first use and
// reused, so SDK clients and token fetch locks are shared by all requests.
// Credentials are re-read after a TTL so a change made through another
// instance is picked up; Invalidate applies a local change at once.
type Accounts struct {
	src      CredentialSource
	endpoint Endpoint
	tokens   TokenCache
	obs      Observer
	ttl      time.Duration

	mu    sync.RWMutex
	cache map[uint64]*cachedAccount
	group singleflight.Group
}

type cachedAccount struct {
	acct    *Account // nil: the merchant does not exist (negative entry)
	checked time.Time
}

// NewAccounts returns an empty registry. ttl is how long credentials are
// trusted before being re-read (a minute is a good default).
func NewAccounts(src CredentialSource, endpoint Endpoint, tokens TokenCache, obs Observer, ttl time.Duration) *Accounts {
	if obs == nil {
		obs = nopObserver{}
	}
	return &Accounts{src: src, endpoint: endpoint, tokens: tokens, obs: obs, ttl: ttl,
		cache: map[uint64]*cachedAccount{}}
}

// Endpoint returns where WeChat calls go.
func (r *Accounts) Endpoint() Endpoint { return r.endpoint }

// Get returns the merchant's account, or an error wrapping
// apperr.ErrNotFound for an unknown merchant. Unknown merchants are
// remembered for a short while, so a flood of callbacks to made-up merchant
// ids does not reach the database on every request.
func (r *Accounts) Get(ctx context.Context, merchantID uint64) (*Account, error) {
	r.mu.RLock()
	c := r.cache[merchantID]
	r.mu.RUnlock()
	if c != nil && time.Since(c.checked) < r.ttlOf(c) {
		if c.acct == nil {
			return nil, errUnknownMerchant
		}
		return c.acct, nil
	}
	v, err, _ := r.group.Do(strconv.FormatUint(merchantID, 10), func() (any, error) {
		creds, err := r.src.WeChatCredentials(context.WithoutCancel(ctx), merchantID)
		notFound := errors.Is(err, apperr.ErrNotFound)
		if err != nil && !notFound {
			return nil, err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if notFound {
			r.cache[merchantID] = &cachedAccount{checked: time.Now()}
			return nil, errUnknownMerchant
		}
		if old := r.cache[merchantID]; old != nil && old.acct != nil && old.acct.creds == creds {
			r.cache[merchantID] = &cachedAccount{acct: old.acct, checked: time.Now()}
			return old.acct, nil
		}
		a := NewAccount(creds, r.endpoint, r.tokens, r.obs)
		r.cache[merchantID] = &cachedAccount{acct: a, checked: time.Now()}
		return a, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Account), nil
}

// Invalidate forgets the merchant's account; the next Get re-reads it.
func (r *Accounts) Invalidate(merchantID uint64) {
	r.mu.Lock()
	delete(r.cache, merchantID)
	r.mu.Unlock()
}

func (r *Accounts) ttlOf(c *cachedAccount) time.Duration {
	if c.acct == nil {
		return r.ttl / 6
	}
	return r.ttl
}

var errUnknownMerchant = fmt.Errorf("wechat: unknown merchant: %w", apperr.ErrNotFound)

// The methods below call one merchant's account by merchant id, so feature
// packages can declare small interfaces keyed by merchant and receive
// *Accounts (or a test double) without holding per-merchant clients.

// UserInfo calls Account.UserInfo for the merchant.
func (r *Accounts) UserInfo(ctx context.Context, merchantID uint64, openID string) (UserInfo, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return UserInfo{}, err
	}
	return a.UserInfo(ctx, openID)
}

// Code2Session calls Account.Code2Session for the merchant.
func (r *Accounts) Code2Session(ctx context.Context, merchantID uint64, code string) (Session, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return Session{}, err
	}
	return a.Code2Session(ctx, code)
}

// PhoneNumber calls Account.PhoneNumber for the merchant.
func (r *Accounts) PhoneNumber(ctx context.Context, merchantID uint64, code string) (Phone, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return Phone{}, err
	}
	return a.PhoneNumber(ctx, code)
}

// OAuthURL calls Account.OAuthURL for the merchant.
func (r *Accounts) OAuthURL(ctx context.Context, merchantID uint64, redirectURI, state, scope string) (string, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return "", err
	}
	return a.OAuthURLScope(redirectURI, state, scope), nil
}

// OAuthExchange calls Account.OAuthExchange for the merchant.
func (r *Accounts) OAuthExchange(ctx context.Context, merchantID uint64, code string) (OAuthUser, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return OAuthUser{}, err
	}
	return a.OAuthExchange(ctx, code)
}

// CheckResult is the outcome of fetching an access token for one app.
type CheckResult struct {
	App     string // "official_account" or "mini_program"
	AppID   string
	OK      bool
	ErrCode int    // WeChat's errcode when not OK (0 for network failures)
	Message string // what went wrong, in words an operator can act on
}

// Check fetches a fresh access token for the merchant's official account
// and, when configured, its mini-program, with the stored credentials and
// none of the cached tokens: it tells whether the AppID, the secret and the
// IP whitelist are right now.
func (r *Accounts) Check(ctx context.Context, merchantID uint64) ([]CheckResult, error) {
	creds, err := r.src.WeChatCredentials(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	a := NewAccount(creds, r.endpoint, NewMemoryTokenCache(), r.obs)
	out := []CheckResult{checkToken(ctx, "official_account", creds.AppID, a.oaToken)}
	if a.mpToken != nil {
		out = append(out, checkToken(ctx, "mini_program", creds.MPAppID, a.mpToken))
	}
	return out, nil
}

func checkToken(ctx context.Context, app, appID string, t *tokenSource) CheckResult {
	res := CheckResult{App: app, AppID: appID}
	_, err := t.GetAccessTokenContext(ctx)
	if err == nil {
		res.OK, res.Message = true, "credentials accepted"
		return res
	}
	res.ErrCode = ErrCode(err)
	if res.ErrCode != 0 {
		res.Message = Describe(res.ErrCode)
	} else {
		res.Message = "WeChat could not be reached: " + transportReason(err)
	}
	return res
}

// CreateQRCode calls Account.CreateQRCode for the merchant.
func (r *Accounts) CreateQRCode(ctx context.Context, merchantID uint64, q QRRequest) (QRCode, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return QRCode{}, err
	}
	return a.CreateQRCode(ctx, q)
}

// SendTemplate calls Account.SendTemplate for the merchant.
func (r *Accounts) SendTemplate(ctx context.Context, merchantID uint64, m TemplateMessage) (int64, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return 0, err
	}
	return a.SendTemplate(ctx, m)
}

// SendMPSubscribe calls Account.SendMPSubscribe for the merchant.
func (r *Accounts) SendMPSubscribe(ctx context.Context, merchantID uint64, m SubscribeMessage) (int64, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return 0, err
	}
	return a.SendMPSubscribe(ctx, m)
}

// SendCustomerText calls Account.SendCustomerText for the merchant.
func (r *Accounts) SendCustomerText(ctx context.Context, merchantID uint64, openID, text string) error {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return err
	}
	return a.SendCustomerText(ctx, openID, text)
}

// Templates calls Account.Templates for the merchant.
func (r *Accounts) Templates(ctx context.Context, merchantID uint64) ([]Template, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	return a.Templates(ctx)
}

// MPTemplates calls Account.MPTemplates for the merchant.
func (r *Accounts) MPTemplates(ctx context.Context, merchantID uint64) ([]Template, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	return a.MPTemplates(ctx)
}

// AppID returns the merchant's official-account AppID (the rate limits
// and quotas of sends are per WeChat account).
func (r *Accounts) AppID(ctx context.Context, merchantID uint64) (string, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return "", err
	}
	return a.creds.AppID, nil
}
