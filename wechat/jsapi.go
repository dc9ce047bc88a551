package wechat

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/credential"
	"golang.org/x/sync/singleflight"
)

// JSConfig is what a page in WeChat's browser passes to wx.config to use
// the JS-SDK (share, scan): signed for that page's URL with the account's
// jsapi_ticket.
type JSConfig struct {
	AppID     string `json:"app_id"`
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonce_str"`
	Signature string `json:"signature"`
}

// ticketSource keeps the official account's jsapi_ticket like the access
// token: in the shared TokenCache (one ticket for every instance, WeChat
// rations getticket calls), fetched at most once at a time per process,
// refreshed 10 minutes before WeChat's expiry.
type ticketSource struct {
	key   string
	cache TokenCache
	group singleflight.Group
}

func newTicketSource(appID string, tc TokenCache) *ticketSource {
	return &ticketSource{key: "jsapi:" + appID, cache: tc}
}

// jsapiTicket returns the account's current jsapi_ticket.
func (a *Account) jsapiTicket(ctx context.Context) (string, error) {
	t := a.ticket
	if v, err := t.cache.Get(ctx, t.key); err == nil && v != "" {
		return v, nil
	}
	v, err, _ := t.group.Do(t.key, func() (any, error) {
		if v, err := t.cache.Get(ctx, t.key); err == nil && v != "" {
			return v, nil
		}
		var res credential.ResTicket
		err := a.do(ctx, "jsapi_ticket", a.oaToken, func() error {
			tok, err := a.oaToken.GetAccessTokenContext(ctx)
			if err != nil {
				return err
			}
			res, err = credential.GetTicketFromServerContext(ctx, tok)
			return err
		})
		if err != nil {
			return "", err
		}
		ttl := max(time.Duration(res.ExpiresIn)*time.Second-10*time.Minute, time.Minute)
		if err := t.cache.Set(ctx, t.key, res.Ticket, ttl); err != nil {
			return "", fmt.Errorf("wechat: cache jsapi_ticket: %w", err)
		}
		return res.Ticket, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// JSConfig signs the JS-SDK configuration for the page at pageURL (its
// fragment, which the browser does not send, is not signed).
func (a *Account) JSConfig(ctx context.Context, pageURL string) (JSConfig, error) {
	ticket, err := a.jsapiTicket(ctx)
	if err != nil {
		return JSConfig{}, err
	}
	pageURL, _, _ = strings.Cut(pageURL, "#")
	c := JSConfig{AppID: a.creds.AppID, Timestamp: time.Now().Unix(), NonceStr: randomNonce()}
	c.Signature = JSSignature(ticket, c.NonceStr, c.Timestamp, pageURL)
	return c, nil
}

// JSSignature is WeChat's JS-SDK signature: the SHA-1 of the sorted
// parameters as a query string.
func JSSignature(ticket, nonce string, timestamp int64, pageURL string) string {
	sum := sha1.Sum([]byte("jsapi_ticket=" + ticket + "&noncestr=" + nonce + "&timestamp=" +
		strconv.FormatInt(timestamp, 10) + "&url=" + pageURL))
	return hex.EncodeToString(sum[:])
}

// JSConfig calls Account.JSConfig for the merchant.
func (r *Accounts) JSConfig(ctx context.Context, merchantID uint64, pageURL string) (JSConfig, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return JSConfig{}, err
	}
	return a.JSConfig(ctx, pageURL)
}

// randomNonce is 16 random hex characters.
func randomNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}
