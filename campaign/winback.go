package campaign

// Win-back with attempts (DOMAIN, "Churn and win-back"): members who
// become at risk or churned enter a win-back episode of up to N attempts
// (default 3) spaced by an interval, each with its own message and
// optional offer. An order ends the episode: the member is won back. After
// the last attempt has gone unanswered for an interval the episode ends
// lost, the member's lifecycle stage becomes lost, and win-back targets
// them no more (until they order again).
//
// This file is the merchant's program and its admin API; the pass that
// runs it is winback_pass.go. Attempts go out as rows of care campaigns
// (one per attempt number, local date and offer), so the engine sends them
// with its caps, quiet hours, consent checks, exactly-once delivery and
// exactly-once gift grants.

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
)

// Win-back defaults and bounds.
const (
	DefaultWinBackAttempts = 3 // DOMAIN: lost after 3 unanswered attempts
	DefaultWinBackInterval = 7 // days between attempts
	MaxWinBackAttempts     = 10
	MaxWinBackInterval     = 90
)

// Win-back episode statuses.
const (
	WinBackActive  = "active"
	WinBackWonBack = "won_back"
	WinBackLost    = "lost"
)

// WinBackStep is one attempt's message and optional offer.
type WinBackStep struct {
	TemplateID string  `json:"template_id,omitempty"`
	Message    Message `json:"message"`
	// Offer is granted once when the attempt's message is sent: points or
	// a (coupon) reward. Lead-tier members get the message without it
	// unless the program includes them (DOMAIN).
	Offer *Gift `json:"offer,omitempty"`
}

// WinBackSteps is the steps column (JSON).
type WinBackSteps []WinBackStep

// Value implements driver.Valuer.
func (s WinBackSteps) Value() (driver.Value, error) {
	if s == nil {
		s = WinBackSteps{}
	}
	return jsonValue(s)
}

// Scan implements sql.Scanner.
func (s *WinBackSteps) Scan(src any) error { *s = nil; return scanJSON(s, src) }

// WinBackSettings is a win_back_settings row: the merchant's program.
type WinBackSettings struct {
	MerchantID      uint64       `gorm:"primaryKey" json:"-"`
	Enabled         bool         `json:"enabled"`
	MaxAttempts     int          `json:"max_attempts"`
	IntervalDays    int          `json:"interval_days"`
	SendMinute      int          `json:"send_minute"`
	Channel         Channel      `json:"channel"`
	IncludeLeadTier bool         `json:"include_lead_tier"`
	Steps           WinBackSteps `json:"steps"`
	ActiveSince     *time.Time   `json:"active_since"`
	CreatedAt       time.Time    `json:"-"`
	UpdatedAt       time.Time    `json:"updated_at"`
}

// TableName implements gorm's tabler.
func (WinBackSettings) TableName() string { return "win_back_settings" }

// defaultWinBack is the program of a merchant who never set one.
func defaultWinBack(merchantID uint64) WinBackSettings {
	return WinBackSettings{MerchantID: merchantID, MaxAttempts: DefaultWinBackAttempts, IntervalDays: DefaultWinBackInterval,
		SendMinute: 10 * 60, Channel: ChannelTemplate, Steps: WinBackSteps{}}
}

// WinBackSequence is a win_back_sequences row: one member's episode.
type WinBackSequence struct {
	ID         uint64 `gorm:"primaryKey" json:"id"`
	MerchantID uint64 `json:"-"`
	MemberID   uint64 `json:"member_id"`
	// Name is the member's name, read with the list (not a column).
	Name            string     `gorm:"->;-:migration" json:"name"`
	SinceOrderAt    time.Time  `json:"since_order_at"`
	EnteredStage    string     `json:"entered_stage"`
	Status          string     `json:"status"`
	Attempts        int        `json:"attempts"`
	LastAttemptDate *string    `json:"last_attempt_date"`
	StartedAt       time.Time  `json:"started_at"`
	EndedAt         *time.Time `json:"ended_at"`
	WonBackAt       *time.Time `json:"won_back_at"`
}

// TableName implements gorm's tabler.
func (WinBackSequence) TableName() string { return "win_back_sequences" }

// WinBackStages moves a member whose episode ended unanswered to lost, in
// the caller's transaction; *member.Attributes satisfies it.
type WinBackStages interface {
	MarkWinBackLost(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error
}

// PointValues tells what points are worth to a merchant, for the cost
// figure (cmd/loyalty wires the points rules' liability value).
type PointValues interface {
	FenPer100Points(ctx context.Context, merchantID uint64) (int64, error)
}

// WinBack is the win-back service: the program's admin API, the pass and
// the report.
type WinBack struct {
	db     *gorm.DB
	mysql  bool
	rows   deliveryRows
	camps  *Campaigns
	zones  Zones
	stages WinBackStages
	values PointValues
	now    func() time.Time
	care   *Care // its logger, chunk size and owner
}

// NewWinBack returns the win-back service on the care service's engine.
// stages may be nil in tests that never reach lost; values may be nil
// (cost in points only).
func NewWinBack(c *Care, stages WinBackStages, values PointValues) *WinBack {
	return &WinBack{db: c.db, mysql: c.mysql, rows: c.rows, camps: c.camps, zones: c.zones, stages: stages, values: values,
		now: c.now, care: c}
}

// WinBackInput edits the program; absent fields stay.
type WinBackInput struct {
	Enabled         *bool         `json:"enabled"`
	MaxAttempts     *int          `json:"max_attempts"`
	IntervalDays    *int          `json:"interval_days"`
	SendMinute      *int          `json:"send_minute"`
	Channel         *Channel      `json:"channel"`
	IncludeLeadTier *bool         `json:"include_lead_tier"`
	Steps           []WinBackStep `json:"steps"`
}

// Settings returns the merchant's program (the defaults, disabled, when
// none was saved).
func (w *WinBack) Settings(ctx context.Context, merchantID uint64) (WinBackSettings, error) {
	return w.settingsIn(ctx, w.db, merchantID, false)
}

func (w *WinBack) settingsIn(ctx context.Context, tx *gorm.DB, merchantID uint64, lock bool) (WinBackSettings, error) {
	var s WinBackSettings
	q := tx.WithContext(ctx)
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	err := q.Where("merchant_id = ?", merchantID).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return defaultWinBack(merchantID), nil
	}
	if err != nil {
		return WinBackSettings{}, fmt.Errorf("win-back: settings: %w", err)
	}
	if s.Steps == nil {
		s.Steps = WinBackSteps{}
	}
	return s, nil
}

// check validates the program: bounds here, each step's message and offer
// as the campaign it becomes would be checked (the template must exist in
// WeChat). An enabled program needs one step per attempt.
func (w *WinBack) check(ctx context.Context, s WinBackSettings, stepsChanged bool) error {
	v := &apperr.Validation{}
	if s.MaxAttempts < 1 || s.MaxAttempts > MaxWinBackAttempts {
		v.Add("max_attempts", fmt.Sprintf("must be 1 to %d", MaxWinBackAttempts))
	}
	if s.IntervalDays < 1 || s.IntervalDays > MaxWinBackInterval {
		v.Add("interval_days", fmt.Sprintf("must be 1 to %d", MaxWinBackInterval))
	}
	if s.SendMinute < 0 || s.SendMinute > 24*60-1 {
		v.Add("send_minute", "must be 0 to 1439 (local minutes after midnight; 600 is 10:00)")
	}
	if !slices.Contains(Channels, s.Channel) {
		v.Add("channel", "must be template, mp_subscribe or customer_service")
	}
	if len(s.Steps) > MaxWinBackAttempts {
		v.Add("steps", fmt.Sprintf("must hold at most %d steps", MaxWinBackAttempts))
	} else if s.Enabled && len(s.Steps) != s.MaxAttempts {
		v.Add("steps", fmt.Sprintf("must hold one step per attempt (%d) to enable the program", s.MaxAttempts))
	}
	if err := v.Err(); err != nil || !stepsChanged {
		return err
	}
	for i, st := range s.Steps {
		c := Campaign{MerchantID: s.MerchantID, Name: fmt.Sprintf("win-back attempt %d", i+1), Kind: KindCare, Channel: s.Channel,
			TemplateID: st.TemplateID, Message: st.Message, Gift: st.Offer, ScheduleKind: ScheduleNow, AttributionDays: 7}
		err := w.camps.validate(ctx, &c)
		var bad *apperr.Validation
		switch {
		case errors.As(err, &bad):
			for f, reason := range bad.Fields {
				if f == "target" || strings.HasPrefix(f, "target.") || f == "name" {
					continue
				}
				if f == "gift" || strings.HasPrefix(f, "gift.") {
					f = "offer" + strings.TrimPrefix(f, "gift")
				}
				if f == "channel" {
					v.Add(f, reason)
					continue
				}
				v.Add(fmt.Sprintf("steps[%d].%s", i, f), reason)
			}
		case err != nil:
			return err
		}
	}
	return v.Err()
}

func winBackSummary(s WinBackSettings) map[string]any {
	return map[string]any{"enabled": s.Enabled, "max_attempts": s.MaxAttempts, "interval_days": s.IntervalDays,
		"send_minute": s.SendMinute, "channel": s.Channel, "include_lead_tier": s.IncludeLeadTier, "steps": s.Steps}
}

// Update edits the program. Enabling it starts it from now: members at
// risk or churned then enter at the next pass. Attempts planned and not
// yet taken by the engine follow the edit, as a marketer expects: they go
// with the edited message and offer, or are withdrawn when the program is
// disabled, their attempt is dropped or the channel now sends to another
// openid. The interval is read by every pass, so an edited one spaces the
// attempts still to come.
func (w *WinBack) Update(ctx context.Context, merchantID uint64, in WinBackInput) (WinBackSettings, error) {
	old, err := w.Settings(ctx, merchantID)
	if err != nil {
		return WinBackSettings{}, err
	}
	s := old
	if in.Enabled != nil {
		s.Enabled = *in.Enabled
	}
	if in.MaxAttempts != nil {
		s.MaxAttempts = *in.MaxAttempts
	}
	if in.IntervalDays != nil {
		s.IntervalDays = *in.IntervalDays
	}
	if in.SendMinute != nil {
		s.SendMinute = *in.SendMinute
	}
	if in.Channel != nil {
		s.Channel = *in.Channel
	}
	if in.IncludeLeadTier != nil {
		s.IncludeLeadTier = *in.IncludeLeadTier
	}
	if in.Steps != nil {
		s.Steps = WinBackSteps(in.Steps)
	}
	// Checked before the transaction: the template check asks WeChat.
	if err := w.check(ctx, s, in.Steps != nil || in.Channel != nil); err != nil {
		return WinBackSettings{}, err
	}
	offers := make([]int64, len(s.Steps))
	for i, st := range s.Steps {
		if offers[i], err = w.offerPoints(ctx, merchantID, st.Offer); err != nil {
			return WinBackSettings{}, err
		}
	}
	now := w.now()
	s.MerchantID, s.UpdatedAt = merchantID, now
	if s.Enabled && !old.Enabled {
		s.ActiveSince = &now
	}
	err = w.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		cur, err := w.settingsIn(ctx, tx, merchantID, true)
		if err != nil {
			return err
		}
		if !cur.UpdatedAt.Equal(old.UpdatedAt) {
			return apperr.New(apperr.ErrConflict, "the win-back program was changed by someone else meanwhile: reload it and try again")
		}
		if cur.CreatedAt.IsZero() {
			s.CreatedAt = now
			if err := tx.Create(&s).Error; err != nil {
				return fmt.Errorf("win-back: save settings: %w", err)
			}
		} else if err := tx.Model(&WinBackSettings{}).Where("merchant_id = ?", merchantID).Updates(map[string]any{
			"enabled": s.Enabled, "max_attempts": s.MaxAttempts, "interval_days": s.IntervalDays, "send_minute": s.SendMinute,
			"channel": s.Channel, "include_lead_tier": s.IncludeLeadTier, "steps": s.Steps, "active_since": s.ActiveSince,
			"updated_at": now}).Error; err != nil {
			return fmt.Errorf("win-back: save settings: %w", err)
		}
		if err := w.syncRuns(ctx, tx, old, s, offers, now); err != nil {
			return err
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "win_back.update", TargetType: "win_back",
			TargetIDs: []uint64{merchantID}, Before: winBackSummary(old), After: winBackSummary(s)}, now)
	})
	if err != nil {
		return WinBackSettings{}, err
	}
	return s, nil
}

// syncRuns brings the program's unfinished campaigns (attempts planned,
// some not sent yet) in line with the edited program s: each takes its
// attempt's channel, template, message and (for the runs with the offer)
// offer, and the attempts still pending record the new offer's cost; with
// the program disabled, the attempt dropped or the channel now sending to
// another openid, their pending rows are withdrawn instead. Only rows still
// pending move, as the engine's claim is conditional too: a row is sent as
// planned or as edited, never both.
func (w *WinBack) syncRuns(ctx context.Context, tx *gorm.DB, old, s WinBackSettings, offers []int64, now time.Time) error {
	var open []struct {
		CampaignID uint64
		Attempt    int
		Offer      bool
	}
	// win_back_runs' primary key (merchant_id, ...), then campaigns by id
	// and idx_deliveries_claim (campaign_id, status, id): a campaign counted
	// complete while quiet hours held rows is revived by the pass, so it is
	// the pending rows that make a run unfinished, not the status.
	if err := tx.WithContext(ctx).Table("win_back_runs r").Select("r.campaign_id, r.attempt, r.offer").
		Joins("JOIN campaigns c ON c.id = r.campaign_id").
		Where("r.merchant_id = ? AND c.status <> ? AND EXISTS (SELECT 1 FROM campaign_deliveries d WHERE d.campaign_id = c.id AND d.status = ?)",
			s.MerchantID, StatusCancelled, DeliveryPending).
		Find(&open).Error; err != nil {
		return fmt.Errorf("win-back: open runs: %w", err)
	}
	otherOpenID := (old.Channel == ChannelMPSubscribe) != (s.Channel == ChannelMPSubscribe)
	for _, r := range open {
		if !s.Enabled || otherOpenID || r.Attempt > s.MaxAttempts || r.Attempt > len(s.Steps) {
			if _, err := w.rows.withdraw(ctx, tx, r.CampaignID, ReasonWinBackChanged, now); err != nil {
				return fmt.Errorf("win-back: %w", err)
			}
			continue
		}
		step := s.Steps[r.Attempt-1]
		var gift *Gift
		points := int64(0)
		if r.Offer && step.Offer != nil {
			gift, points = step.Offer, offers[r.Attempt-1]
		}
		if err := tx.WithContext(ctx).Model(&Campaign{}).Where("id = ?", r.CampaignID).Updates(map[string]any{
			"channel": s.Channel, "template_id": step.TemplateID, "message": step.Message, "gift": gift,
			"updated_at": now}).Error; err != nil {
			return fmt.Errorf("win-back: campaign %d: %w", r.CampaignID, err)
		}
		// The campaign's pending members (idx_deliveries_claim), then
		// idx_win_back_attempts_member (merchant_id, member_id).
		if err := tx.WithContext(ctx).Exec("UPDATE win_back_attempts SET offer_points = ? WHERE merchant_id = ? AND campaign_id = ? "+
			"AND member_id IN (SELECT d.member_id FROM campaign_deliveries d WHERE d.campaign_id = ? AND d.status = ?)",
			points, s.MerchantID, r.CampaignID, r.CampaignID, DeliveryPending).Error; err != nil {
			return fmt.Errorf("win-back: attempts of campaign %d: %w", r.CampaignID, err)
		}
	}
	return nil
}

// WinBackFilter narrows the episode list.
type WinBackFilter struct {
	Status   string
	MemberID uint64
	Before   uint64 // keyset cursor: episodes with a smaller id
	Limit    int
}

// Sequences lists the merchant's episodes, newest first.
func (w *WinBack) Sequences(ctx context.Context, merchantID uint64, f WinBackFilter) ([]WinBackSequence, error) {
	// Newest first by primary key (idx_win_back_sequences_open with a
	// status), then each member by primary key for the name a screen shows.
	q := w.db.WithContext(ctx).Table("win_back_sequences s").Select("s.*, m.name").
		Joins("JOIN members m ON m.id = s.member_id AND m.merchant_id = s.merchant_id").
		Where("s.merchant_id = ?", merchantID)
	if f.Status != "" {
		if !slices.Contains([]string{WinBackActive, WinBackWonBack, WinBackLost}, f.Status) {
			return nil, apperr.Invalid("status", "must be active, won_back or lost")
		}
		q = q.Where("s.status = ?", f.Status)
	}
	if f.MemberID != 0 {
		q = q.Where("s.member_id = ?", f.MemberID)
	}
	if f.Before != 0 {
		q = q.Where("s.id < ?", f.Before)
	}
	out := []WinBackSequence{}
	if err := q.Order("s.id DESC").Limit(f.Limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("win-back: sequences: %w", err)
	}
	return out, nil
}

// WinBackReport is the program's figures for the episodes that started in
// a period.
type WinBackReport struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Entered int64     `json:"entered"`
	Active  int64     `json:"active"`
	WonBack int64     `json:"won_back"`
	Lost    int64     `json:"lost"`
	// Rate is won back over ended (won back + lost), 0 to 1; 0 when none
	// ended.
	Rate float64 `json:"rate"`
	// Offers granted to the episodes' members and what they cost in points
	// (a reward at its points price), and in fen at the points rules'
	// liability value (0 when not set).
	OffersGranted int64 `json:"offers_granted"`
	CostPoints    int64 `json:"cost_points"`
	CostFen       int64 `json:"cost_fen"`
	// Cost per won-back member: every offer of the period's episodes
	// (the lost ones' too) over the members won back; 0 when none.
	CostPerWonBackPoints float64 `json:"cost_per_won_back_points"`
	CostPerWonBackFen    float64 `json:"cost_per_won_back_fen"`
}

// Report returns the figures of the episodes started in [from, to).
func (w *WinBack) Report(ctx context.Context, merchantID uint64, from, to time.Time) (WinBackReport, error) {
	r := WinBackReport{From: from, To: to}
	var counts []struct {
		Status string
		N      int64
	}
	// idx_win_back_sequences_started (merchant_id, started_at).
	if err := w.db.WithContext(ctx).Model(&WinBackSequence{}).Select("status, COUNT(*) AS n").
		Where("merchant_id = ? AND started_at >= ? AND started_at < ?", merchantID, from.UTC(), to.UTC()).
		Group("status").Find(&counts).Error; err != nil {
		return r, fmt.Errorf("win-back: report: %w", err)
	}
	for _, c := range counts {
		r.Entered += c.N
		switch c.Status {
		case WinBackActive:
			r.Active = c.N
		case WinBackWonBack:
			r.WonBack = c.N
		case WinBackLost:
			r.Lost = c.N
		}
	}
	var cost struct {
		N      int64
		Points int64
	}
	// The offers granted: the attempts' delivery rows whose gift was
	// granted (uk_deliveries per attempt).
	if err := w.db.WithContext(ctx).Raw("SELECT COUNT(*) AS n, COALESCE(SUM(a.offer_points), 0) AS points "+
		"FROM win_back_sequences s JOIN win_back_attempts a ON a.sequence_id = s.id "+
		"JOIN campaign_deliveries d ON d.campaign_id = a.campaign_id AND d.step = 1 AND d.member_id = a.member_id "+
		"WHERE s.merchant_id = ? AND s.started_at >= ? AND s.started_at < ? AND d.gift_state = ?",
		merchantID, from.UTC(), to.UTC(), GiftGranted).Scan(&cost).Error; err != nil {
		return r, fmt.Errorf("win-back: report cost: %w", err)
	}
	r.OffersGranted, r.CostPoints = cost.N, cost.Points
	if w.values != nil && r.CostPoints != 0 {
		per100, err := w.values.FenPer100Points(ctx, merchantID)
		if err != nil {
			return r, err
		}
		r.CostFen = r.CostPoints * per100 / 100
	}
	if ended := r.WonBack + r.Lost; ended > 0 {
		r.Rate = float64(r.WonBack) / float64(ended)
	}
	if r.WonBack > 0 {
		r.CostPerWonBackPoints = float64(r.CostPoints) / float64(r.WonBack)
		r.CostPerWonBackFen = float64(r.CostFen) / float64(r.WonBack)
	}
	return r, nil
}
