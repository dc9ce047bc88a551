package segment

import (
	"slices"
	"strings"
	"time"
)

// Compile returns the rule as a SQL condition over the members table
// aliased m, and its arguments in order. The text holds only constant SQL
// from the schema and operators, and "?" placeholders.
func Compile(n Node, env Env) (string, []any) {
	var c compiler
	c.node(n, env)
	return c.sb.String(), c.args
}

type compiler struct {
	sb   strings.Builder
	args []any
}

func (c *compiler) w(s string) { c.sb.WriteString(s) }

func (c *compiler) node(n Node, env Env) {
	switch {
	case n.All != nil || n.Any != nil:
		list, join := n.All, " AND "
		if n.Any != nil {
			list, join = n.Any, " OR "
		}
		c.w("(")
		for i, child := range list {
			if i > 0 {
				c.w(join)
			}
			c.node(child, env)
		}
		c.w(")")
	case n.Not != nil:
		c.w("NOT ")
		c.node(*n.Not, env)
	case n.Cond != nil:
		c.cond(*n.Cond, env)
	}
}

// list writes "(?, ?, ...)" and appends the values.
func (c *compiler) list(vals []any) {
	c.w("(")
	for i, v := range vals {
		if i > 0 {
			c.w(", ")
		}
		c.w("?")
		c.args = append(c.args, v)
	}
	c.w(")")
}

func anys[T any](in []T) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

// guarded opens a condition on a nullable column so it is false, not NULL,
// when the member has no value: "(col IS NOT NULL AND ...".
func (c *compiler) guarded(f Field) {
	c.w("(")
	if f.Nullable {
		c.w(f.Column + " IS NOT NULL AND ")
	}
}

var cmpSQL = map[string]string{OpEq: " = ?", OpNe: " <> ?", OpGt: " > ?", OpGte: " >= ?", OpLt: " < ?", OpLte: " <= ?"}

func (c *compiler) cond(k Cond, env Env) {
	f := k.Field
	switch f.Kind {
	case KindEnum, KindString, KindInt:
		if k.Op == OpIsSet {
			if k.Bool {
				c.w("(" + f.Column + " IS NOT NULL AND " + f.Column + " <> '')")
			} else {
				c.w("(" + f.Column + " IS NULL OR " + f.Column + " = '')")
			}
			return
		}
		vals := c.values(k)
		c.guarded(f)
		switch k.Op {
		case OpIn:
			c.w(f.Column + " IN ")
			c.list(vals)
		case OpNotIn:
			c.w(f.Column + " NOT IN ")
			c.list(vals)
		case OpBetween:
			c.w(f.Column + " BETWEEN ? AND ?")
			c.args = append(c.args, vals[0], vals[1])
		default:
			c.w(f.Column + cmpSQL[k.Op])
			c.args = append(c.args, vals[0])
		}
		c.w(")")
	case KindBool:
		if k.Bool {
			c.w("(" + f.Column + ")")
		} else {
			c.w("NOT (" + f.Column + ")")
		}
	case KindIDSet:
		sub := "SELECT %s FROM " + f.SetTable + " s WHERE s.merchant_id = m.merchant_id AND s.member_id = m.id AND s." + f.SetColumn + " IN "
		switch k.Op {
		case OpHasAny:
			c.w("EXISTS (" + strings.Replace(sub, "%s", "1", 1))
			c.list(anys(k.Ints))
			c.w(")")
		case OpHasNone:
			c.w("NOT EXISTS (" + strings.Replace(sub, "%s", "1", 1))
			c.list(anys(k.Ints))
			c.w(")")
		case OpHasAll:
			c.w("(" + strings.Replace(sub, "%s", "COUNT(*)", 1))
			c.list(anys(k.Ints))
			c.w(") = ?")
			c.args = append(c.args, int64(len(k.Ints)))
		}
	case KindDaysSince:
		if k.Op == OpIsSet {
			if k.Bool {
				c.w("(" + f.Column + " IS NOT NULL)")
			} else {
				c.w("(" + f.Column + " IS NULL)")
			}
			return
		}
		// More days since the time means an earlier time: the comparison
		// flips. The column is compared with constants so its index serves.
		c.guarded(f)
		switch k.Op {
		case OpGt:
			c.w(f.Column + " < ?")
			c.args = append(c.args, env.cutoff(k.Int))
		case OpGte:
			c.w(f.Column + " <= ?")
			c.args = append(c.args, env.cutoff(k.Int))
		case OpLt:
			c.w(f.Column + " > ?")
			c.args = append(c.args, env.cutoff(k.Int))
		case OpLte:
			c.w(f.Column + " >= ?")
			c.args = append(c.args, env.cutoff(k.Int))
		case OpBetween:
			c.w(f.Column + " BETWEEN ? AND ?")
			c.args = append(c.args, env.cutoff(k.Ints[1]), env.cutoff(k.Ints[0]))
		}
		c.w(")")
	case KindUpcoming:
		days := anys(env.upcoming(k.Int))
		c.w("((" + f.MonthColumn + " IS NOT NULL AND " + f.DayColumn + " IS NOT NULL AND " +
			f.MonthColumn + " * 100 + " + f.DayColumn + " IN ")
		c.list(days)
		c.w(")")
		if f.DateTable != "" {
			c.w(" OR EXISTS (SELECT 1 FROM " + f.DateTable + " d WHERE d.merchant_id = m.merchant_id AND d.member_id = m.id AND d.month * 100 + d.day IN ")
			c.list(days)
			c.w(")")
		}
		c.w(")")
	}
}

// values returns the condition's values in their stored form.
func (c *compiler) values(k Cond) []any {
	switch k.Field.Kind {
	case KindEnum:
		out := make([]any, len(k.Strs))
		for i, s := range k.Strs {
			out[i] = k.Field.stored(s)
		}
		return out
	case KindString:
		return anys(k.Strs)
	}
	return anys(k.Ints)
}

// Record is a member as the in-memory evaluator sees it.
type Record interface {
	// Value returns the stored value of a field's column: int64, string,
	// bool or time.Time; ok is false when the member has none (NULL).
	Value(field string) (v any, ok bool)
	// IDs returns the ids a member holds for a KindIDSet field.
	IDs(field string) []int64
	// Dates returns month*100+day of the member's dates for a KindUpcoming
	// field (the column date first, if any, then the table's).
	Dates(field string) []int64
}

// Match evaluates the rule for one member, with the semantics of the SQL
// Compile produces.
func Match(n Node, env Env, r Record) bool {
	switch {
	case n.All != nil:
		for _, c := range n.All {
			if !Match(c, env, r) {
				return false
			}
		}
		return true
	case n.Any != nil:
		for _, c := range n.Any {
			if Match(c, env, r) {
				return true
			}
		}
		return false
	case n.Not != nil:
		return !Match(*n.Not, env, r)
	case n.Cond != nil:
		return matchCond(*n.Cond, env, r)
	}
	return false
}

func matchCond(k Cond, env Env, r Record) bool {
	f := k.Field
	switch f.Kind {
	case KindBool:
		v, _ := r.Value(f.Name)
		b, _ := v.(bool)
		return b == k.Bool
	case KindIDSet:
		held := r.IDs(f.Name)
		n := 0
		for _, id := range k.Ints {
			if slices.Contains(held, id) {
				n++
			}
		}
		switch k.Op {
		case OpHasAny:
			return n > 0
		case OpHasNone:
			return n == 0
		default:
			return n == len(k.Ints)
		}
	case KindUpcoming:
		days := env.upcoming(k.Int)
		for _, d := range r.Dates(f.Name) {
			if slices.Contains(days, d) {
				return true
			}
		}
		return false
	}
	v, ok := r.Value(f.Name)
	if k.Op == OpIsSet {
		set := ok
		if s, isStr := v.(string); isStr && s == "" {
			set = false
		}
		return set == k.Bool
	}
	if !ok {
		return false
	}
	if f.Kind == KindDaysSince {
		t := v.(time.Time)
		switch k.Op {
		case OpGt:
			return t.Before(env.cutoff(k.Int))
		case OpGte:
			return !t.After(env.cutoff(k.Int))
		case OpLt:
			return t.After(env.cutoff(k.Int))
		case OpLte:
			return !t.Before(env.cutoff(k.Int))
		default: // between
			return !t.Before(env.cutoff(k.Ints[1])) && !t.After(env.cutoff(k.Ints[0]))
		}
	}
	var c compiler
	vals := c.values(k)
	cmp := func(want any) int { return compare(v, want) }
	switch k.Op {
	case OpEq:
		return cmp(vals[0]) == 0
	case OpNe:
		return cmp(vals[0]) != 0
	case OpGt:
		return cmp(vals[0]) > 0
	case OpGte:
		return cmp(vals[0]) >= 0
	case OpLt:
		return cmp(vals[0]) < 0
	case OpLte:
		return cmp(vals[0]) <= 0
	case OpBetween:
		return cmp(vals[0]) >= 0 && cmp(vals[1]) <= 0
	case OpIn, OpNotIn:
		in := false
		for _, w := range vals {
			if cmp(w) == 0 {
				in = true
				break
			}
		}
		return in == (k.Op == OpIn)
	}
	return false
}

// compare orders two values of the same stored type (int64 or string;
// other integer types are widened).
func compare(a, b any) int {
	if s, ok := a.(string); ok {
		return strings.Compare(s, b.(string))
	}
	x, y := toInt(a), toInt(b)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case int32:
		return int64(n)
	case uint64:
		return int64(n)
	}
	return 0
}
