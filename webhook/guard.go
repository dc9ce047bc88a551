package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Targets decides which addresses endpoints may point at. By default only
// public addresses: an endpoint on loopback, a private or link-local
// network (cloud metadata at 169.254.169.254 among them) or an unspecified
// or multicast address would let a merchant make the service call inside
// its own network (SSRF). AllowPrivate lifts that, for a development
// machine or tests (configuration: webhooks.allow_private_targets).
type Targets struct {
	AllowPrivate bool
	// Resolve looks a host up; nil: the system resolver.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

var errPrivateTarget = errors.New("points at a loopback, private, link-local or otherwise non-public address")

// blocked reports whether addr is not a public unicast address.
func blocked(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() ||
		// 100.64.0.0/10 (carrier-grade NAT) is private in practice too.
		netip.MustParsePrefix("100.64.0.0/10").Contains(addr)
}

// check validates an endpoint URL: http or https, a host, no credentials,
// and (unless private targets are allowed) a host that resolves only to
// public addresses. The reason names what is wrong.
func (t Targets) check(ctx context.Context, raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > 2048:
		return "", errors.New("is not a URL of at most 2048 characters")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", errors.New("must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("must name a host")
	case u.User != nil:
		return "", errors.New("must not carry credentials")
	case u.Fragment != "":
		return "", errors.New("must not have a fragment")
	}
	if t.AllowPrivate {
		return u.String(), nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return "", errPrivateTarget
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if addrs, err = t.resolve(rctx, host); err != nil || len(addrs) == 0 {
			return "", fmt.Errorf("host %q does not resolve", host)
		}
	}
	for _, a := range addrs {
		if blocked(a) {
			return "", errPrivateTarget
		}
	}
	return u.String(), nil
}

func (t Targets) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if t.Resolve != nil {
		return t.Resolve(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// client returns the HTTP client deliveries use: a short timeout, no
// redirects (a 3xx is a failed attempt: following it could lead anywhere),
// no proxy from the environment, and, unless private targets are allowed,
// a dialer that refuses non-public addresses at connect time, so a host
// whose DNS changed after registration (DNS rebinding) is refused too.
func (t Targets) client(timeout time.Duration, perHost int) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if !t.AllowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || blocked(ap.Addr()) {
				return fmt.Errorf("webhook: %s %w", address, errPrivateTarget)
			}
			return nil
		}
	}
	tr := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost: perHost, MaxConnsPerHost: 0, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
