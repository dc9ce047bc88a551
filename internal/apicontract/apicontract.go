// Package apicontract checks the service's HTTP answers against
// docs/openapi.yaml, the API description the admin panel's client is typed
// from. It is a test helper: the HTTP suites (cmd/loyalty's and the
// features' handler tests) route their answers through Check, so a handler
// that drifts from its documentation fails the test that called it.
// Production code never imports it.
package apicontract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/wxloyalty/loyalty/docs"
)

// specDoc is docs/openapi.yaml loaded once (it is embedded, so it cannot
// change while the tests run) and validated.
var specDoc = sync.OnceValues(func() (*openapi3.T, error) {
	// The callback's passive replies are XML, which openapi3filter has no
	// decoder for; their schema is a plain string.
	openapi3filter.RegisterBodyDecoder("application/xml", openapi3filter.PlainBodyDecoder)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("load docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
})

// undocumented lists the object keys of value that schema does not name,
// as JSON paths under at. The document leaves response objects open (no
// additionalProperties: false, which would break clients of an older
// document when the server adds a field, and cannot express "the
// properties of every allOf branch"), but against this server's own
// answers a field the document does not name is drift. A schema's names
// are its properties and those of its allOf, oneOf and anyOf branches; a
// schema with additionalProperties allows any key.
func undocumented(schema *openapi3.SchemaRef, value any, at string) []string {
	if schema == nil || schema.Value == nil {
		return nil
	}
	props := map[string]*openapi3.SchemaRef{}
	open := false
	var collect func(s *openapi3.SchemaRef, depth int)
	collect = func(s *openapi3.SchemaRef, depth int) {
		if s == nil || s.Value == nil || depth > 8 {
			return
		}
		v := s.Value
		for name, p := range v.Properties {
			if _, ok := props[name]; !ok {
				props[name] = p
			}
		}
		if v.AdditionalProperties.Schema != nil || (v.AdditionalProperties.Has != nil && *v.AdditionalProperties.Has) {
			open = true
		}
		for _, branches := range [][]*openapi3.SchemaRef{v.AllOf, v.OneOf, v.AnyOf} {
			for _, b := range branches {
				collect(b, depth+1)
			}
		}
	}
	collect(schema, 0)
	var out []string
	switch v := value.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, ok := props[k]
			if !ok {
				if !open {
					out = append(out, at+"."+k)
				}
				continue
			}
			out = append(out, undocumented(p, v[k], at+"."+k)...)
		}
	case []any:
		items := schema.Value.Items
		if items == nil {
			for _, b := range append(append(schema.Value.AllOf, schema.Value.OneOf...), schema.Value.AnyOf...) {
				if b.Value != nil && b.Value.Items != nil {
					items = b.Value.Items
					break
				}
			}
		}
		for i, e := range v {
			out = append(out, undocumented(items, e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return out
}

// contractRoute finds the documented operation for method and path: the
// path template that matches with the most literal segments
// (/members/export.csv before /members/{member_id}). ok is false for a
// path or method the document does not describe (unknown routes, the
// sandbox simulator): TestOpenAPICoversEveryRoute covers the route list.
func contractRoute(doc *openapi3.T, method, path string) (*routers.Route, map[string]string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, bestLiterals := "", -1
	var bestParams map[string]string
	for tmpl := range doc.Paths.Map() {
		parts := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(parts) != len(segs) {
			continue
		}
		literals, params := 0, map[string]string{}
		for i, p := range parts {
			if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
				params[p[1:len(p)-1]] = segs[i]
				continue
			}
			if p != segs[i] {
				literals = -1
				break
			}
			literals++
		}
		if literals > bestLiterals || (literals == bestLiterals && literals >= 0 && tmpl < best) {
			best, bestLiterals, bestParams = tmpl, literals, params
		}
	}
	if bestLiterals < 0 {
		return nil, nil, false
	}
	item := doc.Paths.Value(best)
	op := item.GetOperation(method)
	if op == nil {
		return nil, nil, false
	}
	return &routers.Route{Spec: doc, Path: best, PathItem: item, Method: method, Operation: op}, bestParams, true
}

// Check validates one response against the document: its status
// is one the operation lists, its body matches that response's schema for
// its content type, and a response documented without a body has none.
func Check(req *http.Request, status int, header http.Header, body []byte) error {
	doc, err := specDoc()
	if err != nil {
		return err
	}
	route, params, ok := contractRoute(doc, req.Method, req.URL.Path)
	if !ok {
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s (operation %s) answered %d, not as documented: %w\nbody: %s",
			req.Method, req.URL.Path, route.Operation.OperationID, status, err, clip(body))
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return nil
	}
	if len(resp.Value.Content) == 0 && len(bytes.TrimSpace(body)) > 0 {
		return fmt.Errorf("%s %s (operation %s) answered %d with a body the document does not describe: %s",
			req.Method, req.URL.Path, route.Operation.OperationID, status, clip(body))
	}
	if mt := resp.Value.Content.Get(header.Get("Content-Type")); mt != nil && strings.Contains(header.Get("Content-Type"), "json") {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("%s %s: %d: not JSON: %w", req.Method, req.URL.Path, status, err)
		}
		if extra := undocumented(mt.Schema, v, "$"); len(extra) > 0 {
			return fmt.Errorf("%s %s (operation %s) answered %d with fields the document does not name: %v\nbody: %s",
				req.Method, req.URL.Path, route.Operation.OperationID, status, extra, clip(body))
		}
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// Transport is an HTTP client transport: it reads each answer
// whole, reports a response that drifts from the document as a test
// error, and hands the body on unchanged (trailers included: they are
// read with the body).
type Transport struct {
	T    testing.TB
	Next http.RoundTripper
}

// RoundTrip makes the request and checks its answer.
func (c Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.Next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := Check(req, resp.StatusCode, resp.Header, body); err != nil {
		c.T.Errorf("API contract: %v", err)
	}
	return resp, nil
}

// Client is an HTTP client whose answers are checked against
// docs/openapi.yaml; drift is reported on t.
func Client(t testing.TB) *http.Client {
	return &http.Client{Transport: Transport{T: t, Next: http.DefaultTransport}}
}

// Recorded checks an answer a handler test recorded with httptest (the
// request it served, the recorder's status, header and body), reporting
// drift on t.
func Recorded(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if err := Check(req, status, header, body); err != nil {
		t.Errorf("API contract: %v", err)
	}
}
