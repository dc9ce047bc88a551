package member

import (
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
)

func TestParseMemberFilter(t *testing.T) {
	ok := []struct {
		query string
		want  MemberFilter
	}{
		{"", MemberFilter{Limit: 50}},
		{"follow_status=unfollowed&stage=at_risk&birthday_month=12&limit=200",
			MemberFilter{FollowStatus: "unfollowed", Stage: "at_risk", BirthdayMonth: 12, Limit: 200}},
		{"channel=store%201&tier=7&tag=3&tag=1&tag=3", MemberFilter{Channel: "store 1", TierID: 7, TagIDs: []uint64{3, 1}, Limit: 50}},
		{"q=138", MemberFilter{PhonePrefix: "138", Limit: 50}},
		{"q=%2B86138", MemberFilter{PhonePrefix: "138", Limit: 50}},
		{"q=%2B4477", MemberFilter{PhonePrefix: "+4477", Limit: 50}},
		{"q=+%E7%8E%8B%E4%BC%9F+", MemberFilter{NamePrefix: "王伟", Limit: 50}},
		{"q=O%27Brien", MemberFilter{NamePrefix: "O'Brien", Limit: 50}},
		{"cursor=" + EncodeCursor(12345) + "&limit=1", MemberFilter{Before: 12345, Limit: 1}},
	}
	for _, c := range ok {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseMemberFilter(q)
		if err != nil {
			t.Errorf("%q: %v", c.query, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v, want %+v", c.query, got, c.want)
		}
	}
	bad := []struct{ query, field string }{
		{"bogus=1", "bogus"},
		{"limit=0", "limit"}, {"limit=-1", "limit"}, {"limit=100000", "limit"}, {"limit=201", "limit"},
		{"limit=1e2", "limit"}, {"limit=", "limit"}, {"limit=5&limit=6", "limit"},
		{"cursor=abc", "cursor"}, {"cursor=" + EncodeCursor(0), "cursor"}, {"cursor=%27+OR+1%3D1+--", "cursor"},
		{"cursor=" + EncodeCursor(5) + "=", "cursor"},
		{"follow_status=Following", "follow_status"}, {"stage=vip", "stage"}, {"birthday_month=13", "birthday_month"},
		{"birthday_month=0", "birthday_month"}, {"tier=0", "tier"}, {"tier=01", "tier"}, {"tier=1+OR+1%3D1", "tier"},
		{"tag=x", "tag"}, {"tag=1&tag=2&tag=3&tag=4&tag=5&tag=6", "tag"},
		{"q=1", "q"}, {"q=%2B86", "q"}, {"q=%E7%8E%8B", "q"}, {"q=%25", "q"}, {"q=_", "q"}, {"q=ab%25", "q"},
		{"q=%27+OR+1%3D1+--", "q"}, {"q=a%00b", "q"}, {"q=" + strings.Repeat("a", 65), "q"},
		{"channel=" + strings.Repeat("c", 65), "channel"},
	}
	for _, c := range bad {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseMemberFilter(q)
		v, isV := err.(*apperr.Validation)
		if !isV || v.Fields[c.field] == "" {
			t.Errorf("%q: %v, want a validation error naming %s", c.query, err, c.field)
		}
	}
	// The export takes no paging parameters.
	if _, err := ParseExportFilter(url.Values{"limit": {"5"}}); err == nil {
		t.Error("export accepted limit")
	}
}

// query turns an accepted filter back into parameters.
func (f MemberFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string, cond bool) {
		if cond {
			q.Set(k, v)
		}
	}
	set("follow_status", f.FollowStatus, f.FollowStatus != "")
	set("channel", f.Channel, f.Channel != "")
	set("tier", strconv.FormatUint(f.TierID, 10), f.TierID != 0)
	set("stage", f.Stage, f.Stage != "")
	set("birthday_month", strconv.Itoa(f.BirthdayMonth), f.BirthdayMonth != 0)
	set("q", f.PhonePrefix+f.NamePrefix, f.PhonePrefix != "" || f.NamePrefix != "")
	set("limit", strconv.Itoa(f.Limit), true)
	set("cursor", EncodeCursor(f.Before), f.Before != 0)
	for _, id := range f.TagIDs {
		q.Add("tag", strconv.FormatUint(id, 10))
	}
	return q
}

// shape returns a filter with the same filters set as f but fixed values:
// the SQL of f must be exactly the SQL of its shape (only the arguments
// differ), which proves no value reached the statement's text.
func (f MemberFilter) shape() MemberFilter {
	s := MemberFilter{Limit: 1, PhoneExact: f.PhoneExact}
	if f.FollowStatus != "" {
		s.FollowStatus = "x"
	}
	if f.Channel != "" {
		s.Channel = "x"
	}
	for range f.TagIDs {
		s.TagIDs = append(s.TagIDs, 1)
	}
	if f.TierID != 0 {
		s.TierID = 1
	}
	if f.Stage != "" {
		s.Stage = "x"
	}
	if f.BirthdayMonth != 0 {
		s.BirthdayMonth = 1
	}
	if f.PhonePrefix != "" {
		s.PhonePrefix = "123"
	}
	if f.NamePrefix != "" {
		s.NamePrefix = "ab"
	}
	if f.Before != 0 {
		s.Before = 1
	}
	return s
}

var phonePrefixRe = regexp.MustCompile(`^\+?[0-9]{3,}$`)

func FuzzParseMemberFilter(f *testing.F) {
	for _, seed := range []string{
		"", "follow_status=following&channel=x&tag=1&tag=2&tier=3&stage=new&birthday_month=2&q=138&limit=10",
		"q=%27+OR+1%3D1+--", "q=%25", "q=_", "q=ab%5C", "channel=%27%3B+DROP+TABLE+members%3B+--", "q=%E7%8E%8B%E4%BC%9F",
		"cursor=" + EncodeCursor(99), "cursor=bTA", "limit=-1", "limit=100000", "tag=18446744073709551615",
		"tag=18446744073709551616", "q=%2B861", "q=O%27Brien", "channel=%F0%9F%98%80", "a=1&a=2", "%zz",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		mf, err := ParseMemberFilter(q)
		if err != nil {
			if _, ok := err.(*apperr.Validation); !ok {
				t.Fatalf("%q: error %T %v, want a validation error", raw, err, err)
			}
			return
		}
		// Within bounds.
		switch {
		case mf.Limit < 1 || mf.Limit > MaxPageSize:
			t.Fatalf("limit %d", mf.Limit)
		case mf.BirthdayMonth < 0 || mf.BirthdayMonth > 12:
			t.Fatalf("birthday_month %d", mf.BirthdayMonth)
		case mf.FollowStatus != "" && !slices.Contains(followStatuses, mf.FollowStatus):
			t.Fatalf("follow_status %q", mf.FollowStatus)
		case mf.Stage != "" && !slices.Contains(Stages, mf.Stage):
			t.Fatalf("stage %q", mf.Stage)
		case len(mf.TagIDs) > MaxFilterTags || slices.Contains(mf.TagIDs, 0):
			t.Fatalf("tags %v", mf.TagIDs)
		case utf8.RuneCountInString(mf.Channel) > maxChannelLength || !utf8.ValidString(mf.Channel):
			t.Fatalf("channel %q", mf.Channel)
		case mf.PhonePrefix != "" && mf.NamePrefix != "":
			t.Fatal("both a phone and a name search")
		case mf.PhonePrefix != "" && !phonePrefixRe.MatchString(mf.PhonePrefix):
			t.Fatalf("phone prefix %q", mf.PhonePrefix)
		case mf.NamePrefix != "" && (utf8.RuneCountInString(mf.NamePrefix) < minNamePrefix ||
			strings.ContainsAny(mf.NamePrefix, "%_=;\"\\")):
			t.Fatalf("name prefix %q", mf.NamePrefix)
		case mf.PhoneExact:
			t.Fatal("PhoneExact comes from the caller's role, never from the query")
		}
		if c, ok := q["cursor"]; ok && EncodeCursor(mf.Before) != c[0] {
			t.Fatalf("cursor %q read as %d", c[0], mf.Before)
		}
		// Round trip: the filter's own parameters give the same filter.
		again, err := ParseMemberFilter(mf.query())
		if err != nil || !reflect.DeepEqual(again, mf) {
			t.Fatalf("round trip of %+v: %+v, %v", mf, again, err)
		}
		// Only placeholders: the statement's text depends on which filters
		// are set, never on their values; every value is an argument.
		for _, exact := range []bool{false, true} {
			mf.PhoneExact = exact
			got := mf.listQuery(42, mf.Limit+1)
			want := mf.shape().listQuery(42, 2)
			if got.text != want.text {
				t.Fatalf("SQL depends on values:\n%s\n%s", got.text, want.text)
			}
			if n := strings.Count(got.text, "?"); n != len(got.args) {
				t.Fatalf("%d placeholders, %d arguments", n, len(got.args))
			}
			if strings.Count(strings.ReplaceAll(got.text, db.LikeEscape, ""), "'") != 0 {
				t.Fatalf("quote in SQL: %s", got.text)
			}
			if mf.Channel != "" && !slices.Contains(got.args, any(mf.Channel)) {
				t.Fatalf("channel not an argument: %v", got.args)
			}
			if mf.NamePrefix != "" && !slices.Contains(got.args, any(db.LikePrefix(mf.NamePrefix))) {
				t.Fatalf("name prefix not an escaped argument: %v", got.args)
			}
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	for _, id := range []uint64{1, 9, 1 << 40, 1<<63 - 1} {
		got, ok := DecodeCursor(EncodeCursor(id))
		if !ok || got != id {
			t.Errorf("%d: %d %v", id, got, ok)
		}
	}
	// Beyond httpx.MaxID is no id, so no cursor.
	for _, id := range []uint64{1 << 63, 1<<64 - 1} {
		if got, ok := DecodeCursor(EncodeCursor(id)); ok {
			t.Errorf("%d accepted as %d", id, got)
		}
	}
	for _, s := range []string{"", "m1", "bTE=", "bTAx", "eDE", strings.Repeat("A", 40)} {
		if _, ok := DecodeCursor(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestMaskPhoneAndCSVCell(t *testing.T) {
	for in, want := range map[string]string{"13812345678": "138****5678", "+447700900123": "+44****0123",
		"12345": "****45", "": ""} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"=1+1": "'=1+1", "+86": "'+86", "-2": "'-2", "@SUM(A1)": "'@SUM(A1)",
		"\t=x": "'\t=x", "王伟": "王伟", "a=b": "a=b", "": ""} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}
