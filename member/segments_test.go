package member_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/member/segment"
)

type fixedZone struct{ loc *time.Location }

func (z fixedZone) Location(context.Context, uint64) (*time.Location, error) { return z.loc, nil }

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// seedMember is one member of the property test, as stored and as the
// in-memory evaluator sees it.
type seedMember struct {
	id     uint64
	row    map[string]any
	vals   map[string]any // segment field -> stored value (absent: NULL)
	tags   []int64
	dates  []int64 // birthday first (if any), then care dates, as month*100+day
	bday   []int64 // birthday only
	points int64
}

func (s *seedMember) Value(f string) (any, bool) { v, ok := s.vals[f]; return v, ok }
func (s *seedMember) IDs(string) []int64         { return s.tags }
func (s *seedMember) Dates(f string) []int64 {
	if f == "birthday_within_days" {
		return s.bday
	}
	return s.dates
}

var (
	cities   = []string{"shanghai", "beijing", "hangzhou"}
	channels = []string{"poster", "table", "flyer"}
	sources  = []string{member.SourceOAFollow, member.SourceMPLogin, member.SourceOAMessage, member.SourceOAuth}
	pyramids = []string{member.PyramidPlatinum, member.PyramidGold, member.PyramidIron, member.PyramidLead}
)

// seedMembers writes n members with random values in every targetable
// column, their tags, care dates, consents and points, and returns them.
func seedMembers(t *testing.T, gdb *gorm.DB, rng *rand.Rand, merchantID uint64, now time.Time, n int) []*seedMember {
	t.Helper()
	maybe := func(p float64) bool { return rng.Float64() < p }
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	ago := func(maxDays int) time.Time {
		return now.Add(-time.Duration(rng.Int64N(int64(maxDays)*24*3600*1000)) * time.Millisecond).Truncate(time.Millisecond)
	}
	var out []*seedMember
	for i := range n {
		s := &seedMember{vals: map[string]any{}}
		gender := rng.IntN(3)
		row := map[string]any{"merchant_id": merchantID, "source": pick(sources), "follow_status": pick([]string{"following", "unfollowed", "none"}),
			"gender": gender, "lifecycle_stage": pick(member.Stages), "order_count": rng.IntN(6),
			"total_spend_fen": rng.Int64N(200000) - 5000, "name": fmt.Sprintf("m%d-%d", i, rng.Int64())}
		created := ago(800)
		row["created_at"], row["updated_at"] = created, created
		s.vals["gender"] = int64(gender)
		s.vals["source"] = row["source"]
		s.vals["follow_status"] = row["follow_status"]
		s.vals["lifecycle_stage"] = row["lifecycle_stage"]
		s.vals["order_count"] = int64(row["order_count"].(int))
		s.vals["total_spend_fen"] = row["total_spend_fen"]
		s.vals["days_since_join"] = created
		set := func(col, field string, v any) {
			row[col] = v
			switch x := v.(type) {
			case int:
				s.vals[field] = int64(x)
			default:
				s.vals[field] = v
			}
		}
		if maybe(0.7) {
			set("city", "city", pick(cities))
		}
		if maybe(0.6) {
			// Around "today" often, so upcoming-date conditions match some.
			d := now.In(shanghai).AddDate(0, 0, rng.IntN(40)-5)
			month, day := int(d.Month()), d.Day()
			if maybe(0.1) {
				month, day = 2, 29
			}
			set("birthday_month", "birthday_month", month)
			row["birthday_day"] = day
			s.bday = []int64{int64(month*100 + day)}
			s.dates = append(s.dates, int64(month*100+day))
		}
		if maybe(0.6) {
			set("channel_scene", "channel", pick(channels))
		}
		if maybe(0.5) {
			set("tier_id", "tier", 1+rng.IntN(3))
		}
		for _, f := range []string{"rfm_r", "rfm_f", "rfm_m"} {
			if maybe(0.6) {
				set(f, f, 1+rng.IntN(5))
			}
		}
		if maybe(0.6) {
			set("pyramid_tier", "pyramid_tier", pick(pyramids))
		}
		if maybe(0.6) {
			set("clv_fen", "clv_fen", rng.Int64N(500000))
		}
		if maybe(0.6) {
			set("churn_risk", "churn_risk", rng.IntN(101))
		}
		if maybe(0.7) {
			set("last_order_at", "days_since_last_order", ago(400))
		}
		if maybe(0.5) {
			set("last_nps", "last_nps", rng.IntN(11))
			set("last_satisfaction", "last_satisfaction", 1+rng.IntN(5))
		}
		if maybe(0.7) {
			set("followed_at", "days_since_follow", ago(600))
		}
		if err := gdb.Table("members").Create(row).Error; err != nil {
			t.Fatal(err)
		}
		if err := gdb.Table("members").Where("merchant_id = ? AND name = ?", merchantID, row["name"]).Pluck("id", &s.id).Error; err != nil || s.id == 0 {
			t.Fatalf("seeded member not found: %v", err)
		}
		for tag := int64(1); tag <= 4; tag++ {
			if maybe(0.35) {
				s.tags = append(s.tags, tag)
				gdb.Exec("INSERT INTO member_tags (merchant_id, tag_id, member_id, created_at) VALUES (?, ?, ?, ?)", merchantID, tag, s.id, now)
			}
		}
		for range rng.IntN(3) {
			d := now.In(shanghai).AddDate(0, 0, rng.IntN(60)-10)
			s.dates = append(s.dates, int64(int(d.Month())*100+d.Day()))
			gdb.Exec("INSERT INTO member_care_dates (merchant_id, member_id, kind, label, month, day, created_at, updated_at) VALUES (?, ?, 'custom', 'x', ?, ?, ?, ?)",
				merchantID, s.id, int(d.Month()), d.Day(), now, now)
		}
		for _, ch := range []string{"template", "subscribe", "sms"} {
			if maybe(0.5) {
				granted := maybe(0.7)
				gdb.Exec("INSERT INTO member_consents (merchant_id, member_id, channel, granted, updated_at) VALUES (?, ?, ?, ?, ?)",
					merchantID, s.id, ch, granted, now)
				if granted {
					s.vals["consent_"+ch] = true
				}
			}
		}
		for _, ch := range []string{"template", "subscribe", "sms"} {
			if _, ok := s.vals["consent_"+ch]; !ok {
				s.vals["consent_"+ch] = false
			}
		}
		if maybe(0.6) {
			s.points = rng.Int64N(5000) - 100
			if err := gdb.Exec("INSERT INTO points_accounts (merchant_id, member_id, available, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
				merchantID, s.id, s.points, now, now).Error; err != nil {
				t.Fatal(err)
			}
		}
		s.vals["points_balance"] = s.points
		// Referrals the member brought in: a random mix of statuses, of
		// which the ineligible ones count for nothing. Referee ids are
		// made up (the counts read only the referrer's rows).
		var invited, converted int64
		for range rng.IntN(4) {
			status := pick([]string{"pending", "converted", "reversed", "ineligible"})
			if err := gdb.Exec("INSERT INTO referrals (merchant_id, referrer_id, referee_id, code, source, status, created_at, updated_at) VALUES (?, ?, ?, 'C', 'oa_follow', ?, ?, ?)",
				merchantID, s.id, rng.Uint64N(1<<40)+1<<41, status, now, now).Error; err != nil {
				t.Fatal(err)
			}
			if status != "ineligible" {
				invited++
			}
			if status == "converted" {
				converted++
			}
		}
		s.vals["referrals_invited"], s.vals["referrals_converted"] = invited, converted
		s.row = row
		out = append(out, s)
	}
	return out
}

// randomRule builds a valid rule over SegmentSchema with values that hit
// the seeded data often.
func randomRule(rng *rand.Rand, depth int) map[string]any {
	if depth < 3 && rng.IntN(3) == 0 {
		k := []string{"all", "any", "not"}[rng.IntN(3)]
		if k == "not" {
			return map[string]any{"not": randomRule(rng, depth+1)}
		}
		var kids []any
		for range 1 + rng.IntN(3) {
			kids = append(kids, randomRule(rng, depth+1))
		}
		return map[string]any{k: kids}
	}
	names := member.SegmentSchema.Names()
	f := member.SegmentSchema[names[rng.IntN(len(names))]]
	ops := segment.Operators(f.Kind)
	op := ops[rng.IntN(len(ops))]
	var value any
	intIn := func(lo, hi int64) int64 { return lo + rng.Int64N(hi-lo+1) }
	ints := func(lo, hi int64) []int64 {
		var out []int64
		for range 1 + rng.IntN(3) {
			out = append(out, intIn(lo, hi))
		}
		return out
	}
	switch {
	case op == segment.OpIsSet:
		value = rng.IntN(2) == 0
	case f.Kind == segment.KindEnum:
		if op == segment.OpIn || op == segment.OpNotIn {
			value = []string{f.Values[rng.IntN(len(f.Values))], f.Values[rng.IntN(len(f.Values))]}
		} else {
			value = f.Values[rng.IntN(len(f.Values))]
		}
	case f.Kind == segment.KindString:
		list := cities
		if f.Name == "channel" {
			list = channels
		}
		if op == segment.OpIn || op == segment.OpNotIn {
			value = []string{list[rng.IntN(len(list))], "nowhere"}
		} else {
			value = list[rng.IntN(len(list))]
		}
	case f.Kind == segment.KindBool:
		value = rng.IntN(2) == 0
	case f.Kind == segment.KindIDSet:
		value = ints(1, 5)
	case f.Kind == segment.KindUpcoming:
		value = intIn(0, 30)
	default:
		lo, hi := f.Min, f.Max
		switch f.Name {
		case "tier":
			lo, hi = 1, 4
		case "clv_fen":
			lo, hi = 0, 500000
		case "total_spend_fen":
			lo, hi = -5000, 200000
		case "points_balance":
			lo, hi = -100, 5000
		case "order_count":
			lo, hi = 0, 6
		case "referrals_invited", "referrals_converted":
			lo, hi = 0, 3
		case "last_nps":
			lo, hi = 0, 10
		}
		if f.Kind == segment.KindDaysSince {
			lo, hi = 0, 700
		}
		switch op {
		case segment.OpIn, segment.OpNotIn:
			value = ints(lo, hi)
		case segment.OpBetween:
			a, b := intIn(lo, hi), intIn(lo, hi)
			value = []int64{min(a, b), max(a, b)}
		default:
			value = intIn(lo, hi)
		}
	}
	return map[string]any{"field": f.Name, "op": op, "value": value}
}

// The compiled SQL and the in-memory evaluation pick the same members for
// hundreds of random rules, on SQLite and MySQL; erased members and other
// merchants' members are never picked.
func TestSegmentSQLMatchesEvaluation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		rng := rand.New(rand.NewPCG(42, uint64(time.Now().UnixNano())))
		now := time.Now().UTC().Truncate(time.Millisecond)
		mid := dbtest.NewMerchantID()
		members := seedMembers(t, gdb, rng, mid, now, 160)
		// Noise the rule must never pick: an erased member and another
		// merchant's members with the same values.
		erased := seedMembers(t, gdb, rng, mid, now, 1)[0]
		gdb.Exec("UPDATE members SET erased_at = ? WHERE id = ?", now, erased.id)
		seedMembers(t, gdb, rng, dbtest.NewMerchantID(), now, 20)

		segs := member.NewSegments(gdb, fixedZone{shanghai}, func() time.Time { return now })
		env := segment.Env{Now: now, Location: shanghai}
		ctx := context.Background()
		nonEmpty, rules := 0, 400
		for i := range rules {
			raw, _ := json.Marshal(randomRule(rng, 0))
			node, err := segment.Parse(raw, member.SegmentSchema, "rule")
			if err != nil {
				t.Fatalf("generated an invalid rule %s: %v", raw, err)
			}
			var want []uint64
			for _, m := range members {
				if segment.Match(node, env, m) {
					want = append(want, m.id)
				}
			}
			a, err := segs.Compile(ctx, mid, raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := segs.IDs(ctx, a, 0, 10000)
			if err != nil {
				t.Fatalf("rule %d %s:\n%s\n%v", i, raw, a.Where, err)
			}
			n, err := segs.Count(ctx, a)
			if err != nil || n != int64(len(got)) {
				t.Fatalf("count %d, ids %d: %v", n, len(got), err)
			}
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
			if !slices.Equal(got, want) {
				t.Fatalf("rule %s\nSQL %s\nSQL picked %d members, the evaluator %d\nonly SQL: %v\nonly evaluator: %v",
					raw, a.Where, len(got), len(want), minus(got, want), minus(want, got))
			}
			if len(want) > 0 && len(want) < len(members) {
				nonEmpty++
			}
		}
		// The test means something only if rules split the members.
		if nonEmpty < rules/4 {
			t.Fatalf("only %d of %d rules picked some but not all members", nonEmpty, rules)
		}
	})
}

func minus(a, b []uint64) []uint64 {
	var out []uint64
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// The segment API: fields, preview, save with a count, edit, refresh,
// delete, bad rules named, another merchant's segment not found, audited.
func TestSegmentAPI(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		segs := member.NewSegments(gdb, fixedZone{shanghai}, a.clock.Now)
		member.NewSegmentHandler(segs, a.svc).Register(a.engine.Group(adminPrefix, audit.NewRecorder(gdb, a.clock.Now).Track()))
		rng := rand.New(rand.NewPCG(7, 7))
		seeded := seedMembers(t, gdb, rng, a.merchantID, a.clock.Now(), 30)
		marketer, viewer := a.staff(authz.RoleMarketer), a.staff(authz.RoleViewer)

		r := a.do(viewer, "GET", "/segments/fields", nil)
		if r.Code != 200 || !strings.Contains(r.Body.String(), `"name":"lifecycle_stage"`) || !strings.Contains(r.Body.String(), `"has_any"`) {
			t.Fatalf("fields: %d %s", r.Code, r.Body)
		}
		rule := map[string]any{"field": "follow_status", "op": "eq", "value": "following"}
		want := 0
		for _, m := range seeded {
			if m.vals["follow_status"] == "following" {
				want++
			}
		}
		var pv struct {
			Count  int64
			Sample []struct {
				ID    uint64
				Phone *string
			}
		}
		r = a.do(viewer, "POST", "/segments/preview", map[string]any{"rule": rule})
		decode(t, r, &pv)
		if r.Code != 200 || pv.Count != int64(want) || len(pv.Sample) != min(want, member.PreviewSample) {
			t.Fatalf("preview: %d %s (want %d)", r.Code, r.Body, want)
		}
		for body, field := range map[string]string{
			`{"rule":{"field":"password","op":"eq","value":"x"}}`:      "rule.field",
			`{"rule":{"field":"order_count","op":"like","value":"1"}}`: "rule.op",
			`{"rule":{"all":[{"field":"rfm_r","op":"eq","value":9}]}}`: "rule.all[0].value",
			`{}`: "rule",
			`{"rule":{"field":"city","op":"eq","value":"x' OR '1'='1"},"sql":"1"}`: "sql",
		} {
			r := a.do(viewer, "POST", "/segments/preview", body)
			if r.Code != 400 || !strings.Contains(r.Body.String(), `"`+field+`"`) {
				t.Errorf("preview %s: %d %s, want 400 naming %s", body, r.Code, r.Body, field)
			}
		}
		if r := a.do(viewer, "POST", "/segments", map[string]any{"name": "x", "rule": rule}); r.Code != http.StatusForbidden {
			t.Fatalf("viewer saves: %d", r.Code)
		}
		var seg struct {
			ID          uint64
			CachedCount *int64     `json:"cached_count"`
			CountedAt   *time.Time `json:"counted_at"`
		}
		r = a.do(marketer, "POST", "/segments", map[string]any{"name": "Followers", "rule": rule})
		decode(t, r, &seg)
		if r.Code != 201 || seg.CachedCount == nil || *seg.CachedCount != int64(want) || seg.CountedAt == nil {
			t.Fatalf("create: %d %s", r.Code, r.Body)
		}
		if r := a.do(marketer, "POST", "/segments", map[string]any{"name": "followers", "rule": rule}); r.Code != 409 {
			t.Fatalf("duplicate name: %d %s", r.Code, r.Body)
		}
		if r := a.do(marketer, "POST", "/segments", map[string]any{"name": "Bad", "rule": map[string]any{"field": "x"}}); r.Code != 400 {
			t.Fatalf("bad rule saved: %d", r.Code)
		}
		// A member starts following: the cached count moves on refresh.
		gdb.Exec("UPDATE members SET follow_status = 'following' WHERE merchant_id = ? AND follow_status <> 'following' AND erased_at IS NULL", a.merchantID)
		r = a.do(marketer, "POST", fmt.Sprintf("/segments/%d/refresh", seg.ID), nil)
		decode(t, r, &seg)
		if r.Code != 200 || *seg.CachedCount != int64(len(seeded)) {
			t.Fatalf("refresh: %d %s", r.Code, r.Body)
		}
		r = a.do(marketer, "PATCH", fmt.Sprintf("/segments/%d", seg.ID), map[string]any{"rule": map[string]any{"field": "tags", "op": "has_any", "value": []int{1}}})
		decode(t, r, &seg)
		tagged := 0
		for _, m := range seeded {
			if slices.Contains(m.tags, 1) {
				tagged++
			}
		}
		if r.Code != 200 || *seg.CachedCount != int64(tagged) {
			t.Fatalf("update: %d %s (want %d)", r.Code, r.Body, tagged)
		}
		other := authz.Principal{MerchantID: a.otherID, StaffID: 99, Role: authz.RoleOwner}
		for _, c := range []struct{ method, path string }{{"GET", ""}, {"PATCH", ""}, {"DELETE", ""}, {"POST", "/refresh"}} {
			if r := a.do(other, c.method, fmt.Sprintf("/segments/%d%s", seg.ID, c.path), map[string]any{"name": "mine"}); r.Code != 404 {
				t.Errorf("%s another merchant's segment: %d", c.method, r.Code)
			}
		}
		if r := a.do(marketer, "DELETE", fmt.Sprintf("/segments/%d", seg.ID), nil); r.Code != 204 {
			t.Fatalf("delete: %d", r.Code)
		}
		if r := a.do(marketer, "GET", fmt.Sprintf("/segments/%d", seg.ID), nil); r.Code != 404 {
			t.Fatalf("deleted segment: %d", r.Code)
		}
		var actions []string
		gdb.Table("audit_log").Where("merchant_id = ? AND target_type = 'segment'", a.merchantID).Order("id").Pluck("action", &actions)
		if strings.Join(actions, ",") != "segment.create,POST /api/admin/v1/segments/:segment_id/refresh,segment.update,segment.delete" {
			t.Fatalf("audit: %v", actions)
		}
	})
}

func decode(t *testing.T, r interface{ Result() *http.Response }, out any) {
	t.Helper()
	if err := json.NewDecoder(r.Result().Body).Decode(out); err != nil {
		t.Fatalf("decode: %v", err)
	}
}
