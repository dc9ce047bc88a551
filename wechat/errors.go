package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/silenceper/wechat/v2/util"
)

// Error kinds. Every error returned by an Account method matches exactly one
// of them with errors.Is, and is an *APIError carrying the errcode and
// errmsg.
var (
	// ErrTokenInvalid: the access token was rejected (40001, 40014, 42001).
	// Account methods already dropped the cached token and retried once.
	ErrTokenInvalid = errors.New("wechat: access token invalid")
	// ErrQuotaExhausted: the account's daily quota for this API is used up
	// (45009); it resets at midnight Beijing time.
	ErrQuotaExhausted = errors.New("wechat: daily quota exhausted")
	// ErrRateLimited: too many calls in a short time (45011 per-minute quota,
	// 43117 one openid messaged too often); retry later.
	ErrRateLimited = errors.New("wechat: rate limited")
	// ErrNotFollower: the user does not follow the official account (43004).
	ErrNotFollower = errors.New("wechat: user is not a follower")
	// ErrNoSubscription: the user has no unspent subscribe-message grant for
	// the template, or refused it (43101).
	ErrNoSubscription = errors.New("wechat: no subscription grant")
	// ErrOutOfWindow: a customer-service message outside the 48-hour window
	// or over its count (45015, 45047).
	ErrOutOfWindow = errors.New("wechat: outside the customer-service window")
	// ErrInvalidTemplate: the template id is unknown to the account (40037).
	ErrInvalidTemplate = errors.New("wechat: invalid template")
	// ErrInvalidOpenID: the openid does not belong to this app (40003).
	ErrInvalidOpenID = errors.New("wechat: invalid openid")
	// ErrInvalidCode: a login, phone or OAuth code is wrong, expired or
	// already used (40029, 40163).
	ErrInvalidCode = errors.New("wechat: invalid or used code")
	// ErrUnauthorized: the credentials or the account's permissions are wrong
	// (40013 bad AppID, 40125 bad AppSecret, 40164 caller IP not whitelisted,
	// 48001 API not authorised, 89503 IP needs confirmation).
	ErrUnauthorized = errors.New("wechat: credentials or permission rejected")
	// ErrRejected: any other errcode: WeChat refused the request as made
	// (data format, bad page path...). Not worth retrying unchanged.
	ErrRejected = errors.New("wechat: request rejected")
	// ErrTransient: WeChat is busy (-1), answered with an HTTP error or
	// garbage, or could not be reached in time. Worth retrying later.
	ErrTransient = errors.New("wechat: transient failure")
)

// APIError is a failed WeChat call.
type APIError struct {
	API   string // our name of the call, e.g. "template.send"
	Code  int    // WeChat errcode; 0 when the failure was not an errcode (network, HTTP status)
	Msg   string // WeChat errmsg, or the transport error text
	Kind  error  // one of the Err* kinds
	Cause error  // the underlying error, if any
}

func (e *APIError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("wechat %s: errcode %d (%s)", e.API, e.Code, e.Msg)
	}
	return fmt.Sprintf("wechat %s: %s", e.API, e.Msg)
}

// Unwrap exposes both the kind and the cause to errors.Is / errors.As.
func (e *APIError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// ErrCode returns the WeChat errcode inside err, or 0.
func ErrCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

var codeKinds = map[int]error{
	-1:    ErrTransient,
	40001: ErrTokenInvalid, 40014: ErrTokenInvalid, 42001: ErrTokenInvalid,
	45009: ErrQuotaExhausted,
	45011: ErrRateLimited, 43117: ErrRateLimited,
	43004: ErrNotFollower,
	43101: ErrNoSubscription,
	45015: ErrOutOfWindow, 45047: ErrOutOfWindow,
	40037: ErrInvalidTemplate,
	40003: ErrInvalidOpenID,
	40029: ErrInvalidCode, 40163: ErrInvalidCode,
	40013: ErrUnauthorized, 40125: ErrUnauthorized, 40164: ErrUnauthorized,
	48001: ErrUnauthorized, 89503: ErrUnauthorized,
}

// KindOf returns the error kind of a WeChat errcode.
func KindOf(code int) error {
	if k, ok := codeKinds[code]; ok {
		return k
	}
	if code == 0 {
		return nil
	}
	return ErrRejected
}

// codeDescriptions explains the errcodes a merchant is likely to meet, in
// words an operator can act on.
var codeDescriptions = map[int]string{
	-1:    "WeChat is busy; try again shortly",
	40001: "the access token was rejected (another system may have refreshed it with force_refresh)",
	40013: "the AppID is not valid",
	40125: "the AppSecret is wrong (it may have been reset in the WeChat console)",
	40164: "this server's IP address is not in the account's API IP whitelist",
	89503: "this server's IP address needs to be confirmed by the account administrator",
	48001: "the account has no permission for this API (unverified account or wrong account type)",
	45009: "the daily quota for this API is used up; it resets at midnight Beijing time",
	45011: "too many calls this minute; slow down",
	43004: "the user does not follow the official account",
	43101: "the user has not accepted (or has used up) this subscribe message",
	40037: "the template id does not exist on this account",
	40003: "the openid does not belong to this account",
}

// Describe returns an operator-friendly explanation of an errcode.
func Describe(code int) string {
	if d, ok := codeDescriptions[code]; ok {
		return d
	}
	return fmt.Sprintf("WeChat error %d", code)
}

// The SDK reports most API errors as fmt.Errorf strings such as
// "template msg send error : errcode=40037 , errmsg=invalid template_id";
// these patterns recover the code and message.
var (
	errcodeRe = regexp.MustCompile(`errcode=(-?\d+)`)
	errmsgRe  = regexp.MustCompile(`(?:errmsg|errormsg)=\s*(.*)$`)
	statusRe  = regexp.MustCompile(`statusCode=(\d+)`)
)

// classify turns whatever the SDK returned into an *APIError.
func classify(api string, err error) *APIError {
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var ce *util.CommonError
	if errors.As(err, &ce) {
		return &APIError{API: api, Code: int(ce.ErrCode), Msg: ce.ErrMsg, Kind: KindOf(int(ce.ErrCode)), Cause: err}
	}
	text := err.Error()
	if m := errcodeRe.FindStringSubmatch(text); m != nil {
		code, _ := strconv.Atoi(m[1])
		msg := text
		if mm := errmsgRe.FindStringSubmatch(text); mm != nil {
			msg = strings.TrimSpace(mm[1])
		}
		if code != 0 {
			return &APIError{API: api, Code: code, Msg: msg, Kind: KindOf(code), Cause: err}
		}
	}
	var netErr net.Error
	var syntaxErr *json.SyntaxError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.As(err, &netErr):
		return &APIError{API: api, Msg: "unreachable: " + text, Kind: ErrTransient, Cause: err}
	case statusRe.MatchString(text):
		return &APIError{API: api, Msg: "HTTP error: " + text, Kind: ErrTransient, Cause: err}
	case errors.As(err, &syntaxErr):
		return &APIError{API: api, Msg: "unreadable answer: " + text, Kind: ErrTransient, Cause: err}
	}
	return &APIError{API: api, Msg: text, Kind: ErrTransient, Cause: err}
}

// transportReason says in words why a call failed without an errcode, for
// the operators' connection test: never the underlying error's text, which
// may be a decoder's ("json: cannot unmarshal number into Go struct field
// ResAccessToken.access_token of type string" when the answer is odd).
func transportReason(err error) string {
	var netErr net.Error
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	text := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	case errors.Is(err, context.Canceled):
		return "the call was cancelled"
	case errors.As(err, &netErr):
		return "the connection failed"
	case statusRe.MatchString(text):
		return "it answered HTTP " + statusRe.FindStringSubmatch(text)[1]
	case errors.As(err, &syntaxErr), errors.As(err, &typeErr), strings.Contains(text, "json: "):
		// The SDK does not always wrap the decoder's error; its text is
		// the only sign left.
		return "its answer could not be read"
	}
	return "the call failed"
}
