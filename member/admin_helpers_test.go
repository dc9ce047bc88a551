package member_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apicontract"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
)

// adminAPI serves the admin routes the way cmd/loyalty mounts them: under
// /api/admin/v1, behind the audit tracker, with the principal already in
// the request's context (what admin's authentication middleware leaves
// there). The member API is mounted too, for token checks.
type adminAPI struct {
	*fixture
	engine *gin.Engine
	tokens *member.Tokens
	// other is a second merchant on the same database: its rows must stay
	// invisible and untouched.
	otherID uint64
}

const adminPrefix = "/api/admin/v1"

func newAdminAPI(t *testing.T, gdb *gorm.DB, o member.AdminOptions) *adminAPI {
	t.Helper()
	f := newFixture(t, gdb)
	a := &adminAPI{fixture: f, engine: gin.New(), otherID: f.merchantID + 1,
		tokens: member.NewTokens([]byte(strings.Repeat("k", 32)), f.clock.Now)}
	a.engine.Use(httpx.Recover())
	group := a.engine.Group(adminPrefix, audit.NewRecorder(gdb, f.clock.Now).Track())
	member.NewAdminHandler(f.svc, o).Register(group)
	member.NewHandler(f.svc, a.tokens, member.HandlerOptions{}).Register(a.engine.Group("/api"))
	return a
}

// Principals of the fixture's merchant.
func (a *adminAPI) staff(role authz.Role) authz.Principal {
	return authz.Principal{MerchantID: a.merchantID, StaffID: 7, Name: "staff-" + string(role), Role: role,
		RequestID: "req-1", ClientIP: "192.0.2.1"}
}

func (a *adminAPI) owner() authz.Principal { return a.staff(authz.RoleOwner) }

func (a *adminAPI) apiKey(scopes ...authz.Perm) authz.Principal {
	return authz.Principal{MerchantID: a.merchantID, APIKeyID: 9, Name: "pos", Scopes: scopes}
}

// do sends a request as p; body is marshalled unless it is a string.
func (a *adminAPI) do(p authz.Principal, method, path string, body any) *httptest.ResponseRecorder {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, adminPrefix+path, r)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req = req.WithContext(authz.WithPrincipal(req.Context(), p))
	w := httptest.NewRecorder()
	a.engine.ServeHTTP(w, req)
	apicontract.Recorded(a.t, req, w.Code, w.Header(), w.Body.Bytes())
	return w
}

// ok sends a request as the owner and decodes a 2xx answer into out.
func (a *adminAPI) ok(method, path string, body, out any) {
	a.t.Helper()
	w := a.do(a.owner(), method, path, body)
	if w.Code/100 != 2 {
		a.t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, w.Body)
		}
	}
}

// fails checks an error answer: the status and, for 400, the named field.
func fails(t *testing.T, w *httptest.ResponseRecorder, status int, field string) httpx.ErrorBody {
	t.Helper()
	var e httpx.ErrorBody
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not the JSON error shape: %s", w.Body)
	}
	if field != "" {
		if _, ok := e.Error.Fields[field]; !ok {
			t.Fatalf("error does not name %q: %s", field, w.Body)
		}
	}
	return e
}

// add inserts a member of merchant (the fixture's when 0) directly.
func (a *adminAPI) add(m member.Member) member.Member {
	a.t.Helper()
	if m.MerchantID == 0 {
		m.MerchantID = a.merchantID
	}
	if m.Source == "" {
		m.Source = member.SourceOAFollow
	}
	if m.FollowStatus == "" {
		m.FollowStatus = member.FollowFollowing
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = a.clock.Now()
	}
	m.UpdatedAt = m.CreatedAt
	if err := a.db.Create(&m).Error; err != nil {
		a.t.Fatal(err)
	}
	return m
}

func (a *adminAPI) tag(name string) uint64 {
	a.t.Helper()
	var tg struct{ ID uint64 }
	a.ok("POST", "/tags", map[string]any{"name": name}, &tg)
	return tg.ID
}

func (a *adminAPI) assign(tagID uint64, ids ...uint64) {
	a.t.Helper()
	a.ok("POST", fmt.Sprintf("/tags/%d/assign", tagID), map[string]any{"member_ids": ids}, nil)
}

// auditRows returns the merchant's audit entries, oldest first.
func (a *adminAPI) auditRows() []audit.Log {
	a.t.Helper()
	var out []audit.Log
	if err := a.db.Where("merchant_id = ?", a.merchantID).Order("id").Find(&out).Error; err != nil {
		a.t.Fatal(err)
	}
	return out
}

// snapshot is a digest of everything an admin call may change, to prove
// that a refused call changed nothing.
func (a *adminAPI) snapshot() string {
	a.t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT id, name, COALESCE(phone,''), remark, gender, COALESCE(birthday_month,0), COALESCE(birthday_day,0), COALESCE(birthday_year,0), lifecycle_stage, COALESCE(oa_openid,''), CASE WHEN erased_at IS NULL THEN 0 ELSE 1 END FROM members WHERE merchant_id IN (?, ?) ORDER BY id",
		"SELECT tag_id, member_id FROM member_tags WHERE merchant_id IN (?, ?) ORDER BY tag_id, member_id",
		"SELECT id, name, color FROM tags WHERE merchant_id IN (?, ?) ORDER BY id",
		"SELECT member_id, kind FROM member_care_dates WHERE merchant_id IN (?, ?) ORDER BY id",
		"SELECT member_id, channel FROM member_consents WHERE merchant_id IN (?, ?) ORDER BY member_id, channel",
		"SELECT id FROM audit_log WHERE merchant_id IN (?, ?) ORDER BY id",
	} {
		rows, err := a.db.Raw(q, a.merchantID, a.otherID).Rows()
		if err != nil {
			a.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				a.t.Fatal(err)
			}
			for _, v := range vals {
				if raw, ok := v.([]byte); ok {
					v = string(raw)
				}
				fmt.Fprintf(&b, "%v|", v)
			}
			b.WriteByte('\n')
		}
		rows.Close()
		b.WriteString("--\n")
	}
	return b.String()
}

// listView is the list response.
type listView struct {
	Members []struct {
		ID           uint64          `json:"id"`
		Name         string          `json:"name"`
		Phone        *string         `json:"phone"`
		FollowStatus string          `json:"follow_status"`
		ChannelScene *string         `json:"channel_scene"`
		Stage        string          `json:"stage"`
		TierID       *uint64         `json:"tier_id"`
		TagIDs       []uint64        `json:"tag_ids"`
		Birthday     json.RawMessage `json:"birthday"`
		Remark       string          `json:"remark"`
	} `json:"members"`
	NextCursor *string `json:"next_cursor"`
}

// listAll follows the cursor through every page of query (limit added) and
// returns the ids in order.
func (a *adminAPI) listAll(p authz.Principal, query string, limit int) []uint64 {
	a.t.Helper()
	var ids []uint64
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			a.t.Fatal("the cursor never ends")
		}
		q := fmt.Sprintf("%s&limit=%d", query, limit)
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		w := a.do(p, "GET", "/members?"+strings.TrimPrefix(q, "&"), nil)
		if w.Code != http.StatusOK {
			a.t.Fatalf("list %s: %d %s", q, w.Code, w.Body)
		}
		var page listView
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			a.t.Fatal(err)
		}
		if len(page.Members) > limit {
			a.t.Fatalf("%d members on a page of %d", len(page.Members), limit)
		}
		for _, m := range page.Members {
			ids = append(ids, m.ID)
		}
		if page.NextCursor == nil {
			return ids
		}
		if len(page.Members) != limit {
			a.t.Fatalf("a short page (%d of %d) with a next cursor", len(page.Members), limit)
		}
		cursor = *page.NextCursor
	}
}

func descending(ids []uint64) []uint64 {
	out := append([]uint64(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out
}

func ptr[T any](v T) *T { return &v }
