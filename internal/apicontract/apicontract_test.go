package apicontract

import (
	"net/http"
	"sort"
	"strings"
	"testing"
)

// Every operation has an operationId (the admin panel's client names its
// calls by them), in lowerCamelCase, and no two share one.
func TestOpenAPIOperationIDs(t *testing.T) {
	doc, err := specDoc()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string][]string{}
	var paths []string
	for p := range doc.Paths.Map() {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		for method, op := range doc.Paths.Value(p).Operations() {
			where := method + " " + p
			switch id := op.OperationID; {
			case id == "":
				t.Errorf("%s has no operationId", where)
			case !isLowerCamel(id):
				t.Errorf("%s: operationId %q is not lowerCamelCase", where, id)
			default:
				byID[id] = append(byID[id], where)
			}
		}
	}
	for id, ops := range byID {
		if len(ops) > 1 {
			t.Errorf("operationId %q is shared by %v", id, ops)
		}
	}
}

func isLowerCamel(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// The contract check itself: it must reject what drift looks like, or the
// suites would pass whatever the handlers answer.
func TestContractCheckCatchesDrift(t *testing.T) {
	req := func(method, path string) *http.Request {
		r, _ := http.NewRequest(method, "http://127.0.0.1"+path, nil)
		return r
	}
	jsonHeader := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	tag := `{"id":1,"name":"vip","color":"","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`
	if err := Check(req("POST", "/api/admin/v1/tags"), 201, jsonHeader, []byte(tag)); err != nil {
		t.Fatalf("a documented answer is refused: %v", err)
	}
	for name, tc := range map[string]struct {
		method, path string
		status       int
		body         string
	}{
		"undocumented status":   {"POST", "/api/admin/v1/tags", 418, `{"error":{"code":"x","message":"y"}}`},
		"undocumented field":    {"POST", "/api/admin/v1/tags", 201, strings.Replace(tag, `"id":1`, `"id":1,"secret":"x"`, 1)},
		"missing required":      {"POST", "/api/admin/v1/tags", 201, strings.Replace(tag, `"name":"vip",`, ``, 1)},
		"wrong type":            {"POST", "/api/admin/v1/tags", 201, strings.Replace(tag, `"id":1`, `"id":"1"`, 1)},
		"enum value":            {"GET", "/api/admin/v1/me", 200, `{"merchant_id":1,"name":"x","role":"root","permissions":[]}`},
		"nested undocumented":   {"GET", "/api/admin/v1/tags", 200, `{"tags":[` + strings.Replace(tag, `"id":1`, `"id":1,"member_count":1,"extra":1`, 1) + `]}`},
		"body where none is":    {"DELETE", "/api/admin/v1/tags/1", 204, `{"ok":true}`},
		"error shape":           {"GET", "/api/admin/v1/tags", 403, `{"message":"no"}`},
		"literal path segments": {"GET", "/api/admin/v1/members/export.csv", 200, ``},
	} {
		h := jsonHeader
		if strings.HasSuffix(tc.path, ".csv") {
			h = http.Header{"Content-Type": {"application/json"}} // the export is text/csv
		}
		if err := Check(req(tc.method, tc.path), tc.status, h, []byte(tc.body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
