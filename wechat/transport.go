package wechat

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/util"
	"github.com/sirupsen/logrus"
)

// wechatHosts are the hosts the SDK calls or links to. With an API base set,
// requests to any of them go to the base instead.
var wechatHosts = map[string]bool{
	"api.weixin.qq.com": true, "api2.weixin.qq.com": true, "sh.api.weixin.qq.com": true,
	"sz.api.weixin.qq.com": true, "hk.api.weixin.qq.com": true, "mp.weixin.qq.com": true,
	"open.weixin.qq.com": true,
}

// Endpoint says where WeChat is: the real hosts (Base nil) or a simulator
// at Base. It rewrites both API calls and the browser-facing URLs WeChat
// hands out (OAuth authorize, QR code images); Browser, when set, is the
// simulator's address as browsers see it, if that differs from the
// address this process calls.
type Endpoint struct {
	Base    *url.URL
	Browser *url.URL
}

// ParseEndpoint parses an API base such as "http://127.0.0.1:9000/wx"; the
// empty string means the real WeChat.
func ParseEndpoint(base string) (Endpoint, error) {
	if base == "" {
		return Endpoint{}, nil
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Endpoint{}, fmt.Errorf("wechat: api base %q must be an absolute http(s) URL", base)
	}
	return Endpoint{Base: u}, nil
}

// Rewrite maps a browser-facing WeChat URL to the endpoint; other URLs are
// returned as is.
func (e Endpoint) Rewrite(raw string) string {
	base := e.Browser
	if base == nil {
		base = e.Base
	}
	if base == nil {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || !wechatHosts[u.Hostname()] {
		return raw
	}
	rebase(u, base)
	return u.String()
}

func rebase(u, base *url.URL) {
	u.Scheme, u.Host = base.Scheme, base.Host
	if base.Path != "" {
		u.Path = base.Path + u.Path
		if u.RawPath != "" {
			u.RawPath = base.Path + u.RawPath
		}
	}
}

// NewHTTPClient returns the client for WeChat calls: pooled keep-alive
// connections, a timeout on every call (most SDK methods take no context, so
// the timeout is the only bound), and the endpoint rewrite.
func NewHTTPClient(e Endpoint, timeout time.Duration) *http.Client {
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	var rt http.RoundTripper = base
	if e.Base != nil {
		rt = rewriteTransport{endpoint: e, next: base}
	}
	return &http.Client{Timeout: timeout, Transport: rt}
}

// InstallHTTPClient makes the SDK use c for every call. The SDK has only a
// process-wide client (util.DefaultHTTPClient), so this is called once, from
// main or a test's TestMain, before any Account is used.
func InstallHTTPClient(c *http.Client) {
	util.DefaultHTTPClient = c
}

type rewriteTransport struct {
	endpoint Endpoint
	next     http.RoundTripper
}

func (t rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if wechatHosts[req.URL.Hostname()] {
		req = req.Clone(req.Context()) // a RoundTripper must not change the caller's request
		rebase(req.URL, t.endpoint.Base)
		req.Host = req.URL.Host
	}
	return t.next.RoundTrip(req)
}

// SilenceSDKDebugLog raises the SDK's process-wide logrus level to Warn. At
// Debug level the SDK's callback server logs raw decrypted callback XML
// (openids, message text: personal data). This service never uses that
// server and never imports the SDK root package (whose init() lowers the
// level to Debug); this is the second line of defence. Call it from main.
func SilenceSDKDebugLog() {
	logrus.SetLevel(logrus.WarnLevel)
}
