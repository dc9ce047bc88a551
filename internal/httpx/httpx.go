// Package httpx holds the HTTP conventions every feature shares: one JSON
// error shape, the mapping from apperr kinds to status codes, strict JSON
// binding, request ids and access logs.
package httpx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// ErrorBody is the one error shape of the API:
//
//	{"error":{"code":"validation_failed","message":"...","fields":{"birthday":"..."},"request_id":"..."}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the content of ErrorBody.
type ErrorDetail struct {
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

type kindInfo struct {
	kind   error
	status int
	code   string
}

// kinds is ordered: the first kind the error matches decides.
var kinds = []kindInfo{
	{apperr.ErrInvalid, http.StatusBadRequest, "validation_failed"},
	{apperr.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{apperr.ErrForbidden, http.StatusForbidden, "forbidden"},
	{apperr.ErrNotFound, http.StatusNotFound, "not_found"},
	{apperr.ErrConflict, http.StatusConflict, "conflict"},
	{apperr.ErrUnprocessable, http.StatusUnprocessableEntity, "unprocessable"},
	{apperr.ErrTooManyRequests, http.StatusTooManyRequests, "too_many_requests"},
	{apperr.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
}

// Fail writes err as the JSON error and aborts the request. An error of a
// known kind gets its status, and the message of an *apperr.Error inside it
// (written for the client) or else the kind's generic text; anything else is
// logged with the request id and shown as a generic 500, never with SQL or
// stack details.
func Fail(c *gin.Context, err error) {
	body := ErrorBody{Error: ErrorDetail{RequestID: RequestID(c)}}
	status := http.StatusInternalServerError
	body.Error.Code, body.Error.Message = "internal", "internal error"
	for _, k := range kinds {
		if errors.Is(err, k.kind) {
			status, body.Error.Code, body.Error.Message = k.status, k.code, k.kind.Error()
			break
		}
	}
	var ae *apperr.Error
	if errors.As(err, &ae) && status < 500 {
		body.Error.Message = ae.Msg
	}
	var v *apperr.Validation
	if errors.As(err, &v) {
		body.Error.Fields = v.Fields
		body.Error.Message = "some fields are invalid"
	}
	var ra *apperr.RetryAfter
	if errors.As(err, &ra) && ra.Seconds > 0 {
		c.Header("Retry-After", strconv.Itoa(ra.Seconds))
	}
	if status >= 500 {
		Logger(c).ErrorContext(c.Request.Context(), "request failed", "error", err)
	}
	c.AbortWithStatusJSON(status, body)
}

const (
	requestIDKey = "request_id"
	loggerKey    = "logger"
)

// MaxID is the largest row id the API accepts anywhere (paths, queries,
// bodies). The id columns are BIGINT UNSIGNED on MySQL, but SQLite stores
// signed 64-bit integers and database/sql refuses uint64 arguments with the
// high bit set, so ids are 1 to 2^63-1 on every database: a larger number
// is simply not an id, never a query that fails.
const MaxID = math.MaxInt64

// ParseID reads an id in its one canonical form: plain decimal digits, no
// sign, no leading zeros, from 1 to MaxID. Every id taken from a request
// goes through it (PathID for paths).
func ParseID(s string) (uint64, bool) {
	if s == "" || len(s) > len("9223372036854775807") || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id > MaxID {
		return 0, false
	}
	return id, true
}

// PathID reads an id (see ParseID) from the path parameter name. Anything
// else answers notFound: a malformed or out-of-range id is as missing as an
// id of another merchant (404, no existence leak).
func PathID(c *gin.Context, name string, notFound error) (uint64, bool) {
	id, ok := ParseID(c.Param(name))
	if !ok {
		Fail(c, notFound)
		return 0, false
	}
	return id, true
}

// Query parses the request's query strictly: URL.Query would silently drop
// malformed pairs.
func Query(c *gin.Context) (url.Values, error) {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return nil, apperr.Invalid("query", "is not a well-formed query string")
	}
	return q, nil
}

// QueryOnly is Query that also refuses any parameter not named in known
// (with none named, every parameter).
func QueryOnly(c *gin.Context, known ...string) (url.Values, error) {
	q, err := Query(c)
	if err != nil {
		return nil, err
	}
	v := &apperr.Validation{}
	for k := range q {
		if !slices.Contains(known, k) {
			v.Add(k, "is not a known parameter")
		}
	}
	return q, v.Err()
}

// RequestID returns the request's id.
func RequestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// Logger returns a logger that tags lines with the request's id. (It is
// built on demand: most requests log only their access line.)
func Logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		return l.(*slog.Logger).With("request_id", RequestID(c))
	}
	return slog.Default()
}

// LogOptions choose which requests RequestLog writes a line for.
type LogOptions struct {
	// Skip lists paths never logged (probes, metrics scrapes).
	Skip []string
	// QuietRoutes lists routes (gin route patterns) whose successful
	// requests are logged at debug level only: high-volume machine calls,
	// such as WeChat's pushes, that are recorded elsewhere (the inbox keeps
	// every event, the metrics count every request). Their failures are
	// logged like any other request's.
	QuietRoutes []string
}

// RequestLog assigns a request id (kept from X-Request-ID when it is sane),
// returns it in X-Request-ID, and logs one line per request (see
// LogOptions for the exceptions).
func RequestLog(log *slog.Logger, o LogOptions) gin.HandlerFunc {
	skipped := map[string]bool{}
	for _, p := range o.Skip {
		skipped[p] = true
	}
	quiet := map[string]bool{}
	for _, r := range o.QuietRoutes {
		quiet[r] = true
	}
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-ID")
		if !saneID(id) {
			id = newID()
		}
		c.Set(requestIDKey, id)
		c.Set(loggerKey, log)
		c.Header("X-Request-ID", id)
		start := time.Now()
		c.Next()
		if skipped[c.Request.URL.Path] {
			return
		}
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case status < 400 && quiet[route]:
			level = slog.LevelDebug
		}
		ctx := c.Request.Context()
		if !log.Enabled(ctx, level) {
			return
		}
		log.LogAttrs(ctx, level, "http request", slog.String("request_id", id),
			slog.String("method", c.Request.Method), slog.String("route", route),
			slog.Int("status", status), slog.Int64("duration_us", time.Since(start).Microseconds()))
	}
}

// Recover turns a panic into a logged 500 with the JSON error shape.
func Recover() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				Logger(c).ErrorContext(c.Request.Context(), "panic", "panic", fmt.Sprint(p))
				Fail(c, fmt.Errorf("panic: %v", p))
			}
		}()
		c.Next()
	}
}

// SecurityHeaders sets the headers every response carries. Nothing the
// API answers is for a shared cache (tokens, members' personal data,
// exports), so Cache-Control is no-store unless a handler that knows better
// sets its own. hsts adds Strict-Transport-Security: only when the service
// is reached over https (a TLS proxy in front), or browsers would be told
// to insist on a TLS that does not exist.
func SecurityHeaders(hsts bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		c.Next()
	}
}

// NotFound and MethodNotAllowed answer unknown routes in the JSON shape.
func NotFound(c *gin.Context) {
	Fail(c, fmt.Errorf("no route %s %s: %w", c.Request.Method, c.Request.URL.Path, apperr.ErrNotFound))
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')) {
			return false
		}
	}
	return true
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
