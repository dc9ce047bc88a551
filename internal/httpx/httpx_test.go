package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

func init() { gin.SetMode(gin.TestMode) }

func failWith(err error) (*httptest.ResponseRecorder, ErrorBody) {
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest("GET", "/", nil)
	Fail(c, err)
	var body ErrorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec, body
}

func TestFailMapsKinds(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{apperr.Invalid("birthday", "bad"), 400, "validation_failed", "some fields are invalid"},
		{fmt.Errorf("member: get: %w", apperr.New(apperr.ErrNotFound, "member not found")), 404, "not_found", "member not found"},
		{apperr.New(apperr.ErrConflict, "taken"), 409, "conflict", "taken"},
		{apperr.ErrUnauthenticated, 401, "unauthenticated", "unauthenticated"},
		{&apperr.RetryAfter{Err: apperr.New(apperr.ErrTooManyRequests, "slow down"), Seconds: 30}, 429, "too_many_requests", "slow down"},
		// Anything else is a 500 that reveals nothing.
		{errors.New("Error 1064 (42000): You have an error in your SQL syntax near 'members'"), 500, "internal", "internal error"},
	}
	for _, tc := range cases {
		rec, body := failWith(tc.err)
		if rec.Code != tc.status || body.Error.Code != tc.code || body.Error.Message != tc.msg {
			t.Errorf("%v: %d %+v", tc.err, rec.Code, body)
		}
		if strings.Contains(rec.Body.String(), "SQL") {
			t.Errorf("response leaks internals: %s", rec.Body.String())
		}
	}
	rec, body := failWith(apperr.Invalid("birthday", "bad"))
	if body.Error.Fields["birthday"] != "bad" || rec.Code != 400 {
		t.Fatalf("fields: %+v", body)
	}
	rec, _ = failWith(&apperr.RetryAfter{Err: apperr.ErrTooManyRequests, Seconds: 30})
	if rec.Header().Get("Retry-After") != "30" {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
}

func bind(body string) error {
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest("POST", "/", strings.NewReader(body))
	var dst struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
		Inner struct {
			Month int `json:"month"`
		} `json:"inner"`
	}
	return BindJSON(c, &dst)
}

func TestBindJSONNamesTheField(t *testing.T) {
	cases := map[string]string{
		``:                          "body",
		`{"name":`:                  "body",
		`{"name":"a"}{"name":"b"}`:  "body",
		`{"name":1}`:                "name",
		`{"count":"3"}`:             "count",
		`{"count":1.5}`:             "count",
		`{"inner":{"month":"May"}}`: "inner.month",
		`{"surprise":true}`:         "surprise",
		`["not an object"]`:         "body",
		`{"name":"` + strings.Repeat("x", MaxJSONBody) + `"}`: "body",
	}
	for body, field := range cases {
		err := bind(body)
		var v *apperr.Validation
		if !errors.As(err, &v) || v.Fields[field] == "" {
			short := body
			if len(short) > 40 {
				short = short[:40] + "..."
			}
			t.Errorf("%q: %v, want field %q named", short, err, field)
		}
	}
	if err := bind(`{"name":"ok","count":2}`); err != nil {
		t.Fatal(err)
	}
}

func TestRequestIDs(t *testing.T) {
	r := gin.New()
	r.Use(RequestLog(discard(), LogOptions{}))
	r.GET("/", func(c *gin.Context) { c.String(200, RequestID(c)) })
	for _, in := range []string{"abc-123", "", "bad id with spaces", strings.Repeat("x", 100)} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Request-ID", in)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-ID")
		if got == "" || got != rec.Body.String() {
			t.Fatalf("request id %q / %q", got, rec.Body.String())
		}
		if in == "abc-123" && got != in {
			t.Fatalf("sane incoming id not kept: %q", got)
		}
		if in != "abc-123" && got == in {
			t.Fatalf("unsafe incoming id kept: %q", got)
		}
	}
}

// The access log: a line per request at info (error for 5xx), none for
// skipped paths, and for quiet routes none at info when they succeed but
// still one when they fail.
func TestRequestLogLevels(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := gin.New()
	r.Use(RequestLog(log, LogOptions{Skip: []string{"/healthz"}, QuietRoutes: []string{"/hook/:id"}}))
	r.GET("/healthz", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/page", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/hook/:id", func(c *gin.Context) {
		switch c.Param("id") {
		case "bad":
			c.String(403, "forbidden")
		case "down":
			c.String(503, "unavailable")
		default:
			c.String(200, "success")
		}
	})
	for _, tc := range []struct {
		path, want string // want: the level logged, "" for no line
	}{
		{"/healthz", ""},
		{"/page", "INFO"},
		{"/nowhere", "INFO"},
		{"/hook/1", ""},
		{"/hook/bad", "INFO"},
		{"/hook/down", "ERROR"},
	} {
		buf.Reset()
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tc.path, nil))
		var line struct{ Level, Route string }
		if buf.Len() > 0 {
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%s: log line %q: %v", tc.path, buf.String(), err)
			}
		}
		if line.Level != tc.want {
			t.Errorf("%s: logged %q at %q, want level %q", tc.path, buf.String(), line.Level, tc.want)
		}
	}
	// At debug level the quiet route's successes are logged too.
	buf.Reset()
	debug := gin.New()
	debug.Use(RequestLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LogOptions{QuietRoutes: []string{"/hook/:id"}}))
	debug.GET("/hook/:id", func(c *gin.Context) { c.String(200, "success") })
	debug.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hook/1", nil))
	if !strings.Contains(buf.String(), `"level":"DEBUG"`) || !strings.Contains(buf.String(), `"route":"/hook/:id"`) {
		t.Fatalf("debug log of a quiet success: %q", buf.String())
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// PathID takes only a plain positive decimal id and answers anything else
// with the caller's not-found error; Query refuses a malformed query and
// QueryOnly also any parameter it was not told of.
func TestPathIDAndQuery(t *testing.T) {
	notFound := apperr.New(apperr.ErrNotFound, "thing not found")
	r := gin.New()
	r.GET("/things/:id", func(c *gin.Context) {
		id, ok := PathID(c, "id", notFound)
		if !ok {
			return
		}
		c.String(200, "%d", id)
	})
	r.GET("/q", func(c *gin.Context) {
		q, err := QueryOnly(c, "limit", "before")
		if err != nil {
			Fail(c, err)
			return
		}
		c.String(200, q.Get("limit"))
	})
	r.GET("/any", func(c *gin.Context) {
		if _, err := Query(c); err != nil {
			Fail(c, err)
			return
		}
		c.String(200, "ok")
	})
	for _, tc := range []struct {
		path string
		code int
		body string // a substring of the answer
	}{
		{"/things/42", 200, "42"},
		{"/things/9223372036854775807", 200, "9223372036854775807"},
		// Beyond MaxID: not an id on any database (SQLite stores signed
		// 64-bit integers), so not found rather than a failing query.
		{"/things/9223372036854775808", 404, "thing not found"},
		{"/things/18446744073709551615", 404, "thing not found"},
		{"/things/0", 404, "thing not found"},
		{"/things/007", 404, "thing not found"},
		{"/things/-1", 404, "thing not found"},
		{"/things/+1", 404, "thing not found"},
		{"/things/18446744073709551616", 404, "thing not found"},
		{"/things/abc", 404, "thing not found"},
		{"/q?limit=5&before=9", 200, "5"},
		{"/q", 200, ""},
		{"/q?limit=5&sort=name", 400, `"sort":"is not a known parameter"`},
		{"/q?limit=%zz", 400, "well-formed query"},
		{"/any?whatever=1", 200, "ok"},
		{"/any?a=%zz", 400, "well-formed query"},
	} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %s, want %d with %q", tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}

func TestParseID(t *testing.T) {
	for s, want := range map[string]uint64{
		"1": 1, "42": 42, "9223372036854775807": MaxID,
	} {
		if got, ok := ParseID(s); !ok || got != want {
			t.Errorf("ParseID(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "0", "00", "007", "-1", "+1", " 1", "1 ", "1e3", "0x10", "abc", "１",
		"9223372036854775808", "18446744073709551615", "18446744073709551616", "99999999999999999999999"} {
		if got, ok := ParseID(s); ok {
			t.Errorf("ParseID(%q) = %d, accepted", s, got)
		}
	}
}
