package campaign

// Care automations: rules a merchant enables once (birthday, membership
// anniversary, care dates, welcome on follow, stage changes, points about
// to expire) and a scheduler that, in each merchant's local time, finds the
// members a rule is due for and hands them to the delivery engine as rows
// of the rule's campaign of the day. The engine sends them like any capped
// campaign: quiet hours, the frequency cap, the quota, retries, receipts
// and gifts are its business.
//
// Exactly once per member and occurrence (a birthday per year, a stage
// event, a points expiry date...) is a constraint, not a hope: care_sends
// holds one row per (merchant, rule, member, occurrence) under a unique
// key, written in the transaction that plans the deliveries, and
// deliveries are planned only for the care_sends rows that transaction
// inserted itself. Two schedulers, or one running twice, cannot both win.
// The day's campaign is keyed likewise (care_runs), so concurrent
// schedulers share it.

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
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

// Care rule kinds.
const (
	CareBirthday       = "birthday"               // N days before (0: on) the member's birthday
	CareAnniversary    = "membership_anniversary" // N days before each yearly anniversary of joining
	CareDateRule       = "care_date"              // N days before a care date of a kind (wedding, child's birthday, custom)
	CareWelcome        = "welcome"                // when a member follows the official account, once per member
	CareSecondPurchase = "second_purchase"        // N days after becoming new, if still new: nudge to buy again
	CareWinBack        = "win_back"               // N days after becoming at risk, if still at risk: a win-back offer
	CareWonBackThanks  = "won_back_thanks"        // N days after being won back: thank you
	CarePointsExpiring = "points_expiring"        // points expiring within N days, once per expiry date
)

// CareKinds lists the care rule kinds.
var CareKinds = []string{CareBirthday, CareAnniversary, CareDateRule, CareWelcome, CareSecondPurchase, CareWinBack,
	CareWonBackThanks, CarePointsExpiring}

// Care date kinds a care_date rule may name (member.CareWedding...).
var careDateKinds = []string{"wedding_anniversary", "child_birthday", "custom"}

// Reasons a planned care delivery is withdrawn before it is sent (the
// rule was disabled, deleted, or moved to a channel that sends to another
// openid).
const (
	ReasonCareRuleChanged  = "care_rule_changed"
	ReasonCareRuleDisabled = "care_rule_disabled"
	ReasonCareRuleDeleted  = "care_rule_deleted"
)

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

var careSpecs = map[string]careSpec{
	CareBirthday:       {param: "days_before", max: 30, sendTime: true, daily: true, name: "Birthday"},
	CareAnniversary:    {param: "days_before", max: 30, sendTime: true, daily: true, name: "Membership anniversary"},
	CareDateRule:       {param: "days_before", max: 30, careDate: true, sendTime: true, daily: true, name: "Care date"},
	CareWelcome:        {name: "Welcome"},
	CareSecondPurchase: {param: "days_after", min: 1, max: 90, def: 7, sendTime: true, name: "Second-purchase nudge"},
	CareWinBack:        {param: "days_after", max: 90, leadTier: true, sendTime: true, name: "Win-back offer"},
	CareWonBackThanks:  {param: "days_after", max: 30, sendTime: true, name: "Welcome back"},
	CarePointsExpiring: {param: "within_days", min: 1, max: 90, def: 7, sendTime: true, daily: true, name: "Points expiring"},
}

// stageOf is the stage change each stage rule follows.
var stageOf = map[string]string{CareSecondPurchase: stageNew, CareWinBack: stageAtRisk, CareWonBackThanks: stageWonBack}

// CareRule is a care_rules row.
type CareRule struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantID      uint64
	Name            string
	Kind            string
	Enabled         bool
	Channel         string
	TemplateID      string
	Message         string  // JSON Message
	Gift            *string // JSON Gift
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
	Zones    Zones          // default: the engine's Merchants
	Expiring ExpiringPoints // nil: points_expiring rules find nobody
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
	camps    *Campaigns
	zones    Zones
	expiring ExpiringPoints
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
	return &Care{db: e.db, mysql: e.mysql, camps: NewCampaigns(e), zones: d.Zones, expiring: d.Expiring, now: e.now,
		log: e.log, o: o}
}

var errCareNotFound = apperr.New(apperr.ErrNotFound, "care rule not found")

// CareInput creates or edits a care rule; absent fields stay (edit) or
// take their defaults (create). Only the parameters of the rule's kind may
// be given.
type CareInput struct {
	Name            *string  `json:"name"`
	Kind            *string  `json:"kind"`
	Enabled         *bool    `json:"enabled"`
	Channel         *string  `json:"channel"`
	TemplateID      *string  `json:"template_id"`
	Message         *Message `json:"message"`
	Gift            *Gift    `json:"gift"` // {} removes the gift
	SendMinute      *int     `json:"send_minute"`
	DaysBefore      *int     `json:"days_before"`
	DaysAfter       *int     `json:"days_after"`
	WithinDays      *int     `json:"within_days"`
	CareDateKind    *string  `json:"care_date_kind"`
	Label           *string  `json:"label"`
	IncludeLeadTier *bool    `json:"include_lead_tier"`
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
		v.Add("kind", "must be one of "+strings.Join(CareKinds, ", "))
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
		raw, _ := json.Marshal(in.Message)
		r.Message = string(raw)
	}
	if in.Gift != nil {
		raw, _ := json.Marshal(in.Gift)
		g := string(raw)
		r.Gift = &g
		if *in.Gift == (Gift{}) {
			r.Gift = nil
		}
	}
	if in.SendMinute != nil {
		switch {
		case known && !spec.sendTime:
			v.Add("send_minute", "does not apply: welcome messages go out when the member follows")
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
			Message: r.Message, Target: "{}", Gift: r.Gift, ScheduleKind: ScheduleNow, AttributionDays: 7}
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
			switch g := *in.Gift; {
			case g.Points != 0 && g.RewardID != 0:
				v.Add("gift", "is either points or a reward_id")
			case g.Points < 0 || g.Points > 100000:
				v.Add("gift.points", "must be 1 to 100000")
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
		"template_id": r.TemplateID, "message": json.RawMessage(r.Message), "send_minute": r.SendMinute, "days": r.Days}
	if r.Gift != nil {
		out["gift"] = json.RawMessage(*r.Gift)
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
		return CareRule{}, apperr.Invalid("kind", "is required: one of "+strings.Join(CareKinds, ", "))
	}
	now := s.now()
	r := CareRule{MerchantID: merchantID, Kind: *in.Kind, Enabled: true, Message: "{}", SendMinute: 10 * 60,
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
		reason := ""
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
func (s *Care) syncCampaigns(ctx context.Context, tx *gorm.DB, r CareRule, withdraw string, now time.Time) error {
	var open []struct {
		ID        uint64
		LocalDate string
	}
	// care_runs' primary key (merchant_id, rule_id, ...), then campaigns by id.
	if err := tx.WithContext(ctx).Table("care_runs r").Select("c.id, r.local_date").
		Joins("JOIN campaigns c ON c.id = r.campaign_id").
		Where("r.merchant_id = ? AND r.rule_id = ? AND c.status IN ?", r.MerchantID, r.ID, []string{StatusRunning, StatusPaused}).
		Find(&open).Error; err != nil {
		return fmt.Errorf("care: rule %d campaigns: %w", r.ID, err)
	}
	for _, c := range open {
		if err := tx.WithContext(ctx).Model(&Campaign{}).Where("id = ?", c.ID).Updates(map[string]any{
			"name": careCampaignName(r, c.LocalDate), "channel": r.Channel, "template_id": r.TemplateID, "message": r.Message,
			"gift": r.Gift, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("care: campaign %d: %w", c.ID, err)
		}
		if withdraw == "" {
			continue
		}
		// idx_deliveries_claim (campaign_id, status, id).
		if err := tx.WithContext(ctx).Model(&Delivery{}).Where("campaign_id = ? AND status = ?", c.ID, DeliveryPending).
			Updates(map[string]any{"status": DeliverySkipped, "reason": withdraw, "finished_at": now, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("care: withdraw campaign %d: %w", c.ID, err)
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
	ID         uint64     `json:"id"`
	MemberID   uint64     `json:"member_id"`
	Occurrence string     `json:"occurrence"`
	LocalDate  string     `json:"local_date"`
	CampaignID uint64     `json:"campaign_id"`
	CreatedAt  time.Time  `json:"created_at"`
	Status     string     `json:"status"` // the delivery's; "" when the member was gone when planned
	Reason     string     `json:"reason,omitempty"`
	SentAt     *time.Time `json:"sent_at"`
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

// ---- The scheduler ----

// Run calls RunOnce every interval until ctx ends. Any number of
// instances may run it.
func (s *Care) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "care: scheduler round failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs every enabled rule of every merchant once, in the
// merchant's local time.
func (s *Care) RunOnce(ctx context.Context) error {
	var ids []uint64
	// idx_care_rules_enabled (enabled, merchant_id): the merchants with work.
	if err := s.db.WithContext(ctx).Model(&CareRule{}).Where("enabled = ? AND deleted_at IS NULL", true).
		Distinct("merchant_id").Order("merchant_id").Pluck("merchant_id", &ids).Error; err != nil {
		return fmt.Errorf("care: merchants: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.RunMerchant(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("merchant %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// RunMerchant runs the merchant's enabled rules once.
func (s *Care) RunMerchant(ctx context.Context, merchantID uint64) error {
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return fmt.Errorf("care: zone: %w", err)
	}
	var rules []CareRule
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND enabled = ? AND deleted_at IS NULL", merchantID, true).
		Order("id").Find(&rules).Error; err != nil {
		return fmt.Errorf("care: rules: %w", err)
	}
	now := s.now()
	var errs []error
	for _, r := range rules {
		if err := s.runRule(ctx, r, loc, now); err != nil {
			s.log.WarnContext(ctx, "care: rule failed", "merchant_id", merchantID, "care_rule_id", r.ID, "error", err)
			errs = append(errs, fmt.Errorf("rule %d: %w", r.ID, err))
		}
	}
	if err := s.revive(ctx, merchantID, civil(now.In(loc))); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// civil is the calendar date of t (in t's zone) as midnight UTC, so date
// arithmetic never meets a DST change.
func civil(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// localMidnight is the instant a civil date starts in loc.
func localMidnight(day time.Time, loc *time.Location) time.Time {
	y, m, d := day.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// firingDays are the days of target's month whose yearly dates are
// celebrated on target: the day itself, and on 28 February of a common
// year also the 29th (DOMAIN: Feb 29 → Feb 28 in non-leap years).
func firingDays(target time.Time) []int {
	if target.Month() == time.February && target.Day() == 28 && !isLeap(target.Year()) {
		return []int{28, 29}
	}
	return []int{target.Day()}
}

func (s *Care) runRule(ctx context.Context, r CareRule, loc *time.Location, now time.Time) error {
	spec := careSpecs[r.Kind]
	local := now.In(loc)
	if spec.sendTime && local.Hour()*60+local.Minute() < r.SendMinute {
		return nil // today's turn comes at the send time
	}
	if spec.daily {
		return s.runDaily(ctx, r, loc, civil(local))
	}
	return s.runEvents(ctx, r, loc, now)
}

// runDaily looks up the members due on today's local date (and on missed
// days whose dates are still ahead), once per day.
func (s *Care) runDaily(ctx context.Context, r CareRule, loc *time.Location, today time.Time) error {
	first := today
	if r.ScannedThrough != nil {
		last, err := time.Parse(time.DateOnly, *r.ScannedThrough)
		if err == nil && !last.Before(today) {
			return nil
		}
		// Days this scheduler missed (every instance down) are looked up
		// late only while what they announce is still ahead: a birthday
		// three days away can be announced two days away, but a greeting
		// for a day that has passed is not sent.
		back := 0
		if r.Kind != CarePointsExpiring {
			back = min(s.o.CatchUpDays, r.Days)
		}
		first = today.AddDate(0, 0, -back)
		if err == nil && last.AddDate(0, 0, 1).After(first) {
			first = last.AddDate(0, 0, 1)
		}
	}
	date := today.Format(time.DateOnly)
	for d := first; !d.After(today); d = d.AddDate(0, 0, 1) {
		items, err := s.dueOn(ctx, r, loc, d)
		if err != nil {
			return err
		}
		if err := s.deliver(ctx, r, date, items); err != nil {
			return err
		}
	}
	// Conditional and monotonic: a slower instance never moves it back.
	if err := s.db.WithContext(ctx).Model(&CareRule{}).
		Where("id = ? AND (scanned_through IS NULL OR scanned_through < ?)", r.ID, date).
		UpdateColumn("scanned_through", date).Error; err != nil { // UpdateColumn: not an edit, updated_at stays
		return fmt.Errorf("care: rule %d: scanned: %w", r.ID, err)
	}
	return nil
}

// careItem is a member a rule is due for, and for what.
type careItem struct {
	memberID   uint64
	occurrence string
}

// dueOn returns the members a date rule is due for on local date d.
func (s *Care) dueOn(ctx context.Context, r CareRule, loc *time.Location, d time.Time) ([]careItem, error) {
	target := d.AddDate(0, 0, r.Days) // the date being announced
	year := strconv.Itoa(target.Year())
	gdb := s.db.WithContext(ctx)
	var items []careItem
	switch r.Kind {
	case CareBirthday:
		var ids []uint64
		// idx_members_birthday (merchant_id, birthday_month, id, ...): the
		// month's members; the day is checked on the row (a month is 1/12
		// of the members, read once a day).
		if err := gdb.Table("members").Where("merchant_id = ? AND birthday_month = ? AND birthday_day IN ? AND erased_at IS NULL"+
			" AND (birthday_year IS NULL OR birthday_year < ?)", r.MerchantID, int(target.Month()), firingDays(target), target.Year()).
			Order("id").Pluck("id", &ids).Error; err != nil {
			return nil, fmt.Errorf("care: birthdays: %w", err)
		}
		for _, id := range ids {
			items = append(items, careItem{id, year})
		}
	case CareAnniversary:
		ids, err := s.anniversaries(ctx, r.MerchantID, loc, target)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			items = append(items, careItem{id, year})
		}
	case CareDateRule:
		var rows []struct {
			ID       uint64
			MemberID uint64
		}
		// idx_care_dates_day (merchant_id, month, day).
		q := gdb.Table("member_care_dates cd").Select("cd.id, cd.member_id").
			Joins("JOIN members m ON m.id = cd.member_id AND m.merchant_id = cd.merchant_id").
			Where("cd.merchant_id = ? AND cd.month = ? AND cd.day IN ? AND cd.kind = ? AND (cd.year IS NULL OR cd.year < ?)"+
				" AND m.erased_at IS NULL", r.MerchantID, int(target.Month()), firingDays(target), r.CareDateKind, target.Year())
		if r.Label != "" {
			q = q.Where("LOWER(cd.label) = LOWER(?)", r.Label)
		}
		if err := q.Order("cd.member_id, cd.id").Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("care: care dates: %w", err)
		}
		for _, row := range rows {
			items = append(items, careItem{row.MemberID, fmt.Sprintf("%d:%d", row.ID, target.Year())})
		}
	case CarePointsExpiring:
		if s.expiring == nil {
			return nil, nil
		}
		within := time.Duration(r.Days) * 24 * time.Hour
		var after uint64
		for {
			page, err := s.expiring.ExpiringSoon(ctx, r.MerchantID, within, after, 1000)
			if err != nil {
				return nil, fmt.Errorf("care: expiring points: %w", err)
			}
			for _, x := range page {
				// One reminder per expiry date: the next lot's date is a
				// new occurrence.
				items = append(items, careItem{x.MemberID, x.FirstExpiresAt.In(loc).Format(time.DateOnly)})
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].MemberID
		}
	}
	return items, nil
}

// anniversaries returns the members who joined (local date of created_at)
// a whole number of years before target, Feb 29 joiners counting on Feb 28
// in common years. Each year is one created_at range of
// idx_members_created (merchant_id, created_at, ...).
func (s *Care) anniversaries(ctx context.Context, merchantID uint64, loc *time.Location, target time.Time) ([]uint64, error) {
	var first []time.Time
	if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ?", merchantID).Order("created_at").Limit(1).
		Pluck("created_at", &first).Error; err != nil {
		return nil, fmt.Errorf("care: first member: %w", err)
	}
	if len(first) == 0 {
		return nil, nil
	}
	var conds []string
	var args []any
	for y := max(first[0].In(loc).Year(), target.Year()-100); y < target.Year(); y++ {
		for _, day := range firingDays(target) {
			d := time.Date(y, target.Month(), day, 0, 0, 0, 0, time.UTC)
			if d.Month() != target.Month() {
				continue // 29 February of a common year
			}
			from := localMidnight(d, loc)
			conds = append(conds, "(created_at >= ? AND created_at < ?)")
			args = append(args, from.UTC(), localMidnight(d.AddDate(0, 0, 1), loc).UTC())
		}
	}
	if len(conds) == 0 {
		return nil, nil
	}
	var ids []uint64
	if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ? AND erased_at IS NULL", merchantID).
		Where("("+strings.Join(conds, " OR ")+")", args...).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("care: anniversaries: %w", err)
	}
	return ids, nil
}

// eventPage is how many events one query reads; eventPages bounds a run.
const (
	eventPage  = 1000
	eventPages = 50
)

// runEvents reads the events a welcome or stage rule follows since the
// last run (re-reading EventLag back for events written late; care_sends
// makes the overlap harmless) and plans their messages. A stage rule with
// days_after N fires on the local date N days after the change, at the
// send time.
func (s *Care) runEvents(ctx context.Context, r CareRule, loc *time.Location, now time.Time) error {
	upper, floor := now, r.ActiveSince
	if r.Kind != CareWelcome {
		today := civil(now.In(loc))
		if end := localMidnight(today.AddDate(0, 0, 1-r.Days), loc); end.Before(upper) {
			upper = end
		}
		floor = localMidnight(civil(r.ActiveSince.In(loc)).AddDate(0, 0, -r.Days), loc)
	}
	lower := upper.Add(-s.o.StaleAfter)
	if floor.After(lower) {
		lower = floor
	}
	if r.Watermark != nil {
		if w := r.Watermark.Add(-s.o.EventLag); w.After(lower) {
			lower = w
		}
	}
	if !upper.After(lower) {
		return nil
	}
	date := civil(now.In(loc)).Format(time.DateOnly)
	mark := upper
	var cursor *struct {
		at time.Time
		id uint64
	}
	for page := 0; ; page++ {
		if page == eventPages {
			mark = cursor.at // the rest next run
			break
		}
		var rows []struct {
			ID         uint64
			MemberID   uint64
			OccurredAt time.Time
		}
		var q *gorm.DB
		if r.Kind == CareWelcome {
			// idx_follow_events_time (merchant_id, kind, occurred_at, ...).
			q = s.db.WithContext(ctx).Table("member_follow_events e").Select("e.id, e.member_id, e.occurred_at").
				Where("e.merchant_id = ? AND e.kind = ? AND e.occurred_at > ? AND e.occurred_at <= ?", r.MerchantID, followKind,
					lower.UTC(), upper.UTC())
		} else {
			// idx_stage_events_time (merchant_id, to_stage, occurred_at); the
			// member's present stage decides whether the message still fits.
			q = s.db.WithContext(ctx).Table("member_stage_events e").Select("e.id, e.member_id, e.occurred_at").
				Joins("JOIN members m ON m.id = e.member_id AND m.merchant_id = e.merchant_id").
				Where("e.merchant_id = ? AND e.to_stage = ? AND e.occurred_at > ? AND e.occurred_at <= ? AND m.erased_at IS NULL",
					r.MerchantID, stageOf[r.Kind], lower.UTC(), upper.UTC())
			switch r.Kind {
			case CareSecondPurchase:
				q = q.Where("m.lifecycle_stage = ?", stageNew) // bought again already: no nudge
			case CareWinBack:
				q = q.Where("m.lifecycle_stage = ?", stageAtRisk)
				if !r.IncludeLeadTier {
					// DOMAIN: lead-tier members get no paid win-back offers
					// unless the merchant says so.
					q = q.Where("(m.pyramid_tier IS NULL OR m.pyramid_tier <> ?)", pyramidLead)
				}
			}
		}
		if cursor != nil {
			q = q.Where("(e.occurred_at > ? OR (e.occurred_at = ? AND e.id > ?))", cursor.at.UTC(), cursor.at.UTC(), cursor.id)
		}
		if err := q.Order("e.occurred_at, e.id").Limit(eventPage).Find(&rows).Error; err != nil {
			return fmt.Errorf("care: events: %w", err)
		}
		items := make([]careItem, len(rows))
		for i, e := range rows {
			occ := "follow" // welcome: once per member, ever
			if r.Kind != CareWelcome {
				occ = strconv.FormatUint(e.ID, 10)
			}
			items[i] = careItem{e.MemberID, occ}
		}
		if err := s.deliver(ctx, r, date, items); err != nil {
			return err
		}
		if len(rows) < eventPage {
			break
		}
		last := rows[len(rows)-1]
		cursor = &struct {
			at time.Time
			id uint64
		}{last.OccurredAt, last.ID}
	}
	if err := s.db.WithContext(ctx).Model(&CareRule{}).Where("id = ? AND (watermark IS NULL OR watermark < ?)", r.ID, mark.UTC()).
		UpdateColumn("watermark", mark.UTC()).Error; err != nil {
		return fmt.Errorf("care: rule %d: watermark: %w", r.ID, err)
	}
	return nil
}

// deliver plans the rule's messages for items in its campaign of the local
// date: members already served for the occurrence, gone or erased are
// dropped, the rest are written a chunk per transaction.
func (s *Care) deliver(ctx context.Context, r CareRule, localDate string, items []careItem) error {
	if len(items) == 0 {
		return nil
	}
	seen := make(map[careItem]bool, len(items))
	uniq := items[:0:0]
	for _, it := range items {
		if !seen[it] {
			seen[it] = true
			uniq = append(uniq, it)
		}
	}
	items, err := s.unserved(ctx, r, uniq)
	if err != nil || len(items) == 0 {
		return err
	}
	sort.Slice(items, func(i, j int) bool { // one lock order for every instance
		if items[i].memberID != items[j].memberID {
			return items[i].memberID < items[j].memberID
		}
		return items[i].occurrence < items[j].occurrence
	})
	campaignID, err := s.campaignFor(ctx, r, localDate)
	if err != nil {
		return err
	}
	planned := 0
	for start := 0; start < len(items); start += s.o.Chunk {
		n, err := s.plan(ctx, r, campaignID, localDate, items[start:min(start+s.o.Chunk, len(items))])
		if errors.Is(err, errCareCancelled) {
			s.log.InfoContext(ctx, "care: the day's campaign was cancelled; nothing more planned today", "merchant_id",
				r.MerchantID, "care_rule_id", r.ID, "campaign_id", campaignID)
			return nil
		}
		if err != nil {
			return err
		}
		planned += n
	}
	if planned > 0 {
		s.log.InfoContext(ctx, "care: planned", "merchant_id", r.MerchantID, "care_rule_id", r.ID, "campaign_id", campaignID,
			"deliveries", planned, "owner", s.o.Owner)
	}
	return nil
}

// unserved drops the items the rule already served and the members that
// are gone or erased. (An optimisation and a courtesy: the unique key is
// what guarantees once.)
func (s *Care) unserved(ctx context.Context, r CareRule, items []careItem) ([]careItem, error) {
	var out []careItem
	for start := 0; start < len(items); start += 500 {
		part := items[start:min(start+500, len(items))]
		ids := make([]uint64, 0, len(part))
		for _, it := range part {
			ids = append(ids, it.memberID)
		}
		var served []struct {
			MemberID   uint64
			Occurrence string
		}
		// uk_care_sends (merchant_id, rule_id, member_id, ...).
		if err := s.db.WithContext(ctx).Model(&CareSend{}).Select("member_id, occurrence").
			Where("merchant_id = ? AND rule_id = ? AND member_id IN ?", r.MerchantID, r.ID, ids).Find(&served).Error; err != nil {
			return nil, fmt.Errorf("care: served: %w", err)
		}
		done := make(map[careItem]bool, len(served))
		for _, sv := range served {
			done[careItem{sv.MemberID, sv.Occurrence}] = true
		}
		var living []uint64
		if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ? AND id IN ? AND erased_at IS NULL", r.MerchantID, ids).
			Pluck("id", &living).Error; err != nil {
			return nil, fmt.Errorf("care: members: %w", err)
		}
		alive := make(map[uint64]bool, len(living))
		for _, id := range living {
			alive[id] = true
		}
		for _, it := range part {
			if !done[it] && alive[it.memberID] {
				out = append(out, it)
			}
		}
	}
	return out, nil
}

// campaignFor returns the rule's campaign of the local date, creating it
// (running, planned: the scheduler adds its rows) the first time. Two
// schedulers creating it at once both insert a campaign and its care_runs
// row in one transaction; the second gets a duplicate key, rolls back its
// campaign and uses the first one's.
func (s *Care) campaignFor(ctx context.Context, r CareRule, localDate string) (uint64, error) {
	find := func() (uint64, bool, error) {
		var run careRun
		err := s.db.WithContext(ctx).Where("merchant_id = ? AND rule_id = ? AND local_date = ?", r.MerchantID, r.ID, localDate).
			Take(&run).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("care: run %s: %w", localDate, err)
		}
		return run.CampaignID, true, nil
	}
	if id, ok, err := find(); ok || err != nil {
		return id, err
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		c := Campaign{MerchantID: r.MerchantID, Name: careCampaignName(r, localDate), Kind: KindCare, Status: StatusRunning,
			Channel: r.Channel, TemplateID: r.TemplateID, Message: r.Message, Target: "{}", Gift: r.Gift,
			ScheduleKind: ScheduleNow, AttributionDays: 7, Step: 1, StepStartedAt: &now, PlanDone: true,
			CreatedBy: r.CreatedBy, CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&c).Error; err != nil {
			return fmt.Errorf("care: create campaign: %w", err)
		}
		return tx.Create(&careRun{MerchantID: r.MerchantID, RuleID: r.ID, LocalDate: localDate, CampaignID: c.ID, CreatedAt: now}).Error
	})
	if err != nil && !db.IsDuplicate(err) {
		return 0, fmt.Errorf("care: run %s: %w", localDate, err)
	}
	id, ok, err := find()
	if err == nil && !ok {
		err = fmt.Errorf("care: run %s of rule %d vanished", localDate, r.ID)
	}
	return id, err
}

var errCareCancelled = errors.New("care: campaign cancelled")

// plan writes one chunk in one transaction: the care_sends rows first
// (duplicates of the unique key are ignored), then a delivery for each
// member whose care_sends row this transaction inserted (found by the
// transaction's own batch id), with the planner's openid and skip rules.
// It returns how many deliveries it planned. The campaign row is locked
// first so a resend (a new step) or a status change waits; a campaign
// the engine completed meanwhile runs again.
func (s *Care) plan(ctx context.Context, r CareRule, campaignID uint64, localDate string, items []careItem) (int, error) {
	var planned int
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		planned = 0
		var c Campaign
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", campaignID).Take(&c).Error; err != nil {
			return fmt.Errorf("care: campaign %d: %w", campaignID, err)
		}
		if c.Status == StatusCancelled {
			return errCareCancelled
		}
		now := s.now()
		batch := newBatchID()
		var b strings.Builder
		args := make([]any, 0, 8*len(items))
		b.WriteString("INSERT INTO care_sends (merchant_id, rule_id, member_id, occurrence, local_date, campaign_id, batch, created_at) VALUES ")
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, r.MerchantID, r.ID, it.memberID, it.occurrence, localDate, campaignID, batch, now)
		}
		if s.mysql {
			b.WriteString(" ON DUPLICATE KEY UPDATE id = id")
		} else {
			b.WriteString(" ON CONFLICT (merchant_id, rule_id, member_id, occurrence) DO NOTHING")
		}
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			return fmt.Errorf("care: sends: %w", err)
		}
		// The members of this batch: idx_care_sends_batch, then members by
		// primary key. A member with two occurrences the same day (two
		// children born on one date) gets one message.
		openid, status, reason := skipExprs(c)
		q := "INSERT INTO campaign_deliveries (merchant_id, campaign_id, step, member_id, openid, capped, status, reason, created_at, updated_at) " +
			"SELECT m.merchant_id, ?, ?, m.id, COALESCE(" + openid + ", ''), ?, " + status + ", " + reason + ", ?, ? " +
			"FROM members m WHERE m.merchant_id = ? AND m.id IN (SELECT cs.member_id FROM care_sends cs WHERE cs.merchant_id = ? AND cs.batch = ?)"
		if s.mysql {
			q += " ON DUPLICATE KEY UPDATE campaign_deliveries.id = campaign_deliveries.id"
		} else {
			q += " ON CONFLICT (campaign_id, step, member_id) DO NOTHING"
		}
		res := tx.Exec(q, c.ID, c.Step, c.Capped(), now, now, r.MerchantID, r.MerchantID, batch)
		if res.Error != nil {
			return fmt.Errorf("care: deliveries: %w", res.Error)
		}
		planned = int(res.RowsAffected)
		if planned > 0 && c.Status == StatusCompleted {
			if err := tx.Model(&Campaign{}).Where("id = ? AND status = ?", c.ID, StatusCompleted).
				Updates(map[string]any{"status": StatusRunning, "completed_at": nil, "updated_at": now}).Error; err != nil {
				return fmt.Errorf("care: reopen campaign %d: %w", c.ID, err)
			}
		}
		return nil
	})
	return planned, err
}

// revive runs again the merchant's recent care campaigns that hold pending
// rows but were completed: the engine's completion check (no open rows,
// then complete) can interleave with a scheduler adding rows to the day's
// campaign, and the rows would otherwise wait forever.
func (s *Care) revive(ctx context.Context, merchantID uint64, today time.Time) error {
	var ids []uint64
	// idx_care_runs_date (merchant_id, local_date).
	if err := s.db.WithContext(ctx).Model(&careRun{}).
		Where("merchant_id = ? AND local_date >= ?", merchantID, today.AddDate(0, 0, -s.o.CatchUpDays-1).Format(time.DateOnly)).
		Pluck("campaign_id", &ids).Error; err != nil {
		return fmt.Errorf("care: recent runs: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	res := s.db.WithContext(ctx).Model(&Campaign{}).
		Where("id IN ? AND status = ? AND EXISTS (SELECT 1 FROM campaign_deliveries d WHERE d.campaign_id = campaigns.id"+
			" AND d.step = campaigns.step AND d.status = ?)", ids, StatusCompleted, DeliveryPending).
		Updates(map[string]any{"status": StatusRunning, "completed_at": nil, "updated_at": s.now()})
	if res.Error != nil {
		return fmt.Errorf("care: revive campaigns: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		s.log.InfoContext(ctx, "care: campaigns completed under new rows run again", "merchant_id", merchantID,
			"campaigns", res.RowsAffected)
	}
	return nil
}

// inTx runs fn in a transaction, again when it loses a deadlock or lock
// wait to another instance (every statement in it is safe to rerun).
func (s *Care) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := range 5 {
		if err = s.db.WithContext(ctx).Transaction(fn); err == nil || !db.IsTransient(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1)*5*time.Millisecond + time.Duration(rand.IntN(5))*time.Millisecond)
	}
	return err
}

func newBatchID() string {
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
