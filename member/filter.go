package member

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// MemberFilter selects members for the admin list and the CSV export. The
// zero value selects every member that was not erased (erased members are
// never listed; their tombstones are reachable by id only).
type MemberFilter struct {
	FollowStatus  string   // following, unfollowed or none; "" for any
	Channel       string   // acquisition QR scene (members.channel_scene); "" for any
	TagIDs        []uint64 // members holding every one of these tags (at most MaxFilterTags); nil for any
	TierID        uint64   // loyalty tier; 0 for any
	Stage         string   // lifecycle stage (see Stages); "" for any
	BirthdayMonth int      // 1 to 12; 0 for any
	PhonePrefix   string   // phone numbers starting with these digits (q of digits); "" for any
	NamePrefix    string   // names starting with this text (any other q); "" for any
	// PhoneExact makes PhonePrefix match whole numbers only. The handler sets
	// it for callers who see phone numbers masked, so they cannot recover a
	// number digit by digit with prefix searches.
	PhoneExact bool
	// Segment, when set, keeps the members of a saved segment: its id (for
	// the audit log) and its rule compiled for the merchant.
	Segment *SegmentAudience
	Limit   int    // page size, 1 to MaxPageSize (list only)
	Before  uint64 // keyset cursor: members with a smaller id; 0 for the first page
}

// Limits of the member list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
	MaxFilterTags   = 5
	maxQLength      = 64
	// Shorter prefixes match a large share of the members (every phone
	// starts with 1; a common surname is 7% of a Chinese member base): no
	// use as a search, and a search must sort all its matches before the
	// first page, which for a one-character surname in a million members
	// took 20-60 ms instead of a few.
	minPhonePrefix   = 3
	minNamePrefix    = 2
	maxChannelLength = 64
	maxCursorLength  = 32
)

// Filter parameters. listParams are the list's; the export takes the same
// filters without paging.
var (
	filterParams = []string{"follow_status", "channel", "tag", "tier", "stage", "birthday_month", "q"}
	listParams   = append(slices.Clone(filterParams), "limit", "cursor")
)

var followStatuses = []string{FollowFollowing, FollowUnfollowed, FollowNone}

var (
	digitsRe = regexp.MustCompile(`^[0-9]{1,4}$`)
	phoneQRe = regexp.MustCompile(`^\+?[0-9]+$`)
)

// ParseMemberFilter reads the member list's query parameters:
//
//	follow_status   following | unfollowed | none
//	channel         acquisition QR scene, exact (members.channel_scene)
//	tag             tag id; repeat for members holding all of them (at most 5)
//	tier            tier id
//	stage           potential | new | repeat | loyal | at_risk | churned | won_back | lost
//	birthday_month  1 to 12
//	q               digits (optionally with a leading +, at least 3): phone number prefix;
//	                anything else: name prefix (2 to 64 characters: letters, digits,
//	                spaces, emoji and . - ' ·)
//	limit           page size, 1 to 200 (default 50)
//	cursor          next_cursor of the previous page
//
// Every problem is reported under the parameter's name: unknown parameters,
// parameters given twice (tag excepted), empty or malformed values. The
// filter only carries values; SQL is built from constant text with them as
// arguments (see listQuery).
func ParseMemberFilter(q url.Values) (MemberFilter, error) {
	return parseFilter(q, listParams)
}

// ParseExportFilter reads the CSV export's query parameters: those of
// ParseMemberFilter except limit and cursor (the export is never paged).
func ParseExportFilter(q url.Values) (MemberFilter, error) {
	return parseFilter(q, filterParams)
}

func parseFilter(q url.Values, known []string) (MemberFilter, error) {
	f := MemberFilter{Limit: DefaultPageSize}
	v := &apperr.Validation{}
	for name, vals := range q {
		switch {
		case !slices.Contains(known, name):
			v.Add(fieldName(name), "is not a known parameter")
		case name != "tag" && len(vals) > 1:
			v.Add(name, "must be given once")
		}
	}
	one := func(name string) (string, bool) {
		vals, ok := q[name]
		if !ok || len(vals) != 1 || !slices.Contains(known, name) {
			return "", false
		}
		if vals[0] == "" {
			v.Add(name, "must not be empty (leave the parameter out to match any)")
			return "", false
		}
		return vals[0], true
	}
	if s, ok := one("follow_status"); ok {
		if slices.Contains(followStatuses, s) {
			f.FollowStatus = s
		} else {
			v.Add("follow_status", "must be following, unfollowed or none")
		}
	}
	if s, ok := one("channel"); ok {
		if utf8.RuneCountInString(s) > maxChannelLength || !utf8.ValidString(s) || hasControl(s) {
			v.Add("channel", fmt.Sprintf("must be a QR scene of at most %d characters", maxChannelLength))
		} else {
			f.Channel = s
		}
	}
	if vals, ok := q["tag"]; ok && slices.Contains(known, "tag") {
		if len(vals) > MaxFilterTags {
			v.Add("tag", fmt.Sprintf("may be given at most %d times", MaxFilterTags))
		}
		for _, s := range vals {
			id, ok := httpx.ParseID(s)
			if !ok {
				v.Add("tag", "must be a tag id")
				break
			}
			if !slices.Contains(f.TagIDs, id) {
				f.TagIDs = append(f.TagIDs, id)
			}
		}
	}
	if s, ok := one("tier"); ok {
		if id, ok := httpx.ParseID(s); ok {
			f.TierID = id
		} else {
			v.Add("tier", "must be a tier id")
		}
	}
	if s, ok := one("stage"); ok {
		if slices.Contains(Stages, s) {
			f.Stage = s
		} else {
			v.Add("stage", "must be one of "+strings.Join(Stages, ", "))
		}
	}
	if s, ok := one("birthday_month"); ok {
		if n, ok := smallInt(s); ok && n >= 1 && n <= 12 {
			f.BirthdayMonth = n
		} else {
			v.Add("birthday_month", "must be 1 to 12")
		}
	}
	if s, ok := one("q"); ok {
		s = strings.TrimSpace(s)
		switch {
		case s == "" || !utf8.ValidString(s):
			v.Add("q", "must be a phone number prefix or a name prefix")
		case utf8.RuneCountInString(s) > maxQLength:
			v.Add("q", fmt.Sprintf("must be at most %d characters", maxQLength))
		case phoneQRe.MatchString(s):
			// Mainland numbers are stored without their country code.
			s = strings.TrimPrefix(s, "+86")
			if len(strings.TrimPrefix(s, "+")) < minPhonePrefix {
				v.Add("q", fmt.Sprintf("a phone number prefix needs at least %d digits", minPhonePrefix))
			} else {
				f.PhonePrefix = s
			}
		case strings.IndexFunc(s, notNameRune) >= 0:
			v.Add("q", "a name prefix may hold letters, digits, spaces, emoji and . - ' · only")
		case utf8.RuneCountInString(s) < minNamePrefix:
			v.Add("q", fmt.Sprintf("a name prefix needs at least %d characters", minNamePrefix))
		default:
			f.NamePrefix = s
		}
	}
	if s, ok := one("limit"); ok {
		if n, ok := smallInt(s); ok && n >= 1 && n <= MaxPageSize {
			f.Limit = n
		} else {
			v.Add("limit", fmt.Sprintf("must be 1 to %d", MaxPageSize))
		}
	}
	if s, ok := one("cursor"); ok {
		if id, ok := DecodeCursor(s); ok {
			f.Before = id
		} else {
			v.Add("cursor", "is not a cursor returned by this list")
		}
	}
	if err := v.Err(); err != nil {
		return MemberFilter{}, err
	}
	return f, nil
}

// fieldName bounds an unknown parameter's name as reported back.
func fieldName(name string) string {
	if len(name) > 64 || !utf8.ValidString(name) {
		return "parameter"
	}
	return name
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// notNameRune reports a rune that has no place in a name search: names are
// letters (with their combining marks), digits, spaces, emoji and other
// symbols (WeChat nicknames), and a few joining marks. Rejecting the rest
// (% _ = ; " and friends) turns probes such as "' OR 1=1 --" into a 400
// instead of an empty result; the search is a bound parameter either way.
func notNameRune(r rune) bool {
	switch {
	case unicode.IsLetter(r), unicode.IsMark(r), unicode.IsDigit(r), unicode.Is(unicode.So, r):
		return false
	case r == ' ', r == '.', r == '-', r == '\'', r == '·', r == '’', r == '・':
		return false
	}
	return true
}

// smallInt reads 1 to 4 plain digits (no sign, no spaces).
func smallInt(s string) (int, bool) {
	if !digitsRe.MatchString(s) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// The cursor is the last id of a page, opaque to clients: "m" and the id
// in decimal, base64url without padding. Only the canonical form of an id
// is accepted.
const cursorPrefix = "m"

// EncodeCursor returns the cursor of the page after the member with id.
func EncodeCursor(id uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(id, 10)))
}

// DecodeCursor returns the id a cursor from EncodeCursor holds.
func DecodeCursor(s string) (uint64, bool) {
	if s == "" || len(s) > maxCursorLength {
		return 0, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, false
	}
	id, ok := httpx.ParseID(rest)
	if !ok || EncodeCursor(id) != s {
		return 0, false
	}
	return id, true
}

// sqlQuery is a statement and its arguments. Every value a client sent is an
// argument: the text is assembled from constants only.
type sqlQuery struct {
	text string
	args []any
}

// listQuery returns the statement of one page of the filtered list: members
// of the merchant with ids below f.Before, newest first, at most limit rows.
// It returns the columns of Member.
//
// Shape. A deferred join: the inner query finds the page's ids in an index
// alone, the outer one reads just those rows by primary key. Pages are a
// keyset on id (stable under inserts, no OFFSET).
//
// Indexes. Every filter column has an index (merchant_id, <column>, id,
// <every other filter column>, erased_at) (migration 00021). Equality on the
// column plus "id < cursor" is one contiguous range, read backwards in the
// list's order, and the other filters and erased_at are checked on the
// index entries themselves, so the database reads no row it then throws
// away and stops after limit matches, however deep the page. (MariaDB does
// not push conditions into backward index scans; reading only the index is
// what keeps a rare combination such as stage=lost&tier=..&birthday_month=2
// at a scan of its most selective index instead of as many row reads.) The
// planner picks the most selective of them:
//
//   - follow_status  idx_members_follow
//   - channel        idx_members_channel
//   - stage          idx_members_stage
//   - tier           idx_members_tier
//   - birthday_month idx_members_birthday
//   - tag            member_tags primary key (merchant_id, tag_id, member_id),
//     a semi-join: the planner either walks a members index and probes the
//     key for each candidate, or, when the tag is the rarest filter, walks
//     the tag's members in member_id order and reads each one's row by
//     primary key (the one plan that reads rows it may throw away: bounded
//     by the tag's size, and fast while the buffer pool holds the table)
//   - q, name        idx_members_name (merchant_id, name, <filters>): a
//     prefix range, not in id order, so its matching ids are sorted (ids
//     only: cheap) before the limit
//   - q, phone       idx_members_phone (merchant_id, phone, <filters>), likewise
//     (on SQLite the name is indexed NOCASE so its LIKE can use the range)
//   - none           idx_members_merchant (merchant_id, id), erased_at read
//     from the row (erased members are rare: about limit rows read)
func (f MemberFilter) listQuery(merchantID uint64, limit int) sqlQuery {
	var b strings.Builder
	args := []any{merchantID}
	b.WriteString("SELECT m.* FROM (SELECT k.id FROM members k WHERE k.merchant_id = ? AND k.erased_at IS NULL")
	cond := func(sql string, a ...any) {
		b.WriteString(" AND ")
		b.WriteString(sql)
		args = append(args, a...)
	}
	if f.FollowStatus != "" {
		cond("k.follow_status = ?", f.FollowStatus)
	}
	if f.Channel != "" {
		cond("k.channel_scene = ?", f.Channel)
	}
	if f.Stage != "" {
		cond("k.lifecycle_stage = ?", f.Stage)
	}
	if f.TierID != 0 {
		cond("k.tier_id = ?", f.TierID)
	}
	if f.BirthdayMonth != 0 {
		cond("k.birthday_month = ?", f.BirthdayMonth)
	}
	for _, id := range f.TagIDs {
		cond("k.id IN (SELECT mt.member_id FROM member_tags mt WHERE mt.merchant_id = ? AND mt.tag_id = ?)",
			merchantID, id)
	}
	switch {
	case f.PhonePrefix != "" && f.PhoneExact:
		cond("k.phone = ?", f.PhonePrefix)
	case f.PhonePrefix != "":
		// The explicit bounds make the prefix a range on both databases
		// (SQLite's case-insensitive LIKE does not use a BINARY index):
		// numbers are digits after an optional +, and ':' sorts right after
		// '9'. The LIKE says what is meant and is free on the range.
		cond("k.phone >= ? AND k.phone < ? AND k.phone LIKE ?"+db.LikeEscape,
			f.PhonePrefix, f.PhonePrefix+":", db.LikePrefix(f.PhonePrefix))
	case f.NamePrefix != "":
		cond("k.name LIKE ?"+db.LikeEscape, db.LikePrefix(f.NamePrefix))
	}
	if f.Segment != nil {
		// The compiled rule is written over the alias m; as a semi-join on
		// the primary key it keeps the id order of the walk below.
		cond("k.id IN (SELECT m.id FROM members m WHERE "+f.Segment.Audience.Where+")", f.Segment.Audience.Args...)
	}
	if f.Before != 0 {
		cond("k.id < ?", f.Before)
	}
	if f.PhonePrefix != "" || f.NamePrefix != "" {
		// "+ 0" hides the id order from the planner. Otherwise, counting on
		// the LIMIT, it may walk the merchant's ids in order and test each
		// row's name or phone, which reads rows (neither is in that index)
		// and, for a deep page or a rare prefix, most of the merchant. The
		// prefix range is bounded (at least two characters of a name or
		// three digits) and sorting its ids is cheap.
		b.WriteString(" ORDER BY k.id + 0 DESC LIMIT ?")
	} else {
		b.WriteString(" ORDER BY k.id DESC LIMIT ?")
	}
	b.WriteString(") page JOIN members m ON m.id = page.id ORDER BY m.id DESC")
	args = append(args, limit)
	return sqlQuery{text: b.String(), args: args}
}
