// Package web serves the admin panel and the member centre built from this
// folder (npm run build writes dist/, which is committed so that `go run
// ./cmd/loyalty` needs no Node). Both are single-page apps: every path
// under /admin/ answers the panel's index.html, every path under
// /m/<merchant_id>/ the member centre's (never cached, so a deploy is
// picked up at the next load), and /assets/ serves the build's
// content-hashed files with a year-long, immutable cache.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// dist holds the build; "all:" keeps chunks whose names start with "_".
//
// The whole folder, so that a build without the member centre (an older
// dist/) still compiles; NewPanel says what is missing.
//
//go:embed all:dist
var dist embed.FS

const (
	// AdminPrefix is where the panel lives.
	AdminPrefix = "/admin/"
	// AssetsPrefix is where the hashed build files live (Vite's base is "/").
	AssetsPrefix = "/assets/"
	// MemberPrefix starts the member centre's paths: /m/<merchant_id>/...
	// (the page reads the merchant from its own URL).
	MemberPrefix = "/m/"

	immutable = "public, max-age=31536000, immutable"
	// The panel's HTML must be revalidated at every load.
	noCache = "no-cache"
	// The panel loads only its own scripts and talks only to this origin;
	// Element Plus sets inline styles, and charts draw on canvas. Images
	// may also come from WeChat's avatar hosts (members' shared avatars).
	contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data: blob: https://thirdwx.qlogo.cn https://wx.qlogo.cn; font-src 'self' data:; connect-src 'self'; object-src 'none'; " +
		"base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

// Panel serves the embedded build. Build one with NewPanel and share it.
type Panel struct {
	assets fs.FS
	index  []byte
	// member is the member centre's index.html; nil when the build has
	// none (its paths are then the API's 404).
	member []byte
	// gzipped holds each compressible asset's gzip body, made at its first
	// request: the build is fixed for the life of the binary.
	gzipped sync.Map // name -> []byte
}

// NewPanel reads the embedded build; it fails when the build is missing
// (a binary built without web/dist).
func NewPanel() (*Panel, error) {
	index, err := dist.ReadFile("dist/admin/index.html")
	if err != nil {
		return nil, fmt.Errorf("web: the admin panel is not built (web/dist/admin/index.html): %w", err)
	}
	assets, err := fs.Sub(dist, "dist/assets")
	if err != nil {
		return nil, fmt.Errorf("web: assets: %w", err)
	}
	member, err := dist.ReadFile("dist/member/index.html")
	if err != nil {
		member = nil
	}
	return &Panel{assets: assets, index: index, member: member}, nil
}

// HasMemberCentre reports whether the build holds the member centre.
func (p *Panel) HasMemberCentre() bool { return p.member != nil }

// Serve answers a request for the panel or its assets and reports whether
// it did; anything else (another path, another method, an unknown asset)
// is left to the caller, which answers its usual 404.
func (p *Panel) Serve(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch upath := r.URL.Path; {
	case upath == strings.TrimSuffix(AdminPrefix, "/"):
		target := AdminPrefix
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return true
	case strings.HasPrefix(upath, AdminPrefix):
		// Deep links (/admin/members/42) get the app, which routes them.
		serveHTML(w, r, p.index)
		return true
	case strings.HasPrefix(upath, MemberPrefix) && p.member != nil:
		// Deep links (/m/42/coupons) get the app, which routes them.
		id, _, slash := strings.Cut(strings.TrimPrefix(upath, MemberPrefix), "/")
		if !merchantID(id) {
			return false
		}
		if !slash { // /m/42: the app's relative URLs need the slash
			target := MemberPrefix + id + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return true
		}
		serveHTML(w, r, p.member)
		return true
	case strings.HasPrefix(upath, AssetsPrefix):
		return p.serveAsset(w, r, strings.TrimPrefix(upath, AssetsPrefix))
	}
	return false
}

// serveHTML answers an app's index.html, never cached.
func serveHTML(w http.ResponseWriter, r *http.Request, page []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", noCache)
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(page)
	}
}

// merchantID reports whether s is a merchant id as the API writes it: 1 to
// 20 digits, no leading zero.
func merchantID(s string) bool {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (p *Panel) serveAsset(w http.ResponseWriter, r *http.Request, name string) bool {
	// The build writes a flat folder; anything else is not an asset.
	if name == "" || strings.Contains(name, "/") || !fs.ValidPath(name) {
		return false
	}
	body, err := fs.ReadFile(p.assets, name)
	if err != nil {
		return false
	}
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	if path.Ext(name) == ".woff2" { // not in Go's table, nor in every /etc/mime.types
		ctype = "font/woff2"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", immutable)
	if compressible(name) {
		h.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			if gz, err := p.gzipOf(name, body); err == nil {
				body = gz
				h.Set("Content-Encoding", "gzip")
			}
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return true
}

func (p *Panel) gzipOf(name string, body []byte) ([]byte, error) {
	if v, ok := p.gzipped.Load(name); ok {
		return v.([]byte), nil
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	v, _ := p.gzipped.LoadOrStore(name, buf.Bytes())
	return v.([]byte), nil
}

func compressible(name string) bool {
	switch path.Ext(name) {
	case ".js", ".css", ".svg", ".json", ".html", ".txt", ".map":
		return true
	}
	return false
}

// acceptsGzip reads Accept-Encoding loosely: gzip listed and not refused with q=0.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
