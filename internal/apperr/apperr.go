// Package apperr defines the error kinds shared by every feature package.
//
// Stores and services wrap one of the kinds with context (fmt.Errorf("member:
// get %d: %w", id, apperr.ErrNotFound)); the HTTP layer maps kinds to status
// codes with errors.Is, so no feature package knows about HTTP.
package apperr

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error kinds. Each implies one HTTP status at the edge.
var (
	ErrInvalid         = errors.New("invalid input")           // 400
	ErrUnauthenticated = errors.New("unauthenticated")         // 401
	ErrForbidden       = errors.New("forbidden")               // 403
	ErrNotFound        = errors.New("not found")               // 404
	ErrConflict        = errors.New("conflict")                // 409
	ErrUnprocessable   = errors.New("unprocessable")           // 422
	ErrTooManyRequests = errors.New("too many requests")       // 429
	ErrUnavailable     = errors.New("temporarily unavailable") // 503
)

// Validation reports which input fields are wrong and why. It unwraps to
// ErrInvalid. Field names are the ones the caller used (JSON keys, flags or
// config keys), so the message can name them.
type Validation struct {
	Fields map[string]string
}

// Invalid returns a Validation error for one field.
func Invalid(field, reason string) *Validation {
	return &Validation{Fields: map[string]string{field: reason}}
}

// Add records one more bad field and returns v for chaining.
func (v *Validation) Add(field, reason string) *Validation {
	if v.Fields == nil {
		v.Fields = map[string]string{}
	}
	if _, dup := v.Fields[field]; !dup {
		v.Fields[field] = reason
	}
	return v
}

// Err returns v as an error, or nil when no field was recorded, so callers can
// collect problems and return once.
func (v *Validation) Err() error {
	if v == nil || len(v.Fields) == 0 {
		return nil
	}
	return v
}

func (v *Validation) Error() string {
	keys := make([]string, 0, len(v.Fields))
	for k := range v.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %s", k, v.Fields[k])
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(v, ErrInvalid) true.
func (v *Validation) Unwrap() error { return ErrInvalid }

// RetryAfter marks an ErrTooManyRequests or ErrUnavailable error with the
// number of seconds after which the caller may try again.
type RetryAfter struct {
	Err     error
	Seconds int
}

func (r *RetryAfter) Error() string { return r.Err.Error() }

// Unwrap returns the wrapped kind.
func (r *RetryAfter) Unwrap() error { return r.Err }

// RenameFields returns err with the field names of a *Validation replaced
// through names (unmapped names are kept), so a lower layer's field names can
// be reported in the caller's vocabulary (flag or config key names). Other
// errors are returned unchanged.
func RenameFields(err error, names map[string]string) error {
	var v *Validation
	if !errors.As(err, &v) {
		return err
	}
	out := &Validation{Fields: make(map[string]string, len(v.Fields))}
	for k, reason := range v.Fields {
		if n, ok := names[k]; ok {
			k = n
		}
		out.Fields[k] = reason
	}
	return out
}

// Error is an error of a kind with a message written for the API client.
// Wrapping it with more context for logs (fmt.Errorf("member: %w", e))
// keeps the client message intact.
type Error struct {
	Kind error
	Msg  string
}

// New returns an *Error of kind with a client-facing message.
func New(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Msg + ": " + e.Kind.Error() }

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }
