package points

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// Rules are a merchant's points rules: merchant data, edited through the
// admin API, stored as one immutable version per change
// (points_rule_versions). Changes apply to what happens afterwards; an
// entry's rule_version says which rules produced it, so a past earn can
// always be explained. A merchant that never saved rules runs on
// DefaultRules (version 0).
type Rules struct {
	// Earn is the base rate: Points points per PerFen fen of paid amount.
	Earn EarnRate `json:"earn"`
	// BirthdayMultiplierPct multiplies order points in the member's birthday
	// month (local time of the order); 100 means no bonus.
	BirthdayMultiplierPct int `json:"birthday_multiplier_pct"`
	// Bonuses are one-off points, each given once per member.
	Bonuses Bonuses `json:"bonuses"`
	// CheckIn is the daily check-in (签到) with streak bonuses.
	CheckIn CheckIn `json:"checkin"`
	// DailyCap bounds the points a member earns per local day from orders
	// and check-ins together (0: no cap). Bonuses, gifts and adjustments are
	// not capped.
	DailyCap int64 `json:"daily_cap"`
	// Expiry says when earned points expire.
	Expiry Expiry `json:"expiry"`
	// PendingDays holds order points for that many days after the order
	// (the return window) before they can be spent; 0: available at once.
	PendingDays int `json:"pending_days"`
	// ExpiringSoonDays is the window of the "expiring soon" figures shown to
	// members and given to the campaign engine.
	ExpiringSoonDays int `json:"expiring_soon_days"`
	// Keyword is the text a follower sends the official account to get
	// their balance.
	Keyword string `json:"keyword"`
	// Tiers says how tiers are qualified and reviewed.
	Tiers TierRules `json:"tiers"`
	// LiabilityFenPer100 is what 100 points are worth to the merchant, in
	// fen, for the liability report (0: not valued).
	LiabilityFenPer100 int64 `json:"liability_fen_per_100_points"`
}

// EarnRate is Points points per PerFen fen.
type EarnRate struct {
	Points int64 `json:"points"`
	PerFen int64 `json:"per_fen"`
}

// Bonuses are one-off points per member (0: off).
type Bonuses struct {
	FirstFollow      int64 `json:"first_follow"`      // followed the official account
	ProfileCompleted int64 `json:"profile_completed"` // name, phone and birthday given
	FirstMPLogin     int64 `json:"first_mp_login"`    // opened the mini-program
}

// CheckIn is the daily check-in. A check-in earns Points, plus the bonus
// of a streak bonus whose Day equals the member's position in the streak.
// With CycleDays > 0 the position restarts after CycleDays consecutive days
// (a weekly cycle, say); with 0 it keeps counting.
type CheckIn struct {
	Points        int64         `json:"points"`
	CycleDays     int           `json:"cycle_days"`
	StreakBonuses []StreakBonus `json:"streak_bonuses"`
}

// StreakBonus gives Points extra on the Day-th consecutive check-in.
type StreakBonus struct {
	Day    int   `json:"day"`
	Points int64 `json:"points"`
}

// Enabled reports whether check-ins earn anything.
func (c CheckIn) Enabled() bool {
	if c.Points > 0 {
		return true
	}
	for _, b := range c.StreakBonuses {
		if b.Points > 0 {
			return true
		}
	}
	return false
}

// Expiry policies.
const (
	ExpiryRollingMonths  = "rolling_months"   // N months after the earn, at the end of that day
	ExpiryEndOfNextYear  = "end_of_next_year" // at the end of the year after the earn
	ExpiryNever          = "never"
	DefaultExpiryMonths  = 12
	DefaultExpiringSoon  = 30
	DefaultKeyword       = "积分"
	DefaultTierWindow    = 12
	DefaultTierReview    = 12
	tierBasisSpend       = "spend"
	tierBasisPoints      = "points"
	maxRuleAmount        = 1_000_000_000
	maxMultiplierPct     = 1000
	maxKeywordRunes      = 16
	maxStreakBonuses     = 31
	maxPendingDays       = 90
	maxExpiryMonths      = 120
	maxExpiringSoonDays  = 365
	maxTierWindowMonths  = 36
	maxTierGraceDays     = 365
	maxEarnPerFen        = 100_000_000
	maxEarnPointsPerUnit = 10_000
)

// Expiry is when earned points expire. Times are the merchant's local
// midnights: points earned on local day D expire at 00:00 of day D + Months
// months (rolling; the day is clamped to the month's length, so 29 Feb
// plus 12 months is 28 Feb), or at 00:00 on 1 January two years after D's
// year (end of the following year), or never.
type Expiry struct {
	Policy string `json:"policy"`
	Months int    `json:"months"`
}

// TierRules say how tiers are qualified: by paid-minus-refunded spend (fen)
// or by points earned (earn and gift entries minus refund reversals)
// within a rolling window of WindowMonths. A member is upgraded the moment
// they qualify for a higher tier; whether they keep it is reviewed
// ReviewMonths after they reached it, and a member no longer qualifying is
// downgraded then, or after GraceDays more if they still do not qualify
// by then.
type TierRules struct {
	Basis        string `json:"basis"`
	WindowMonths int    `json:"window_months"`
	ReviewMonths int    `json:"review_months"`
	GraceDays    int    `json:"grace_days"`
}

// DefaultRules are the rules of a merchant that never saved any: 1 point
// per yuan, points expire after 12 months, no hold, tiers by spend over 12
// months reviewed yearly.
func DefaultRules() Rules {
	return Rules{
		Earn:                  EarnRate{Points: 1, PerFen: 100},
		BirthdayMultiplierPct: 100,
		CheckIn:               CheckIn{StreakBonuses: []StreakBonus{}},
		Expiry:                Expiry{Policy: ExpiryRollingMonths, Months: DefaultExpiryMonths},
		ExpiringSoonDays:      DefaultExpiringSoon,
		Keyword:               DefaultKeyword,
		Tiers:                 TierRules{Basis: tierBasisSpend, WindowMonths: DefaultTierWindow, ReviewMonths: DefaultTierReview},
	}
}

// normalize trims the keyword and gives absent lists their empty value.
func (r *Rules) normalize() {
	r.Keyword = strings.TrimSpace(r.Keyword)
	if r.CheckIn.StreakBonuses == nil {
		r.CheckIn.StreakBonuses = []StreakBonus{}
	}
}

// decodeStoredRules reads a stored version on top of the defaults, so a
// field added after the version was saved reads as its default.
func decodeStoredRules(body string) (Rules, error) {
	r := DefaultRules()
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return Rules{}, fmt.Errorf("points: stored rules: %w", err)
	}
	r.normalize()
	return r, nil
}

// Validate checks every field and names each bad one.
func (r Rules) Validate() error {
	v := &apperr.Validation{}
	inRange := func(field string, n, lo, hi int64) {
		if n < lo || n > hi {
			v.Add(field, fmt.Sprintf("must be %d to %d", lo, hi))
		}
	}
	inRange("earn.points", r.Earn.Points, 0, maxEarnPointsPerUnit)
	inRange("earn.per_fen", r.Earn.PerFen, 1, maxEarnPerFen)
	inRange("birthday_multiplier_pct", int64(r.BirthdayMultiplierPct), 100, maxMultiplierPct)
	inRange("bonuses.first_follow", r.Bonuses.FirstFollow, 0, maxRuleAmount)
	inRange("bonuses.profile_completed", r.Bonuses.ProfileCompleted, 0, maxRuleAmount)
	inRange("bonuses.first_mp_login", r.Bonuses.FirstMPLogin, 0, maxRuleAmount)
	inRange("checkin.points", r.CheckIn.Points, 0, maxRuleAmount)
	inRange("checkin.cycle_days", int64(r.CheckIn.CycleDays), 0, 366)
	if len(r.CheckIn.StreakBonuses) > maxStreakBonuses {
		v.Add("checkin.streak_bonuses", fmt.Sprintf("must have at most %d entries", maxStreakBonuses))
	}
	seen := map[int]bool{}
	for i, b := range r.CheckIn.StreakBonuses {
		f := fmt.Sprintf("checkin.streak_bonuses[%d]", i)
		switch {
		case b.Day < 1 || b.Day > 366:
			v.Add(f+".day", "must be 1 to 366")
		case r.CheckIn.CycleDays > 0 && b.Day > r.CheckIn.CycleDays:
			v.Add(f+".day", "must not exceed checkin.cycle_days")
		case seen[b.Day]:
			v.Add(f+".day", "is repeated")
		}
		seen[b.Day] = true
		inRange(f+".points", b.Points, 1, maxRuleAmount)
	}
	inRange("daily_cap", r.DailyCap, 0, maxRuleAmount)
	switch r.Expiry.Policy {
	case ExpiryRollingMonths:
		inRange("expiry.months", int64(r.Expiry.Months), 1, maxExpiryMonths)
	case ExpiryEndOfNextYear, ExpiryNever:
	default:
		v.Add("expiry.policy", "must be rolling_months, end_of_next_year or never")
	}
	inRange("pending_days", int64(r.PendingDays), 0, maxPendingDays)
	inRange("expiring_soon_days", int64(r.ExpiringSoonDays), 1, maxExpiringSoonDays)
	if n := utf8.RuneCountInString(r.Keyword); n < 1 || n > maxKeywordRunes {
		v.Add("keyword", fmt.Sprintf("must be 1 to %d characters", maxKeywordRunes))
	}
	if r.Tiers.Basis != tierBasisSpend && r.Tiers.Basis != tierBasisPoints {
		v.Add("tiers.basis", "must be spend or points")
	}
	inRange("tiers.window_months", int64(r.Tiers.WindowMonths), 1, maxTierWindowMonths)
	inRange("tiers.review_months", int64(r.Tiers.ReviewMonths), 1, maxTierWindowMonths)
	inRange("tiers.grace_days", int64(r.Tiers.GraceDays), 0, maxTierGraceDays)
	inRange("liability_fen_per_100_points", r.LiabilityFenPer100, 0, maxRuleAmount)
	return v.Err()
}

// EarnDetail explains how an order's points were computed.
type EarnDetail struct {
	AmountFen   int64   `json:"amount_fen"`
	Rate        string  `json:"rate"`         // e.g. "1 point per 100 fen, rounded down"
	TierID      *uint64 `json:"tier_id"`      // the member's tier when the order came in
	TierPct     int     `json:"tier_pct"`     // its multiplier (100 = none)
	BirthdayPct int     `json:"birthday_pct"` // the birthday-month multiplier applied (100 = none)
	Computed    int64   `json:"computed"`     // points before the daily cap
	CappedBy    int64   `json:"capped_by"`    // points the daily cap removed
	Points      int64   `json:"points"`       // points earned
}

// OrderPoints is the points an order of amountFen earns before the daily
// cap: amount × Earn.Points / Earn.PerFen × tierPct/100 × birthdayPct/100,
// computed exactly and rounded down once at the end (a fraction of a point
// is never given). Multipliers multiply each other.
func (r Rules) OrderPoints(amountFen int64, tierPct, birthdayPct int) int64 {
	if amountFen <= 0 || r.Earn.Points <= 0 {
		return 0
	}
	num := new(big.Int).Mul(big.NewInt(amountFen), big.NewInt(r.Earn.Points))
	num.Mul(num, big.NewInt(int64(tierPct)))
	num.Mul(num, big.NewInt(int64(birthdayPct)))
	den := big.NewInt(r.Earn.PerFen * 100 * 100)
	num.Quo(num, den)
	if !num.IsInt64() {
		return maxPointsPerOperation
	}
	return min(num.Int64(), maxPointsPerOperation)
}

// maxPointsPerOperation bounds the points one operation can move, far above
// any real order but far below int64 overflow of the sums.
const maxPointsPerOperation = 1_000_000_000_000

// RateText describes the base rate for explanations.
func (r Rules) RateText() string {
	unit := "point"
	if r.Earn.Points != 1 {
		unit = "points"
	}
	return fmt.Sprintf("%d %s per %d fen, rounded down", r.Earn.Points, unit, r.Earn.PerFen)
}

// CheckInPoints is what the position-th check-in of a streak earns.
func (c CheckIn) CheckInPoints(streak int) (base, bonus int64) {
	pos := streak
	if c.CycleDays > 0 {
		pos = (streak-1)%c.CycleDays + 1
	}
	for _, b := range c.StreakBonuses {
		if b.Day == pos {
			bonus += b.Points
		}
	}
	return c.Points, bonus
}

// ExpiresAt returns when points earned at earned expire for a merchant in
// loc (nil: never).
func (e Expiry) ExpiresAt(earned time.Time, loc *time.Location) *time.Time {
	local := earned.In(loc)
	y, m, d := local.Date()
	var t time.Time
	switch e.Policy {
	case ExpiryNever:
		return nil
	case ExpiryEndOfNextYear:
		t = time.Date(y+2, time.January, 1, 0, 0, 0, 0, loc)
	default:
		ey, em, ed := addMonthsClamped(y, m, d, e.Months)
		t = time.Date(ey, em, ed, 0, 0, 0, 0, loc)
	}
	t = t.UTC()
	return &t
}

// addMonthsClamped adds n months to a date, clamping the day to the
// length of the resulting month (time.AddDate would roll 29 Feb + 1 year
// over to 1 March).
func addMonthsClamped(y int, m time.Month, d, n int) (int, time.Month, int) {
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return first.Year(), first.Month(), min(d, last)
}

// localMidnightAfterMonths returns the local midnight starting the day n
// months after t's local day (clamped like expiry), in UTC.
func localMidnightAfterMonths(t time.Time, loc *time.Location, n int) time.Time {
	y, m, d := t.In(loc).Date()
	ey, em, ed := addMonthsClamped(y, m, d, n)
	return time.Date(ey, em, ed, 0, 0, 0, 0, loc).UTC()
}

// dayNumber is a local date as yyyymmdd.
func dayNumber(t time.Time, loc *time.Location) int {
	y, m, d := t.In(loc).Date()
	return y*10000 + int(m)*100 + d
}

// previousDay returns the yyyymmdd before day.
func previousDay(day int) int {
	t := time.Date(day/10000, time.Month(day/100%100), day%100, 12, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	return dayNumber(t, time.UTC)
}

func marshalRules(r Rules) string {
	b, _ := json.Marshal(r)
	return string(b)
}
