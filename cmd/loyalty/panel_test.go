package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// panelGet fetches path from the service without the client's transparent
// gzip, so the test sees the headers and body as sent.
func panelGet(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// The admin panel is served from the binary: its HTML at /admin/ and every
// deep link under it, never cached (a deploy shows at the next load); its
// hashed assets cached for a year; unknown assets and other methods are the
// API's JSON 404, still uncacheable.
func TestAdminPanelIsServedWithCaching(t *testing.T) {
	a := startAppOn(t, onBackend(t, dbtest.SQLite))

	resp, index := panelGet(t, http.MethodGet, a.base+"/admin/", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /admin/: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("GET /admin/ Cache-Control %q, want no-cache", got)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("GET /admin/ Content-Security-Policy %q", csp)
	}
	if !bytes.Contains(index, []byte(`<div id="app">`)) {
		t.Fatalf("GET /admin/ is not the panel:\n%s", index)
	}

	// Deep links get the same page, which routes them in the browser.
	for _, path := range []string{"/admin/members/42?tab=points", "/admin/login", "/admin/orders/POS-1"} {
		resp, body := panelGet(t, http.MethodGet, a.base+path, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, index) || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: %d, Cache-Control %q, same page %v", path, resp.StatusCode, resp.Header.Get("Cache-Control"), bytes.Equal(body, index))
		}
	}
	if resp, body := panelGet(t, http.MethodHead, a.base+"/admin/members/1", nil); resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /admin/members/1: %d with %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := panelGet(t, http.MethodGet, a.base+"/admin?x=1", nil); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/admin/?x=1" {
		t.Errorf("GET /admin: %d to %q, want 301 to /admin/?x=1", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The entry script the page names is cached for a year, gzipped on request.
	m := regexp.MustCompile(`src="(/assets/[^"]+\.js)"`).FindSubmatch(index)
	if m == nil {
		t.Fatalf("no script in the panel's page:\n%s", index)
	}
	script := string(m[1])
	resp, plain := panelGet(t, http.MethodGet, a.base+script, nil)
	if resp.StatusCode != http.StatusOK || len(plain) == 0 {
		t.Fatalf("GET %s: %d", script, resp.StatusCode)
	}
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
		t.Errorf("GET %s Cache-Control %q, want a year, immutable", script, got)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("GET %s Content-Type %q", script, ct)
	}
	resp, zipped := panelGet(t, http.MethodGet, a.base+script, map[string]string{"Accept-Encoding": "gzip, br"})
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("GET %s with gzip: Content-Encoding %q, Vary %q", script, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, err := io.ReadAll(zr); err != nil || !bytes.Equal(unzipped, plain) || len(zipped) >= len(plain) {
		t.Errorf("gzipped %s: %d bytes for %d, same content %v (%v)", script, len(zipped), len(plain), bytes.Equal(unzipped, plain), err)
	}

	// Not panel files: the API's 404, which no cache may keep.
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/assets/nope-1234.js"},
		{http.MethodGet, "/assets/"},
		{http.MethodGet, "/assets/sub/dir.js"},
		{http.MethodPost, "/admin/"},
		{http.MethodGet, "/api/admin/v1/nope"},
		{http.MethodGet, "/administrator"},
	} {
		resp, body := panelGet(t, c.method, a.base+c.path, nil)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusNotFound || e.Error.Code != "not_found" {
			t.Errorf("%s %s: %d %s, want the JSON 404", c.method, c.path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s Cache-Control %q, want no-store", c.method, c.path, got)
		}
	}
}

// The member centre is served like the panel, under /m/<merchant_id>/: its
// own page (never cached) for every path under it, so WeChat's redirect
// back (with code and state) and deep links from the menu open the app;
// /m/<id> gets the slash; anything that is not a merchant id is the API's
// 404. Its scripts are the same year-long cached assets.
func TestMemberCentreIsServed(t *testing.T) {
	a := startAppOn(t, onBackend(t, dbtest.SQLite))
	if !a.panel.HasMemberCentre() {
		t.Fatal("the build has no member centre (web/dist/member/index.html): run npm run build in web/")
	}
	_, admin := panelGet(t, http.MethodGet, a.base+"/admin/", nil)
	resp, page := panelGet(t, http.MethodGet, a.base+"/m/1/", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		resp.Header.Get("Cache-Control") != "no-cache" || bytes.Equal(page, admin) || !bytes.Contains(page, []byte(`<div id="app">`)) {
		t.Fatalf("GET /m/1/: %d %q %q, the admin page %v", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), bytes.Equal(page, admin))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("GET /m/1/ Content-Security-Policy %q", csp)
	}
	for _, path := range []string{"/m/1/coupons?status=used", "/m/1/?code=abc&state=def", "/m/18446744073709551615/profile", "/m/1/a/b/c"} {
		resp, body := panelGet(t, http.MethodGet, a.base+path, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, page) || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: %d, Cache-Control %q, the member centre %v", path, resp.StatusCode, resp.Header.Get("Cache-Control"), bytes.Equal(body, page))
		}
	}
	if resp, _ := panelGet(t, http.MethodGet, a.base+"/m/7?code=x", nil); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/m/7/?code=x" {
		t.Errorf("GET /m/7: %d to %q, want 301 to /m/7/?code=x", resp.StatusCode, resp.Header.Get("Location"))
	}
	m := regexp.MustCompile(`src="(/assets/[^"]+\.js)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no script in the member centre's page:\n%s", page)
	}
	if resp, _ := panelGet(t, http.MethodGet, a.base+string(m[1]), nil); resp.StatusCode != http.StatusOK ||
		resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("GET %s: %d, Cache-Control %q", m[1], resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/m/"},
		{http.MethodGet, "/m/0/"},
		{http.MethodGet, "/m/01/"},
		{http.MethodGet, "/m/abc/"},
		{http.MethodGet, "/m/123456789012345678901/"},
		{http.MethodPost, "/m/1/"},
		{http.MethodGet, "/member/1/"},
	} {
		resp, body := panelGet(t, c.method, a.base+c.path, nil)
		if resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte(`"not_found"`)) {
			t.Errorf("%s %s: %d %s, want the JSON 404", c.method, c.path, resp.StatusCode, body)
		}
	}
}
