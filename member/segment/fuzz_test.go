package segment_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/member/segment"
)

// allowedWords are every word compiled SQL may contain: SQL keywords and the
// schema's own column text. A word from a rule's values in the SQL would be
// an injection.
func allowedWords() map[string]bool {
	ok := map[string]bool{}
	for _, w := range strings.Fields("AND OR NOT IN IS NULL BETWEEN EXISTS SELECT FROM WHERE COUNT 1 100 s d s.merchant_id s.member_id d.merchant_id d.member_id d.month d.day m.merchant_id m.id") {
		ok[w] = true
	}
	word := regexp.MustCompile(`[A-Za-z_][A-Za-z_0-9.]*`)
	for _, f := range schema {
		for _, text := range []string{f.Column, f.SetTable, "s." + f.SetColumn, f.MonthColumn, f.DayColumn, f.DateTable} {
			for _, w := range word.FindAllString(text, -1) {
				ok[w] = true
			}
		}
	}
	return ok
}

// FuzzParse: no input panics; whatever parses compiles to SQL made of
// constant words, punctuation and one placeholder per argument.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"field":"gender","op":"eq","value":"female"}`,
		`{"all":[{"field":"tags","op":"has_all","value":[1,2]},{"not":{"field":"channel","op":"in","value":["a'; DROP TABLE m; --","b"]}}]}`,
		`{"any":[{"field":"days_since","op":"between","value":[1,5]},{"field":"birthday_soon","op":"within","value":3}]}`,
		`{"field":"consent","op":"eq","value":true}`,
		`{"not":{"not":{"field":"birthday_month","op":"in","value":[1,2,3]}}}`,
	} {
		f.Add([]byte(seed))
	}
	allowed := allowedWords()
	token := regexp.MustCompile(`[A-Za-z_][A-Za-z_0-9.]*|[0-9]+|''|\S`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := segment.Parse(raw, schema, "rule")
		if err != nil {
			return
		}
		sql, args := segment.Compile(n, env)
		if strings.Count(sql, "?") != len(args) {
			t.Fatalf("%d placeholders, %d args: %s", strings.Count(sql, "?"), len(args), sql)
		}
		for _, tok := range token.FindAllString(sql, -1) {
			if len(tok) == 1 && strings.Contains("()?,=<>*+", tok) || tok == "''" {
				continue
			}
			if !allowed[tok] {
				t.Fatalf("SQL holds %q, which is not constant text: %s", tok, sql)
			}
		}
	})
}
