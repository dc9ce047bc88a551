package segment_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/member/segment"
)

var schema = segment.Schema{
	"gender": {Name: "gender", Kind: segment.KindEnum, Column: "m.gender", Values: []string{"unknown", "male", "female"},
		Stored: map[string]any{"unknown": int64(0), "male": int64(1), "female": int64(2)}},
	"stage":          {Name: "stage", Kind: segment.KindEnum, Column: "m.lifecycle_stage", Values: []string{"new", "loyal"}},
	"birthday_month": {Name: "birthday_month", Kind: segment.KindInt, Column: "m.birthday_month", Nullable: true, Min: 1, Max: 12},
	"channel":        {Name: "channel", Kind: segment.KindString, Column: "m.channel_scene", Nullable: true, MaxLen: 64},
	"consent":        {Name: "consent", Kind: segment.KindBool, Column: "EXISTS (SELECT 1 FROM c)"},
	"tags":           {Name: "tags", Kind: segment.KindIDSet, SetTable: "member_tags", SetColumn: "tag_id"},
	"days_since":     {Name: "days_since", Kind: segment.KindDaysSince, Column: "m.last_order_at", Nullable: true},
	"birthday_soon": {Name: "birthday_soon", Kind: segment.KindUpcoming, MonthColumn: "m.birthday_month",
		DayColumn: "m.birthday_day", DateTable: "member_care_dates", Max: 60},
}

var env = segment.Env{Now: time.Date(2027, 2, 20, 4, 0, 0, 0, time.UTC), Location: time.FixedZone("CST", 8*3600)}

func parse(t *testing.T, rule string) segment.Node {
	t.Helper()
	n, err := segment.Parse([]byte(rule), schema, "rule")
	if err != nil {
		t.Fatalf("parse %s: %v", rule, err)
	}
	return n
}

// Each operator compiles to constant SQL with placeholders, values as
// arguments, nullable columns guarded.
func TestCompileEveryOperator(t *testing.T) {
	cutoff := func(days int) time.Time { return env.Now.Add(-time.Duration(days) * 24 * time.Hour) }
	cases := []struct {
		rule, sql string
		args      []any
	}{
		{`{"field":"gender","op":"eq","value":"female"}`, `(m.gender = ?)`, []any{int64(2)}},
		{`{"field":"gender","op":"ne","value":"male"}`, `(m.gender <> ?)`, []any{int64(1)}},
		{`{"field":"stage","op":"in","value":["new","loyal"]}`, `(m.lifecycle_stage IN (?, ?))`, []any{"new", "loyal"}},
		{`{"field":"stage","op":"not_in","value":["new"]}`, `(m.lifecycle_stage NOT IN (?))`, []any{"new"}},
		{`{"field":"birthday_month","op":"gte","value":3}`, `(m.birthday_month IS NOT NULL AND m.birthday_month >= ?)`, []any{int64(3)}},
		{`{"field":"birthday_month","op":"between","value":[3,5]}`, `(m.birthday_month IS NOT NULL AND m.birthday_month BETWEEN ? AND ?)`, []any{int64(3), int64(5)}},
		{`{"field":"birthday_month","op":"lt","value":2}`, `(m.birthday_month IS NOT NULL AND m.birthday_month < ?)`, []any{int64(2)}},
		{`{"field":"channel","op":"eq","value":"poster"}`, `(m.channel_scene IS NOT NULL AND m.channel_scene = ?)`, []any{"poster"}},
		{`{"field":"channel","op":"is_set","value":false}`, `(m.channel_scene IS NULL OR m.channel_scene = '')`, nil},
		{`{"field":"consent","op":"eq","value":false}`, `NOT (EXISTS (SELECT 1 FROM c))`, nil},
		{`{"field":"tags","op":"has_any","value":[7,3,7]}`, `EXISTS (SELECT 1 FROM member_tags s WHERE s.merchant_id = m.merchant_id AND s.member_id = m.id AND s.tag_id IN (?, ?))`, []any{int64(3), int64(7)}},
		{`{"field":"tags","op":"has_all","value":[3,7]}`, `(SELECT COUNT(*) FROM member_tags s WHERE s.merchant_id = m.merchant_id AND s.member_id = m.id AND s.tag_id IN (?, ?)) = ?`, []any{int64(3), int64(7), int64(2)}},
		{`{"field":"tags","op":"has_none","value":[3]}`, `NOT EXISTS (SELECT 1 FROM member_tags s WHERE s.merchant_id = m.merchant_id AND s.member_id = m.id AND s.tag_id IN (?))`, []any{int64(3)}},
		{`{"field":"days_since","op":"gt","value":30}`, `(m.last_order_at IS NOT NULL AND m.last_order_at < ?)`, []any{cutoff(30)}},
		{`{"field":"days_since","op":"between","value":[30,90]}`, `(m.last_order_at IS NOT NULL AND m.last_order_at BETWEEN ? AND ?)`, []any{cutoff(90), cutoff(30)}},
		{`{"field":"days_since","op":"is_set","value":false}`, `(m.last_order_at IS NULL)`, nil},
		{`{"all":[{"field":"gender","op":"eq","value":"male"},{"not":{"any":[{"field":"birthday_month","op":"eq","value":1},{"field":"stage","op":"eq","value":"new"}]}}]}`,
			`((m.gender = ?) AND NOT ((m.birthday_month IS NOT NULL AND m.birthday_month = ?) OR (m.lifecycle_stage = ?)))`, []any{int64(1), int64(1), "new"}},
	}
	for _, c := range cases {
		sql, args := segment.Compile(parse(t, c.rule), env)
		if sql != c.sql {
			t.Errorf("%s:\n got  %s\n want %s", c.rule, sql, c.sql)
		}
		if len(args) != len(c.args) {
			t.Errorf("%s: args %v, want %v", c.rule, args, c.args)
			continue
		}
		for i := range args {
			if at, ok := args[i].(time.Time); ok {
				if !at.Equal(c.args[i].(time.Time)) {
					t.Errorf("%s: arg %d %v, want %v", c.rule, i, args[i], c.args[i])
				}
			} else if args[i] != c.args[i] {
				t.Errorf("%s: arg %d %#v, want %#v", c.rule, i, args[i], c.args[i])
			}
		}
		if strings.Count(sql, "?") != len(args) {
			t.Errorf("%s: %d placeholders for %d args", c.rule, strings.Count(sql, "?"), len(args))
		}
	}
}

// "Within N days" counts local days from the merchant's today and keeps
// Feb 29 birthdays on Feb 28 in non-leap years.
func TestUpcomingDays(t *testing.T) {
	// 2027-02-20 04:00 UTC is 12:00 on Feb 20 in UTC+8; 2027 is not a leap year.
	sql, args := segment.Compile(parse(t, `{"field":"birthday_soon","op":"within","value":9}`), env)
	want := []int64{220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 301}
	if len(args) != 2*len(want) {
		t.Fatalf("args %v, want %v twice", args, want)
	}
	for i, w := range want {
		if args[i] != w {
			t.Fatalf("day %d: %v, want %v (all: %v)", i, args[i], w, args)
		}
	}
	if !strings.Contains(sql, "member_care_dates") {
		t.Fatal(sql)
	}
	// Late on Feb 19 UTC is already Feb 20 in Shanghai.
	late := segment.Env{Now: time.Date(2027, 2, 19, 17, 0, 0, 0, time.UTC), Location: env.Location}
	if _, args := segment.Compile(parse(t, `{"field":"birthday_soon","op":"within","value":0}`), late); args[0] != int64(220) {
		t.Fatalf("local today: %v", args)
	}
	// In a leap year Feb 29 is its own day, not Feb 28's.
	leap := segment.Env{Now: time.Date(2028, 2, 27, 4, 0, 0, 0, time.UTC), Location: env.Location}
	if _, args := segment.Compile(parse(t, `{"field":"birthday_soon","op":"within","value":1}`), leap); len(args) != 4 || args[1] != int64(228) {
		t.Fatalf("leap year: %v", args)
	}
}

// Every kind of mistake is a 400 naming the node; nothing else parses.
func TestParseRejects(t *testing.T) {
	deep := `{"field":"gender","op":"eq","value":"male"}`
	for range segment.MaxDepth + 1 {
		deep = `{"not":` + deep + `}`
	}
	many := `{"all":[` + strings.Repeat(`{"field":"gender","op":"eq","value":"male"},`, segment.MaxConditions) + `{"field":"gender","op":"eq","value":"male"}]}`
	cases := map[string]string{
		`{"field":"password","op":"eq","value":"x"}`:                      "rule.field",
		`{"field":"gender","op":"like","value":"x"}`:                      "rule.op",
		`{"field":"gender","op":"eq","value":"robot"}`:                    "rule.value",
		`{"field":"gender","op":"eq","value":1}`:                          "rule.value",
		`{"field":"birthday_month","op":"eq","value":13}`:                 "rule.value",
		`{"field":"birthday_month","op":"eq","value":1.5}`:                "rule.value",
		`{"field":"birthday_month","op":"between","value":[5,3]}`:         "rule.value",
		`{"field":"birthday_month","op":"in","value":[]}`:                 "rule.value",
		`{"field":"channel","op":"eq","value":""}`:                        "rule.value",
		`{"field":"tags","op":"has_any","value":[0]}`:                     "rule.value",
		`{"field":"tags","op":"has_any","value":"1; DROP TABLE members"}`: "rule.value",
		`{"field":"birthday_soon","op":"within","value":400}`:             "rule.value",
		`{"all":[]}`: "rule.all",
		`{"all":[{"field":"gender","op":"eq","value":"male"},{"field":"x","op":"eq","value":1}]}`: "rule.all[1].field",
		`{"not":{"any":[{"field":"stage","op":"gt","value":"new"}]}}`:                             "rule.not.any[0].op",
		`{"all":[],"any":[]}`: "rule",
		`{}`:                  "rule",
		`{"field":"gender","op":"eq","value":"male","sql":"1=1"}`: "rule",
		`[]`:          "rule",
		`"gender"`:    "rule",
		`{"all":[1]}`: "rule",
		deep:          "rule",
		many:          "rule",
		`{"field":"gender","op":"eq","value":"male"} {}`: "rule",
	}
	for rule, field := range cases {
		_, err := segment.Parse([]byte(rule), schema, "rule")
		var v *apperr.Validation
		if !errors.As(err, &v) {
			t.Errorf("%.60s: %v, want a validation error", rule, err)
			continue
		}
		found := false
		for f := range v.Fields {
			if strings.HasPrefix(f, field) {
				found = true
			}
		}
		if !found {
			t.Errorf("%.60s: fields %v, want %s", rule, v.Fields, field)
		}
	}
}

type rec struct {
	vals  map[string]any
	ids   []int64
	dates []int64
}

func (r rec) Value(f string) (any, bool) { v, ok := r.vals[f]; return v, ok }
func (r rec) IDs(string) []int64         { return r.ids }
func (r rec) Dates(string) []int64       { return r.dates }

// Missing values make a condition false and its NOT true.
func TestMatchTwoValued(t *testing.T) {
	none := rec{vals: map[string]any{"gender": int64(0), "stage": "new"}}
	for rule, want := range map[string]bool{
		`{"field":"birthday_month","op":"ne","value":5}`:                                                   false,
		`{"not":{"field":"birthday_month","op":"eq","value":5}}`:                                           true,
		`{"field":"channel","op":"is_set","value":false}`:                                                  true,
		`{"field":"days_since","op":"lt","value":10}`:                                                      false,
		`{"not":{"field":"days_since","op":"gt","value":10}}`:                                              true,
		`{"field":"tags","op":"has_none","value":[1]}`:                                                     true,
		`{"field":"gender","op":"eq","value":"unknown"}`:                                                   true,
		`{"field":"stage","op":"not_in","value":["loyal"]}`:                                                true,
		`{"field":"birthday_soon","op":"within","value":60}`:                                               false,
		`{"any":[{"field":"consent","op":"eq","value":true},{"field":"consent","op":"eq","value":false}]}`: true,
	} {
		if got := segment.Match(parse(t, rule), env, none); got != want {
			t.Errorf("%s: %v, want %v", rule, got, want)
		}
	}
}
