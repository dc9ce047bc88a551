package points

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member"
)

func tierByID(tiers []Tier, id *uint64) *Tier {
	if id == nil {
		return nil
	}
	for i := range tiers {
		if tiers[i].ID == *id {
			return &tiers[i]
		}
	}
	return nil
}

// qualifiedTier is the highest tier whose threshold q reaches (nil: none).
func qualifiedTier(tiers []Tier, q int64) *Tier {
	var best *Tier
	for i := range tiers {
		if tiers[i].Threshold <= q && (best == nil || tiers[i].Level > best.Level) {
			best = &tiers[i]
		}
	}
	return best
}

// windowStart is the start of the rolling qualification window ending at now.
func windowStart(now time.Time, months int) time.Time {
	y, m, d := now.Date()
	ey, em, ed := addMonthsClamped(y, m, d, -months)
	h, mi, sec := now.Clock()
	return time.Date(ey, em, ed, h, mi, sec, now.Nanosecond(), time.UTC)
}

// qualifying returns the member's qualifying value within the window: the
// paid-minus-refunded spend of orders placed in it (fen), or the points
// earned in it (earn and gift entries, minus what refunds took back).
// Both read the member's own rows through their member index.
func qualifying(ctx context.Context, q *gorm.DB, merchantID, memberID uint64, tr TierRules, now time.Time) (int64, error) {
	start := windowStart(now, tr.WindowMonths)
	var v int64
	var err error
	if tr.Basis == tierBasisPoints {
		err = q.WithContext(ctx).Raw(`SELECT COALESCE(SUM(points + pending), 0) FROM points_ledger
WHERE merchant_id = ? AND member_id = ? AND created_at >= ?
  AND (kind IN ('earn', 'gift') OR (kind = 'reverse' AND ref_type = 'refund'))`, merchantID, memberID, start).Scan(&v).Error
	} else {
		err = q.WithContext(ctx).Raw(`SELECT COALESCE(SUM(amount_fen - refunded_fen), 0) FROM points_orders
WHERE merchant_id = ? AND member_id = ? AND ordered_at >= ?`, merchantID, memberID, start).Scan(&v).Error
	}
	if err != nil {
		return 0, fmt.Errorf("points: qualifying value of %d: %w", memberID, err)
	}
	return v, nil
}

// maybeUpgrade moves the member up at once when they qualify for a higher
// tier, and ends a grace period when they qualify for their own again. The
// caller locked the member row and the account.
func (s *Service) maybeUpgrade(ctx context.Context, tx *gorm.DB, a *account, e env, now time.Time) error {
	if len(e.tiers) == 0 {
		return nil
	}
	tr := e.rules.Rules.Tiers
	q, err := qualifying(ctx, tx, a.MerchantID, a.MemberID, tr, now)
	if err != nil {
		return err
	}
	target := qualifiedTier(e.tiers, q)
	cur := tierByID(e.tiers, a.TierID)
	switch {
	case target != nil && (cur == nil || target.Level > cur.Level):
		return s.setTier(ctx, tx, a, cur, target, tierUpgrade, q, e, now)
	case target != nil && cur != nil && target.Level == cur.Level && a.TierGraceUntil != nil:
		review := localMidnightAfterMonths(now, e.loc, tr.ReviewMonths)
		a.TierGraceUntil, a.TierReviewAt = nil, &review
		_, err := s.tierHistory(ctx, tx, a, cur, cur, tierRetain, q, now)
		return err
	}
	return nil
}

// setTier moves the account to tier to (nil: none), records the change and
// mirrors it on the members row.
func (s *Service) setTier(ctx context.Context, tx *gorm.DB, a *account, from, to *Tier, reason string, q int64, e env, now time.Time) error {
	a.TierGraceUntil = nil
	if to == nil {
		a.TierID, a.TierSince, a.TierReviewAt = nil, nil, nil
	} else {
		id := to.ID
		review := localMidnightAfterMonths(now, e.loc, e.rules.Rules.Tiers.ReviewMonths)
		a.TierID, a.TierSince, a.TierReviewAt = &id, &now, &review
	}
	changeID, err := s.tierHistory(ctx, tx, a, from, to, reason, q, now)
	if err != nil {
		return err
	}
	ev := event.Tier{MemberID: a.MemberID, ToTierID: a.TierID, Reason: reason, ChangeID: changeID}
	if from != nil {
		ev.FromTierID, ev.FromName = &from.ID, from.Name
	}
	if to != nil {
		ev.ToName = to.Name
	}
	// Up: a tier above the old one (tiers are ordered by threshold).
	ev.Up = to != nil && (from == nil || to.Threshold > from.Threshold)
	if err := event.Emit(ctx, s.events, tx, event.Event{MerchantID: a.MerchantID, Type: event.TierChanged, Data: ev}); err != nil {
		return err
	}
	return member.SetTier(ctx, tx, a.MerchantID, a.MemberID, a.TierID)
}

func (s *Service) tierHistory(ctx context.Context, tx *gorm.DB, a *account, from, to *Tier, reason string, q int64, now time.Time) (uint64, error) {
	h := TierChange{MerchantID: a.MerchantID, MemberID: a.MemberID, Reason: reason, Qualifying: q, CreatedAt: now}
	if from != nil {
		h.FromTierID = &from.ID
	}
	if to != nil {
		h.ToTierID = &to.ID
	}
	if err := tx.WithContext(ctx).Create(&h).Error; err != nil {
		return 0, fmt.Errorf("points: tier history: %w", err)
	}
	return h.ID, nil
}

// reviewTiers reviews the tiers whose review date has come, a batch at a
// time. Each member is one transaction that re-checks the review date under
// the account lock, so two instances reviewing at once do each review once.
func (s *Service) reviewTiers(ctx context.Context) (int, error) {
	done := 0
	for {
		now := s.now()
		var due []account
		// idx_points_accounts_review: the accounts due, oldest first.
		err := s.db.WithContext(ctx).Select("merchant_id, member_id").Where("tier_review_at <= ?", now).
			Order("tier_review_at").Limit(s.JobBatch).Find(&due).Error
		if err != nil {
			return done, fmt.Errorf("points: tiers due: %w", err)
		}
		envs := map[uint64]env{}
		changed := 0
		for _, d := range due {
			e, ok := envs[d.MerchantID]
			if !ok {
				if e, err = s.env(ctx, d.MerchantID); err != nil {
					return done, err
				}
				envs[d.MerchantID] = e
			}
			did, err := s.reviewTier(ctx, d.MerchantID, d.MemberID, e)
			if err != nil {
				return done, err
			}
			if did {
				changed++
			}
		}
		done += changed
		if len(due) < s.JobBatch || changed == 0 || ctx.Err() != nil {
			return done, ctx.Err()
		}
	}
}

// reviewTier reviews one member's tier: kept when they still qualify (the
// next review is a review period later), else downgraded to the tier they
// qualify for, after a grace period when the rules give one.
func (s *Service) reviewTier(ctx context.Context, merchantID, memberID uint64, e env) (bool, error) {
	did := false
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		did = false
		now := s.now()
		err := member.LockMember(ctx, tx, merchantID, memberID)
		if errors.Is(err, apperr.ErrNotFound) {
			// The member is gone (merged away): nothing to review.
			return tx.WithContext(ctx).Exec("UPDATE points_accounts SET tier_review_at = NULL WHERE merchant_id = ? AND member_id = ?",
				merchantID, memberID).Error
		}
		if err != nil {
			return err
		}
		a, err := s.lockAccount(ctx, tx, merchantID, memberID)
		if err != nil {
			return err
		}
		if a.TierReviewAt == nil || a.TierReviewAt.After(now) {
			return nil // reviewed by another instance meanwhile
		}
		did = true
		tr := e.rules.Rules.Tiers
		q, err := qualifying(ctx, tx, merchantID, memberID, tr, now)
		if err != nil {
			return err
		}
		target := qualifiedTier(e.tiers, q)
		cur := tierByID(e.tiers, a.TierID)
		switch {
		case cur == nil:
			// The tier was removed from under the member: re-place them.
			if err := s.setTier(ctx, tx, a, nil, target, tierDowngrade, q, e, now); err != nil {
				return err
			}
		case target != nil && target.Level >= cur.Level:
			if target.Level > cur.Level {
				if err := s.setTier(ctx, tx, a, cur, target, tierUpgrade, q, e, now); err != nil {
					return err
				}
				break
			}
			review := localMidnightAfterMonths(now, e.loc, tr.ReviewMonths)
			a.TierReviewAt, a.TierGraceUntil = &review, nil
			if _, err := s.tierHistory(ctx, tx, a, cur, cur, tierRetain, q, now); err != nil {
				return err
			}
		case tr.GraceDays > 0 && a.TierGraceUntil == nil:
			r := a.TierReviewAt.In(e.loc)
			until := time.Date(r.Year(), r.Month(), r.Day()+tr.GraceDays, 0, 0, 0, 0, e.loc).UTC()
			a.TierGraceUntil, a.TierReviewAt = &until, &until
			if _, err := s.tierHistory(ctx, tx, a, cur, cur, tierGrace, q, now); err != nil {
				return err
			}
		default:
			if err := s.setTier(ctx, tx, a, cur, target, tierDowngrade, q, e, now); err != nil {
				return err
			}
		}
		return s.saveAccount(ctx, tx, a)
	})
	return did, err
}

// TierInput creates or changes a tier; absent fields keep their value on
// update.
type TierInput struct {
	Name          *string   `json:"name"`
	Level         *int      `json:"level"`
	Threshold     *int64    `json:"threshold"`
	MultiplierPct *int      `json:"multiplier_pct"`
	Benefits      *[]string `json:"benefits"`
}

func (in TierInput) apply(t *Tier, create bool) error {
	v := &apperr.Validation{}
	if create {
		if in.Name == nil {
			v.Add("name", "is required")
		}
		if in.Level == nil {
			v.Add("level", "is required")
		}
		if in.Threshold == nil {
			v.Add("threshold", "is required")
		}
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if c := utf8.RuneCountInString(n); c < 1 || c > 32 {
			v.Add("name", "must be 1 to 32 characters")
		}
		t.Name = n
	}
	if in.Level != nil {
		if *in.Level < 1 || *in.Level > 100 {
			v.Add("level", "must be 1 to 100")
		}
		t.Level = *in.Level
	}
	if in.Threshold != nil {
		if *in.Threshold < 0 || *in.Threshold > MaxAmountFen {
			v.Add("threshold", "must be 0 to 10^12")
		}
		t.Threshold = *in.Threshold
	}
	if in.MultiplierPct != nil {
		if *in.MultiplierPct < 100 || *in.MultiplierPct > maxMultiplierPct {
			v.Add("multiplier_pct", fmt.Sprintf("must be 100 to %d", maxMultiplierPct))
		}
		t.MultiplierPct = *in.MultiplierPct
	}
	if t.MultiplierPct == 0 {
		t.MultiplierPct = 100
	}
	if in.Benefits != nil {
		b := *in.Benefits
		if len(b) > 20 {
			v.Add("benefits", "must have at most 20 entries")
		}
		for i, s := range b {
			if c := utf8.RuneCountInString(s); c < 1 || c > 100 {
				v.Add(fmt.Sprintf("benefits[%d]", i), "must be 1 to 100 characters")
			}
		}
		raw, _ := json.Marshal(b)
		t.Benefits = string(raw)
	}
	if t.Benefits == "" {
		t.Benefits = "[]"
	}
	return v.Err()
}

var (
	errTierNotFound = apperr.New(apperr.ErrNotFound, "tier not found")
	errTierHeld     = apperr.New(apperr.ErrConflict, "members hold this tier; it cannot be deleted")
)

// checkTierOrder refuses a set of tiers whose thresholds do not rise with
// their levels, or that repeats a level or a name.
func checkTierOrder(tiers []Tier) error {
	for i := range tiers {
		for j := range tiers {
			a, b := tiers[i], tiers[j]
			if i == j {
				continue
			}
			if a.Level == b.Level {
				return apperr.New(apperr.ErrConflict, "another tier already has level %d", a.Level)
			}
			if a.Name == b.Name {
				return apperr.New(apperr.ErrConflict, "another tier is already named %q", a.Name)
			}
			if a.Level < b.Level && a.Threshold >= b.Threshold {
				return apperr.Invalid("threshold", fmt.Sprintf("must rise with the level: level %d needs %d, level %d needs %d",
					a.Level, a.Threshold, b.Level, b.Threshold))
			}
		}
	}
	return nil
}

// Tiers returns the merchant's tiers, lowest level first.
func (s *Service) Tiers(ctx context.Context, merchantID uint64) ([]Tier, error) {
	return s.tiers(ctx, s.db, merchantID)
}

// GetTier returns one tier of the merchant.
func (s *Service) GetTier(ctx context.Context, merchantID, id uint64) (Tier, error) {
	return getTier(ctx, s.db, merchantID, id)
}

func getTier(ctx context.Context, q *gorm.DB, merchantID, id uint64) (Tier, error) {
	return db.TakeOne[Tier](q.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id),
		errTierNotFound, "points: tier %d", id)
}

// SaveTier creates (id 0) or changes a tier, audited. Thresholds must rise
// with levels. Members keep their tier until their next upgrade or review.
func (s *Service) SaveTier(ctx context.Context, merchantID, id uint64, in TierInput) (Tier, error) {
	var out Tier
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		all, err := s.lockedTiers(ctx, tx, merchantID)
		if err != nil {
			return err
		}
		var t Tier
		var before *Tier
		idx := -1
		if id != 0 {
			for i := range all {
				if all[i].ID == id {
					idx = i
				}
			}
			if idx < 0 {
				return errTierNotFound
			}
			t = all[idx]
			b := t
			before = &b
		} else {
			t = Tier{MerchantID: merchantID, CreatedAt: now}
		}
		if err := in.apply(&t, id == 0); err != nil {
			return err
		}
		t.UpdatedAt = now
		if idx >= 0 {
			all[idx] = t
		} else {
			all = append(all, t)
		}
		if err := checkTierOrder(all); err != nil {
			return err
		}
		if id == 0 {
			err = tx.WithContext(ctx).Create(&t).Error
		} else {
			err = tx.WithContext(ctx).Model(&Tier{}).Where("merchant_id = ? AND id = ?", merchantID, id).
				Updates(map[string]any{"name": t.Name, "level": t.Level, "threshold": t.Threshold,
					"multiplier_pct": t.MultiplierPct, "benefits": t.Benefits, "updated_at": t.UpdatedAt}).Error
		}
		if err != nil {
			return fmt.Errorf("points: save tier: %w", err)
		}
		action := "tier.update"
		if id == 0 {
			action = "tier.create"
		}
		out = t
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: action, TargetType: "tier", TargetIDs: []uint64{t.ID},
			Before: tierSummary(before), After: tierSummary(&t)}, now)
	})
	s.rulesets.Invalidate(merchantID) // even on failure: a retried commit may have landed
	return out, err
}

// lockedTiers reads and locks the merchant's tiers for a change, so
// concurrent edits of the same merchant's tiers see each other (the unique
// level index settles two first tiers created at once).
func (s *Service) lockedTiers(ctx context.Context, tx *gorm.DB, merchantID uint64) ([]Tier, error) {
	var out []Tier
	err := tx.WithContext(ctx).Clauses(clause.Locking{Strength: "UPDATE"}).Where("merchant_id = ?", merchantID).
		Order("level").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("points: tiers: %w", err)
	}
	return out, nil
}

func tierSummary(t *Tier) any {
	if t == nil {
		return nil
	}
	return map[string]any{"name": t.Name, "level": t.Level, "threshold": t.Threshold, "multiplier_pct": t.MultiplierPct,
		"benefits": json.RawMessage(t.Benefits)}
}

// DeleteTier deletes a tier that no member holds, audited.
func (s *Service) DeleteTier(ctx context.Context, merchantID, id uint64) error {
	defer s.rulesets.Invalidate(merchantID)
	return s.inTx(ctx, func(tx *gorm.DB) error {
		t, err := getTier(ctx, tx, merchantID, id)
		if err != nil {
			return err
		}
		var held []uint64
		// An existence probe: stops at the first holder.
		if err := tx.WithContext(ctx).Model(&account{}).Select("member_id").Where("merchant_id = ? AND tier_id = ?", merchantID, id).
			Limit(1).Find(&held).Error; err != nil {
			return fmt.Errorf("points: tier holders: %w", err)
		}
		if len(held) > 0 {
			return errTierHeld
		}
		if err := tx.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id).Delete(&Tier{}).Error; err != nil {
			return fmt.Errorf("points: delete tier: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "tier.delete", TargetType: "tier",
			TargetIDs: []uint64{id}, Before: tierSummary(&t)}, s.now())
	})
}

// TierStatus is a member's tier and progress.
type TierStatus struct {
	Basis        string     `json:"basis"`         // spend (fen) or points
	WindowMonths int        `json:"window_months"` // the rolling window the qualifying value covers
	Qualifying   int64      `json:"qualifying"`    // the member's value within the window now
	Current      *Tier      `json:"-"`
	Since        *time.Time `json:"since"`
	ReviewAt     *time.Time `json:"review_at"`   // when keeping the tier is next checked
	GraceUntil   *time.Time `json:"grace_until"` // set while the member is in a grace period
	// ToKeep is what the member still needs within the window to keep the
	// current tier at review (0: they qualify), by ReviewAt.
	ToKeep *int64 `json:"to_keep"`
	Next   *Tier  `json:"-"`
	// ToNext is what the member still needs to reach the next tier.
	ToNext *int64 `json:"to_next"`
	// CountsUntil is when the oldest amount counted now leaves the window;
	// the member needs ToNext before then for today's figure to hold.
	CountsUntil *time.Time `json:"counts_until"`
}

// TierStatus returns the member's tier and progress to the next tier.
func (s *Service) TierStatus(ctx context.Context, merchantID, memberID uint64) (TierStatus, error) {
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return TierStatus{}, err
	}
	var a account
	err = s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Take(&a).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return TierStatus{}, fmt.Errorf("points: account %d: %w", memberID, err)
	}
	now := s.now()
	tr := e.rules.Rules.Tiers
	st := TierStatus{Basis: tr.Basis, WindowMonths: tr.WindowMonths, Since: a.TierSince, ReviewAt: a.TierReviewAt,
		GraceUntil: a.TierGraceUntil}
	if st.Qualifying, err = qualifying(ctx, s.db, merchantID, memberID, tr, now); err != nil {
		return TierStatus{}, err
	}
	st.Current = tierByID(e.tiers, a.TierID)
	if st.Current == nil {
		// Before their first evaluation a member sits in a free base tier.
		if base := qualifiedTier(e.tiers, 0); base != nil && a.TierID == nil {
			st.Current = base
		}
	}
	if st.Current != nil {
		keep := max(0, st.Current.Threshold-st.Qualifying)
		st.ToKeep = &keep
	}
	for i := range e.tiers {
		t := &e.tiers[i]
		if st.Current == nil || t.Level > st.Current.Level {
			st.Next = t
			need := max(0, t.Threshold-st.Qualifying)
			st.ToNext = &need
			break
		}
	}
	if st.Next != nil && st.Qualifying > 0 {
		oldest, err := oldestCounted(ctx, s.db, merchantID, memberID, tr, now)
		if err != nil {
			return TierStatus{}, err
		}
		if oldest != nil {
			until := localMidnightAfterMonths(*oldest, e.loc, tr.WindowMonths)
			st.CountsUntil = &until
		}
	}
	return st, nil
}

// oldestCounted returns the time of the oldest contribution in the window.
func oldestCounted(ctx context.Context, q *gorm.DB, merchantID, memberID uint64, tr TierRules, now time.Time) (*time.Time, error) {
	start := windowStart(now, tr.WindowMonths)
	var s *string
	var err error
	if tr.Basis == tierBasisPoints {
		err = q.WithContext(ctx).Raw(`SELECT MIN(created_at) FROM points_ledger WHERE merchant_id = ? AND member_id = ?
  AND created_at >= ? AND kind IN ('earn', 'gift') AND points + pending > 0`, merchantID, memberID, start).Scan(&s).Error
	} else {
		err = q.WithContext(ctx).Raw(`SELECT MIN(ordered_at) FROM points_orders WHERE merchant_id = ? AND member_id = ?
  AND ordered_at >= ? AND refunded_fen < amount_fen`, merchantID, memberID, start).Scan(&s).Error
	}
	if err != nil {
		return nil, fmt.Errorf("points: oldest counted of %d: %w", memberID, err)
	}
	return parseDBTime(s)
}
