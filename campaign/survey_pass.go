package campaign

// The survey pass, per merchant with an enabled survey: members whose last
// paid order is at least delay_hours old (and at most surveyStaleDays
// older than that, and after the survey was enabled), who were not invited
// about that order and not invited at all in the last min_days_between
// days, get an invitation and a delivery in the survey's campaign of the
// local day, in one transaction per chunk. The campaign is a care campaign
// (capped): the engine sends it with the frequency cap, quiet hours,
// consent checks and exactly-once delivery.
//
// A member who orders again before the delay is up is asked about the
// later order (the survey reads members.last_order_at): one survey per
// visit, never two about one order.
//
// Safe to repeat and to run on several instances at once: the invitation
// is unique per (member, order), the "once per N days" check runs under
// the member's row lock (which an order also takes), and deliveries are
// planned only for the invitations the planning transaction itself
// inserted (found by its batch).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/db"
)

// surveyChunk bounds the members one transaction invites.
const surveyChunk = 500

// Run calls RunOnce every interval until ctx ends.
func (s *Surveys) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.care.log.WarnContext(ctx, "survey: pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs the pass for every merchant with an enabled survey.
func (s *Surveys) RunOnce(ctx context.Context) error {
	var ids []uint64
	// idx_surveys_enabled (enabled, merchant_id).
	if err := s.db.WithContext(ctx).Model(&Survey{}).Where("enabled = ?", true).Distinct("merchant_id").Order("merchant_id").
		Pluck("merchant_id", &ids).Error; err != nil {
		return fmt.Errorf("survey: merchants: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.RunMerchant(ctx, id); err != nil {
			s.care.log.WarnContext(ctx, "survey: merchant failed", "merchant_id", id, "error", err)
			errs = append(errs, fmt.Errorf("merchant %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// RunMerchant runs the merchant's pass once.
func (s *Surveys) RunMerchant(ctx context.Context, merchantID uint64) error {
	var v Survey
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND enabled = ?", merchantID, true).Order("id").Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("survey: enabled survey: %w", err)
	}
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return fmt.Errorf("survey: zone: %w", err)
	}
	now := s.now()
	date := civil(now.In(loc)).Format(time.DateOnly)
	upper := now.Add(-time.Duration(v.DelayHours) * time.Hour)
	lower := upper.AddDate(0, 0, -surveyStaleDays)
	if v.ActiveSince != nil && v.ActiveSince.After(lower) {
		lower = *v.ActiveSince
	}
	if !upper.After(lower) {
		return nil
	}
	recent := now.AddDate(0, 0, -v.MinDaysBetween)
	var after uint64
	for {
		var ids []uint64
		// idx_members_last_order (merchant_id, last_order_at): a range of
		// at most surveyStaleDays of orders, then per member a probe of
		// idx_survey_invitations_member for an invitation about that order
		// or within the last N days. Cheap enough to run every 15 seconds.
		if err := s.db.WithContext(ctx).Table("members m").
			Where("m.merchant_id = ? AND m.id > ? AND m.erased_at IS NULL AND m.last_order_at > ? AND m.last_order_at <= ?",
				merchantID, after, lower.UTC(), upper.UTC()).
			Where("NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE i.merchant_id = m.merchant_id AND i.member_id = m.id "+
				"AND (i.since_order_at = m.last_order_at OR i.invited_at > ?))", recent.UTC()).
			Order("m.id").Limit(surveyChunk).Pluck("m.id", &ids).Error; err != nil {
			return fmt.Errorf("survey: due members: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		campaignID, err := s.campaignFor(ctx, v, date)
		if err != nil {
			return err
		}
		if err := s.invite(ctx, v, campaignID, date, ids, lower, upper, recent); err != nil {
			if errors.Is(err, errCareCancelled) {
				s.care.log.InfoContext(ctx, "survey: the day's campaign was cancelled; nothing more sent today",
					"merchant_id", merchantID, "campaign_id", campaignID)
				return nil
			}
			return err
		}
		after = ids[len(ids)-1]
		if len(ids) < surveyChunk {
			break
		}
	}
	return s.revive(ctx, merchantID, civil(now.In(loc)))
}

// surveyRun is a survey_runs row: the campaign of a survey's local day.
type surveyRun struct {
	MerchantID uint64 `gorm:"primaryKey"`
	SurveyID   uint64 `gorm:"primaryKey"`
	LocalDate  string `gorm:"primaryKey"`
	CampaignID uint64
	CreatedAt  time.Time
}

func (surveyRun) TableName() string { return "survey_runs" }

// SurveyInvitation is a survey_invitations row: one member asked about one
// order.
type SurveyInvitation struct {
	ID           uint64    `gorm:"primaryKey" json:"id"`
	MerchantID   uint64    `json:"-"`
	SurveyID     uint64    `json:"survey_id"`
	MemberID     uint64    `json:"member_id"`
	SinceOrderAt time.Time `json:"order_at"`
	LocalDate    string    `json:"-"`
	CampaignID   uint64    `json:"-"`
	Batch        string    `json:"-"`
	InvitedAt    time.Time `json:"invited_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// TableName implements gorm's tabler.
func (SurveyInvitation) TableName() string { return "survey_invitations" }

func surveyCampaignName(v Survey, localDate string) string {
	return fmt.Sprintf("survey: %s %s", v.Name, localDate)
}

// campaignFor returns the survey's campaign of the local date, creating it
// the first time; concurrent creators share one, as care_runs does.
func (s *Surveys) campaignFor(ctx context.Context, v Survey, localDate string) (uint64, error) {
	find := func() (uint64, bool, error) {
		var run surveyRun
		err := s.db.WithContext(ctx).Where("merchant_id = ? AND survey_id = ? AND local_date = ?", v.MerchantID, v.ID, localDate).
			Take(&run).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("survey: run %s: %w", localDate, err)
		}
		return run.CampaignID, true, nil
	}
	if id, ok, err := find(); ok || err != nil {
		return id, err
	}
	now := s.now()
	err := retryTx(ctx, s.db, func(tx *gorm.DB) error {
		c := Campaign{MerchantID: v.MerchantID, Name: surveyCampaignName(v, localDate), Kind: KindCare, Status: StatusRunning,
			Channel: v.Channel, TemplateID: v.TemplateID, Message: v.Message,
			ScheduleKind: ScheduleNow, AttributionDays: 7, Step: 1, StepStartedAt: &now, PlanDone: true,
			CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&c).Error; err != nil {
			return fmt.Errorf("survey: create campaign: %w", err)
		}
		return tx.Create(&surveyRun{MerchantID: v.MerchantID, SurveyID: v.ID, LocalDate: localDate, CampaignID: c.ID,
			CreatedAt: now}).Error
	})
	if err != nil && !db.IsDuplicate(err) {
		return 0, fmt.Errorf("survey: run %s: %w", localDate, err)
	}
	id, ok, err := find()
	if err == nil && !ok {
		err = fmt.Errorf("survey: run %s of survey %d vanished", localDate, v.ID)
	}
	return id, err
}

// invite writes one chunk in one transaction: the members' rows locked (in
// id order, as an order locks its member), the invitations of those still
// due (duplicates of the unique key ignored), and a delivery for each
// member whose invitation this transaction inserted.
func (s *Surveys) invite(ctx context.Context, v Survey, campaignID uint64, localDate string, ids []uint64,
	lower, upper, recent time.Time) error {
	return retryTx(ctx, s.db, func(tx *gorm.DB) error {
		var c Campaign
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", campaignID).Take(&c).Error; err != nil {
			return fmt.Errorf("survey: campaign %d: %w", campaignID, err)
		}
		if c.Status == StatusCancelled {
			return errCareCancelled
		}
		var locked []uint64
		if err := tx.Table("members").Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("merchant_id = ? AND id IN ?", v.MerchantID, ids).Order("id").Pluck("id", &locked).Error; err != nil {
			return fmt.Errorf("survey: lock members: %w", err)
		}
		now := s.now()
		batch := newBatchID()
		// Re-checked under the locks: an order or another instance since
		// the read changes what is due.
		q := "INSERT INTO survey_invitations (merchant_id, survey_id, member_id, since_order_at, local_date, campaign_id, batch, invited_at, expires_at) " +
			"SELECT m.merchant_id, ?, m.id, m.last_order_at, ?, ?, ?, ?, ? FROM members m " +
			"WHERE m.merchant_id = ? AND m.id IN ? AND m.erased_at IS NULL AND m.last_order_at > ? AND m.last_order_at <= ? " +
			"AND NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE i.merchant_id = m.merchant_id AND i.member_id = m.id " +
			"AND (i.since_order_at = m.last_order_at OR i.invited_at > ?))"
		if s.mysql {
			q += " ON DUPLICATE KEY UPDATE survey_invitations.id = survey_invitations.id"
		} else {
			q += " ON CONFLICT (merchant_id, member_id, since_order_at) DO NOTHING"
		}
		if err := tx.Exec(q, v.ID, localDate, campaignID, batch, now, now.AddDate(0, 0, SurveyAnswerDays),
			v.MerchantID, locked, lower.UTC(), upper.UTC(), recent.UTC()).Error; err != nil {
			return fmt.Errorf("survey: invitations: %w", err)
		}
		openid, status, reason := skipExprs(c)
		n, err := s.rows.plan(ctx, tx, "SELECT m.merchant_id, ?, ?, m.id, COALESCE("+openid+", ''), ?, "+status+", "+reason+", ?, ? "+
			"FROM members m WHERE m.merchant_id = ? AND m.id IN (SELECT i.member_id FROM survey_invitations i WHERE i.merchant_id = ? AND i.batch = ?)",
			c.ID, c.Step, c.Capped(), now, now, v.MerchantID, v.MerchantID, batch)
		if err != nil {
			return fmt.Errorf("survey: %w", err)
		}
		if n > 0 {
			s.care.log.InfoContext(ctx, "survey: invited", "merchant_id", v.MerchantID, "campaign_id", c.ID, "deliveries", n)
		}
		if n > 0 && c.Status == StatusCompleted {
			return reopen(ctx, tx, c.ID, now)
		}
		return nil
	})
}

// revive runs again recent survey campaigns completed under new rows (see
// Care.revive).
func (s *Surveys) revive(ctx context.Context, merchantID uint64, today time.Time) error {
	var ids []uint64
	if err := s.db.WithContext(ctx).Model(&surveyRun{}).
		Where("merchant_id = ? AND local_date >= ?", merchantID, today.AddDate(0, 0, -2).Format(time.DateOnly)).
		Pluck("campaign_id", &ids).Error; err != nil {
		return fmt.Errorf("survey: recent runs: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := revivePending(ctx, s.db, ids, s.now())
	return err
}
