package member_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
)

// filterModel is what the list filters look at, kept in the test to compute
// the expected answer of every query independently of the SQL.
type filterModel struct {
	id      uint64
	follow  string
	channel string // "" for none
	stage   string
	tier    uint64
	month   int
	name    string
	phone   string
	tags    []uint64
	erased  bool
}

// listDataset creates 60 members whose attributes cycle with coprime
// periods (so every combination of filters has a different answer), one of
// them erased, plus a copy of each in another merchant that shares the
// first merchant's tag ids in member_tags (rows that must never leak into a
// list).
func listDataset(t *testing.T, a *adminAPI) (models []filterModel, tagA, tagB uint64) {
	t.Helper()
	tagA, tagB = a.tag("A"), a.tag("B")
	names := []string{"王伟", "王伟强", "王芳", "李娜", "Anna", "anne", "O'Brien", "", "Zoë"}
	channels := []string{"c1", "c1", "c2", "c'3", ""}
	statuses := []string{member.FollowFollowing, member.FollowUnfollowed, member.FollowNone}
	for i := range 60 {
		fm := filterModel{follow: statuses[i%3], channel: channels[i%5], stage: member.Stages[i%8],
			name: names[i%9]}
		switch i % 7 {
		case 0, 1, 2:
			fm.tier = 101
		case 3, 4:
			fm.tier = 102
		}
		if i%11 != 0 {
			fm.month = i%12 + 1
		}
		switch i % 4 {
		case 0:
			fm.phone = fmt.Sprintf("1380000%04d", i)
		case 1:
			fm.phone = fmt.Sprintf("1390000%04d", i)
		}
		if i%2 == 0 {
			fm.tags = append(fm.tags, tagA)
		}
		if i%3 == 0 {
			fm.tags = append(fm.tags, tagB)
		}
		for _, merchant := range []uint64{a.merchantID, a.otherID} {
			m := member.Member{MerchantID: merchant, FollowStatus: fm.follow, LifecycleStage: fm.stage, Name: fm.name,
				CreatedAt: a.clock.Now().Add(time.Duration(i) * time.Second)}
			if fm.channel != "" {
				m.ChannelScene = ptr(fm.channel)
			}
			if fm.tier != 0 {
				m.TierID = ptr(fm.tier)
			}
			if fm.month != 0 {
				m.BirthdayMonth, m.BirthdayDay = ptr(fm.month), ptr(1)
			}
			if fm.phone != "" {
				m.Phone = ptr(fm.phone)
			}
			m = a.add(m)
			if merchant == a.merchantID {
				fm.id = m.ID
				if len(fm.tags) > 0 {
					for _, tg := range fm.tags {
						a.assign(tg, m.ID)
					}
				}
				continue
			}
			for _, tg := range fm.tags {
				if err := a.db.Exec("INSERT INTO member_tags (merchant_id, tag_id, member_id, created_at) VALUES (?, ?, ?, ?)",
					merchant, tg, m.ID, a.clock.Now()).Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		models = append(models, fm)
	}
	// Member 0 matches many filters: erased, it must match none.
	a.ok("POST", fmt.Sprintf("/members/%d/erase", models[0].id), nil, nil)
	models[0].erased = true
	return models, tagA, tagB
}

// filterOption is one query parameter and the rule it stands for.
type filterOption struct {
	key   string // options with the same key are not combined
	query string
	match func(m filterModel) bool
}

func TestAdminListFilters(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		models, tagA, tagB := listDataset(t, a)
		has := func(id uint64) func(m filterModel) bool {
			return func(m filterModel) bool { return slices.Contains(m.tags, id) }
		}
		prefix := func(p string) func(m filterModel) bool {
			return func(m filterModel) bool {
				return strings.HasPrefix(strings.ToLower(m.name), strings.ToLower(p))
			}
		}
		opts := []filterOption{
			{"follow", "follow_status=following", func(m filterModel) bool { return m.follow == member.FollowFollowing }},
			{"follow", "follow_status=none", func(m filterModel) bool { return m.follow == member.FollowNone }},
			{"channel", "channel=c1", func(m filterModel) bool { return m.channel == "c1" }},
			{"channel", "channel=" + url.QueryEscape("c'3"), func(m filterModel) bool { return m.channel == "c'3" }},
			{"stage", "stage=new", func(m filterModel) bool { return m.stage == member.StageNew }},
			{"stage", "stage=potential", func(m filterModel) bool { return m.stage == member.StagePotential }},
			{"tier", "tier=101", func(m filterModel) bool { return m.tier == 101 }},
			{"month", "birthday_month=5", func(m filterModel) bool { return m.month == 5 }},
			{"tag", fmt.Sprintf("tag=%d", tagA), has(tagA)},
			{"tag", fmt.Sprintf("tag=%d&tag=%d", tagA, tagB), func(m filterModel) bool { return has(tagA)(m) && has(tagB)(m) }},
			{"q", "q=" + url.QueryEscape("王伟"), prefix("王伟")},
			{"q", "q=an", prefix("an")},
			{"q", "q=" + url.QueryEscape("O'B"), prefix("O'B")},
			{"q", "q=138", func(m filterModel) bool { return strings.HasPrefix(m.phone, "138") }},
			{"q", "q=1390000001", func(m filterModel) bool { return strings.HasPrefix(m.phone, "1390000001") }},
		}
		checked := 0
		defer func() { t.Logf("%d filter combinations checked", checked) }()
		check := func(t *testing.T, chosen []filterOption) {
			t.Helper()
			var parts []string
			var want []uint64
			for _, o := range chosen {
				parts = append(parts, o.query)
			}
			for _, m := range models {
				ok := !m.erased
				for _, o := range chosen {
					ok = ok && o.match(m)
				}
				if ok {
					want = append(want, m.id)
				}
			}
			want = descending(want)
			query := strings.Join(parts, "&")
			got := a.listAll(a.owner(), query, 7)
			checked++
			if !slices.Equal(got, want) {
				t.Fatalf("%s: got %v, want %v", query, got, want)
			}
		}
		// Counts worked out by hand (i = 1..59, member 0 erased), so the
		// rule table above is checked too.
		for query, n := range map[string]int{
			fmt.Sprintf("tag=%d&tag=%d", tagA, tagB): 9,  // i%6 == 0
			"q=" + url.QueryEscape("王伟"):             13, // i%9 is 0 or 1
			"q=an":                                   14, // Anna and anne: i%9 is 4 or 5
			"follow_status=none&channel=c1":          8,  // i%3 == 2 and i%5 < 2: i%15 is 5 or 11
			"":                                       59,
		} {
			if got := a.listAll(a.owner(), query, 50); len(got) != n {
				t.Errorf("%q: %d members, want %d", query, len(got), n)
			}
		}
		check(t, nil)
		for i := range opts {
			check(t, []filterOption{opts[i]})
			for j := i + 1; j < len(opts); j++ {
				if opts[j].key == opts[i].key {
					continue
				}
				check(t, []filterOption{opts[i], opts[j]})
				for k := j + 1; k < len(opts); k++ {
					if opts[k].key == opts[i].key || opts[k].key == opts[j].key {
						continue
					}
					check(t, []filterOption{opts[i], opts[j], opts[k]})
				}
			}
		}
		// The list shows what the filters look at.
		var page listView
		a.ok("GET", fmt.Sprintf("/members?limit=1&cursor=%s", member.EncodeCursor(models[6].id+1)), nil, &page)
		m := page.Members[0]
		if m.ID != models[6].id || m.FollowStatus != member.FollowFollowing || *m.ChannelScene != "c1" ||
			m.Stage != member.Stages[6] || m.TierID != nil || !slices.Equal(m.TagIDs, []uint64{tagA, tagB}) ||
			m.Name != "O'Brien" || m.Phone != nil || string(m.Birthday) != `{"month":7,"day":1,"year":null}` {
			t.Fatalf("member 6 listed as %+v", m)
		}
	})
}

// New members arriving between pages neither shift nor repeat anything:
// the cursor is a position in the id order, not an offset.
func TestAdminListCursorStableUnderInserts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		var all []uint64
		for range 25 {
			all = append(all, a.add(member.Member{Name: "old"}).ID)
		}
		var seen []uint64
		cursor := ""
		for page := 0; ; page++ {
			path := "/members?limit=10"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			var v listView
			a.ok("GET", path, nil, &v)
			for _, m := range v.Members {
				seen = append(seen, m.ID)
			}
			// Someone follows while staff pages through the list.
			for range 3 {
				a.add(member.Member{Name: "new"})
			}
			if v.NextCursor == nil {
				break
			}
			cursor = *v.NextCursor
		}
		if !slices.Equal(seen, descending(all)) {
			t.Fatalf("pages gave %v, want %v", seen, descending(all))
		}
		// A fresh first page starts with the newcomers.
		var v listView
		a.ok("GET", "/members?limit=3", nil, &v)
		if len(v.Members) != 3 {
			t.Fatalf("first page of 3 has %d members", len(v.Members))
		}
		for _, m := range v.Members {
			if m.Name != "new" {
				t.Fatalf("first page %+v", v.Members)
			}
		}
	})
}

// Bad parameters are a 400 naming the parameter; nothing runs, nothing
// changes. Probing strings are data or a 400, never SQL.
func TestAdminListBadInput(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		a.add(member.Member{Name: "张三", Phone: ptr("13800000001")})
		a.add(member.Member{MerchantID: a.otherID, Name: "李四"})
		before := a.snapshot()
		for _, c := range []struct{ query, field string }{
			{"bogus=1", "bogus"}, {"Limit=5", "Limit"},
			{"limit=0", "limit"}, {"limit=-1", "limit"}, {"limit=100000", "limit"}, {"limit=abc", "limit"},
			{"limit=10%3BDROP+TABLE+members", "limit"}, {"limit=", "limit"},
			{"cursor=garbage", "cursor"}, {"cursor=%27+OR+1%3D1+--", "cursor"}, {"cursor=" + member.EncodeCursor(1) + "!", "cursor"},
			{"follow_status=all", "follow_status"}, {"follow_status=following&follow_status=none", "follow_status"},
			{"stage=%27+OR+1%3D1+--", "stage"}, {"birthday_month=13", "birthday_month"}, {"tier=1+OR+1%3D1", "tier"},
			{"tag=-1", "tag"}, {"tag=1;2", "query"},
			{"q=%27+OR+1%3D1+--", "q"}, {"q=%25", "q"}, {"q=_", "q"}, {"q=%25%25", "q"}, {"q=__", "q"}, {"q=a%25", "q"},
			{"q=%E5%BC%A0", "q"}, {"q=13", "q"}, {"q=", "q"}, {"%zz=1", "query"},
		} {
			fails(t, a.do(a.owner(), "GET", "/members?"+c.query, nil), http.StatusBadRequest, c.field)
		}
		// The export refuses the same, and paging parameters too.
		fails(t, a.do(a.owner(), "GET", "/members/export.csv?limit=5", nil), http.StatusBadRequest, "limit")
		fails(t, a.do(a.owner(), "GET", "/members/export.csv?q=%25", nil), http.StatusBadRequest, "q")
		// A QR scene may hold any text: a probe there is just a scene that
		// matches nobody, and the other merchant stays out of reach.
		var v listView
		a.ok("GET", "/members?channel="+url.QueryEscape("' OR 1=1 --"), nil, &v)
		if len(v.Members) != 0 {
			t.Fatalf("probe channel listed %+v", v.Members)
		}
		a.ok("GET", "/members?q="+url.QueryEscape("张三"), nil, &v)
		if len(v.Members) != 1 {
			t.Fatalf("plain search broken: %+v", v.Members)
		}
		if after := a.snapshot(); after != before {
			t.Fatalf("refused calls changed data:\n%s\n%s", before, after)
		}
	})
}

func TestAdminPhoneMaskingAndPermissions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		m := a.add(member.Member{Name: "张三", Phone: ptr("13812345678")})
		viewer := a.staff(authz.RoleViewer)
		list := func(p authz.Principal, query string) listView {
			t.Helper()
			w := a.do(p, "GET", "/members?"+query, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			var v listView
			_ = json.Unmarshal(w.Body.Bytes(), &v)
			return v
		}
		if v := list(viewer, ""); len(v.Members) != 1 || *v.Members[0].Phone != "138****5678" {
			t.Fatalf("viewer list: %+v", v.Members)
		}
		if v := list(a.staff(authz.RoleMarketer), ""); *v.Members[0].Phone != "13812345678" {
			t.Fatalf("marketer list: %+v", v.Members)
		}
		if v := list(a.apiKey(authz.MembersRead), ""); *v.Members[0].Phone != "13812345678" {
			t.Fatalf("API key list: %+v", v.Members)
		}
		// A viewer may look a number up, but not uncover one by prefixes.
		if v := list(viewer, "q=138123"); len(v.Members) != 0 {
			t.Fatalf("viewer prefix search found %+v", v.Members)
		}
		if v := list(viewer, "q=13812345678"); len(v.Members) != 1 || *v.Members[0].Phone != "138****5678" {
			t.Fatalf("viewer exact search: %+v", v.Members)
		}
		if v := list(a.owner(), "q=138123"); len(v.Members) != 1 {
			t.Fatalf("owner prefix search: %+v", v.Members)
		}
		var d struct {
			Phone string `json:"phone"`
		}
		w := a.do(viewer, "GET", fmt.Sprintf("/members/%d", m.ID), nil)
		if _ = json.Unmarshal(w.Body.Bytes(), &d); w.Code != 200 || d.Phone != "138****5678" {
			t.Fatalf("viewer detail: %d %s", w.Code, w.Body)
		}
		// The export masks too (no role may both export and see masked
		// numbers today, so the service is asked directly).
		var buf bytes.Buffer
		if _, err := a.svc.ExportCSV(context.Background(), a.merchantID, member.MemberFilter{},
			member.ExportOptions{MaskPhones: true}, &buf); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "138****5678") || strings.Contains(buf.String(), "13812345678") {
			t.Fatalf("masked export:\n%s", buf.String())
		}

		// Every route needs its permission, checked before anything else.
		before := a.snapshot()
		routes := []struct {
			method, path string
			perm         authz.Perm
		}{
			{"GET", "/members", authz.MembersRead},
			{"GET", "/members/export.csv", authz.MembersExport},
			{"GET", fmt.Sprintf("/members/%d", m.ID), authz.MembersRead},
			{"PATCH", fmt.Sprintf("/members/%d", m.ID), authz.MembersWrite},
			{"GET", fmt.Sprintf("/members/%d/privacy-export", m.ID), authz.PrivacyManage},
			{"POST", fmt.Sprintf("/members/%d/erase", m.ID), authz.PrivacyManage},
			{"GET", "/tags", authz.MembersRead},
			{"POST", "/tags", authz.MembersWrite},
			{"PATCH", "/tags/1", authz.MembersWrite},
			{"DELETE", "/tags/1", authz.MembersWrite},
			{"POST", "/tags/1/assign", authz.MembersWrite},
			{"POST", "/tags/1/unassign", authz.MembersWrite},
		}
		for _, r := range routes {
			var others []authz.Perm
			for _, p := range authz.AllPerms {
				if p != r.perm {
					others = append(others, p)
				}
			}
			e := fails(t, a.do(a.apiKey(others...), r.method, r.path, `{"remark":"x","name":"x","member_ids":[1]}`),
				http.StatusForbidden, "")
			if !strings.Contains(e.Error.Message, string(r.perm)) {
				t.Errorf("%s %s: %q does not name %s", r.method, r.path, e.Error.Message, r.perm)
			}
		}
		fails(t, a.do(viewer, "PATCH", fmt.Sprintf("/members/%d", m.ID), `{"remark":"x"}`), http.StatusForbidden, "")
		fails(t, a.do(viewer, "GET", "/members/export.csv", nil), http.StatusForbidden, "")
		fails(t, a.do(a.staff(authz.RoleMarketer), "POST", fmt.Sprintf("/members/%d/erase", m.ID), nil), http.StatusForbidden, "")
		if after := a.snapshot(); after != before {
			t.Fatal("forbidden calls changed data")
		}
	})
}

type tagList struct {
	Tags []struct {
		ID          uint64 `json:"id"`
		Name        string `json:"name"`
		Color       string `json:"color"`
		MemberCount int64  `json:"member_count"`
	} `json:"tags"`
}

func TestAdminTags(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		var vip struct {
			ID    uint64 `json:"id"`
			Name  string `json:"name"`
			Color string `json:"color"`
		}
		a.ok("POST", "/tags", map[string]any{"name": " VIP ", "color": "#FF8800"}, &vip)
		if vip.Name != "VIP" || vip.Color != "#ff8800" {
			t.Fatalf("created %+v", vip)
		}
		coffee := a.tag("咖啡")
		before := a.snapshot()
		fails(t, a.do(a.owner(), "POST", "/tags", map[string]any{"name": "VIP"}), http.StatusConflict, "")
		fails(t, a.do(a.owner(), "POST", "/tags", map[string]any{"name": "vip"}), http.StatusConflict, "")
		fails(t, a.do(a.owner(), "PATCH", fmt.Sprintf("/tags/%d", coffee), map[string]any{"name": "VIP"}), http.StatusConflict, "")
		fails(t, a.do(a.owner(), "POST", "/tags", map[string]any{"name": ""}), http.StatusBadRequest, "name")
		fails(t, a.do(a.owner(), "POST", "/tags", map[string]any{"color": "#fff"}), http.StatusBadRequest, "name")
		fails(t, a.do(a.owner(), "POST", "/tags", map[string]any{"name": "x", "color": "red"}), http.StatusBadRequest, "color")
		fails(t, a.do(a.owner(), "POST", "/tags", map[string]any{"name": strings.Repeat("长", 33)}), http.StatusBadRequest, "name")
		fails(t, a.do(a.owner(), "POST", "/tags", map[string]any{"name": "x", "extra": 1}), http.StatusBadRequest, "extra")
		if after := a.snapshot(); after != before {
			t.Fatal("refused tag calls changed data")
		}
		// The same name in another merchant is no conflict.
		other := newAdminAPI(t, gdb, member.AdminOptions{})
		other.tag("VIP")

		m1, m2 := a.add(member.Member{}), a.add(member.Member{})
		a.assign(vip.ID, m1.ID, m2.ID)
		a.assign(coffee, m2.ID)
		var tags tagList
		a.ok("GET", "/tags", nil, &tags)
		if len(tags.Tags) != 2 || tags.Tags[0].Name != "VIP" || tags.Tags[0].MemberCount != 2 ||
			tags.Tags[1].Name != "咖啡" || tags.Tags[1].MemberCount != 1 {
			t.Fatalf("tags %+v", tags)
		}
		a.ok("PATCH", fmt.Sprintf("/tags/%d", vip.ID), map[string]any{"name": "VVIP"}, &vip)
		if vip.Name != "VVIP" || vip.Color != "#ff8800" {
			t.Fatalf("renamed %+v", vip)
		}
		w := a.do(a.owner(), "DELETE", fmt.Sprintf("/tags/%d", vip.ID), nil)
		if w.Code != http.StatusNoContent {
			t.Fatalf("delete: %d %s", w.Code, w.Body)
		}
		var n int64
		a.db.Table("member_tags").Where("merchant_id = ? AND tag_id = ?", a.merchantID, vip.ID).Count(&n)
		if n != 0 {
			t.Fatalf("%d assignments left after delete", n)
		}
		fails(t, a.do(a.owner(), "DELETE", fmt.Sprintf("/tags/%d", vip.ID), nil), http.StatusNotFound, "")
		a.ok("GET", "/tags", nil, &tags)
		if len(tags.Tags) != 1 || tags.Tags[0].ID != coffee {
			t.Fatalf("tags after delete %+v", tags)
		}
	})
}

func TestAdminBulkAssign(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		tagID := a.tag("VIP")
		var ids []uint64
		for range 5 {
			ids = append(ids, a.add(member.Member{}).ID)
		}
		foreign := a.add(member.Member{MerchantID: a.otherID}).ID
		var res member.BulkResult
		a.ok("POST", fmt.Sprintf("/tags/%d/assign", tagID), map[string]any{"member_ids": ids[:3]}, &res)
		if res.Requested != 3 || res.Changed != 3 {
			t.Fatalf("first assign %+v", res)
		}
		// Idempotent, duplicates in the body folded.
		a.ok("POST", fmt.Sprintf("/tags/%d/assign", tagID), map[string]any{"member_ids": []uint64{ids[2], ids[3], ids[2]}}, &res)
		if res.Requested != 2 || res.Changed != 1 {
			t.Fatalf("second assign %+v", res)
		}
		before := a.snapshot()
		// One id of another merchant (or of nobody) spoils the whole call.
		e := fails(t, a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/assign", tagID),
			map[string]any{"member_ids": []uint64{ids[4], foreign}}), http.StatusNotFound, "")
		if e.Error.Message != fmt.Sprintf("member not found: %d", foreign) {
			t.Fatalf("message %q", e.Error.Message)
		}
		fails(t, a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/unassign", tagID),
			map[string]any{"member_ids": []uint64{ids[0], foreign}}), http.StatusNotFound, "")
		fails(t, a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/assign", tagID),
			map[string]any{"member_ids": []uint64{ids[4], foreign + 1000}}), http.StatusNotFound, "")
		// Bad bodies.
		many := make([]uint64, member.MaxBulkMembers+1)
		for i := range many {
			many[i] = uint64(i + 1)
		}
		for _, body := range []any{map[string]any{"member_ids": []uint64{}}, map[string]any{"member_ids": many},
			map[string]any{"member_ids": []uint64{0}}, `{"member_ids":"1"}`, `{"member_ids":[-1]}`, `{}`} {
			fails(t, a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/assign", tagID), body), http.StatusBadRequest, "member_ids")
		}
		// Another merchant's tag is not found, even with the caller's members.
		otherTag := newAdminAPI(t, gdb, member.AdminOptions{}).tag("theirs")
		fails(t, a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/assign", otherTag),
			map[string]any{"member_ids": ids[:1]}), http.StatusNotFound, "")
		if after := a.snapshot(); after != before {
			t.Fatalf("refused bulk calls changed data:\n%s\n%s", before, after)
		}
		// An erased member cannot be tagged.
		a.ok("POST", fmt.Sprintf("/members/%d/erase", ids[4]), nil, nil)
		fails(t, a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/assign", tagID),
			map[string]any{"member_ids": []uint64{ids[4]}}), http.StatusConflict, "")

		a.ok("POST", fmt.Sprintf("/tags/%d/unassign", tagID), map[string]any{"member_ids": []uint64{ids[0], ids[4]}}, &res)
		if res.Changed != 1 {
			t.Fatalf("unassign %+v", res)
		}
		var holders []uint64
		a.db.Table("member_tags").Where("merchant_id = ? AND tag_id = ?", a.merchantID, tagID).
			Order("member_id").Pluck("member_id", &holders)
		if !slices.Equal(holders, ids[1:4]) {
			t.Fatalf("holders %v, want %v", holders, ids[1:4])
		}
	})
}

// Another merchant's member is "not found" on every route, and stays as it
// was. So is an id that is no id.
func TestAdminForeignMemberIsNotFound(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		foreign := a.add(member.Member{MerchantID: a.otherID, Name: "theirs", Phone: ptr("13900000000")})
		before := a.snapshot()
		for _, id := range []string{strconv.FormatUint(foreign.ID, 10), "abc", "0", "-1", "99999999999999999999999"} {
			for _, r := range []struct{ method, path string }{
				{"GET", "/members/" + id}, {"PATCH", "/members/" + id}, {"GET", "/members/" + id + "/privacy-export"},
				{"POST", "/members/" + id + "/erase"},
			} {
				e := fails(t, a.do(a.owner(), r.method, r.path, `{"remark":"hijacked"}`), http.StatusNotFound, "")
				if strings.Contains(e.Error.Message, "theirs") || e.Error.Message != "member not found" {
					t.Fatalf("%s %s: %q", r.method, r.path, e.Error.Message)
				}
			}
		}
		for _, path := range []string{"/tags/abc", "/tags/0"} {
			fails(t, a.do(a.owner(), "PATCH", path, `{"name":"x"}`), http.StatusNotFound, "")
		}
		if after := a.snapshot(); after != before {
			t.Fatal("calls on a foreign member changed data")
		}
	})
}

type detailView struct {
	ID       uint64  `json:"id"`
	Name     string  `json:"name"`
	Gender   string  `json:"gender"`
	Phone    *string `json:"phone"`
	Remark   string  `json:"remark"`
	Stage    string  `json:"stage"`
	Birthday *struct {
		Month int  `json:"month"`
		Day   int  `json:"day"`
		Year  *int `json:"year"`
	} `json:"birthday"`
	ChannelScene *string `json:"channel_scene"`
	Tags         []struct {
		ID   uint64 `json:"id"`
		Name string `json:"name"`
	} `json:"tags"`
	CareDates     []json.RawMessage          `json:"care_dates"`
	Consents      map[string]json.RawMessage `json:"consents"`
	FollowHistory []json.RawMessage          `json:"follow_history"`
	ErasedAt      *time.Time                 `json:"erased_at"`
}

func TestAdminUpdateMember(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		m := a.add(member.Member{Name: "张三"})
		taken := a.add(member.Member{Phone: ptr("13900000000")})
		vip, coffee := a.tag("VIP"), a.tag("咖啡")
		path := fmt.Sprintf("/members/%d", m.ID)
		var d detailView
		a.ok("PATCH", path, map[string]any{"remark": " 喜欢拿铁\n周末来 ", "name": "张小三", "gender": "female",
			"birthday": map[string]any{"month": 2, "day": 29}, "phone": "+8613800000001", "tag_ids": []uint64{coffee, vip}}, &d)
		if d.Remark != "喜欢拿铁\n周末来" || d.Name != "张小三" || d.Gender != "female" || d.Birthday == nil ||
			d.Birthday.Month != 2 || d.Birthday.Day != 29 || *d.Phone != "13800000001" || d.Stage != member.StagePotential ||
			len(d.Tags) != 2 || d.Tags[0].Name != "VIP" || d.Tags[1].Name != "咖啡" {
			t.Fatalf("after patch %+v", d)
		}
		// Absent fields stay; null clears; tag_ids replaces.
		a.ok("PATCH", path, map[string]any{"birthday": nil, "phone": nil, "tag_ids": []uint64{vip}}, &d)
		if d.Birthday != nil || d.Phone != nil || d.Name != "张小三" || d.Remark == "" || len(d.Tags) != 1 {
			t.Fatalf("after second patch %+v", d)
		}
		before := a.snapshot()
		for _, c := range []struct {
			body   any
			status int
			field  string
		}{
			{map[string]any{"phone": "13900000000"}, http.StatusConflict, ""},
			{map[string]any{"remark": strings.Repeat("长", 501)}, http.StatusBadRequest, "remark"},
			{map[string]any{"remark": "a\x00b"}, http.StatusBadRequest, "remark"},
			{map[string]any{"phone": "12"}, http.StatusBadRequest, "phone"},
			{map[string]any{"phone": 138}, http.StatusBadRequest, "phone"},
			{map[string]any{"gender": "x", "name": strings.Repeat("n", 65)}, http.StatusBadRequest, "gender"},
			{map[string]any{"birthday": map[string]any{"month": 2, "day": 30}}, http.StatusBadRequest, "birthday.day"},
			{map[string]any{"tag_ids": []uint64{vip, 99999999}}, http.StatusNotFound, ""},
			{map[string]any{"lifecycle_stage": "loyal"}, http.StatusBadRequest, "lifecycle_stage"},
			{`{"remark":"x"} {}`, http.StatusBadRequest, "body"},
		} {
			fails(t, a.do(a.owner(), "PATCH", path, c.body), c.status, c.field)
		}
		if after := a.snapshot(); after != before {
			t.Fatalf("refused patches changed data:\n%s\n%s", before, after)
		}
		_ = taken
		// A refused patch wrote no audit entry; the two good ones did, with
		// the changed fields only and no personal values.
		var updates []string
		for _, row := range a.auditRows() {
			if row.Action == "member.update" {
				updates = append(updates, row.Before+" -> "+row.After)
			}
		}
		if len(updates) != 2 {
			t.Fatalf("member.update entries %v", updates)
		}
		for _, u := range updates {
			for _, secret := range []string{"张", "拿铁", "13800000001"} {
				if strings.Contains(u, secret) {
					t.Fatalf("audit summary holds personal data %q: %s", secret, u)
				}
			}
		}
		if !strings.Contains(updates[0], `"name":"set"`) || !strings.Contains(updates[0], `"phone":"empty"`) ||
			!strings.Contains(updates[1], `"phone":"set"`) || strings.Contains(updates[1], `"name"`) ||
			!strings.Contains(updates[1], fmt.Sprintf(`"tag_ids":[%d]`, vip)) {
			t.Fatalf("summaries %v", updates)
		}
	})
}

func TestAdminExportCSV(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		// Batches of 3: eleven members take four queries.
		a := newAdminAPI(t, gdb, member.AdminOptions{ExportBatch: 3})
		vip := a.tag("=VIP")
		names := []string{"=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\t=1", "王伟", "Anna", "a,b\"c", "", "line\nbreak", "z"}
		var ids []uint64
		for i, n := range names {
			m := member.Member{Name: n, FollowStatus: member.FollowFollowing}
			if i == 8 {
				m.FollowStatus = member.FollowUnfollowed
				m.Phone = ptr("+447700900123")
				m.ChannelScene = ptr("-store")
			}
			ids = append(ids, a.add(m).ID)
		}
		a.add(member.Member{MerchantID: a.otherID, Name: "theirs"})
		a.ok("POST", fmt.Sprintf("/members/%d/erase", ids[10]), nil, nil)
		a.assign(vip, ids[0], ids[5])

		w := a.do(a.owner(), "GET", "/members/export.csv", nil)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/csv; charset=utf-8" ||
			!strings.HasPrefix(w.Header().Get("Content-Disposition"), `attachment; filename="members-`) {
			t.Fatalf("export: %d %v", w.Code, w.Header())
		}
		body := strings.TrimPrefix(w.Body.String(), "\ufeff")
		if len(body) == w.Body.Len() {
			t.Fatal("no byte order mark")
		}
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(rows[0], ",") != "id,name,phone,gender,birthday,follow_status,followed_at,channel,stage,tier_id,tags,remark,created_at,last_interaction_at" {
			t.Fatalf("header %v", rows[0])
		}
		rows = rows[1:]
		if len(rows) != 10 {
			t.Fatalf("%d rows, want 10 (the erased member and the other merchant's left out)", len(rows))
		}
		wantNames := []string{"'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\t=1", "王伟", "Anna", "a,b\"c", "", "line\nbreak"}
		for i, row := range rows {
			k := len(rows) - 1 - i // newest first
			if row[0] != strconv.FormatUint(ids[k], 10) || row[1] != wantNames[k] {
				t.Fatalf("row %d: %q, want id %d name %q", i, row, ids[k], wantNames[k])
			}
		}
		if r := rows[1]; r[2] != "'+447700900123" || r[5] != "unfollowed" || r[7] != "'-store" || r[8] != "potential" {
			t.Fatalf("row of member 8: %q", r)
		}
		if r := rows[9]; r[10] != "'=VIP" {
			t.Fatalf("tags cell %q", r[10])
		}
		// The filters apply.
		w = a.do(a.owner(), "GET", "/members/export.csv?follow_status=unfollowed", nil)
		if n := strings.Count(w.Body.String(), "\n"); n != 2 {
			t.Fatalf("filtered export has %d lines:\n%s", n, w.Body)
		}
	})
}

// The default batch size, over more members than one batch.
func TestAdminExportCSVManyBatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		const n = 2*member.DefaultExportBatch + 345
		rows := make([]member.Member, n)
		for i := range rows {
			rows[i] = member.Member{MerchantID: a.merchantID, Name: fmt.Sprintf("m%04d", i), Source: member.SourceOAFollow,
				FollowStatus: member.FollowFollowing, CreatedAt: a.clock.Now(), UpdatedAt: a.clock.Now()}
		}
		if err := a.db.CreateInBatches(rows, 500).Error; err != nil {
			t.Fatal(err)
		}
		w := a.do(a.owner(), "GET", "/members/export.csv", nil)
		records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(w.Body.String(), "\ufeff"))).ReadAll()
		if err != nil || len(records) != n+1 {
			t.Fatalf("%d records, %v", len(records), err)
		}
		seen := map[string]bool{}
		for i, r := range records[1:] {
			if want := fmt.Sprintf("m%04d", n-1-i); r[1] != want || seen[r[0]] {
				t.Fatalf("record %d: %q, want %s once", i, r, want)
			}
			seen[r[0]] = true
		}
	})
}

func TestAdminErase(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		a.follow("o_1", "u_1", "poster", 0)
		m := a.byOpenID("o_1")
		tagID := a.tag("VIP")
		a.assign(tagID, m.ID)
		a.ok("PATCH", fmt.Sprintf("/members/%d", m.ID), map[string]any{"name": "张三", "remark": "VIP客户",
			"phone": "13800000001", "gender": "male", "birthday": map[string]any{"month": 5, "day": 20, "year": 1990}}, nil)
		if _, err := a.svc.UpdateProfile(context.Background(), a.merchantID, m.ID, member.ProfileUpdate{
			CareDates: &[]member.CareDateInput{{Kind: member.CareWedding, DateInput: member.DateInput{Month: 6, Day: 1}}},
			Consents:  map[string]bool{member.ConsentTemplate: true},
		}); err != nil {
			t.Fatal(err)
		}
		token, _, err := a.tokens.Issue(a.merchantID, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		other := a.add(member.Member{Name: "李四"})

		var e struct {
			MemberID      uint64   `json:"member_id"`
			AlreadyErased bool     `json:"already_erased"`
			ErasedFields  []string `json:"erased_fields"`
		}
		a.ok("POST", fmt.Sprintf("/members/%d/erase", m.ID), nil, &e)
		slices.Sort(e.ErasedFields)
		if e.MemberID != m.ID || e.AlreadyErased ||
			strings.Join(e.ErasedFields, ",") != "birthday,gender,last_interaction_at,name,oa_openid,phone,remark,unionid" {
			t.Fatalf("erasure %+v", e)
		}
		// The row is there, anonymous; the follow history too.
		var row member.Member
		if err := a.db.Where("merchant_id = ? AND id = ?", a.merchantID, m.ID).Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		if row.ErasedAt == nil || row.Name != "" || row.Phone != nil || row.OAOpenID != nil || row.UnionID != nil ||
			row.BirthdayMonth != nil || row.BirthdayYear != nil || row.Remark != "" || row.Gender != member.GenderUnknown ||
			row.LastInteractionAt != nil || row.ChannelScene == nil || *row.ChannelScene != "poster" {
			t.Fatalf("erased row %+v", row)
		}
		for table, want := range map[string]int64{"member_care_dates": 0, "member_consents": 0, "member_tags": 0,
			"member_follow_events": 1, "members": 2} {
			if n := a.count(table); n != want {
				t.Errorf("%s: %d rows, want %d", table, n, want)
			}
		}
		// Gone from lists; the privacy export shows nothing personal.
		if ids := a.listAll(a.owner(), "", 50); !slices.Equal(ids, []uint64{other.ID}) {
			t.Fatalf("list after erase %v", ids)
		}
		w := a.do(a.owner(), "GET", fmt.Sprintf("/members/%d/privacy-export", m.ID), nil)
		if w.Code != 200 {
			t.Fatalf("privacy export %d %s", w.Code, w.Body)
		}
		var doc map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &doc)
		mem := doc["member"].(map[string]any)
		for _, k := range []string{"official_account_openid", "mini_program_openid", "unionid", "phone", "birthday",
			"last_interaction_at"} {
			if mem[k] != nil {
				t.Errorf("privacy export after erase: %s = %v", k, mem[k])
			}
		}
		if mem["name"] != "" || mem["remark"] != "" || mem["gender"] != "unknown" || mem["erased_at"] == nil ||
			len(doc["care_dates"].([]any)) != 0 || len(doc["consents"].(map[string]any)) != 0 ||
			len(doc["tags"].([]any)) != 0 || len(doc["follow_history"].([]any)) != 1 {
			t.Fatalf("privacy export after erase: %s", w.Body)
		}
		for _, secret := range []string{"张三", "13800000001", "o_1", "u_1", "VIP客户", "1990"} {
			if strings.Contains(w.Body.String(), secret) {
				t.Fatalf("privacy export after erase holds %q: %s", secret, w.Body)
			}
		}
		// Audited: which fields, never their values.
		var entry string
		for _, r := range a.auditRows() {
			if r.Action == "member.erase" {
				entry = r.TargetIDs + " " + r.Before + " " + r.After
				if r.ActorType != "staff" || r.ActorName != "staff-owner" || r.TargetType != "member" {
					t.Fatalf("erase entry %+v", r)
				}
			}
		}
		if !strings.Contains(entry, fmt.Sprintf("[%d]", m.ID)) || !strings.Contains(entry, `"phone"`) ||
			!strings.Contains(entry, `"care_dates":1`) || strings.Contains(entry, "13800000001") || strings.Contains(entry, "张三") {
			t.Fatalf("erase audit entry %s", entry)
		}
		// Twice is fine.
		a.ok("POST", fmt.Sprintf("/members/%d/erase", m.ID), nil, &e)
		if !e.AlreadyErased {
			t.Fatalf("second erasure %+v", e)
		}
		// No more changes; old member tokens are dead.
		fails(t, a.do(a.owner(), "PATCH", fmt.Sprintf("/members/%d", m.ID), map[string]any{"name": "回来"}), http.StatusConflict, "")
		req, _ := http.NewRequest("GET", fmt.Sprintf("/api/member/v1/%d/profile", a.merchantID), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		a.engine.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("erased member's token: %d %s", rec.Code, rec.Body)
		}
		// Following again makes a new, unrelated member.
		a.follow("o_1", "u_1", "", 60)
		again := a.byOpenID("o_1")
		if again.ID == m.ID || again.Name != "" {
			t.Fatalf("refollow gave %+v", again)
		}
		// The detail of the tombstone is still there for staff.
		var d detailView
		a.ok("GET", fmt.Sprintf("/members/%d", m.ID), nil, &d)
		if d.ErasedAt == nil || d.Name != "" {
			t.Fatalf("tombstone detail %+v", d)
		}
	})
}

// Every mutating route records its own entry (not the tracker's generic
// fallback) in its transaction; a refused call records nothing.
func TestAdminAuditEntries(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		m := a.add(member.Member{})
		calls := []struct {
			method, path string
			body         any
			action       string
		}{
			{"POST", "/tags", map[string]any{"name": "VIP"}, "tag.create"},
			{"PATCH", "/tags/{tag}", map[string]any{"color": "#000000"}, "tag.update"},
			{"POST", "/tags/{tag}/assign", map[string]any{"member_ids": []uint64{m.ID}}, "tag.assign"},
			{"POST", "/tags/{tag}/unassign", map[string]any{"member_ids": []uint64{m.ID}}, "tag.unassign"},
			{"PATCH", "/members/{member}", map[string]any{"remark": "x"}, "member.update"},
			{"GET", "/members/{member}/privacy-export", nil, "member.privacy_export"},
			{"GET", "/members/export.csv", nil, "member.export"},
			{"DELETE", "/tags/{tag}", nil, "tag.delete"},
			{"POST", "/members/{member}/erase", nil, "member.erase"},
		}
		var tagID uint64
		for _, c := range calls {
			path := strings.NewReplacer("{tag}", strconv.FormatUint(tagID, 10), "{member}", strconv.FormatUint(m.ID, 10)).Replace(c.path)
			// First a refused version of the call: no entry.
			n := len(a.auditRows())
			if c.body != nil { // the calls that read a body
				fails(t, a.do(a.owner(), c.method, path, `{"bogus":1}`), http.StatusBadRequest, "bogus")
				if len(a.auditRows()) != n {
					t.Fatalf("%s %s: a refused call was audited", c.method, path)
				}
			}
			w := a.do(a.owner(), c.method, path, c.body)
			if w.Code/100 != 2 {
				t.Fatalf("%s %s: %d %s", c.method, path, w.Code, w.Body)
			}
			if c.action == "tag.create" {
				var tg struct{ ID uint64 }
				_ = json.Unmarshal(w.Body.Bytes(), &tg)
				tagID = tg.ID
			}
			rows := a.auditRows()
			if len(rows) != n+1 || rows[n].Action != c.action || rows[n].RequestID != "req-1" || rows[n].ClientIP != "192.0.2.1" {
				t.Fatalf("%s %s: entries %+v, want one %s", c.method, path, rows[n:], c.action)
			}
		}
	})
}

func TestChannelStats(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		a.follow("o_1", "", "spring", 0)
		a.deliver(a.event(wechat.EventUnsubscribe, "o_1", "", 10))
		a.follow("o_1", "", "spring", 20) // the same member again: one follower
		a.follow("o_2", "", "spring", 30)
		a.follow("o_3", "", "autumn", 40)
		a.deliver(a.event(wechat.EventScan, "o_3", "spring", 50)) // a scan is no follow
		a.follow("o_4", "", "", 60)
		// Erased members still count: their channel and history stay.
		a.ok("POST", fmt.Sprintf("/members/%d/erase", a.byOpenID("o_2").ID), nil, nil)
		other := newAdminAPI(t, gdb, member.AdminOptions{})
		other.follow("o_9", "", "spring", 0)

		got, err := a.svc.ChannelStats(context.Background(), a.merchantID, []string{"spring", "autumn", "winter"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]member.ChannelFigures{"spring": {Followers: 2, Members: 2}, "autumn": {Followers: 1, Members: 1},
			"winter": {}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if got, _ := a.svc.ChannelStats(context.Background(), a.merchantID, nil); len(got) != 0 {
			t.Fatalf("no scenes: %v", got)
		}
	})
}

// Two records of one person merged: the survivor holds both records' tags,
// once each.
func TestMergeMovesTags(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		early := a.mpLogin("mp_1", "")
		a.follow("o_1", "u_1", "", 0)
		late := a.byOpenID("o_1")
		vip, coffee, tea := a.tag("VIP"), a.tag("咖啡"), a.tag("茶")
		a.assign(vip, early.ID, late.ID)
		a.assign(coffee, late.ID)
		a.assign(tea, early.ID)
		a.ok("PATCH", fmt.Sprintf("/members/%d", late.ID), map[string]any{"remark": "常客"}, nil)
		merged := a.mpLogin("mp_1", "u_1")
		if merged.ID != early.ID {
			t.Fatalf("survivor %d, want %d", merged.ID, early.ID)
		}
		var d detailView
		a.ok("GET", fmt.Sprintf("/members/%d", merged.ID), nil, &d)
		var names []string
		for _, tg := range d.Tags {
			names = append(names, tg.Name)
		}
		if strings.Join(names, ",") != "VIP,咖啡,茶" || d.Remark != "常客" {
			t.Fatalf("merged member tags %v remark %q", names, d.Remark)
		}
		if n := a.count("member_tags"); n != 3 {
			t.Fatalf("%d assignments, want 3", n)
		}
	})
}

// Editing a member's tags and bulk (un)assigning the same tags at the same
// time: every call succeeds (no deadlock between the two lock orders), and
// the assignments end consistent.
func TestAdminConcurrentTagWrites(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		t1, t2 := a.tag("one"), a.tag("two")
		var ids []uint64
		for range 4 {
			ids = append(ids, a.add(member.Member{}).ID)
		}
		errs := make(chan string, 200)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					var w *httptest.ResponseRecorder
					switch (g + i) % 3 {
					case 0:
						w = a.do(a.owner(), "PATCH", fmt.Sprintf("/members/%d", ids[i%len(ids)]),
							map[string]any{"tag_ids": []uint64{t1, t2}[:1+i%2]})
					case 1:
						w = a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/assign", []uint64{t1, t2}[i%2]),
							map[string]any{"member_ids": ids})
					default:
						w = a.do(a.owner(), "POST", fmt.Sprintf("/tags/%d/unassign", t1),
							map[string]any{"member_ids": []uint64{ids[3], ids[0]}})
					}
					if w.Code != http.StatusOK {
						errs <- fmt.Sprintf("%d %s", w.Code, w.Body)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		var orphans int64
		a.db.Raw("SELECT COUNT(*) FROM member_tags mt LEFT JOIN tags t ON t.id = mt.tag_id WHERE mt.merchant_id = ? AND t.id IS NULL",
			a.merchantID).Scan(&orphans)
		if orphans != 0 {
			t.Fatalf("%d assignments of missing tags", orphans)
		}
	})
}
