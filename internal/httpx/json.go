package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// MaxJSONBody bounds request bodies of the JSON API.
const MaxJSONBody = 1 << 20

// maxJSONDepth bounds the nesting of a JSON value (the deepest legitimate
// body, a segment rule at its own depth limit, needs about 15 levels).
const maxJSONDepth = 64

// BindJSON decodes the request body into dst strictly, and every JSON body
// the API reads goes through it (or DecodeJSON for a nested part). Refused
// with a 400 (an *apperr.Validation) naming the field where there is one:
// bodies over MaxJSONBody, invalid JSON, more than one value, a key given
// twice in one object, an integer beyond 64 bits (no id or amount is that
// large; ids end at MaxID), unknown fields and values of the wrong type.
// The messages are the API's own words: never a Go type name.
func BindJSON(c *gin.Context, dst any) error {
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxJSONBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return apperr.Invalid("body", fmt.Sprintf("is larger than %d bytes", maxErr.Limit))
		}
		return apperr.Invalid("body", "could not be read")
	}
	return decodeStrict(data, dst, "")
}

// DecodeJSON decodes a nested JSON value (kept as json.RawMessage by the
// outer request type) as strictly as BindJSON, naming fields with prefix,
// e.g. "birthday.month".
func DecodeJSON(data []byte, dst any, prefix string) error {
	return decodeStrict(data, dst, prefix)
}

func decodeStrict(data []byte, dst any, prefix string) error {
	field := func(path string) string {
		switch {
		case prefix == "" && path == "":
			return "body"
		case prefix == "":
			return path
		case path == "":
			return prefix
		}
		return prefix + "." + path
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return apperr.Invalid(field(""), "is empty; a JSON object is required")
	}
	if path, reason := scanJSON(data); reason != "" {
		return apperr.Invalid(field(path), reason)
	}
	// The scan found one well-formed value, so what is left to fail here is
	// its shape against dst.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		path, reason := decodeError(err, data, dst)
		return apperr.Invalid(field(path), reason)
	}
	return nil
}

// scanJSON walks the value's tokens once and reports, with the path of the
// offending member ("" for the whole value), what the decoder would let
// through silently: a key repeated in one object (encoding/json keeps the
// last one, so {"points":1,"points":1000} would read as 1000 after a proxy
// or a log showed 1), integers beyond 64 bits (a uint64 id of 2^63 or more
// fails in SQLite), nesting beyond maxJSONDepth; and what it would report
// less clearly: invalid JSON, trailing data.
//
// Keys are compared without regard to case, as encoding/json matches them
// to struct fields: {"points":1,"Points":1000} is a duplicate too.
func scanJSON(data []byte) (path, reason string) {
	type frame struct {
		object  bool
		path    string
		key     string // the member being read (objects)
		wantKey bool
		seen    map[string]bool
	}
	var stack []*frame
	here := func() string { // the path of the value about to be read
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if !top.object {
			return top.path // array elements are named after the array, as encoding/json does
		}
		if top.path == "" {
			return top.key
		}
		return top.path + "." + top.key
	}
	done := false
	valueRead := func() {
		if len(stack) == 0 {
			done = true
		} else if top := stack[len(stack)-1]; top.object {
			top.wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && done {
			return "", ""
		}
		if err != nil {
			if done {
				return "", "must be a single JSON value"
			}
			return "", "is not valid JSON"
		}
		if done {
			return "", "must be a single JSON value"
		}
		if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey {
			top := stack[len(stack)-1]
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				valueRead()
				continue
			}
			key, _ := tok.(string) // Token returns only strings in key position
			top.key, top.wantKey = key, false
			folded := foldKey(key)
			if top.seen[folded] {
				return here(), "is given more than once"
			}
			top.seen[folded] = true
			continue
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return here(), fmt.Sprintf("nests deeper than %d levels", maxJSONDepth)
				}
				f := &frame{object: v == '{', path: here(), wantKey: v == '{'}
				if f.object {
					f.seen = map[string]bool{}
				}
				stack = append(stack, f)
			default: // ']' (an object's '}' comes where a key is wanted)
				stack = stack[:len(stack)-1]
				valueRead()
			}
		case json.Number:
			if r := integerRange(string(v)); r != "" {
				return here(), r
			}
			valueRead()
		default:
			valueRead()
		}
	}
}

// integerRange returns why an integer literal is out of the 64-bit range,
// or "" (also for literals with a fraction or exponent: the decoder judges
// those against the field's type).
func integerRange(lit string) string {
	if strings.ContainsAny(lit, ".eE") {
		return ""
	}
	if _, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return ""
	}
	if strings.HasPrefix(lit, "-") {
		return fmt.Sprintf("must be at least %d", math.MinInt64)
	}
	return fmt.Sprintf("must be at most %d", MaxID)
}

// foldKey maps a key to one spelling per case-insensitive class, with the
// same rune equivalence (Unicode simple folding) encoding/json uses to match
// keys to fields.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError {
			b.WriteRune(r)
			continue
		}
		lowest := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			lowest = min(lowest, f)
		}
		b.WriteRune(lowest)
	}
	return b.String()
}

// decodeError turns an error of encoding/json into the field it is about
// and a reason in the API's words.
func decodeError(err error, data []byte, dst any) (path, reason string) {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		return typeErr.Field, typeReason(typeErr)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "is not a known field"
	}
	// An error from a type's own UnmarshalJSON (time.Time, optional fields)
	// names no field: find the top-level member that fails on its own.
	path, err = failingMember(data, dst, err)
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) || strings.HasPrefix(err.Error(), "Time.") {
		return path, "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00+08:00"
	}
	return path, "is not valid"
}

// failingMember decodes each top-level member of the object data alone into
// a fresh value of dst's type and returns the first (by name) that fails,
// with its error; "" and err when none fails alone.
func failingMember(data []byte, dst any, err error) (string, error) {
	t := reflect.TypeOf(dst)
	var members map[string]json.RawMessage
	if t == nil || t.Kind() != reflect.Pointer || json.Unmarshal(data, &members) != nil {
		return "", err
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		one, merr := json.Marshal(map[string]json.RawMessage{k: members[k]})
		if merr != nil {
			continue
		}
		if e := json.Unmarshal(one, reflect.New(t.Elem()).Interface()); e != nil {
			return k, e
		}
	}
	return "", err
}

func typeReason(e *json.UnmarshalTypeError) string {
	t := e.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		lit, isNumber := strings.CutPrefix(e.Value, "number ")
		switch {
		case !isNumber && t.Kind() >= reflect.Float32:
			return "must be a number"
		case !isNumber:
			return "must be an integer"
		case t.Kind() < reflect.Float32 && strings.ContainsAny(lit, ".eE"):
			return "must be a whole number"
		case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64 && strings.HasPrefix(lit, "-"):
			return "must not be negative"
		}
		return "is out of range"
	case reflect.String:
		return "must be a string"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Struct, reflect.Map:
		return "must be an object"
	case reflect.Slice, reflect.Array:
		return "must be an array"
	}
	return "has the wrong type"
}
