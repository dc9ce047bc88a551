package wechat

import (
	"os"
	"regexp"
	"testing"
)

// Every call name the code passes to Account.do or a token source is in the
// closed set the metrics accept (an unknown one would be counted as
// "other").
func TestEveryCallNameIsKnown(t *testing.T) {
	src, err := os.ReadFile("account.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := regexp.MustCompile(`\.do\(ctx, "([^"]+)"`).FindAllStringSubmatch(string(src), -1)
	tokens := regexp.MustCompile(`newTokenSource\("([^"]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(calls) < 10 || len(tokens) != 2 {
		t.Fatalf("found %d calls and %d token sources in account.go: the patterns no longer match the code", len(calls), len(tokens))
	}
	for _, m := range calls {
		if !KnownAPI(m[1]) {
			t.Errorf("call %q is not in apiNames", m[1])
		}
	}
	for _, m := range tokens {
		if !KnownAPI(m[1] + ".token") {
			t.Errorf("token source %q: %q is not in apiNames", m[1], m[1]+".token")
		}
	}
	if KnownAPI("user.info\n") || KnownAPI("") {
		t.Error("KnownAPI accepts what is not a name")
	}
	for _, c := range []int{0, -1, 40001, 45009, 89503} {
		if !KnownCode(c) {
			t.Errorf("KnownCode(%d) = false", c)
		}
	}
	for _, c := range []int{1, 12345, -2, 99999999} {
		if KnownCode(c) {
			t.Errorf("KnownCode(%d) = true", c)
		}
	}
}
