package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

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
		`{"name":"` + strings.Repeat("x", MaxJSONBody) + `"}`:         "body",
		`{"count":1,"count":1000}`:                                    "count",
		`{"count":1,"COUNT":1000}`:                                    "COUNT",
		`{"inner":{"month":1,"month":2}}`:                             "inner.month",
		`{"count":9223372036854775808}`:                               "count",
		`{"inner":{"month":1e999}}`:                                   "inner.month",
		`{"name":"a"} x`:                                              "body",
		strings.Repeat("[", 100):                                      "body",
		strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100): "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
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

// strictTarget has a field of each shape the API's requests use.
type strictTarget struct {
	Name   string            `json:"name"`
	Count  int64             `json:"count"`
	Small  int               `json:"small"`
	ID     uint64            `json:"id"`
	IDs    []uint64          `json:"ids"`
	Ratio  float64           `json:"ratio"`
	Flag   *bool             `json:"flag"`
	At     *time.Time        `json:"at"`
	Tags   map[string]string `json:"tags"`
	Raw    json.RawMessage   `json:"raw"`
	Nested struct {
		Month int `json:"month"`
	} `json:"nested"`
}

// goWords are fragments of Go's own error texts, which must never reach a
// client.
var goWords = regexp.MustCompile(`Go struct|Go value|json:|unmarshal|UnmarshalJSON|strconv|int64|uint64|float64|time\.Time|\w+\.\w+ of type`)

func TestBindJSONReasons(t *testing.T) {
	cases := []struct{ body, field, reason string }{
		{`{"count":1,"count":1000}`, "count", "is given more than once"},
		{`{"tags":{"a":"x","A":"y"}}`, "tags.A", "is given more than once"},
		{`{"nested":{"month":1},"nested":{"month":2}}`, "nested", "is given more than once"},
		{`{"ids":[1,9223372036854775808]}`, "ids", "must be at most 9223372036854775807"},
		{`{"count":-9223372036854775809}`, "count", "must be at least -9223372036854775808"},
		{`{"id":-1}`, "id", "must not be negative"},
		{`{"count":"3"}`, "count", "must be an integer"},
		{`{"count":1.5}`, "count", "must be a whole number"},
		{`{"small":1e300}`, "small", "must be a whole number"},
		{`{"ratio":"x"}`, "ratio", "must be a number"},
		{`{"flag":"yes"}`, "flag", "must be true or false"},
		{`{"name":{}}`, "name", "must be a string"},
		{`{"nested":[]}`, "nested", "must be an object"},
		{`{"ids":{}}`, "ids", "must be an array"},
		{`{"at":"tomorrow"}`, "at", "must be an RFC 3339 time"},
		{`{"at":12}`, "at", "must be an RFC 3339 time"},
		{`{"surprise":1}`, "surprise", "is not a known field"},
		{`{"name":"a"}{}`, "body", "must be a single JSON value"},
		{`{"name":"a",}`, "body", "is not valid JSON"},
		{` `, "body", "is empty"},
	}
	for _, tc := range cases {
		var dst strictTarget
		err := decodeStrict([]byte(tc.body), &dst, "")
		var v *apperr.Validation
		if !errors.As(err, &v) || !strings.Contains(v.Fields[tc.field], tc.reason) {
			t.Errorf("%s: %v, want %s %q", tc.body, err, tc.field, tc.reason)
		}
	}
	// DecodeJSON names fields under its prefix.
	var dst strictTarget
	err := DecodeJSON([]byte(`{"nested":{"month":"May"}}`), &dst, "rule")
	var v *apperr.Validation
	if !errors.As(err, &v) || v.Fields["rule.nested.month"] != "must be an integer" {
		t.Errorf("DecodeJSON: %v", err)
	}
	// What is valid reads exactly as encoding/json reads it.
	ok := `{"name":"a","count":-9223372036854775808,"id":9223372036854775807,"ids":[1,2],"ratio":1e300,
		"at":"2026-11-01T00:00:00+08:00","tags":{"a":"x","b":"y"},"raw":{"x":[1,{"y":2}]},"nested":{"month":12}}`
	var got, want strictTarget
	if err := decodeStrict([]byte(ok), &got, ""); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(ok), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// FuzzBindJSON: whatever the body, the answer is nil or a validation error
// in the API's words, and an accepted body means what encoding/json says it
// means.
func FuzzBindJSON(f *testing.F) {
	for _, seed := range []string{`{"name":"a","count":1}`, `{"count":1,"count":2}`, `{"ids":[1,18446744073709551615]}`,
		`{"at":"2026-01-01T00:00:00Z"}`, `{"at":1}`, `{"raw":{"a":1,"a":2}}`, `{"tags":{"K":"1","\u212a":"2"}}`, `[`, `"x"`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst strictTarget
		err := decodeStrict(body, &dst, "")
		if err != nil {
			var v *apperr.Validation
			if !errors.As(err, &v) {
				t.Fatalf("%q: %T %v", body, err, err)
			}
			for f, reason := range v.Fields {
				if goWords.MatchString(f + " " + reason) {
					t.Fatalf("%q: %s: %s shows Go's words", body, f, reason)
				}
			}
			return
		}
		var want strictTarget
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("%q accepted, but encoding/json says %v", body, err)
		}
		if !reflect.DeepEqual(dst, want) {
			t.Fatalf("%q: got %+v, encoding/json %+v", body, dst, want)
		}
	})
}

func TestSecurityHeadersLetAHandlerAllowCaching(t *testing.T) {
	r := gin.New()
	r.Use(SecurityHeaders(true))
	r.GET("/cacheable", func(c *gin.Context) {
		c.Header("Cache-Control", "private, max-age=60")
		c.String(200, "ok")
	})
	r.GET("/plain", func(c *gin.Context) { c.String(200, "ok") })
	for path, want := range map[string]string{"/cacheable": "private, max-age=60", "/plain": "no-store"} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := rec.Header().Get("Cache-Control"); got != want {
			t.Errorf("%s: Cache-Control %q, want %q", path, got, want)
		}
		if rec.Header().Get("Strict-Transport-Security") == "" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %v", path, rec.Header())
		}
	}
}

func TestBeforePage(t *testing.T) {
	for _, c := range []struct {
		query         string
		before        uint64
		limit         int
		badBefore, bl bool
	}{
		{"", 0, 50, false, false},
		{"before=7&limit=3", 7, 3, false, false},
		{"before=x", 0, 50, true, false},
		{"before=0", 0, 50, true, false},
		{"limit=0", 0, 0, false, true},
		{"limit=201", 0, 201, false, true},
	} {
		q, _ := url.ParseQuery(c.query)
		v := &apperr.Validation{}
		before, limit := BeforePage(q, 50, 200, v)
		_, gotBefore := v.Fields["before"]
		_, gotLimit := v.Fields["limit"]
		if before != c.before || limit != c.limit || gotBefore != c.badBefore || gotLimit != c.bl {
			t.Errorf("%q: before %d limit %d fields %v", c.query, before, limit, v.Fields)
		}
	}
	if NextBefore(2, 3, 9) != nil || *NextBefore(3, 3, 9) != 9 {
		t.Error("NextBefore")
	}
}
