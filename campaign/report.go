package campaign

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
)

// Progress is where a campaign's current step stands.
type Progress struct {
	Campaign  Campaign                 `json:"-"`
	Step      int                      `json:"step"`
	Planned   int64                    `json:"planned"`
	Planning  bool                     `json:"planning"` // still planning: counts grow
	ByStatus  map[DeliveryStatus]int64 `json:"by_status"`
	Skipped   map[Reason]int64         `json:"skipped_by_reason"`
	Failed    map[Reason]int64         `json:"failed_by_reason"`
	Holdout   int64                    `json:"holdout"`
	Remaining int64                    `json:"remaining"`       // pending, claimed or sending
	RatePerS  float64                  `json:"rate_per_second"` // sends in the last minute
	ETA       *time.Time               `json:"eta,omitempty"`   // at the last minute's rate
	PausedFor string                   `json:"pause_reason,omitempty"`
}

// Progress counts the current step's rows by status and reason (one
// grouped scan of idx_deliveries_claim's (campaign_id, status) prefix).
func (s *Campaigns) Progress(ctx context.Context, merchantID, id uint64) (Progress, error) {
	c, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Progress{}, err
	}
	p := Progress{Campaign: c, Step: c.Step, Planning: c.Step > 0 && !c.PlanDone, ByStatus: map[DeliveryStatus]int64{},
		Skipped: map[Reason]int64{}, Failed: map[Reason]int64{}, PausedFor: c.PauseReason}
	var rows []struct {
		Status DeliveryStatus
		Reason Reason
		N      int64
	}
	if err := s.db.WithContext(ctx).Model(&Delivery{}).Select("status, reason, COUNT(*) AS n").
		Where("campaign_id = ? AND step = ?", c.ID, c.Step).Group("status, reason").Find(&rows).Error; err != nil {
		return Progress{}, fmt.Errorf("campaign %d: progress: %w", id, err)
	}
	for _, r := range rows {
		p.Planned += r.N
		p.ByStatus[r.Status] += r.N
		switch r.Status {
		case DeliverySkipped:
			p.Skipped[r.Reason] += r.N
		case DeliveryFailed:
			p.Failed[r.Reason] += r.N
		case DeliveryHoldout:
			p.Holdout += r.N
		case DeliveryPending, DeliveryClaimed, DeliverySending:
			p.Remaining += r.N
		}
	}
	var recent int64
	now := s.now()
	if err := s.db.WithContext(ctx).Model(&Delivery{}).
		Where("campaign_id = ? AND step = ? AND status IN ? AND sent_at > ?", c.ID, c.Step,
			[]DeliveryStatus{DeliverySent, DeliveryDelivered}, now.Add(-time.Minute)).Count(&recent).Error; err != nil {
		return Progress{}, fmt.Errorf("campaign %d: rate: %w", id, err)
	}
	p.RatePerS = float64(recent) / 60
	if p.Remaining > 0 && recent > 0 {
		eta := now.Add(time.Duration(float64(p.Remaining) / p.RatePerS * float64(time.Second)))
		p.ETA = &eta
	}
	return p, nil
}

// DryRun is who a campaign would reach now and who it would skip.
type DryRun struct {
	Targeted int64            `json:"targeted"` // members the audience selects
	WouldGet int64            `json:"would_get"`
	Holdout  int64            `json:"holdout"`
	Skipped  map[Reason]int64 `json:"skipped_by_reason"`
	Sample   []uint64         `json:"sample_member_ids"` // some members who would get it
}

// DryRun evaluates a campaign's audience and the skip rules without
// writing anything: the same statement planning runs, as a SELECT, plus
// the frequency cap, the customer-service window and subscription grants
// as they stand now.
func (s *Campaigns) DryRun(ctx context.Context, merchantID, id uint64) (DryRun, error) {
	c, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return DryRun{}, err
	}
	rule, err := audienceRule(ctx, s.audiences, merchantID, c.Target)
	if err != nil {
		return DryRun{}, apperr.New(apperr.ErrUnprocessable, "the target cannot be evaluated: %v", err)
	}
	now := s.now()
	aud, err := s.audiences.CompileAt(ctx, merchantID, rule, now)
	if err != nil {
		return DryRun{}, err
	}
	_, status, reason := skipExprs(c)
	capped, outside, noGrant := "0", "0", "0"
	var args []any
	if c.Capped() {
		capN, capWindow, err := s.engine.frequencyCap(ctx, merchantID)
		if err != nil {
			return DryRun{}, err
		}
		// Members at the frequency cap now.
		capped = fmt.Sprintf("CASE WHEN (SELECT COUNT(*) FROM campaign_deliveries cd WHERE cd.merchant_id = m.merchant_id"+
			" AND cd.member_id = m.id AND cd.capped = 1 AND cd.sent_at > ? AND cd.status IN ?) >= %d"+
			" THEN 1 ELSE 0 END", capN)
		args = append(args, now.Add(-capWindow),
			[]DeliveryStatus{DeliverySending, DeliverySent, DeliveryDelivered, DeliveryUnknown})
	}
	if c.Channel == ChannelCustomerService {
		outside = "CASE WHEN m.last_interaction_at IS NULL OR m.last_interaction_at <= ? THEN 1 ELSE 0 END"
		args = append(args, now.Add(-48*time.Hour))
	}
	if c.Channel == ChannelMPSubscribe {
		noGrant = "CASE WHEN EXISTS (SELECT 1 FROM member_subscription_grants g WHERE g.merchant_id = m.merchant_id" +
			" AND g.member_id = m.id AND g.template_id = ? AND g.remaining > 0) THEN 0 ELSE 1 END"
		args = append(args, c.TemplateID)
	}
	args = append(args, aud.Args...)
	// The planning statement's own status and reason, as a grouped SELECT.
	q := "SELECT d.status, d.reason, d.capped_now, d.outside, d.no_grant, COUNT(*) AS n, MAX(d.member_id) AS sample FROM (" +
		"SELECT m.id AS member_id, " + status + " AS status, " + reason + " AS reason, " + capped + " AS capped_now, " +
		outside + " AS outside, " + noGrant + " AS no_grant FROM members m WHERE " + aud.Where +
		") d GROUP BY d.status, d.reason, d.capped_now, d.outside, d.no_grant"
	var groups []struct {
		Status    DeliveryStatus
		Reason    Reason
		CappedNow int
		Outside   int
		NoGrant   int
		N         int64
		Sample    uint64
	}
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&groups).Error; err != nil {
		return DryRun{}, fmt.Errorf("campaign %d: dry run: %w", id, err)
	}
	out := DryRun{Skipped: map[Reason]int64{}, Sample: []uint64{}}
	for _, g := range groups {
		out.Targeted += g.N
		switch {
		case g.Status == DeliveryHoldout:
			out.Holdout += g.N
		case g.Status == DeliverySkipped:
			out.Skipped[g.Reason] += g.N
		case g.CappedNow == 1:
			out.Skipped[ReasonFrequencyCap] += g.N
		case g.Outside == 1:
			out.Skipped[ReasonOutsideWindow] += g.N
		case g.NoGrant == 1:
			out.Skipped[ReasonNoGrant] += g.N
		default:
			out.WouldGet += g.N
			if len(out.Sample) < 10 {
				out.Sample = append(out.Sample, g.Sample)
			}
		}
	}
	return out, nil
}

// DeliveryFilter selects deliveries of a campaign.
type DeliveryFilter struct {
	Step     int // 0: the current step
	Status   DeliveryStatus
	Reason   Reason
	MemberID uint64
	Before   uint64
	Limit    int
}

// Deliveries lists a campaign's deliveries, newest first.
func (s *Campaigns) Deliveries(ctx context.Context, merchantID, id uint64, f DeliveryFilter) ([]Delivery, error) {
	c, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return nil, err
	}
	step := f.Step
	if step == 0 {
		step = c.Step
	}
	q := s.db.WithContext(ctx).Where("campaign_id = ? AND step = ?", c.ID, step)
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Reason != "" {
		q = q.Where("reason = ?", f.Reason)
	}
	if f.MemberID != 0 {
		q = q.Where("member_id = ?", f.MemberID)
	}
	if f.Before != 0 {
		q = q.Where("id < ?", f.Before)
	}
	var out []Delivery
	if err := q.Order("id DESC").Limit(f.Limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("campaign %d: deliveries: %w", id, err)
	}
	return out, nil
}

// Resend starts a new step for the current step's rows in the given
// statuses (failed, unknown): an operator's explicit choice, since an
// unknown row may have reached the member.
func (s *Campaigns) Resend(ctx context.Context, merchantID, id uint64, statuses []DeliveryStatus) (Campaign, int64, error) {
	for _, st := range statuses {
		if st != DeliveryFailed && st != DeliveryUnknown {
			return Campaign{}, 0, apperr.Invalid("statuses", "may hold failed and unknown")
		}
	}
	if len(statuses) == 0 {
		return Campaign{}, 0, apperr.Invalid("statuses", "must name failed and/or unknown")
	}
	var out Campaign
	var n int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		c, err := lockCampaign(ctx, tx, merchantID, id)
		if err != nil {
			return err
		}
		if c.Status != StatusCompleted && c.Status != StatusPaused {
			return apperr.New(apperr.ErrConflict, "a %s campaign cannot resend; wait until it completes or pause it", c.Status)
		}
		now := s.now()
		// The rows of the new step copy those of the old one being resent
		// (idx_deliveries_claim (campaign_id, status, id)).
		if n, err = s.engine.rows.plan(ctx, tx, "SELECT d.merchant_id, d.campaign_id, ?, d.member_id, d.openid, d.capped, ?, '', ?, ? "+
			"FROM campaign_deliveries d WHERE d.campaign_id = ? AND d.step = ? AND d.status IN ?",
			c.Step+1, DeliveryPending, now, now, c.ID, c.Step, statuses); err != nil {
			return fmt.Errorf("campaign %d: resend: %w", id, err)
		}
		if n == 0 {
			names := make([]string, len(statuses))
			for i, st := range statuses {
				names[i] = string(st)
			}
			return apperr.New(apperr.ErrUnprocessable, "no deliveries in %s to resend", strings.Join(names, " or "))
		}
		if err := tx.Model(&Campaign{}).Where("id = ?", id).Updates(map[string]any{"status": StatusRunning, "step": c.Step + 1,
			"step_started_at": now, "plan_done": true, "plan_cursor": c.PlanMaxMember, "pause_reason": "", "completed_at": nil,
			"updated_at": now}).Error; err != nil {
			return fmt.Errorf("campaign %d: resend: %w", id, err)
		}
		if err := tx.Where("id = ?", id).Take(&out).Error; err != nil {
			return err
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "campaign.resend", TargetType: "campaign",
			TargetIDs: []uint64{id}, After: map[string]any{"step": out.Step, "statuses": statuses, "rows": n}}, now)
	})
	return out, n, err
}

// GroupResult is one side of a campaign's report.
type GroupResult struct {
	Members    int64   `json:"members"`
	Converted  int64   `json:"converted"`   // members with an attributed order
	Conversion float64 `json:"conversion"`  // converted / members
	RevenueFen int64   `json:"revenue_fen"` // net of refunds
	Orders     int64   `json:"orders"`
}

// Report compares the members a step reached with its holdout.
type Report struct {
	Step            int         `json:"step"`
	AttributionDays int         `json:"attribution_days"`
	Targeted        GroupResult `json:"targeted"`
	Holdout         GroupResult `json:"holdout"`
	Lift            *float64    `json:"lift"` // targeted conversion − holdout conversion, in points
}

// Report attributes orders to a step: an order counts for a reached member
// (sent or delivered) when placed within the attribution window after the
// message was sent, and for a holdout member within the window after the
// step started. It reads points' orders (a report across features: the
// join needs both tables; idx_points_orders_member serves each member's
// range).
func (s *Campaigns) Report(ctx context.Context, merchantID, id uint64, step int) (Report, error) {
	c, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Report{}, err
	}
	if step == 0 {
		step = c.Step
	}
	r := Report{Step: step, AttributionDays: c.AttributionDays}
	if step == 0 {
		return r, nil
	}
	window := time.Duration(c.AttributionDays) * 24 * time.Hour
	started := c.CreatedAt
	if c.StepStartedAt != nil {
		started = *c.StepStartedAt
	}
	group := func(statuses []DeliveryStatus, fromSent bool) (GroupResult, error) {
		var g GroupResult
		if err := s.db.WithContext(ctx).Model(&Delivery{}).Where("campaign_id = ? AND step = ? AND status IN ?", c.ID, step, statuses).
			Count(&g.Members).Error; err != nil {
			return g, err
		}
		// Reached members: orders in [sent_at, sent_at + window); holdout
		// members: in [step start, step start + window).
		window := "o.ordered_at >= d.sent_at AND o.ordered_at < " + addSeconds(s.engine.mysql, "d.sent_at", int64(window.Seconds()))
		var args []any
		if !fromSent {
			window = "o.ordered_at >= ? AND o.ordered_at < ?"
			args = append(args, started, started.Add(time.Duration(c.AttributionDays)*24*time.Hour))
		}
		q := "SELECT COUNT(DISTINCT d.member_id) AS converted, COUNT(o.id) AS orders, COALESCE(SUM(o.amount_fen - o.refunded_fen), 0) AS revenue " +
			"FROM campaign_deliveries d JOIN points_orders o ON o.merchant_id = d.merchant_id AND o.member_id = d.member_id AND " + window +
			" WHERE d.campaign_id = ? AND d.step = ? AND d.status IN ?"
		args = append(args, c.ID, step, statuses)
		var out struct {
			Converted int64
			Orders    int64
			Revenue   int64
		}
		if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
			return g, err
		}
		g.Converted, g.Orders, g.RevenueFen = out.Converted, out.Orders, out.Revenue
		if g.Members > 0 {
			g.Conversion = float64(g.Converted) / float64(g.Members)
		}
		return g, nil
	}
	if r.Targeted, err = group([]DeliveryStatus{DeliverySent, DeliveryDelivered}, true); err != nil {
		return Report{}, fmt.Errorf("campaign %d: report: %w", id, err)
	}
	if r.Holdout, err = group([]DeliveryStatus{DeliveryHoldout}, false); err != nil {
		return Report{}, fmt.Errorf("campaign %d: report: %w", id, err)
	}
	if r.Holdout.Members > 0 && r.Targeted.Members > 0 {
		lift := (r.Targeted.Conversion - r.Holdout.Conversion) * 100
		r.Lift = &lift
	}
	return r, nil
}

// addSeconds is "column + n seconds" in the dialect.
func addSeconds(mysql bool, col string, n int64) string {
	if mysql {
		return fmt.Sprintf("DATE_ADD(%s, INTERVAL %d SECOND)", col, n)
	}
	return fmt.Sprintf("datetime(%s, '+%d seconds')", col, n)
}
