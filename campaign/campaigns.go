package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

var errNotFound = apperr.New(apperr.ErrNotFound, "campaign not found")

// Variables a message may use.
var knownVariables = []string{"name", "points", "tier", "expiring_points", "merchant"}

// cronParser reads standard five-field cron expressions.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// nextCron returns the next time the expression fires after t, in the
// merchant's zone; an expression that never fires within a year is an
// error.
func nextCron(expr string, t time.Time, loc *time.Location) (time.Time, error) {
	sched, err := cronParser.Parse(expr)
	if err != nil {
		// The parser's own words name Go functions (strconv.Atoi...): an
		// API answer says it plainly.
		return time.Time{}, fmt.Errorf("cron %q is not a valid expression", expr)
	}
	next := sched.Next(t.In(loc))
	if next.IsZero() || next.Sub(t) > 366*24*time.Hour {
		return time.Time{}, fmt.Errorf("cron %q never fires within a year", expr)
	}
	return next.UTC(), nil
}

// Campaigns is the campaign service of the admin API.
type Campaigns struct {
	db        *gorm.DB
	engine    *Engine
	now       func() time.Time
	audiences Audiences
	wx        WeChat
	merchants Merchants
}

// NewCampaigns returns the campaign service; it shares the engine's
// collaborators.
func NewCampaigns(e *Engine) *Campaigns {
	return &Campaigns{db: e.db, engine: e, now: e.now, audiences: e.audiences, wx: e.wx, merchants: e.merchants}
}

// Input creates or edits a campaign; absent fields stay (edit) or take
// their defaults (create).
type Input struct {
	Name            *string        `json:"name"`
	Channel         *Channel       `json:"channel"`
	TemplateID      *string        `json:"template_id"`
	Message         *Message       `json:"message"`
	Target          *Target        `json:"target"`
	Gift            *Gift          `json:"gift"`
	HoldoutPct      *int           `json:"holdout_pct"`
	Schedule        *ScheduleInput `json:"schedule"`
	AttributionDays *int           `json:"attribution_days"`
}

// ScheduleInput is when a campaign sends: now, at a time, or recurring.
type ScheduleInput struct {
	Kind   ScheduleKind `json:"kind"` // now, at or cron
	SendAt *time.Time   `json:"send_at"`
	Cron   string       `json:"cron"` // five fields, in the merchant's time zone
}

// validate checks a campaign as it would be saved, including against
// WeChat (the template and its fields) and the segment store.
func (s *Campaigns) validate(ctx context.Context, c *Campaign) error {
	v := &apperr.Validation{}
	name := strings.TrimSpace(c.Name)
	if name == "" || utf8.RuneCountInString(name) > 128 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		v.Add("name", "is required: up to 128 characters, no control characters")
	}
	c.Name = name
	if !slices.Contains(Channels, c.Channel) {
		v.Add("channel", "must be template, mp_subscribe or customer_service")
	}
	msg := c.Message
	checkVars := func(field, text string) { checkVariables(v, field, text) }
	switch c.Channel {
	case ChannelTemplate, ChannelMPSubscribe:
		if c.TemplateID == "" || len(c.TemplateID) > 128 {
			v.Add("template_id", "is required")
		} else if err := s.checkTemplate(ctx, c, msg, v); err != nil {
			return err
		}
		if len(msg.Fields) == 0 {
			v.Add("message.fields", "must fill at least one template field")
		}
		for k, text := range msg.Fields {
			if utf8.RuneCountInString(text) > 200 {
				v.Add("message.fields."+k, "must be at most 200 characters")
			}
			checkVars("message.fields."+k, text)
		}
		if msg.Text != "" {
			v.Add("message.text", "is for customer-service messages")
		}
	case ChannelCustomerService:
		if strings.TrimSpace(msg.Text) == "" || utf8.RuneCountInString(msg.Text) > 600 {
			v.Add("message.text", "is required: up to 600 characters")
		}
		checkVars("message.text", msg.Text)
		if c.TemplateID != "" || len(msg.Fields) > 0 {
			v.Add("template_id", "is for template and subscribe messages")
		}
	}
	if msg.URL != "" && !strings.HasPrefix(msg.URL, "https://") && !strings.HasPrefix(msg.URL, "http://") {
		v.Add("message.url", "must be an http(s) URL")
	}
	checkVars("message.url", msg.URL)
	checkVars("message.page", msg.Page)

	t := c.Target
	switch {
	case t.AllMembers && (t.SegmentID != 0 || len(t.TagIDs) > 0 || len(t.Rule) > 0):
		v.Add("target.all_members", "targets every member: leave segment_id and tag_ids out (exclude_tag_ids may narrow it)")
	case !t.AllMembers && t.SegmentID == 0 && len(t.TagIDs) == 0 && len(t.Rule) == 0:
		v.Add("target", "must name a segment_id or tag_ids, or set all_members")
	}
	if len(t.TagIDs) > 100 || len(t.ExcludeTagIDs) > 100 {
		v.Add("target", "may name at most 100 tags")
	}
	if t.SegmentID != 0 {
		if _, err := s.audiences.Rule(ctx, c.MerchantID, t.SegmentID); errors.Is(err, apperr.ErrNotFound) {
			v.Add("target.segment_id", fmt.Sprintf("segment %d does not exist (deleted?)", t.SegmentID))
		} else if err != nil {
			return err
		}
	}
	if len(t.Rule) > 0 {
		if _, err := s.audiences.CompileAt(ctx, c.MerchantID, t.Rule, s.now()); err != nil {
			var bad *apperr.Validation
			if errors.As(err, &bad) {
				for f, reason := range bad.Fields {
					v.Add("target."+f, reason)
				}
			} else {
				return err
			}
		}
	}
	if c.Gift != nil {
		if err := s.checkGift(ctx, c.MerchantID, *c.Gift, v); err != nil {
			return err
		}
	}
	if c.HoldoutPct < 0 || c.HoldoutPct > 50 {
		v.Add("holdout_pct", "must be 0 to 50")
	}
	if c.AttributionDays < 1 || c.AttributionDays > 90 {
		v.Add("attribution_days", "must be 1 to 90")
	}
	switch c.ScheduleKind {
	case ScheduleNow:
	case ScheduleAt:
		if c.SendAt == nil || !c.SendAt.After(s.now()) {
			v.Add("schedule.send_at", "must be a time in the future")
		} else if c.SendAt.Sub(s.now()) > 366*24*time.Hour {
			v.Add("schedule.send_at", "must be within a year")
		}
	case ScheduleCron:
		loc, err := s.merchants.Location(ctx, c.MerchantID)
		if err != nil {
			return err
		}
		if _, err := nextCron(c.Cron, s.now(), loc); err != nil {
			v.Add("schedule.cron", err.Error()+" (five fields: minute hour day-of-month month day-of-week)")
		}
	default:
		v.Add("schedule.kind", "must be now, at or cron")
	}
	return v.Err()
}

// checkGift checks a gift: points or one of the merchant's rewards.
func (s *Campaigns) checkGift(ctx context.Context, merchantID uint64, g Gift, v *apperr.Validation) error {
	switch {
	case g.Points != 0 && g.RewardID != 0:
		v.Add("gift", "is either points or a reward_id")
	case g.Points < 0 || g.Points > 100000:
		v.Add("gift.points", "must be 1 to 100000")
	case g.Points == 0 && g.RewardID == 0:
		v.Add("gift", "must give points or a reward_id")
	case g.RewardID != 0 && s.engine.gifts != nil:
		err := s.engine.gifts.Check(ctx, merchantID, g)
		if errors.Is(err, apperr.ErrNotFound) {
			v.Add("gift.reward_id", fmt.Sprintf("reward %d is not one of this merchant's rewards", g.RewardID))
		} else if err != nil {
			return err
		}
	}
	return nil
}

// checkTemplate asks WeChat whether the template exists and has the
// mapped fields.
func (s *Campaigns) checkTemplate(ctx context.Context, c *Campaign, msg Message, v *apperr.Validation) error {
	list := s.wx.Templates
	if c.Channel == ChannelMPSubscribe {
		list = s.wx.MPTemplates
	}
	templates, err := list(ctx, c.MerchantID)
	if err != nil {
		return fmt.Errorf("%w: %w", apperr.New(apperr.ErrUnavailable, "WeChat could not list the templates: %s", wechatWords(err)), err)
	}
	i := slices.IndexFunc(templates, func(t wechat.Template) bool { return t.ID == c.TemplateID })
	if i < 0 {
		v.Add("template_id", fmt.Sprintf("%q is not a template of this account", c.TemplateID))
		return nil
	}
	for k := range msg.Fields {
		if !slices.Contains(templates[i].Fields, k) {
			v.Add("message.fields."+k, fmt.Sprintf("is not a field of template %q (fields: %s)", c.TemplateID,
				strings.Join(templates[i].Fields, ", ")))
		}
	}
	return nil
}

// apply writes an input onto a campaign row.
func (in Input) apply(c *Campaign) {
	if in.Name != nil {
		c.Name = *in.Name
	}
	if in.Channel != nil {
		c.Channel = *in.Channel
	}
	if in.TemplateID != nil {
		c.TemplateID = *in.TemplateID
	}
	if in.Message != nil {
		c.Message = *in.Message
	}
	if in.Target != nil {
		c.Target = *in.Target
	}
	if in.Gift != nil {
		g := *in.Gift
		c.Gift = &g
		if g == (Gift{}) {
			c.Gift = nil
		}
	}
	if in.HoldoutPct != nil {
		c.HoldoutPct = *in.HoldoutPct
	}
	if in.AttributionDays != nil {
		c.AttributionDays = *in.AttributionDays
	}
	if sc := in.Schedule; sc != nil {
		c.ScheduleKind, c.SendAt, c.Cron = sc.Kind, sc.SendAt, sc.Cron
		if c.SendAt != nil {
			t := c.SendAt.UTC().Truncate(time.Millisecond)
			c.SendAt = &t
		}
	}
}

// Create saves a draft campaign.
func (s *Campaigns) Create(ctx context.Context, merchantID, staffID uint64, in Input) (Campaign, error) {
	now := s.now()
	c := Campaign{MerchantID: merchantID, Kind: KindMarketing, Status: StatusDraft, ScheduleKind: ScheduleNow,
		AttributionDays: 7, CreatedBy: staffID, CreatedAt: now, UpdatedAt: now}
	in.apply(&c)
	if err := s.validate(ctx, &c); err != nil {
		return Campaign{}, err
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&c).Error; err != nil {
			return fmt.Errorf("campaign: create: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "campaign.create", TargetType: "campaign",
			TargetIDs: []uint64{c.ID}, After: summaryOf(c)}, now)
	})
	return c, err
}

func summaryOf(c Campaign) map[string]any {
	return map[string]any{"name": c.Name, "status": c.Status, "channel": c.Channel, "template_id": c.TemplateID,
		"message": c.Message, "target": c.Target, "schedule": c.ScheduleKind,
		"send_at": c.SendAt, "cron": c.Cron, "holdout_pct": c.HoldoutPct}
}

// Get returns a campaign of the merchant.
func (s *Campaigns) Get(ctx context.Context, merchantID, id uint64) (Campaign, error) {
	return db.TakeOne[Campaign](s.db.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id),
		errNotFound, "campaign %d", id)
}

// List returns the merchant's campaigns, newest first, optionally of one
// status, below the cursor id.
func (s *Campaigns) List(ctx context.Context, merchantID uint64, status Status, before uint64, limit int) ([]Campaign, error) {
	// Care automations and service notices have screens of their own.
	q := s.db.WithContext(ctx).Where("merchant_id = ? AND kind NOT IN ?", merchantID, []Kind{KindCare, KindService})
	if status != "" {
		q = q.Where("status = ?", status)
	}
	if before != 0 {
		q = q.Where("id < ?", before)
	}
	var out []Campaign
	// idx_campaigns_merchant (merchant_id, id).
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("campaign: list: %w", err)
	}
	return out, nil
}

var errRunning = apperr.New(apperr.ErrConflict,
	"the campaign has started: it cannot be edited; pause or cancel it, or create a new one")

// Update edits a draft or scheduled campaign; anything that has started
// sending is refused.
func (s *Campaigns) Update(ctx context.Context, merchantID, id uint64, in Input) (Campaign, error) {
	var out Campaign
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		c, err := lockCampaign(ctx, tx, merchantID, id)
		if err != nil {
			return err
		}
		if c.Status != StatusDraft && c.Status != StatusScheduled {
			return errRunning
		}
		if c.Kind == KindCare {
			return apperr.New(apperr.ErrConflict, "this campaign belongs to a care rule: edit the rule")
		}
		before := summaryOf(c)
		in.apply(&c)
		if err := s.validate(ctx, &c); err != nil {
			return err
		}
		now := s.now()
		c.UpdatedAt = now
		if c.Status == StatusScheduled {
			if c.NextRunAt, err = s.firstRun(ctx, c); err != nil {
				return err
			}
		}
		if err := tx.Model(&Campaign{}).Where("id = ?", c.ID).Select("name", "channel", "template_id", "message", "target",
			"gift", "holdout_pct", "schedule_kind", "send_at", "cron", "next_run_at", "attribution_days", "updated_at").
			Updates(&c).Error; err != nil {
			return fmt.Errorf("campaign %d: update: %w", id, err)
		}
		out = c
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "campaign.update", TargetType: "campaign",
			TargetIDs: []uint64{id}, Before: before, After: summaryOf(c)}, now)
	})
	return out, err
}

// firstRun is when a campaign scheduled now first sends.
func (s *Campaigns) firstRun(ctx context.Context, c Campaign) (*time.Time, error) {
	now := s.now()
	switch c.ScheduleKind {
	case ScheduleAt:
		return c.SendAt, nil
	case ScheduleCron:
		loc, err := s.merchants.Location(ctx, c.MerchantID)
		if err != nil {
			return nil, err
		}
		next, err := nextCron(c.Cron, now, loc)
		if err != nil {
			return nil, apperr.Invalid("schedule.cron", err.Error())
		}
		return &next, nil
	}
	return &now, nil
}
