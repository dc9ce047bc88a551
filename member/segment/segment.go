// Package segment is the rule language marketers target members with: a
// tree of AND / OR / NOT over conditions on whitelisted fields, parsed and
// validated from JSON, compiled to parameterised SQL over the members table
// (alias m), and evaluated in memory (the property test holds the two
// equal).
//
// A rule in JSON:
//
//	{"all": [
//	  {"field": "lifecycle_stage", "op": "in", "value": ["repeat", "loyal"]},
//	  {"any": [{"field": "tags", "op": "has_any", "value": [3, 7]},
//	           {"field": "total_spend_fen", "op": "gte", "value": 100000}]},
//	  {"not": {"field": "follow_status", "op": "eq", "value": "unfollowed"}}
//	]}
//
// Conditions are two-valued: a condition on a value the member does not
// have (no birthday, never ordered) is false, and its NOT is true. The SQL
// keeps that by guarding nullable columns with IS NOT NULL, so NOT never
// meets SQL's NULL.
//
// Nothing from the rule reaches SQL as text: field names select constant
// column expressions from the schema, operators select constant SQL, and
// every value is a placeholder argument.
package segment

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// Kind is the type of a field, which decides its operators and values.
type Kind int

// Field kinds.
const (
	KindEnum      Kind = iota + 1 // one of Values: eq, ne, in, not_in
	KindInt                       // integer in [Min, Max]: eq, ne, gt, gte, lt, lte, between, in, not_in
	KindString                    // text up to MaxLen: eq, ne, in, not_in, is_set
	KindBool                      // true/false: eq
	KindIDSet                     // a set of ids the member holds (tags): has_any, has_all, has_none
	KindDaysSince                 // days since a time (last order): gt, gte, lt, lte, between, is_set
	KindUpcoming                  // a yearly date in the next N days (birthday, care dates): within
)

// Field is one targetable attribute.
type Field struct {
	Name string
	Kind Kind
	// Column is the SQL expression of the stored value (over members m).
	// For KindEnum it holds the stored form of Values (see Stored).
	Column   string
	Nullable bool     // the column may be NULL: "the member has no value"
	Values   []string // KindEnum: the accepted values
	// Stored maps an enum value to what the column holds when it differs
	// (gender "male" is stored as 1); nil: stored as written.
	Stored   map[string]any
	Min, Max int64 // KindInt bounds; KindUpcoming: the largest N
	MaxLen   int   // KindString
	// SetTable and SetColumn (KindIDSet): the table of (merchant_id,
	// member_id, SetColumn) rows the member holds, e.g. member_tags.tag_id.
	SetTable, SetColumn string
	// MonthColumn and DayColumn (KindUpcoming): the date's columns on m;
	// DateTable, when set, is a table of further dates of the member with
	// month and day columns (care dates).
	MonthColumn, DayColumn string
	DateTable              string
}

// Schema is the set of fields a rule may use.
type Schema map[string]Field

// Operators.
const (
	OpEq      = "eq"
	OpNe      = "ne"
	OpGt      = "gt"
	OpGte     = "gte"
	OpLt      = "lt"
	OpLte     = "lte"
	OpBetween = "between"
	OpIn      = "in"
	OpNotIn   = "not_in"
	OpIsSet   = "is_set"
	OpHasAny  = "has_any"
	OpHasAll  = "has_all"
	OpHasNone = "has_none"
	OpWithin  = "within"
)

var kindOps = map[Kind][]string{
	KindEnum:      {OpEq, OpNe, OpIn, OpNotIn},
	KindInt:       {OpEq, OpNe, OpGt, OpGte, OpLt, OpLte, OpBetween, OpIn, OpNotIn},
	KindString:    {OpEq, OpNe, OpIn, OpNotIn, OpIsSet},
	KindBool:      {OpEq},
	KindIDSet:     {OpHasAny, OpHasAll, OpHasNone},
	KindDaysSince: {OpGt, OpGte, OpLt, OpLte, OpBetween, OpIsSet},
	KindUpcoming:  {OpWithin},
}

// Limits keep rules and their SQL small.
const (
	MaxDepth      = 6
	MaxConditions = 50
	MaxListValues = 100
)

// Rule is the JSON form of a rule node: exactly one of All, Any, Not, or a
// condition (Field, Op, Value).
type Rule struct {
	All   []Rule          `json:"all,omitempty"`
	Any   []Rule          `json:"any,omitempty"`
	Not   *Rule           `json:"not,omitempty"`
	Field string          `json:"field,omitempty"`
	Op    string          `json:"op,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Node is a validated rule.
type Node struct {
	All  []Node
	Any  []Node
	Not  *Node
	Cond *Cond
}

// Cond is a validated condition. Exactly the value fields its kind and
// operator need are set.
type Cond struct {
	Field Field
	Op    string
	Int   int64   // single integer (also days, N of within)
	Ints  []int64 // in/not_in lists, between bounds, id sets
	Str   string
	Strs  []string
	Bool  bool
}

// Parse reads and validates a rule. Problems are reported as an
// *apperr.Validation naming each node by its path under prefix
// ("rule.all[1].op"), all at once.
func Parse(raw []byte, schema Schema, prefix string) (Node, error) {
	var r Rule
	if err := httpx.DecodeJSON(raw, &r, prefix); err != nil {
		return Node{}, err
	}
	p := parser{schema: schema, v: &apperr.Validation{}}
	n := p.node(r, prefix, 1)
	if p.conds > MaxConditions {
		p.v.Add(prefix, fmt.Sprintf("has %d conditions; at most %d are allowed", p.conds, MaxConditions))
	}
	if err := p.v.Err(); err != nil {
		return Node{}, err
	}
	return n, nil
}

type parser struct {
	schema Schema
	v      *apperr.Validation
	conds  int
}

func (p *parser) node(r Rule, path string, depth int) Node {
	set := 0
	if r.All != nil {
		set++
	}
	if r.Any != nil {
		set++
	}
	if r.Not != nil {
		set++
	}
	isCond := r.Field != "" || r.Op != "" || r.Value != nil
	if isCond {
		set++
	}
	if set != 1 {
		p.v.Add(path, `must be exactly one of {"all":[...]}, {"any":[...]}, {"not":{...}} or {"field","op","value"}`)
		return Node{}
	}
	if depth > MaxDepth && !isCond {
		p.v.Add(path, fmt.Sprintf("nests deeper than %d levels", MaxDepth))
		return Node{}
	}
	switch {
	case r.All != nil || r.Any != nil:
		list, name := r.All, "all"
		if r.Any != nil {
			list, name = r.Any, "any"
		}
		if len(list) == 0 {
			p.v.Add(path+"."+name, "must hold at least one rule")
			return Node{}
		}
		nodes := make([]Node, len(list))
		for i, child := range list {
			nodes[i] = p.node(child, fmt.Sprintf("%s.%s[%d]", path, name, i), depth+1)
		}
		if name == "all" {
			return Node{All: nodes}
		}
		return Node{Any: nodes}
	case r.Not != nil:
		n := p.node(*r.Not, path+".not", depth+1)
		return Node{Not: &n}
	}
	p.conds++
	c, ok := p.cond(r, path)
	if !ok {
		return Node{}
	}
	return Node{Cond: &c}
}

func (p *parser) cond(r Rule, path string) (Cond, bool) {
	f, ok := p.schema[r.Field]
	if !ok {
		p.v.Add(path+".field", fmt.Sprintf("%q is not a field you can target (fields: %s)", r.Field, strings.Join(p.schema.Names(), ", ")))
		return Cond{}, false
	}
	ops := kindOps[f.Kind]
	if !slices.Contains(ops, r.Op) {
		p.v.Add(path+".op", fmt.Sprintf("%q does not apply to %s (use %s)", r.Op, f.Name, strings.Join(ops, ", ")))
		return Cond{}, false
	}
	c := Cond{Field: f, Op: r.Op}
	bad := func(reason string) (Cond, bool) {
		p.v.Add(path+".value", reason)
		return Cond{}, false
	}
	if r.Op == OpIsSet {
		if err := json.Unmarshal(r.Value, &c.Bool); err != nil {
			return bad("must be true or false")
		}
		return c, true
	}
	switch f.Kind {
	case KindEnum:
		if r.Op == OpIn || r.Op == OpNotIn {
			if err := json.Unmarshal(r.Value, &c.Strs); err != nil || len(c.Strs) == 0 || len(c.Strs) > MaxListValues {
				return bad(fmt.Sprintf("must be a list of 1 to %d of: %s", MaxListValues, strings.Join(f.Values, ", ")))
			}
		} else {
			var s string
			if err := json.Unmarshal(r.Value, &s); err != nil {
				return bad("must be one of: " + strings.Join(f.Values, ", "))
			}
			c.Strs = []string{s}
		}
		for _, s := range c.Strs {
			if !slices.Contains(f.Values, s) {
				return bad(fmt.Sprintf("%q is not one of: %s", s, strings.Join(f.Values, ", ")))
			}
		}
		c.Str = c.Strs[0]
	case KindString:
		if r.Op == OpIn || r.Op == OpNotIn {
			if err := json.Unmarshal(r.Value, &c.Strs); err != nil || len(c.Strs) == 0 || len(c.Strs) > MaxListValues {
				return bad(fmt.Sprintf("must be a list of 1 to %d texts", MaxListValues))
			}
		} else {
			var s string
			if err := json.Unmarshal(r.Value, &s); err != nil {
				return bad("must be a text")
			}
			c.Strs = []string{s}
		}
		for _, s := range c.Strs {
			if s == "" || len(s) > f.MaxLen {
				return bad(fmt.Sprintf("texts must be 1 to %d bytes", f.MaxLen))
			}
		}
		c.Str = c.Strs[0]
	case KindBool:
		if err := json.Unmarshal(r.Value, &c.Bool); err != nil {
			return bad("must be true or false")
		}
	case KindInt, KindDaysSince, KindUpcoming:
		lo, hi := f.Min, f.Max
		if f.Kind == KindDaysSince {
			lo, hi = 0, 36500
		}
		if f.Kind == KindUpcoming {
			lo = 0
		}
		switch r.Op {
		case OpIn, OpNotIn, OpBetween:
			if err := json.Unmarshal(r.Value, &c.Ints); err != nil {
				return bad("must be a list of integers")
			}
			if r.Op == OpBetween && (len(c.Ints) != 2 || c.Ints[0] > c.Ints[1]) {
				return bad("must be [low, high] with low <= high")
			}
			if len(c.Ints) == 0 || len(c.Ints) > MaxListValues {
				return bad(fmt.Sprintf("must hold 1 to %d integers", MaxListValues))
			}
		default:
			var n int64
			if err := json.Unmarshal(r.Value, &n); err != nil {
				return bad("must be an integer")
			}
			c.Ints = []int64{n}
		}
		for _, n := range c.Ints {
			if n < lo || n > hi {
				return bad(fmt.Sprintf("must be between %d and %d", lo, hi))
			}
		}
		c.Int = c.Ints[0]
	case KindIDSet:
		if err := json.Unmarshal(r.Value, &c.Ints); err != nil || len(c.Ints) == 0 || len(c.Ints) > MaxListValues {
			return bad(fmt.Sprintf("must be a list of 1 to %d ids", MaxListValues))
		}
		for _, n := range c.Ints {
			if n <= 0 {
				return bad("ids must be positive")
			}
		}
		slices.Sort(c.Ints)
		c.Ints = slices.Compact(c.Ints)
	}
	return c, true
}

// Operators returns the operators a kind of field takes.
func Operators(k Kind) []string { return slices.Clone(kindOps[k]) }

// Names lists the schema's field names, sorted.
func (s Schema) Names() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Env is what a rule is evaluated against besides the member: the current
// time and the merchant's time zone (for "days since" and "within N days").
type Env struct {
	Now      time.Time
	Location *time.Location
}

// stored returns the column value of an enum value.
func (f Field) stored(s string) any {
	if v, ok := f.Stored[s]; ok {
		return v
	}
	return s
}

// cutoff is the instant "n days ago" for a days-since condition.
func (e Env) cutoff(days int64) time.Time {
	return e.Now.Add(-time.Duration(days) * 24 * time.Hour)
}

// upcoming returns month*100+day of the next n+1 local days from today,
// with February 29 included when February 28 is in the window of a
// non-leap year (that is when such dates are celebrated).
func (e Env) upcoming(n int64) []int64 {
	loc := e.Location
	if loc == nil {
		loc = time.UTC
	}
	today := e.Now.In(loc)
	day := time.Date(today.Year(), today.Month(), today.Day(), 12, 0, 0, 0, loc)
	var out []int64
	for i := int64(0); i <= n && i < 366; i++ {
		d := day.AddDate(0, 0, int(i))
		out = append(out, int64(d.Month())*100+int64(d.Day()))
		if d.Month() == time.February && d.Day() == 28 && !isLeap(d.Year()) {
			out = append(out, 229)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }
