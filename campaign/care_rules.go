package campaign

// Care rules: automations a merchant enables once (birthday, membership
// anniversary, care dates, welcome on follow, stage changes, points about
// to expire), their admin API, and what an edit does to the messages a
// rule has planned and the engine has not taken yet. The scheduler that
// runs them is care_scheduler.go.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/points"
)

// CareKind is what a care rule follows.
type CareKind string

// Care rule kinds.
const (
	CareBirthday        CareKind = "birthday"               // N days before (0: on) the member's birthday
	CareAnniversary              = "membership_anniversary" // N days before each yearly anniversary of joining
	CareDateRule                 = "care_date"              // N days before a care date of a kind (wedding, child's birthday, custom)
	CareWelcome                  = "welcome"                // when a member follows the official account, once per member
	CareSecondPurchase           = "second_purchase"        // N days after becoming new, if still new: nudge to buy again
	CareWinBack                  = "win_back"               // N days after becoming at risk, if still at risk: a win-back offer
	CareWonBackThanks            = "won_back_thanks"        // N days after being won back: thank you
	CarePointsExpiring           = "points_expiring"        // points expiring within N days, once per expiry date
	CareCouponExpiring           = "coupon_expiring"        // a coupon expiring within N days, once per coupon (care_coupons.go)
	CareSurveyDetractor          = "survey_detractor"       // a survey answered with NPS 0–6: a service follow-up, once per answer
)

// CareKinds lists the care rule kinds.
var CareKinds = []CareKind{CareBirthday, CareAnniversary, CareDateRule, CareWelcome, CareSecondPurchase, CareWinBack,
	CareWonBackThanks, CarePointsExpiring, CareCouponExpiring, CareSurveyDetractor}

// Care date kinds a care_date rule may name (member.CareWedding...).
var careDateKinds = []string{"wedding_anniversary", "child_birthday", "custom"}

func careKindList() string {
	names := make([]string, len(CareKinds))
	for i, k := range CareKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Lifecycle stage and pyramid names the stage rules read (member package).
const (
	stageNew     = "new"
	stageAtRisk  = "at_risk"
	stageWonBack = "won_back"
	pyramidLead  = "lead"
	followKind   = "subscribe" // member_follow_events.kind of a follow
)

// careSpec is what a kind takes and how the scheduler treats it.
type careSpec struct {
	param         string // name of the days parameter: days_before, days_after, within_days, or "" for none
	min, max, def int
	careDate      bool   // takes care_date_kind and label
	leadTier      bool   // takes include_lead_tier
	sendTime      bool   // waits for the rule's local send time
	daily         bool   // looks members up once per local date (else: reads events since the last run)
	name          string // default rule name
}

var careSpecs = map[CareKind]careSpec{
	CareBirthday:       {param: "days_before", max: 30, sendTime: true, daily: true, name: "Birthday"},
	CareAnniversary:    {param: "days_before", max: 30, sendTime: true, daily: true, name: "Membership anniversary"},
	CareDateRule:       {param: "days_before", max: 30, careDate: true, sendTime: true, daily: true, name: "Care date"},
	CareWelcome:        {name: "Welcome"},
	CareSecondPurchase: {param: "days_after", min: 1, max: 90, def: 7, sendTime: true, name: "Second-purchase nudge"},
	CareWinBack:        {param: "days_after", max: 90, leadTier: true, sendTime: true, name: "Win-back offer"},
	CareWonBackThanks:  {param: "days_after", max: 30, sendTime: true, name: "Welcome back"},
	CarePointsExpiring: {param: "within_days", min: 1, max: 90, def: 7, sendTime: true, daily: true, name: "Points expiring"},
	CareCouponExpiring: {param: "within_days", min: 1, max: 90, def: 3, sendTime: true, daily: true, name: "Coupon expiring"},
	// At once (quiet hours hold it in the engine): a detractor is followed
	// up while the visit is fresh.
	CareSurveyDetractor: {name: "Survey detractor follow-up"},
}

// stageOf is the stage change each stage rule follows.
var stageOf = map[CareKind]string{CareSecondPurchase: stageNew, CareWinBack: stageAtRisk, CareWonBackThanks: stageWonBack}

// CareRule is a care_rules row.
type CareRule struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantID      uint64
	Name            string
	Kind            CareKind
	Enabled         bool
	Channel         Channel
	TemplateID      string
	Message         Message // a JSON column
	Gift            *Gift   // a JSON column; nil: no gift
	SendMinute      int     // local minutes after midnight
	Days            int     // days_before, days_after or within_days, by kind
	CareDateKind    string
	Label           string
	IncludeLeadTier bool
	ActiveSince     time.Time  // last enabled: nothing before fires
	ScannedThrough  *string    // date kinds: last local date looked up
	Watermark       *time.Time // event kinds: events up to here were read
	CreatedBy       uint64
	CreatedAt       time.Time
	UpdatedAt       time.Time
	DeletedAt       *time.Time
}

// TableName implements gorm's tabler.
func (CareRule) TableName() string { return "care_rules" }

// careRun is a care_runs row: the campaign of a rule's local day.
type careRun struct {
	MerchantID uint64 `gorm:"primaryKey"`
	RuleID     uint64 `gorm:"primaryKey"`
	LocalDate  string `gorm:"primaryKey"`
	CampaignID uint64
	CreatedAt  time.Time
}

func (careRun) TableName() string { return "care_runs" }

// CareSend is a care_sends row: one decided message of a rule.
type CareSend struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	RuleID     uint64
	MemberID   uint64
	Occurrence string
	LocalDate  string
	CampaignID uint64
	Batch      string
	CreatedAt  time.Time
}

// TableName implements gorm's tabler.
func (CareSend) TableName() string { return "care_sends" }

// Zones tells the scheduler each merchant's time zone; Merchants (and
// admin.Merchants) satisfy it.
type Zones interface {
	Location(ctx context.Context, merchantID uint64) (*time.Location, error)
}

// ExpiringPoints lists members whose points expire soon, by member id
// after a cursor; *points.Service satisfies it.
type ExpiringPoints interface {
	ExpiringSoon(ctx context.Context, merchantID uint64, within time.Duration, afterMemberID uint64, limit int) ([]points.Expiring, error)
}

// CareDeps are the care service's collaborators beyond the engine's.
type CareDeps struct {
	Zones    Zones           // default: the engine's Merchants
	Expiring ExpiringPoints  // nil: points_expiring rules find nobody
	Coupons  ExpiringCoupons // nil: coupon_expiring rules find nobody
}

// CareOptions tune the scheduler. Zero values pick the defaults.
type CareOptions struct {
	CatchUpDays int           // date kinds: missed days looked up later while the date is still ahead (default 3)
	EventLag    time.Duration // event kinds: how far back each run re-reads, for events written late (default 10m)
	StaleAfter  time.Duration // event kinds: events due longer ago than this never fire (default 7 days)
	Chunk       int           // members planned per transaction (default 500)
	MaxRules    int           // rules per merchant (default 100)
	Owner       string        // names this instance in logs (default host:pid:random)
}

func (o *CareOptions) defaults() {
	if o.CatchUpDays <= 0 {
		o.CatchUpDays = 3
	}
	if o.EventLag <= 0 {
		o.EventLag = 10 * time.Minute
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 7 * 24 * time.Hour
	}
	if o.Chunk <= 0 {
		o.Chunk = 500
	}
	if o.MaxRules <= 0 {
		o.MaxRules = 100
	}
	if o.Owner == "" {
		o.Owner = db.InstanceName()
	}
}

// Care is the care automations service: the rules' admin API and the
// scheduler.
type Care struct {
	db       *gorm.DB
	mysql    bool
	rows     deliveryRows
	camps    *Campaigns
	zones    Zones
	expiring ExpiringPoints
	coupons  ExpiringCoupons
	now      func() time.Time
	log      *slog.Logger
	o        CareOptions
}

// NewCare returns the care service; it shares the engine's database,
// clock, WeChat account (template checks) and merchants.
func NewCare(e *Engine, d CareDeps, o CareOptions) *Care {
	o.defaults()
	if d.Zones == nil {
		d.Zones = e.merchants
	}
	return &Care{db: e.db, mysql: e.mysql, rows: e.rows, camps: NewCampaigns(e), zones: d.Zones, expiring: d.Expiring, coupons: d.Coupons, now: e.now,
		log: e.log, o: o}
}

var errCareNotFound = apperr.New(apperr.ErrNotFound, "care rule not found")

// CareInput creates or edits a care rule; absent fields stay (edit) or
// take their defaults (create). Only the parameters of the rule's kind may
// be given.
type CareInput struct {
	Name            *string   `json:"name"`
	Kind            *CareKind `json:"kind"`
	Enabled         *bool     `json:"enabled"`
	Channel         *Channel  `json:"channel"`
	TemplateID      *string   `json:"template_id"`
	Message         *Message  `json:"message"`
	Gift            *Gift     `json:"gift"` // {} removes the gift
	SendMinute      *int      `json:"send_minute"`
	DaysBefore      *int      `json:"days_before"`
	DaysAfter       *int      `json:"days_after"`
	WithinDays      *int      `json:"within_days"`
	CareDateKind    *string   `json:"care_date_kind"`
	Label           *string   `json:"label"`
	IncludeLeadTier *bool     `json:"include_lead_tier"`
}

// apply writes the input onto r and checks the result: the kind's
// parameters here, the message like a campaign's (template in WeChat,
// fields, variables, gift). An edit that leaves the channel, template and
// message as they were does not ask WeChat, so a rule can be disabled
// while WeChat is unreachable.
func (s *Care) apply(ctx context.Context, r *CareRule, in CareInput, creating bool) error {
	v := &apperr.Validation{}
	spec, known := careSpecs[r.Kind]
	if !known {
		v.Add("kind", "must be one of "+careKindList())
	}
	if in.Name != nil {
		r.Name = *in.Name
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if in.Channel != nil {
		r.Channel = *in.Channel
	}
	if in.TemplateID != nil {
		r.TemplateID = *in.TemplateID
	}
	if in.Message != nil {
		r.Message = *in.Message
	}
	if in.Gift != nil {
		g := *in.Gift
		r.Gift = &g
		if g == (Gift{}) {
			r.Gift = nil
		}
	}
	if in.SendMinute != nil {
		switch {
		case known && !spec.sendTime:
			v.Add("send_minute", "does not apply: "+string(r.Kind)+" messages go out when the event happens")
		case *in.SendMinute < 0 || *in.SendMinute > 24*60-1:
			v.Add("send_minute", "must be 0 to 1439 (local minutes after midnight; 600 is 10:00)")
		default:
			r.SendMinute = *in.SendMinute
		}
	}
	for _, p := range []struct {
		name string
		val  *int
	}{{"days_before", in.DaysBefore}, {"days_after", in.DaysAfter}, {"within_days", in.WithinDays}} {
		if p.val == nil || !known {
			continue
		}
		if spec.param != p.name {
			v.Add(p.name, fmt.Sprintf("is not a parameter of %s rules", r.Kind))
			continue
		}
		if *p.val < spec.min || *p.val > spec.max {
			v.Add(p.name, fmt.Sprintf("must be %d to %d", spec.min, spec.max))
			continue
		}
		r.Days = *p.val
	}
	if known && !spec.careDate {
		if in.CareDateKind != nil {
			v.Add("care_date_kind", "is only for care_date rules")
		}
		if in.Label != nil {
			v.Add("label", "is only for care_date rules")
		}
	}
	if known && spec.careDate {
		if in.CareDateKind != nil {
			r.CareDateKind = *in.CareDateKind
		}
		if in.Label != nil {
			r.Label = strings.TrimSpace(*in.Label)
		}
		if !slices.Contains(careDateKinds, r.CareDateKind) {
			v.Add("care_date_kind", "must be one of "+strings.Join(careDateKinds, ", "))
		}
		if utf8.RuneCountInString(r.Label) > 64 {
			v.Add("label", "must be at most 64 characters")
		}
	}
	if in.IncludeLeadTier != nil {
		if known && !spec.leadTier {
			v.Add("include_lead_tier", "is only for win_back rules")
		} else {
			r.IncludeLeadTier = *in.IncludeLeadTier
		}
	}
	r.Name = strings.TrimSpace(r.Name)
	if creating || in.Channel != nil || in.TemplateID != nil || in.Message != nil {
		// The message is checked as the campaign it becomes would be.
		c := Campaign{MerchantID: r.MerchantID, Name: r.Name, Kind: KindCare, Channel: r.Channel, TemplateID: r.TemplateID,
			Message: r.Message, Gift: r.Gift, ScheduleKind: ScheduleNow, AttributionDays: 7}
		err := s.camps.validate(ctx, &c)
		var bad *apperr.Validation
		switch {
		case errors.As(err, &bad):
			for f, reason := range bad.Fields {
				if f != "target" && !strings.HasPrefix(f, "target.") { // a care rule's audience is its kind
					v.Add(f, reason)
				}
			}
		case err != nil:
			return err
		}
	} else {
		// As validate checks them, without the template.
		if r.Name == "" || strings.IndexFunc(r.Name, unicode.IsControl) >= 0 {
			v.Add("name", "is required: up to 64 characters, no control characters")
		}
		if in.Gift != nil && *in.Gift != (Gift{}) {
			if err := s.camps.checkGift(ctx, r.MerchantID, *in.Gift, v); err != nil {
				return err
			}
		}
	}
	if utf8.RuneCountInString(r.Name) > 64 {
		v.Add("name", "must be at most 64 characters")
	}
	return v.Err()
}

// careSummary is what the audit log keeps of a rule.
func careSummary(r CareRule) map[string]any {
	out := map[string]any{"name": r.Name, "kind": r.Kind, "enabled": r.Enabled, "channel": r.Channel,
		"template_id": r.TemplateID, "message": r.Message, "send_minute": r.SendMinute, "days": r.Days}
	if r.Gift != nil {
		out["gift"] = *r.Gift
	}
	if r.CareDateKind != "" {
		out["care_date_kind"], out["label"] = r.CareDateKind, r.Label
	}
	if r.IncludeLeadTier {
		out["include_lead_tier"] = true
	}
	return out
}

// Create saves a rule; it is enabled unless the input says otherwise, and
// fires for what happens from now on.
func (s *Care) Create(ctx context.Context, merchantID, staffID uint64, in CareInput) (CareRule, error) {
	if in.Kind == nil {
		return CareRule{}, apperr.Invalid("kind", "is required: one of "+careKindList())
	}
	now := s.now()
	r := CareRule{MerchantID: merchantID, Kind: *in.Kind, Enabled: true, SendMinute: 10 * 60,
		ActiveSince: now, CreatedBy: staffID, CreatedAt: now, UpdatedAt: now}
	if spec, ok := careSpecs[r.Kind]; ok {
		r.Days, r.Name = spec.def, spec.name
	}
	if err := s.apply(ctx, &r, in, true); err != nil {
		return CareRule{}, err
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		// idx_care_rules_merchant.
		if err := tx.Model(&CareRule{}).Where("merchant_id = ? AND deleted_at IS NULL", merchantID).Count(&n).Error; err != nil {
			return fmt.Errorf("care: count rules: %w", err)
		}
		if n >= int64(s.o.MaxRules) {
			return apperr.New(apperr.ErrConflict, "a merchant may have at most %d care rules: delete one first", s.o.MaxRules)
		}
		if err := tx.Create(&r).Error; err != nil {
			return fmt.Errorf("care: create rule: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "care_rule.create", TargetType: "care_rule",
			TargetIDs: []uint64{r.ID}, After: careSummary(r)}, now)
	})
	return r, err
}

// Get returns a rule of the merchant.
func (s *Care) Get(ctx context.Context, merchantID, id uint64) (CareRule, error) {
	return getRule(ctx, s.db, merchantID, id, false)
}

func getRule(ctx context.Context, tx *gorm.DB, merchantID, id uint64, lock bool) (CareRule, error) {
	q := tx.WithContext(ctx)
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return db.TakeOne[CareRule](q.Where("merchant_id = ? AND id = ? AND deleted_at IS NULL", merchantID, id),
		errCareNotFound, "care: rule %d", id)
}

// List returns the merchant's rules (at most MaxRules), oldest first.
func (s *Care) List(ctx context.Context, merchantID uint64) ([]CareRule, error) {
	var out []CareRule
	// idx_care_rules_merchant (merchant_id, id).
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND deleted_at IS NULL", merchantID).Order("id").
		Limit(1000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("care: list rules: %w", err)
	}
	return out, nil
}

// errCareEdited is a lost race between two edits of one rule.
var errCareEdited = apperr.New(apperr.ErrConflict, "the rule was changed by someone else meanwhile: reload it and try again")

// Update edits a rule. The kind cannot change. Messages the rule has
// planned and the engine has not taken yet follow the edit: they are sent
// with the new message and gift, or withdrawn when the rule is disabled or
// its channel now sends to another openid (mini-program vs official
// account). Enabling a disabled rule starts it afresh from now.
func (s *Care) Update(ctx context.Context, merchantID, id uint64, in CareInput) (CareRule, error) {
	old, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return CareRule{}, err
	}
	if in.Kind != nil && *in.Kind != old.Kind {
		return CareRule{}, apperr.Invalid("kind", "cannot change: create a rule of the other kind")
	}
	r := old
	// Checked before the transaction: the template check asks WeChat.
	if err := s.apply(ctx, &r, in, false); err != nil {
		return CareRule{}, err
	}
	now := s.now()
	r.UpdatedAt = now
	if r.Enabled && !old.Enabled {
		r.ActiveSince, r.ScannedThrough, r.Watermark = now, nil, nil
	}
	if r.Days != old.Days {
		// Look today up again with the new offset; care_sends keeps what
		// was already sent from being sent again.
		r.ScannedThrough = nil
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		cur, err := getRule(ctx, tx, merchantID, id, true)
		if err != nil {
			return err
		}
		if !cur.UpdatedAt.Equal(old.UpdatedAt) {
			return errCareEdited
		}
		if err := tx.Model(&CareRule{}).Where("id = ?", id).Updates(map[string]any{"name": r.Name, "enabled": r.Enabled,
			"channel": r.Channel, "template_id": r.TemplateID, "message": r.Message, "gift": r.Gift, "send_minute": r.SendMinute,
			"days": r.Days, "care_date_kind": r.CareDateKind, "label": r.Label, "include_lead_tier": r.IncludeLeadTier,
			"active_since": r.ActiveSince, "scanned_through": r.ScannedThrough, "watermark": r.Watermark,
			"updated_at": r.UpdatedAt}).Error; err != nil {
			return fmt.Errorf("care: update rule %d: %w", id, err)
		}
		reason := ReasonNone
		switch {
		case !r.Enabled:
			reason = ReasonCareRuleDisabled
		case (old.Channel == ChannelMPSubscribe) != (r.Channel == ChannelMPSubscribe):
			reason = ReasonCareRuleChanged
		}
		if err := s.syncCampaigns(ctx, tx, r, reason, now); err != nil {
			return err
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "care_rule.update", TargetType: "care_rule",
			TargetIDs: []uint64{id}, Before: careSummary(old), After: careSummary(r)}, now)
	})
	if err != nil {
		return CareRule{}, err
	}
	return r, nil
}

// Delete removes a rule: it fires no more, and what it planned that the
// engine has not taken yet is withdrawn. Its sends stay listed in the
// campaigns' deliveries.
func (s *Care) Delete(ctx context.Context, merchantID, id uint64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := getRule(ctx, tx, merchantID, id, true)
		if err != nil {
			return err
		}
		now := s.now()
		if err := tx.Model(&CareRule{}).Where("id = ?", id).
			Updates(map[string]any{"enabled": false, "deleted_at": now, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("care: delete rule %d: %w", id, err)
		}
		if err := s.syncCampaigns(ctx, tx, r, ReasonCareRuleDeleted, now); err != nil {
			return err
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "care_rule.delete", TargetType: "care_rule",
			TargetIDs: []uint64{id}, Before: careSummary(r)}, now)
	})
}

// syncCampaigns brings the rule's unfinished campaigns in line with it:
// their message follows the rule, and with a reason their pending rows are
// withdrawn. The withdrawal is conditional on a row still being pending, as
// the engine's claim is, so a row is either withdrawn or sent, never both.
func (s *Care) syncCampaigns(ctx context.Context, tx *gorm.DB, r CareRule, withdraw Reason, now time.Time) error {
	var open []struct {
		ID        uint64
		LocalDate string
	}
	// care_runs' primary key (merchant_id, rule_id, ...), then campaigns by id.
	if err := tx.WithContext(ctx).Table("care_runs r").Select("c.id, r.local_date").
		Joins("JOIN campaigns c ON c.id = r.campaign_id").
		Where("r.merchant_id = ? AND r.rule_id = ? AND c.status IN ?", r.MerchantID, r.ID, []Status{StatusRunning, StatusPaused}).
		Find(&open).Error; err != nil {
		return fmt.Errorf("care: rule %d campaigns: %w", r.ID, err)
	}
	for _, c := range open {
		if err := tx.WithContext(ctx).Model(&Campaign{}).Where("id = ?", c.ID).Updates(map[string]any{
			"name": careCampaignName(r, c.LocalDate), "channel": r.Channel, "template_id": r.TemplateID, "message": r.Message,
			"gift": r.Gift, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("care: campaign %d: %w", c.ID, err)
		}
		if withdraw == ReasonNone {
			continue
		}
		if _, err := s.rows.withdraw(ctx, tx, c.ID, withdraw, now); err != nil {
			return fmt.Errorf("care: %w", err)
		}
	}
	return nil
}

func careCampaignName(r CareRule, localDate string) string {
	return "care: " + r.Name + " " + localDate
}

// CareSendFilter narrows a rule's send list.
type CareSendFilter struct {
	MemberID uint64
	Before   uint64 // keyset cursor: sends with a smaller id
	Limit    int
}

// CareSendView is one message a rule decided, with where its delivery
// stands.
type CareSendView struct {
	ID         uint64         `json:"id"`
	MemberID   uint64         `json:"member_id"`
	Occurrence string         `json:"occurrence"`
	LocalDate  string         `json:"local_date"`
	CampaignID uint64         `json:"campaign_id"`
	CreatedAt  time.Time      `json:"created_at"`
	Status     DeliveryStatus `json:"status"` // the delivery's; "" when the member was gone when planned
	Reason     Reason         `json:"reason,omitempty"`
	SentAt     *time.Time     `json:"sent_at"`
}

// Sends lists a rule's recent sends, newest first, with their deliveries'
// status (the latest step's row of the member in the campaign).
func (s *Care) Sends(ctx context.Context, merchantID, ruleID uint64, f CareSendFilter) ([]CareSendView, error) {
	if _, err := s.Get(ctx, merchantID, ruleID); err != nil {
		return nil, err
	}
	q := s.db.WithContext(ctx).Where("merchant_id = ? AND rule_id = ?", merchantID, ruleID)
	if f.MemberID != 0 {
		q = q.Where("member_id = ?", f.MemberID)
	}
	if f.Before != 0 {
		q = q.Where("id < ?", f.Before)
	}
	var sends []CareSend
	// idx_care_sends_rule (merchant_id, rule_id, id), backwards.
	if err := q.Order("id DESC").Limit(f.Limit).Find(&sends).Error; err != nil {
		return nil, fmt.Errorf("care: sends of rule %d: %w", ruleID, err)
	}
	out := make([]CareSendView, len(sends))
	byCampaign := map[uint64][]uint64{}
	for i, cs := range sends {
		out[i] = CareSendView{ID: cs.ID, MemberID: cs.MemberID, Occurrence: cs.Occurrence, LocalDate: cs.LocalDate,
			CampaignID: cs.CampaignID, CreatedAt: cs.CreatedAt}
		byCampaign[cs.CampaignID] = append(byCampaign[cs.CampaignID], cs.MemberID)
	}
	latest := map[[2]uint64]Delivery{}
	for campID, members := range byCampaign {
		var rows []Delivery
		// uk_deliveries (campaign_id, step, member_id): the campaign's few steps.
		if err := s.db.WithContext(ctx).Where("campaign_id = ? AND member_id IN ?", campID, members).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("care: deliveries of campaign %d: %w", campID, err)
		}
		for _, d := range rows {
			k := [2]uint64{campID, d.MemberID}
			if cur, ok := latest[k]; !ok || d.Step > cur.Step {
				latest[k] = d
			}
		}
	}
	for i := range out {
		if d, ok := latest[[2]uint64{out[i].CampaignID, out[i].MemberID}]; ok {
			out[i].Status, out[i].Reason, out[i].SentAt = d.Status, d.Reason, d.SentAt
		}
	}
	return out, nil
}
