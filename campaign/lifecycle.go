package campaign

// The campaign lifecycle: every change of a campaign's status. Staff move
// campaigns (Act: schedule, pause, resume, cancel); the engine starts
// steps when they are due, pauses campaigns WeChat's answers say cannot
// work, and completes a step when planning is done and no row is left
// open (or schedules a recurring campaign's next run); care automations
// reopen their day's campaign when they add rows to it. Each is one
// conditional update, so two instances (or staff and an instance) racing
// each other change a campaign once.
//
//	draft ──schedule──▶ scheduled ──due──▶ running ⇄ paused
//	                        ▲                 │
//	                        └──recurring──────┤ step done
//	                                          ▼
//	                                      completed ──(care adds rows)──▶ running
//	any but completed ──cancel──▶ cancelled

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
)

// startStep begins the campaign's next run: the audience rule is frozen
// with the time, members are bounded by the highest id now, planning
// starts from the beginning. It is a conditional update on the step, so
// two instances starting it at once start it once.
func (e *Engine) startStep(ctx context.Context, c Campaign) error {
	rule, err := audienceRule(ctx, e.audiences, c.MerchantID, c.Target)
	if err != nil {
		return e.pause(ctx, c, "target: "+err.Error())
	}
	var maxID uint64
	if err := e.db.WithContext(ctx).Table("members").Where("merchant_id = ?", c.MerchantID).
		Select("COALESCE(MAX(id), 0)").Scan(&maxID).Error; err != nil {
		return fmt.Errorf("campaign %d: audience bound: %w", c.ID, err)
	}
	now := e.now()
	ruleText := string(rule)
	res := e.db.WithContext(ctx).Model(&Campaign{}).
		Where("id = ? AND step = ? AND status IN ?", c.ID, c.Step, []Status{StatusScheduled, StatusRunning}).
		Updates(map[string]any{"status": StatusRunning, "step": c.Step + 1, "step_started_at": now,
			"audience_rule": ruleText, "plan_max_member": maxID, "plan_cursor": 0, "plan_done": false,
			"next_run_at": nil, "updated_at": now})
	if res.Error != nil {
		return fmt.Errorf("campaign %d: start step: %w", c.ID, res.Error)
	}
	if res.RowsAffected == 1 {
		e.log.InfoContext(ctx, "campaign: step started", "merchant_id", c.MerchantID, "campaign_id", c.ID, "step", c.Step+1)
	}
	return nil
}

// pause stops a campaign with a reason an operator can act on.
func (e *Engine) pause(ctx context.Context, c Campaign, reason string) error {
	reason = clip(reason, 255)
	e.log.WarnContext(ctx, "campaign: paused", "merchant_id", c.MerchantID, "campaign_id", c.ID, "reason", reason)
	return e.db.WithContext(ctx).Model(&Campaign{}).Where("id = ? AND status = ?", c.ID, StatusRunning).
		Updates(map[string]any{"status": StatusPaused, "pause_reason": reason, "updated_at": e.now()}).Error
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// lockCampaign reads the campaign for update inside tx.
func lockCampaign(ctx context.Context, tx *gorm.DB, merchantID, id uint64) (Campaign, error) {
	return db.TakeOne[Campaign](tx.WithContext(ctx).Clauses(clause.Locking{Strength: "UPDATE"}).
		Where("merchant_id = ? AND id = ?", merchantID, id), errNotFound, "campaign %d", id)
}

// maybeComplete finishes a step when it is planned and nothing is left to
// send: a recurring campaign waits for its next run, any other completes.
// The campaign row is locked while the open rows are counted, so rows
// added meanwhile (care automations add to a running day's campaign under
// the same lock) are either counted or added after the decision, to a
// campaign they then reopen.
func (e *Engine) maybeComplete(ctx context.Context, c Campaign) error {
	if c.NoticeKind != nil {
		return nil // a notice kind's campaign never completes: events keep adding to it
	}
	var next *time.Time
	if c.ScheduleKind == ScheduleCron {
		mc, err := e.merchantClock(ctx, c.MerchantID)
		if err != nil {
			return err
		}
		t, err := nextCron(c.Cron, e.now(), mc.loc)
		if err != nil {
			return e.pause(ctx, c, err.Error())
		}
		next = &t
	}
	done := false
	err := retryTx(ctx, e.db, func(tx *gorm.DB) error {
		cur, err := lockCampaign(ctx, tx, c.MerchantID, c.ID)
		if err != nil || cur.Status != StatusRunning || !cur.PlanDone {
			return err
		}
		var open []uint64
		// idx_deliveries_claim (campaign_id, status, id): an existence
		// probe that stops at the first open row (a COUNT would count a
		// million pending rows every round).
		if err := tx.Model(&Delivery{}).Select("id").
			Where("campaign_id = ? AND status IN ? AND step = ?", cur.ID, openStatuses, cur.Step).
			Limit(1).Find(&open).Error; err != nil {
			return fmt.Errorf("campaign %d: completion: %w", cur.ID, err)
		}
		if len(open) > 0 {
			return nil
		}
		now := e.now()
		upd := map[string]any{"status": StatusCompleted, "completed_at": now, "updated_at": now}
		if next != nil {
			upd = map[string]any{"status": StatusScheduled, "next_run_at": *next, "updated_at": now}
		}
		if err := tx.Model(&Campaign{}).Where("id = ?", cur.ID).Updates(upd).Error; err != nil {
			return fmt.Errorf("campaign %d: complete: %w", cur.ID, err)
		}
		if next == nil {
			if err := event.Emit(ctx, e.events, tx, event.Event{MerchantID: cur.MerchantID, Type: event.CampaignCompleted,
				Data: event.Campaign{CampaignID: cur.ID, Step: cur.Step}}); err != nil {
				return err
			}
		}
		done = true
		return nil
	})
	if err == nil && done {
		e.log.InfoContext(ctx, "campaign: step finished", "merchant_id", c.MerchantID, "campaign_id", c.ID, "step", c.Step,
			"recurring", next != nil)
	}
	return err
}

// Transition names a lifecycle action.
type Transition string

// Lifecycle actions.
const (
	ActSchedule Transition = "schedule"
	ActPause    Transition = "pause"
	ActResume   Transition = "resume"
	ActCancel   Transition = "cancel"
)

// Act moves a campaign through its lifecycle:
//
//	schedule: draft → scheduled (re-checked: the segment and template must
//	          still exist); it starts at its time
//	pause:    scheduled or running → paused (sends stop within a batch)
//	resume:   paused → running (or scheduled, when it had not started)
//	cancel:   anything not finished → cancelled (nothing more is sent)
func (s *Campaigns) Act(ctx context.Context, merchantID, id uint64, act Transition) (Campaign, error) {
	var out Campaign
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		c, err := lockCampaign(ctx, tx, merchantID, id)
		if err != nil {
			return err
		}
		if c.NoticeKind != nil {
			return apperr.New(apperr.ErrConflict, "this campaign sends a service notice: switch it on or off in the notice settings")
		}
		before := c.Status
		now := s.now()
		upd := map[string]any{"updated_at": now}
		refuse := func() error {
			return apperr.New(apperr.ErrConflict, "a %s campaign cannot be told to %s", c.Status, act)
		}
		switch act {
		case ActSchedule:
			if c.Status != StatusDraft {
				return refuse()
			}
			if err := s.validate(ctx, &c); err != nil {
				return err
			}
			next, err := s.firstRun(ctx, c)
			if err != nil {
				return err
			}
			upd["status"], upd["next_run_at"] = StatusScheduled, next
		case ActPause:
			if c.Status != StatusRunning && c.Status != StatusScheduled {
				return refuse()
			}
			upd["status"], upd["pause_reason"] = StatusPaused, "paused by staff"
		case ActResume:
			if c.Status != StatusPaused {
				return refuse()
			}
			upd["pause_reason"] = ""
			if c.Step == 0 || (c.NextRunAt != nil && c.ScheduleKind == ScheduleCron && c.PlanDone) {
				next := c.NextRunAt
				if next == nil {
					if next, err = s.firstRun(ctx, c); err != nil {
						return err
					}
				}
				upd["status"], upd["next_run_at"] = StatusScheduled, next
			} else {
				upd["status"] = StatusRunning
			}
		case ActCancel:
			if c.Status == StatusCompleted || c.Status == StatusCancelled {
				return refuse()
			}
			upd["status"], upd["completed_at"] = StatusCancelled, now
		default:
			return apperr.Invalid("action", "must be schedule, pause, resume or cancel")
		}
		if err := tx.Model(&Campaign{}).Where("id = ?", id).Updates(upd).Error; err != nil {
			return fmt.Errorf("campaign %d: %s: %w", id, act, err)
		}
		if err := tx.Where("id = ?", id).Take(&out).Error; err != nil {
			return err
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "campaign." + string(act), TargetType: "campaign",
			TargetIDs: []uint64{id}, Before: map[string]any{"status": before}, After: map[string]any{"status": out.Status}}, now)
	})
	return out, err
}

// reopen runs again a completed campaign its care rule has just added rows
// to (inside the transaction that added them).
func reopen(ctx context.Context, tx *gorm.DB, id uint64, now time.Time) error {
	if err := tx.WithContext(ctx).Model(&Campaign{}).Where("id = ? AND status = ?", id, StatusCompleted).
		UpdateColumns(map[string]any{"status": StatusRunning, "completed_at": nil, "updated_at": now}).Error; err != nil {
		return fmt.Errorf("reopen campaign %d: %w", id, err)
	}
	return nil
}

// revivePending runs again those of the campaigns that were completed
// while their current step still holds pending rows, and returns how many.
func revivePending(ctx context.Context, gdb *gorm.DB, ids []uint64, now time.Time) (int64, error) {
	res := gdb.WithContext(ctx).Model(&Campaign{}).
		Where("id IN ? AND status = ? AND EXISTS (SELECT 1 FROM campaign_deliveries d WHERE d.campaign_id = campaigns.id"+
			" AND d.step = campaigns.step AND d.status = ?)", ids, StatusCompleted, DeliveryPending).
		UpdateColumns(map[string]any{"status": StatusRunning, "completed_at": nil, "updated_at": now})
	if res.Error != nil {
		return 0, fmt.Errorf("revive campaigns: %w", res.Error)
	}
	return res.RowsAffected, nil
}
