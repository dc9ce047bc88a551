package campaign

// The win-back pass, per merchant with an enabled program (step 1 at any
// time, the others at or after its local send time):
//
//  1. episodes whose member has ordered since the order they follow end
//     won back, and their attempts not yet taken by the engine are
//     withdrawn;
//  2. episodes whose last attempt has gone unanswered for an interval end
//     lost, and the member's stage becomes lost (WinBackStages);
//  3. members at risk or churned with no episode for their last order
//     enter one;
//  4. each active episode due for its next attempt gets it: a
//     win_back_attempts row and a delivery in the attempt's campaign of
//     the day, in one transaction.
//
// Every step is safe to repeat and to run on several instances at once:
// episodes are unique per (member, last order), attempts per (episode,
// number), deliveries per (campaign, step, member), and an episode moves
// only by conditional updates. A pass that dies halfway leaves committed
// chunks done and the rest to the next pass; nothing is doubled.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/db"
)

// Lifecycle stages the pass reads (member package).
const (
	stageChurned = "churned"
	stageLost    = "lost"
)

// winBackChunk bounds the episodes one transaction moves.
const winBackChunk = 500

// Run calls RunOnce every interval until ctx ends.
func (w *WinBack) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := w.RunOnce(ctx); err != nil && ctx.Err() == nil {
			w.care.log.WarnContext(ctx, "win-back: pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs the pass for every merchant whose program is enabled.
func (w *WinBack) RunOnce(ctx context.Context) error {
	var ids []uint64
	if err := w.db.WithContext(ctx).Model(&WinBackSettings{}).Where("enabled = ?", true).Order("merchant_id").
		Pluck("merchant_id", &ids).Error; err != nil {
		return fmt.Errorf("win-back: merchants: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := w.RunMerchant(ctx, id); err != nil {
			w.care.log.WarnContext(ctx, "win-back: merchant failed", "merchant_id", id, "error", err)
			errs = append(errs, fmt.Errorf("merchant %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// RunMerchant runs the merchant's pass once.
func (w *WinBack) RunMerchant(ctx context.Context, merchantID uint64) error {
	s, err := w.Settings(ctx, merchantID)
	if err != nil || !s.Enabled {
		return err
	}
	loc, err := w.zones.Location(ctx, merchantID)
	if err != nil {
		return fmt.Errorf("win-back: zone: %w", err)
	}
	// An answered episode ends at any hour, so its attempts held by quiet
	// hours are withdrawn before they go out.
	if err := w.endWonBack(ctx, merchantID); err != nil {
		return err
	}
	now := w.now()
	local := now.In(loc)
	if local.Hour()*60+local.Minute() < s.SendMinute {
		return nil // today's turn comes at the send time
	}
	today := civil(local)
	if err := w.endLost(ctx, s, today); err != nil {
		return err
	}
	if err := w.enter(ctx, merchantID); err != nil {
		return err
	}
	for k := 1; k <= min(s.MaxAttempts, len(s.Steps)); k++ {
		if err := w.attempt(ctx, s, k, today); err != nil {
			return err
		}
	}
	return w.revive(ctx, merchantID, today)
}

// endWonBack ends the episodes whose member ordered after the order the
// episode follows, and withdraws their attempts still waiting to be sent.
func (w *WinBack) endWonBack(ctx context.Context, merchantID uint64) error {
	for {
		var rows []struct {
			ID          uint64
			MemberID    uint64
			LastOrderAt time.Time
		}
		// idx_win_back_sequences_open, then members by primary key.
		if err := w.db.WithContext(ctx).Table("win_back_sequences s").Select("s.id, s.member_id, m.last_order_at").
			Joins("JOIN members m ON m.id = s.member_id AND m.merchant_id = s.merchant_id").
			Where("s.merchant_id = ? AND s.status = ? AND m.last_order_at > s.since_order_at", merchantID, WinBackActive).
			Order("s.id").Limit(winBackChunk).Find(&rows).Error; err != nil {
			return fmt.Errorf("win-back: answered episodes: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		err := retryTx(ctx, w.db, func(tx *gorm.DB) error {
			now := w.now()
			var ended []uint64
			for _, r := range rows {
				res := tx.Model(&WinBackSequence{}).Where("id = ? AND status = ?", r.ID, WinBackActive).
					Updates(map[string]any{"status": WinBackWonBack, "ended_at": now, "won_back_at": r.LastOrderAt})
				if res.Error != nil {
					return fmt.Errorf("win-back: end episode %d: %w", r.ID, res.Error)
				}
				if res.RowsAffected == 1 {
					ended = append(ended, r.MemberID)
				}
			}
			return w.withdrawAttempts(ctx, tx, merchantID, ended, now)
		})
		if err != nil {
			return err
		}
		if len(rows) < winBackChunk {
			return nil
		}
	}
}

// Answered ends the member's active win-back episode, won back, when they
// order, inside the order's transaction, and withdraws their attempts no
// worker has taken yet: the pass would find the order only at its next
// run, and an attempt could go out meanwhile to a member who has just
// bought. orderedAt is the order's time; an order older than the lapse the
// episode follows (a late import) answers nothing. The pass's own check
// stays, for orders that come by another way.
func (w *WinBack) Answered(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, orderedAt time.Time) error {
	now := w.now()
	// uk_win_back_sequences (merchant_id, member_id, since_order_at).
	res := tx.WithContext(ctx).Model(&WinBackSequence{}).
		Where("merchant_id = ? AND member_id = ? AND status = ? AND since_order_at < ?", merchantID, memberID, WinBackActive, orderedAt).
		Updates(map[string]any{"status": WinBackWonBack, "ended_at": now, "won_back_at": orderedAt})
	if res.Error != nil {
		return fmt.Errorf("win-back: end the episode of member %d: %w", memberID, res.Error)
	}
	if res.RowsAffected == 0 {
		return nil
	}
	return w.withdrawAttempts(ctx, tx, merchantID, []uint64{memberID}, now)
}

// withdrawAttempts skips the members' win-back deliveries no worker has
// taken yet.
func (w *WinBack) withdrawAttempts(ctx context.Context, tx *gorm.DB, merchantID uint64, memberIDs []uint64, now time.Time) error {
	if len(memberIDs) == 0 {
		return nil
	}
	var campaigns []uint64
	// idx_win_back_attempts_member (merchant_id, member_id).
	if err := tx.WithContext(ctx).Model(&winBackAttempt{}).Distinct("campaign_id").
		Where("merchant_id = ? AND member_id IN ?", merchantID, memberIDs).Pluck("campaign_id", &campaigns).Error; err != nil {
		return fmt.Errorf("win-back: attempts: %w", err)
	}
	_, err := w.rows.withdrawMembers(ctx, tx, campaigns, memberIDs, ReasonWonBack, now)
	return err
}

// endLost ends the episodes whose last attempt went unanswered for an
// interval: lost, and the member's stage with them.
func (w *WinBack) endLost(ctx context.Context, s WinBackSettings, today time.Time) error {
	due := today.AddDate(0, 0, -s.IntervalDays).Format(time.DateOnly)
	for {
		var rows []struct {
			ID       uint64
			MemberID uint64
		}
		// An episode whose member drifted to lost meanwhile (twice the churn
		// time) ends too: lost members are not targeted.
		if err := w.db.WithContext(ctx).Table("win_back_sequences s").Select("s.id, s.member_id").
			Joins("JOIN members m ON m.id = s.member_id AND m.merchant_id = s.merchant_id").
			Where("s.merchant_id = ? AND s.status = ? AND ((s.attempts >= ? AND s.last_attempt_date <= ?) OR m.lifecycle_stage = ?)",
				s.MerchantID, WinBackActive, s.MaxAttempts, due, stageLost).
			Order("s.id").Limit(winBackChunk).Find(&rows).Error; err != nil {
			return fmt.Errorf("win-back: unanswered episodes: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		err := retryTx(ctx, w.db, func(tx *gorm.DB) error {
			now := w.now()
			for _, r := range rows {
				// The member's row first (as an order takes it), then the
				// episode: an order racing this waits, and an episode it
				// answered is no longer lost here.
				var last []*time.Time
				if err := tx.Table("members").Clauses(clause.Locking{Strength: "UPDATE"}).
					Where("merchant_id = ? AND id = ?", s.MerchantID, r.MemberID).Pluck("last_order_at", &last).Error; err != nil {
					return fmt.Errorf("win-back: member %d: %w", r.MemberID, err)
				}
				res := tx.Model(&WinBackSequence{}).
					Where("id = ? AND status = ? AND NOT EXISTS (SELECT 1 FROM members m WHERE m.id = ? AND m.last_order_at > win_back_sequences.since_order_at)",
						r.ID, WinBackActive, r.MemberID).
					Updates(map[string]any{"status": WinBackLost, "ended_at": now})
				if res.Error != nil {
					return fmt.Errorf("win-back: lose episode %d: %w", r.ID, res.Error)
				}
				if res.RowsAffected == 1 && len(last) == 1 && w.stages != nil {
					if err := w.stages.MarkWinBackLost(ctx, tx, s.MerchantID, r.MemberID); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(rows) < winBackChunk {
			return nil
		}
	}
}

// enter opens an episode for every member at risk or churned who has none
// for their last order. The unique key makes a repeat (or another
// instance) insert nothing.
func (w *WinBack) enter(ctx context.Context, merchantID uint64) error {
	now := w.now()
	q := "INSERT INTO win_back_sequences (merchant_id, member_id, since_order_at, entered_stage, status, attempts, started_at) " +
		"SELECT m.merchant_id, m.id, m.last_order_at, m.lifecycle_stage, ?, 0, ? FROM members m " +
		"WHERE m.merchant_id = ? AND m.lifecycle_stage IN ? AND m.last_order_at IS NOT NULL AND m.erased_at IS NULL " +
		"AND NOT EXISTS (SELECT 1 FROM win_back_sequences s WHERE s.merchant_id = m.merchant_id AND s.member_id = m.id " +
		"AND s.since_order_at = m.last_order_at)"
	if w.mysql {
		q += " ON DUPLICATE KEY UPDATE win_back_sequences.id = win_back_sequences.id"
	} else {
		q += " ON CONFLICT (merchant_id, member_id, since_order_at) DO NOTHING"
	}
	res := w.db.WithContext(ctx).Exec(q, WinBackActive, now, merchantID, []string{stageAtRisk, stageChurned})
	if res.Error != nil {
		return fmt.Errorf("win-back: enter: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		w.care.log.InfoContext(ctx, "win-back: members entered", "merchant_id", merchantID, "members", res.RowsAffected)
	}
	return nil
}

// winBackAttempt is a win_back_attempts row.
type winBackAttempt struct {
	ID          uint64 `gorm:"primaryKey"`
	MerchantID  uint64
	SequenceID  uint64
	MemberID    uint64
	Attempt     int
	LocalDate   string
	CampaignID  uint64
	OfferPoints int64
	Batch       string
	CreatedAt   time.Time
}

func (winBackAttempt) TableName() string { return "win_back_attempts" }

// winBackRun is a win_back_runs row: the campaign of an attempt number's
// local day, with or without the offer.
type winBackRun struct {
	MerchantID uint64 `gorm:"primaryKey"`
	Attempt    int    `gorm:"primaryKey"`
	LocalDate  string `gorm:"primaryKey"`
	Offer      bool   `gorm:"primaryKey"`
	CampaignID uint64
	CreatedAt  time.Time
}

func (winBackRun) TableName() string { return "win_back_runs" }

// attempt plans attempt k for the active episodes due for it: the first
// at once, each later one an interval after the one before.
func (w *WinBack) attempt(ctx context.Context, s WinBackSettings, k int, today time.Time) error {
	step := s.Steps[k-1]
	date := today.Format(time.DateOnly)
	offerPoints, err := w.offerPoints(ctx, s.MerchantID, step.Offer)
	if err != nil {
		return err
	}
	var after uint64
	for {
		var rows []struct {
			ID          uint64
			MemberID    uint64
			PyramidTier *string
		}
		q := w.db.WithContext(ctx).Table("win_back_sequences s").Select("s.id, s.member_id, m.pyramid_tier").
			Joins("JOIN members m ON m.id = s.member_id AND m.merchant_id = s.merchant_id").
			Where("s.merchant_id = ? AND s.status = ? AND s.attempts = ? AND s.id > ? AND m.erased_at IS NULL",
				s.MerchantID, WinBackActive, k-1, after)
		if k > 1 {
			q = q.Where("s.last_attempt_date <= ?", today.AddDate(0, 0, -s.IntervalDays).Format(time.DateOnly))
		}
		if err := q.Order("s.id").Limit(winBackChunk).Find(&rows).Error; err != nil {
			return fmt.Errorf("win-back: due for attempt %d: %w", k, err)
		}
		if len(rows) == 0 {
			return nil
		}
		// DOMAIN: lead-tier members get no paid offer unless the program
		// includes them; they still get the message.
		var withOffer, without []winBackItem
		for _, r := range rows {
			it := winBackItem{sequenceID: r.ID, memberID: r.MemberID}
			lead := r.PyramidTier != nil && *r.PyramidTier == pyramidLead
			if step.Offer != nil && (s.IncludeLeadTier || !lead) {
				withOffer = append(withOffer, it)
			} else {
				without = append(without, it)
			}
		}
		for _, g := range []struct {
			offer bool
			items []winBackItem
		}{{true, withOffer}, {false, without}} {
			if len(g.items) == 0 {
				continue
			}
			campaignID, err := w.campaignFor(ctx, s, k, date, g.offer)
			if err != nil {
				return err
			}
			points := int64(0)
			if g.offer {
				points = offerPoints
			}
			if err := w.plan(ctx, s.MerchantID, k, date, campaignID, points, g.items); err != nil {
				if errors.Is(err, errCareCancelled) {
					w.care.log.InfoContext(ctx, "win-back: the day's campaign was cancelled; nothing more planned today",
						"merchant_id", s.MerchantID, "attempt", k, "campaign_id", campaignID)
					continue
				}
				return err
			}
		}
		after = rows[len(rows)-1].ID
		if len(rows) < winBackChunk {
			return nil
		}
	}
}

type winBackItem struct{ sequenceID, memberID uint64 }

// offerPoints is what an offer costs in points: its points, or its
// reward's points price.
func (w *WinBack) offerPoints(ctx context.Context, merchantID uint64, g *Gift) (int64, error) {
	switch {
	case g == nil:
		return 0, nil
	case g.Points > 0:
		return g.Points, nil
	case g.RewardID > 0:
		var cost []int64
		if err := w.db.WithContext(ctx).Table("points_rewards").Where("merchant_id = ? AND id = ?", merchantID, g.RewardID).
			Pluck("points_cost", &cost).Error; err != nil {
			return 0, fmt.Errorf("win-back: offer reward %d: %w", g.RewardID, err)
		}
		if len(cost) == 1 {
			return cost[0], nil
		}
	}
	return 0, nil
}

func winBackCampaignName(k int, localDate string, offer bool) string {
	name := fmt.Sprintf("win-back: attempt %d %s", k, localDate)
	if !offer {
		name += " (no offer)"
	}
	return name
}

// campaignFor returns attempt k's campaign of the local date (with or
// without the offer), creating it the first time; concurrent creators
// share one, as care_runs does.
func (w *WinBack) campaignFor(ctx context.Context, s WinBackSettings, k int, localDate string, offer bool) (uint64, error) {
	find := func() (uint64, bool, error) {
		var run winBackRun
		err := w.db.WithContext(ctx).Where("merchant_id = ? AND attempt = ? AND local_date = ? AND offer = ?",
			s.MerchantID, k, localDate, offer).Take(&run).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("win-back: run %d %s: %w", k, localDate, err)
		}
		return run.CampaignID, true, nil
	}
	if id, ok, err := find(); ok || err != nil {
		return id, err
	}
	step := s.Steps[k-1]
	var gift *Gift
	if offer {
		gift = step.Offer
	}
	now := w.now()
	err := retryTx(ctx, w.db, func(tx *gorm.DB) error {
		c := Campaign{MerchantID: s.MerchantID, Name: winBackCampaignName(k, localDate, offer), Kind: KindCare, Status: StatusRunning,
			Channel: s.Channel, TemplateID: step.TemplateID, Message: step.Message, Gift: gift,
			ScheduleKind: ScheduleNow, AttributionDays: 7, Step: 1, StepStartedAt: &now, PlanDone: true,
			CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&c).Error; err != nil {
			return fmt.Errorf("win-back: create campaign: %w", err)
		}
		return tx.Create(&winBackRun{MerchantID: s.MerchantID, Attempt: k, LocalDate: localDate, Offer: offer,
			CampaignID: c.ID, CreatedAt: now}).Error
	})
	if err != nil && !db.IsDuplicate(err) {
		return 0, fmt.Errorf("win-back: run %d %s: %w", k, localDate, err)
	}
	id, ok, err := find()
	if err == nil && !ok {
		err = fmt.Errorf("win-back: run %d %s vanished", k, localDate)
	}
	return id, err
}

// plan writes attempt k of the episodes in one transaction: the attempts
// rows (duplicates ignored), a delivery for each member whose attempt row
// this transaction inserted (found by its batch), and the episodes'
// attempt count, moved only from k-1.
func (w *WinBack) plan(ctx context.Context, merchantID uint64, k int, localDate string, campaignID uint64, offerPoints int64,
	items []winBackItem) error {
	sort.Slice(items, func(i, j int) bool { return items[i].sequenceID < items[j].sequenceID })
	return retryTx(ctx, w.db, func(tx *gorm.DB) error {
		var c Campaign
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", campaignID).Take(&c).Error; err != nil {
			return fmt.Errorf("win-back: campaign %d: %w", campaignID, err)
		}
		if c.Status == StatusCancelled {
			return errCareCancelled
		}
		now := w.now()
		batch := newBatchID()
		// Only episodes still active and still at attempt k-1 get attempt k:
		// one ended (won back) since it was read gets nothing.
		ids := make([]uint64, len(items))
		for i, it := range items {
			ids[i] = it.sequenceID
		}
		q := "INSERT INTO win_back_attempts (merchant_id, sequence_id, member_id, attempt, local_date, campaign_id, offer_points, batch, created_at) " +
			"SELECT s.merchant_id, s.id, s.member_id, ?, ?, ?, ?, ?, ? FROM win_back_sequences s " +
			"WHERE s.merchant_id = ? AND s.id IN ? AND s.status = ? AND s.attempts = ?"
		if w.mysql {
			q += " ON DUPLICATE KEY UPDATE win_back_attempts.id = win_back_attempts.id"
		} else {
			q += " ON CONFLICT (sequence_id, attempt) DO NOTHING"
		}
		if err := tx.Exec(q, k, localDate, campaignID, offerPoints, batch, now, merchantID, ids, WinBackActive, k-1).Error; err != nil {
			return fmt.Errorf("win-back: attempts: %w", err)
		}
		openid, status, reason := skipExprs(c)
		n, err := w.rows.plan(ctx, tx, "SELECT m.merchant_id, ?, ?, m.id, COALESCE("+openid+", ''), ?, "+status+", "+reason+", ?, ? "+
			"FROM members m WHERE m.merchant_id = ? AND m.id IN (SELECT a.member_id FROM win_back_attempts a WHERE a.merchant_id = ? AND a.batch = ?)",
			c.ID, c.Step, c.Capped(), now, now, merchantID, merchantID, batch)
		if err != nil {
			return fmt.Errorf("win-back: %w", err)
		}
		if err := tx.Exec("UPDATE win_back_sequences SET attempts = ?, last_attempt_date = ? WHERE merchant_id = ? AND attempts = ? "+
			"AND id IN (SELECT a.sequence_id FROM win_back_attempts a WHERE a.merchant_id = ? AND a.batch = ?)",
			k, localDate, merchantID, k-1, merchantID, batch).Error; err != nil {
			return fmt.Errorf("win-back: count attempts: %w", err)
		}
		if n > 0 {
			w.care.log.InfoContext(ctx, "win-back: planned", "merchant_id", merchantID, "attempt", k, "campaign_id", c.ID,
				"deliveries", n)
		}
		if n > 0 && c.Status == StatusCompleted {
			return reopen(ctx, tx, c.ID, now)
		}
		return nil
	})
}

// revive runs again recent win-back campaigns completed under new rows
// (see Care.revive).
func (w *WinBack) revive(ctx context.Context, merchantID uint64, today time.Time) error {
	var ids []uint64
	if err := w.db.WithContext(ctx).Model(&winBackRun{}).
		Where("merchant_id = ? AND local_date >= ?", merchantID, today.AddDate(0, 0, -2).Format(time.DateOnly)).
		Pluck("campaign_id", &ids).Error; err != nil {
		return fmt.Errorf("win-back: recent runs: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := revivePending(ctx, w.db, ids, w.now())
	return err
}
