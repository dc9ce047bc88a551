package points

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/member"
)

// maxAdjust bounds a manual adjustment or gift.
const maxAdjust = 1_000_000_000

// memberExists checks that the member is the merchant's (following merges);
// anything else is not found, like another merchant's id.
func (s *Service) memberExists(ctx context.Context, merchantID, memberID uint64) (member.Buyer, error) {
	if memberID == 0 {
		return member.Buyer{}, errNoMember
	}
	b, err := s.members.FindBuyer(ctx, merchantID, member.BuyerRef{ID: memberID})
	if errors.Is(err, apperr.ErrNotFound) {
		return member.Buyer{}, errNoMember
	}
	return b, err
}

// AdjustInput is a manual adjustment by staff.
type AdjustInput struct {
	Points    int64  // non-zero; negative takes points away
	Reason    string // required
	RequestID string // optional: a repeat with the same id returns the first result
}

// Adjust changes a member's points by hand, audited with the reason. A
// positive adjustment forms a lot expiring by the rules' policy; a negative
// one takes from the lots that expire first and is refused (422) when the
// member has fewer available points. Adjustments do not count toward tiers.
func (s *Service) Adjust(ctx context.Context, merchantID, memberID uint64, in AdjustInput) (Entry, bool, error) {
	v := &apperr.Validation{}
	if in.Points == 0 || in.Points > maxAdjust || in.Points < -maxAdjust {
		v.Add("points", fmt.Sprintf("must be a non-zero whole number from -%d to %d", maxAdjust, maxAdjust))
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if c := utf8.RuneCountInString(in.Reason); c < 1 || c > 255 {
		v.Add("reason", "is required (1 to 255 characters)")
	}
	if in.RequestID != "" && !validID(in.RequestID) {
		v.Add("request_id", "must be 1 to 64 visible ASCII characters, without / ? # % or \\")
	}
	if err := v.Err(); err != nil {
		return Entry{}, false, err
	}
	b, err := s.memberExists(ctx, merchantID, memberID)
	if err != nil {
		return Entry{}, false, err
	}
	memberID = b.ID
	key := "adjust:" + in.RequestID
	if in.RequestID == "" {
		key = "adjust:" + randomKey()
	}
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return Entry{}, false, err
	}
	var out Entry
	replayed := false
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		a, err := s.lockAccount(ctx, tx, merchantID, memberID)
		if err != nil {
			return err
		}
		if prev, err := entryByKey(ctx, tx, merchantID, key); err != nil {
			return err
		} else if prev != nil {
			if prev.MemberID != memberID || prev.Points != in.Points {
				return apperr.New(apperr.ErrConflict, "request_id was already used for another adjustment")
			}
			out, replayed = *prev, true
			return nil
		}
		before := map[string]int64{"available": a.Available, "pending": a.Pending}
		if in.Points > 0 {
			out, _, err = s.credit(ctx, tx, a, creditSpec{Kind: KindAdjust, Reason: in.Reason, RefType: refAdmin,
				Key: key, RuleVersion: e.rules.Version, Points: in.Points,
				ExpiresAt: e.rules.Rules.Expiry.ExpiresAt(s.now(), e.loc)})
		} else {
			out, _, err = s.debit(ctx, tx, a, debitSpec{Kind: KindAdjust, Reason: in.Reason, RefType: refAdmin, Key: key,
				RuleVersion: e.rules.Version, Points: -in.Points})
		}
		if err != nil {
			return err
		}
		if err := s.saveAccount(ctx, tx, a); err != nil {
			return err
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "points.adjust", TargetType: "member",
			TargetIDs: []uint64{memberID}, Before: before,
			After: map[string]any{"available": a.Available, "pending": a.Pending, "points": in.Points,
				"reason": in.Reason, "entry_id": out.ID}}, s.now())
	})
	return out, replayed, err
}

// Gift gives a member points outside the earning rules (a campaign's
// birthday gift, say), once per key: a repeat returns the first entry.
// Gifts count toward tiers qualified by points.
func (s *Service) Gift(ctx context.Context, merchantID, memberID uint64, points int64, reason, key string) (Entry, bool, error) {
	if points <= 0 || points > maxAdjust {
		return Entry{}, false, apperr.Invalid("points", fmt.Sprintf("must be 1 to %d", maxAdjust))
	}
	if key == "" || len(key) > 120 {
		return Entry{}, false, apperr.Invalid("key", "must be 1 to 120 characters")
	}
	return s.give(ctx, merchantID, memberID, creditSpec{Kind: KindGift, Reason: reason, RefType: refGift, RefID: clip(key, 64),
		Key: "gift:" + key, Points: points}, 0)
}

// give credits a member under the account lock, taken after the member
// row's (the member must exist; the credit may upgrade their tier); flag,
// when set, marks a one-off bonus as given.
func (s *Service) give(ctx context.Context, merchantID, memberID uint64, c creditSpec, flag int) (Entry, bool, error) {
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return Entry{}, false, err
	}
	var out Entry
	replayed := false
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		// The member row first: it must exist, and a gift may change the tier.
		if err := member.LockMember(ctx, tx, merchantID, memberID); err != nil {
			if errors.Is(err, apperr.ErrNotFound) {
				return errNoMember
			}
			return err
		}
		a, err := s.lockAccount(ctx, tx, merchantID, memberID)
		if err != nil {
			return err
		}
		if prev, err := entryByKey(ctx, tx, merchantID, c.Key); err != nil {
			return err
		} else if prev != nil {
			out, replayed = *prev, true
			return nil
		}
		if flag != 0 && a.BonusFlags&flag != 0 {
			// Given before under another key (to a member merged into this one).
			replayed = true
			return nil
		}
		c.RuleVersion = e.rules.Version
		c.ExpiresAt = e.rules.Rules.Expiry.ExpiresAt(now, e.loc)
		if out, _, err = s.credit(ctx, tx, a, c); err != nil {
			return err
		}
		a.BonusFlags |= flag
		if e.tiersByPoints() {
			if err := s.maybeUpgrade(ctx, tx, a, e, now); err != nil {
				return err
			}
		}
		return s.saveAccount(ctx, tx, a)
	})
	return out, replayed, err
}

// Bonus is a one-off bonus of the earning rules.
type Bonus string

// One-off bonuses, each given at most once per member.
const (
	BonusFirstFollow      Bonus = "first_follow"
	BonusProfileCompleted Bonus = "profile_completed"
	BonusFirstMPLogin     Bonus = "first_mp_login"
)

func (b Bonus) flag() int {
	switch b {
	case BonusFirstFollow:
		return 1
	case BonusProfileCompleted:
		return 2
	case BonusFirstMPLogin:
		return 4
	}
	return 0
}

func (b Bonus) points(r Rules) int64 {
	switch b {
	case BonusFirstFollow:
		return r.Bonuses.FirstFollow
	case BonusProfileCompleted:
		return r.Bonuses.ProfileCompleted
	case BonusFirstMPLogin:
		return r.Bonuses.FirstMPLogin
	}
	return 0
}

var allBonuses = []Bonus{BonusFirstFollow, BonusProfileCompleted, BonusFirstMPLogin}

// AwardBonus gives the member a one-off bonus of the current rules, once
// ever (keyed bonus:<kind>:<member>): call it when the event happens (a
// follow, a completed profile, a first mini-program login). A bonus the
// rules set to 0 gives nothing. A follow gives its bonus when it is applied
// (FollowHook); the member API also settles bonuses whose condition the
// member meets when the member looks at their points, which catches a
// hook that failed and the bonuses no event announces yet.
func (s *Service) AwardBonus(ctx context.Context, merchantID, memberID uint64, b Bonus) (Entry, bool, error) {
	if b.flag() == 0 {
		return Entry{}, false, apperr.Invalid("bonus", "is not a known bonus")
	}
	rs, err := s.rules(ctx, s.db, merchantID)
	if err != nil {
		return Entry{}, false, err
	}
	pts := b.points(rs.Rules)
	if pts <= 0 {
		return Entry{}, false, nil
	}
	return s.give(ctx, merchantID, memberID, creditSpec{Kind: KindGift, Reason: "bonus: " + string(b), RefType: refBonus,
		RefID: string(b), Key: "bonus:" + string(b) + ":" + strconv.FormatUint(memberID, 10), Points: pts}, b.flag())
}

// FollowHook gives a member who follows the official account the
// first-follow bonus (member.FollowHook; once ever, by its key). A failure
// is logged: the member API settles the bonus when the member next looks
// at their points.
func (s *Service) FollowHook(ctx context.Context, merchantID, memberID uint64) {
	if _, _, err := s.AwardBonus(ctx, merchantID, memberID, BonusFirstFollow); err != nil {
		s.log.WarnContext(ctx, "points: first-follow bonus", "merchant_id", merchantID, "member_id", memberID, "error", err)
	}
}

// settleBonuses gives the member the one-off bonuses they qualify for and
// have not had. It reads the account's flags first, so once everything is
// given it costs one read.
func (s *Service) settleBonuses(ctx context.Context, merchantID, memberID uint64) error {
	rs, err := s.rules(ctx, s.db, merchantID)
	if err != nil {
		return err
	}
	var flags int
	if err := s.db.WithContext(ctx).Model(&account{}).Select("bonus_flags").
		Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Scan(&flags).Error; err != nil {
		return fmt.Errorf("points: bonus flags: %w", err)
	}
	var due []Bonus
	for _, b := range allBonuses {
		if b.points(rs.Rules) > 0 && flags&b.flag() == 0 {
			due = append(due, b)
		}
	}
	if len(due) == 0 {
		return nil
	}
	buyer, err := s.members.FindBuyer(ctx, merchantID, member.BuyerRef{ID: memberID})
	if err != nil {
		return err
	}
	for _, b := range due {
		ok := b == BonusFirstFollow && buyer.EverFollowed || b == BonusProfileCompleted && buyer.ProfileComplete ||
			b == BonusFirstMPLogin && buyer.HasMiniProgram
		if !ok || buyer.Erased {
			continue
		}
		if _, _, err := s.AwardBonus(ctx, merchantID, memberID, b); err != nil {
			return err
		}
	}
	return nil
}

// CheckInResult is the outcome of a daily check-in.
type CheckInResult struct {
	Day              string `json:"day"` // local date
	Streak           int    `json:"streak"`
	Points           int64  `json:"points"` // earned by this check-in
	BasePoints       int64  `json:"base_points"`
	BonusPoints      int64  `json:"bonus_points"`
	CappedBy         int64  `json:"capped_by"`
	AlreadyCheckedIn bool   `json:"already_checked_in"`
	Available        int64  `json:"available"`
	// NextBonus is the next streak bonus and in how many consecutive
	// check-ins it comes (nil: none).
	NextBonus *StreakBonus `json:"next_bonus"`
	NextIn    int          `json:"next_in"`
}

var errCheckInOff = apperr.New(apperr.ErrUnprocessable, "check-in is not enabled for this merchant")

// CheckIn records the member's daily check-in for today (local time): the
// streak grows when they checked in yesterday and restarts otherwise, and
// the check-in earns the rules' points plus a streak bonus, within the
// daily cap. A second check-in the same day changes nothing and says so.
func (s *Service) CheckIn(ctx context.Context, merchantID, memberID uint64) (CheckInResult, error) {
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return CheckInResult{}, err
	}
	ci := e.rules.Rules.CheckIn
	if !ci.Enabled() {
		return CheckInResult{}, errCheckInOff
	}
	var out CheckInResult
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		if e.tiersByPoints() {
			if err := member.LockMember(ctx, tx, merchantID, memberID); err != nil {
				return err
			}
		}
		a, err := s.lockAccount(ctx, tx, merchantID, memberID)
		if err != nil {
			return err
		}
		today := dayNumber(now, e.loc)
		out = CheckInResult{Day: dayString(today)}
		if a.StreakDay == today {
			out.AlreadyCheckedIn, out.Streak, out.Available = true, a.Streak, a.Available
			out.NextBonus, out.NextIn = nextBonus(ci, a.Streak)
			return nil
		}
		if a.StreakDay == previousDay(today) {
			a.Streak++
		} else {
			a.Streak = 1
		}
		a.StreakDay = today
		out.Streak = a.Streak
		out.BasePoints, out.BonusPoints = ci.CheckInPoints(a.Streak)
		computed := out.BasePoints + out.BonusPoints
		out.Points = applyCap(a, e.rules.Rules.DailyCap, computed, today)
		out.CappedBy = computed - out.Points
		if out.Points > 0 {
			_, _, err := s.credit(ctx, tx, a, creditSpec{Kind: KindEarn, Reason: fmt.Sprintf("check-in, day %d of streak", a.Streak),
				RefType: refCheckIn, RefID: out.Day, Key: "checkin:" + strconv.FormatUint(memberID, 10) + ":" + strconv.Itoa(today),
				RuleVersion: e.rules.Version, Points: out.Points, ExpiresAt: e.rules.Rules.Expiry.ExpiresAt(now, e.loc)})
			if err != nil {
				return err
			}
			if e.tiersByPoints() {
				if err := s.maybeUpgrade(ctx, tx, a, e, now); err != nil {
					return err
				}
			}
		}
		out.Available = a.Available
		out.NextBonus, out.NextIn = nextBonus(ci, a.Streak)
		return s.saveAccount(ctx, tx, a)
	})
	return out, err
}

// nextBonus returns the next streak bonus after the streak-th check-in.
func nextBonus(ci CheckIn, streak int) (*StreakBonus, int) {
	for k := 1; k <= 366; k++ {
		if _, bonus := ci.CheckInPoints(streak + k); bonus > 0 {
			pos := streak + k
			if ci.CycleDays > 0 {
				pos = (pos-1)%ci.CycleDays + 1
			}
			return &StreakBonus{Day: pos, Points: bonus}, k
		}
		if ci.CycleDays == 0 && streak+k > 366 {
			break
		}
	}
	return nil, 0
}

func dayString(day int) string {
	return fmt.Sprintf("%04d-%02d-%02d", day/10000, day/100%100, day%100)
}

// History returns a member's entries, newest first: limit entries with ids
// below before (0: from the newest). It walks idx_points_ledger_member
// backwards.
func (s *Service) History(ctx context.Context, merchantID, memberID, before uint64, limit int) ([]Entry, error) {
	q := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID)
	if before != 0 {
		q = q.Where("id < ?", before)
	}
	out := []Entry{}
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("points: history of %d: %w", memberID, err)
	}
	return out, nil
}

// DatePoints is an amount of points due at a moment: for expiries Date is
// the last local day the points can be used (they expire at the midnight
// ending it), for releases the local day they become available.
type DatePoints struct {
	Date   string    `json:"date"`
	At     time.Time `json:"at"`
	Points int64     `json:"points"`
}

// Summary is a member's balance as the member and staff see it.
type Summary struct {
	MemberID  uint64 `json:"member_id"`
	Available int64  `json:"available"` // negative while the member owes points (debt)
	Pending   int64  `json:"pending"`
	Debt      int64  `json:"debt"`
	// ExpiringSoon is what expires within ExpiringSoonDays, and when the
	// first of it does.
	ExpiringSoon     int64      `json:"expiring_soon"`
	ExpiringSoonDays int        `json:"expiring_soon_days"`
	ExpiringSoonAt   *time.Time `json:"expiring_soon_at"`
	// Expiries is the schedule of what will expire (the next 12 dates).
	Expiries []DatePoints `json:"expiries"`
	// Releases is when held points become available.
	Releases []DatePoints `json:"releases"`
}

// Summary returns the member's balance, what expires when and what is on
// hold until when.
func (s *Service) Summary(ctx context.Context, merchantID, memberID uint64) (Summary, error) {
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return Summary{}, err
	}
	var a account
	err = s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Take(&a).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return Summary{}, fmt.Errorf("points: account %d: %w", memberID, err)
	}
	out := Summary{MemberID: memberID, Available: a.Available, Pending: a.Pending, Debt: a.Debt,
		ExpiringSoonDays: e.rules.Rules.ExpiringSoonDays, Expiries: []DatePoints{}, Releases: []DatePoints{}}
	type due struct {
		Status      string
		ExpiresAt   *time.Time
		AvailableAt *time.Time
		Remaining   int64
	}
	var lots []due
	// idx_points_lots_member: the member's active and held lots.
	if err := s.db.WithContext(ctx).Model(&lot{}).Select("status, expires_at, available_at, remaining").
		Where("merchant_id = ? AND member_id = ? AND status IN ?", merchantID, memberID, []string{lotActive, lotPending}).
		Order("expires_at, id").Limit(1000).Find(&lots).Error; err != nil {
		return Summary{}, fmt.Errorf("points: lots of %d: %w", memberID, err)
	}
	now := s.now()
	soon := now.AddDate(0, 0, out.ExpiringSoonDays)
	for _, l := range lots {
		if l.Status == lotPending {
			if l.AvailableAt != nil {
				out.Releases = append(out.Releases, DatePoints{Date: l.AvailableAt.In(e.loc).Format(time.DateOnly),
					At: *l.AvailableAt, Points: l.Remaining})
			}
			continue
		}
		if l.ExpiresAt == nil {
			continue
		}
		if !l.ExpiresAt.After(soon) {
			out.ExpiringSoon += l.Remaining
			if out.ExpiringSoonAt == nil {
				at := *l.ExpiresAt
				out.ExpiringSoonAt = &at
			}
		}
		if len(out.Expiries) < 12 || out.Expiries[len(out.Expiries)-1].At.Equal(*l.ExpiresAt) {
			out.Expiries = addDatePoints(out.Expiries, *l.ExpiresAt, l.Remaining, e.loc)
		}
	}
	sort.Slice(out.Releases, func(i, j int) bool { return out.Releases[i].At.Before(out.Releases[j].At) })
	return out, nil
}

// addDatePoints adds n points due at t, merging with the last element when
// it is the same moment.
func addDatePoints(list []DatePoints, t time.Time, n int64, loc *time.Location) []DatePoints {
	if k := len(list); k > 0 && list[k-1].At.Equal(t) {
		list[k-1].Points += n
		return list
	}
	return append(list, DatePoints{Date: lastDay(t, loc), At: t, Points: n})
}

// lastDay is the local day that ends at the expiry moment t.
func lastDay(t time.Time, loc *time.Location) string {
	return t.Add(-time.Millisecond).In(loc).Format(time.DateOnly)
}
