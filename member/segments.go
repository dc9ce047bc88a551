package member

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member/segment"
)

// Value pyramid tiers (客户金字塔).
const (
	PyramidPlatinum = "platinum"
	PyramidGold     = "gold"
	PyramidIron     = "iron"
	PyramidLead     = "lead"
)

// SegmentSchema is every field a segment rule may target, over the members
// table (m). Adding a field here is the one way to make it targetable.
var SegmentSchema = segment.Schema{
	"gender": {Name: "gender", Kind: segment.KindEnum, Column: "m.gender", Values: []string{"unknown", "male", "female"},
		Stored: map[string]any{"unknown": int64(GenderUnknown), "male": int64(GenderMale), "female": int64(GenderFemale)}},
	"city":           {Name: "city", Kind: segment.KindString, Column: "m.city", Nullable: true, MaxLen: 64},
	"birthday_month": {Name: "birthday_month", Kind: segment.KindInt, Column: "m.birthday_month", Nullable: true, Min: 1, Max: 12},
	"birthday_within_days": {Name: "birthday_within_days", Kind: segment.KindUpcoming, MonthColumn: "m.birthday_month",
		DayColumn: "m.birthday_day", Max: 90},
	"care_date_within_days": {Name: "care_date_within_days", Kind: segment.KindUpcoming, MonthColumn: "m.birthday_month",
		DayColumn: "m.birthday_day", DateTable: "member_care_dates", Max: 90},
	"follow_status": {Name: "follow_status", Kind: segment.KindEnum, Column: "m.follow_status", Values: followStatuses},
	"channel":       {Name: "channel", Kind: segment.KindString, Column: "m.channel_scene", Nullable: true, MaxLen: 64},
	"source": {Name: "source", Kind: segment.KindEnum, Column: "m.source",
		Values: []string{SourceOAFollow, SourceOAMessage, SourceMPLogin, SourceOAuth}},
	"tags":            {Name: "tags", Kind: segment.KindIDSet, SetTable: "member_tags", SetColumn: "tag_id"},
	"tier":            {Name: "tier", Kind: segment.KindInt, Column: "m.tier_id", Nullable: true, Min: 1, Max: 1 << 53},
	"lifecycle_stage": {Name: "lifecycle_stage", Kind: segment.KindEnum, Column: "m.lifecycle_stage", Values: Stages},
	"rfm_r":           {Name: "rfm_r", Kind: segment.KindInt, Column: "m.rfm_r", Nullable: true, Min: 1, Max: 5},
	"rfm_f":           {Name: "rfm_f", Kind: segment.KindInt, Column: "m.rfm_f", Nullable: true, Min: 1, Max: 5},
	"rfm_m":           {Name: "rfm_m", Kind: segment.KindInt, Column: "m.rfm_m", Nullable: true, Min: 1, Max: 5},
	"pyramid_tier": {Name: "pyramid_tier", Kind: segment.KindEnum, Column: "m.pyramid_tier", Nullable: true,
		Values: []string{PyramidPlatinum, PyramidGold, PyramidIron, PyramidLead}},
	"clv_fen":               {Name: "clv_fen", Kind: segment.KindInt, Column: "m.clv_fen", Nullable: true, Min: -1 << 50, Max: 1 << 50},
	"churn_risk":            {Name: "churn_risk", Kind: segment.KindInt, Column: "m.churn_risk", Nullable: true, Min: 0, Max: 100},
	"order_count":           {Name: "order_count", Kind: segment.KindInt, Column: "m.order_count", Min: 0, Max: 1 << 31},
	"total_spend_fen":       {Name: "total_spend_fen", Kind: segment.KindInt, Column: "m.total_spend_fen", Min: -1 << 50, Max: 1 << 50},
	"days_since_last_order": {Name: "days_since_last_order", Kind: segment.KindDaysSince, Column: "m.last_order_at", Nullable: true},
	"days_since_follow":     {Name: "days_since_follow", Kind: segment.KindDaysSince, Column: "m.followed_at", Nullable: true},
	"days_since_join":       {Name: "days_since_join", Kind: segment.KindDaysSince, Column: "m.created_at"},
	// The balance lives with points (points_accounts, one row per member
	// with points); members without a row have none. A primary-key probe
	// per member.
	"points_balance": {Name: "points_balance", Kind: segment.KindInt, Min: -1 << 50, Max: 1 << 50,
		Column: "COALESCE((SELECT pa.available FROM points_accounts pa WHERE pa.merchant_id = m.merchant_id AND pa.member_id = m.id), 0)"},
	// Referral counts (referral/, the loyal customer who recommends
	// others): members the member brought in (pending, converted or
	// reversed; an ineligible referral never counts) and of whom made a
	// first paid order that was kept. A range probe of
	// idx_referrals_referrer per member.
	"referrals_invited": {Name: "referrals_invited", Kind: segment.KindInt, Min: 0, Max: 1 << 31,
		Column: "(SELECT COUNT(*) FROM referrals rf WHERE rf.merchant_id = m.merchant_id AND rf.referrer_id = m.id AND rf.status IN ('pending', 'converted', 'reversed'))"},
	"referrals_converted": {Name: "referrals_converted", Kind: segment.KindInt, Min: 0, Max: 1 << 31,
		Column: "(SELECT COUNT(*) FROM referrals rf WHERE rf.merchant_id = m.merchant_id AND rf.referrer_id = m.id AND rf.status = 'converted')"},
	// The member's last satisfaction survey answer (campaign/survey*.go):
	// NPS 0–10 (a detractor is 0–6) and satisfaction 1–5; null until the
	// member answers one.
	"last_nps":          {Name: "last_nps", Kind: segment.KindInt, Column: "m.last_nps", Nullable: true, Min: 0, Max: 10},
	"last_satisfaction": {Name: "last_satisfaction", Kind: segment.KindInt, Column: "m.last_satisfaction", Nullable: true, Min: 1, Max: 5},
	"consent_template":  consentField("consent_template", ConsentTemplate),
	"consent_subscribe": consentField("consent_subscribe", ConsentSubscribe),
	"consent_sms":       consentField("consent_sms", ConsentSMS),
}

func consentField(name, channel string) segment.Field {
	// channel is one of the package's constants, never user text.
	return segment.Field{Name: name, Kind: segment.KindBool,
		Column: "EXISTS (SELECT 1 FROM member_consents c WHERE c.merchant_id = m.merchant_id AND c.member_id = m.id AND c.channel = '" +
			channel + "' AND c.granted = 1)"}
}

// Segment is a saved rule.
type Segment struct {
	ID          uint64 `gorm:"primaryKey"`
	MerchantID  uint64
	Name        string
	Description string
	Rule        string // JSON
	CachedCount *int64
	CountedAt   *time.Time
	CreatedBy   uint64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements gorm's tabler.
func (Segment) TableName() string { return "segments" }

// Zones tells a merchant's time zone; admin.Merchants satisfies it.
type Zones interface {
	Location(ctx context.Context, merchantID uint64) (*time.Location, error)
}

// Segments saves, counts and previews segments.
type Segments struct {
	db    *gorm.DB
	zones Zones
	now   func() time.Time
}

// NewSegments returns the segment service.
func NewSegments(gdb *gorm.DB, zones Zones, now func() time.Time) *Segments {
	return &Segments{db: gdb, zones: zones, now: now}
}

// ErrSegmentNotFound is the answer for an unknown (or another merchant's)
// segment.
var ErrSegmentNotFound = apperr.New(apperr.ErrNotFound, "segment not found")

// Audience is a rule compiled for one merchant, ready to select members:
// "SELECT ... FROM members m WHERE " + Where, with Args.
type Audience struct {
	Where string
	Args  []any
}

// Compile validates rule and compiles it for the merchant at the current
// time: the member must belong to the merchant, not be erased, and match.
// Problems are named under "rule".
func (s *Segments) Compile(ctx context.Context, merchantID uint64, rule json.RawMessage) (Audience, error) {
	return s.CompileAt(ctx, merchantID, rule, s.now())
}

// CompileAt compiles rule as of the time at: a campaign freezes its
// audience by compiling the rule it saved with the time its step started,
// however long planning takes.
func (s *Segments) CompileAt(ctx context.Context, merchantID uint64, rule json.RawMessage, at time.Time) (Audience, error) {
	n, err := segment.Parse(rule, SegmentSchema, "rule")
	if err != nil {
		return Audience{}, err
	}
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return Audience{}, err
	}
	sql, args := segment.Compile(n, segment.Env{Now: at, Location: loc})
	return Audience{Where: "m.merchant_id = ? AND m.erased_at IS NULL AND " + sql, Args: append([]any{merchantID}, args...)}, nil
}

// Rule returns a saved segment's rule.
func (s *Segments) Rule(ctx context.Context, merchantID, id uint64) (json.RawMessage, error) {
	seg, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(seg.Rule), nil
}

// Count returns how many members match the audience. The statement is the
// compiled rule and nothing else, so the planner picks the merchant's
// indexes exactly as for a hand-written WHERE.
func (s *Segments) Count(ctx context.Context, a Audience) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Raw("SELECT COUNT(*) FROM members m WHERE "+a.Where, a.Args...).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("member: count segment: %w", err)
	}
	return n, nil
}

// IDs returns up to limit matching member ids below before (0: from the
// top), newest first: the sample of a preview, or a page of an audience.
func (s *Segments) IDs(ctx context.Context, a Audience, before uint64, limit int) ([]uint64, error) {
	q := "SELECT m.id FROM members m WHERE " + a.Where
	args := a.Args
	if before != 0 {
		q += " AND m.id < ?"
		args = append(append([]any{}, args...), before)
	}
	q += " ORDER BY m.id DESC LIMIT ?"
	var ids []uint64
	if err := s.db.WithContext(ctx).Raw(q, append(append([]any{}, args...), limit)...).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("member: segment members: %w", err)
	}
	return ids, nil
}

// Preview is a rule's count and a sample of its members.
type Preview struct {
	Count  int64
	Sample []Member
}

// PreviewSample is how many members a preview shows.
const PreviewSample = 20

// Preview counts a rule's members and returns the newest few.
func (s *Segments) Preview(ctx context.Context, merchantID uint64, rule json.RawMessage) (Preview, error) {
	a, err := s.Compile(ctx, merchantID, rule)
	if err != nil {
		return Preview{}, err
	}
	var p Preview
	if p.Count, err = s.Count(ctx, a); err != nil {
		return Preview{}, err
	}
	ids, err := s.IDs(ctx, a, 0, PreviewSample)
	if err != nil {
		return Preview{}, err
	}
	if len(ids) > 0 {
		if err := s.db.WithContext(ctx).Where("merchant_id = ? AND id IN ?", merchantID, ids).Order("id DESC").
			Find(&p.Sample).Error; err != nil {
			return Preview{}, fmt.Errorf("member: segment sample: %w", err)
		}
	}
	return p, nil
}

// SegmentInput creates or changes a segment.
type SegmentInput struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Rule        json.RawMessage `json:"rule"`
}

func (in SegmentInput) validate(creating bool) error {
	v := &apperr.Validation{}
	if in.Name != nil || creating {
		name := ""
		if in.Name != nil {
			name = strings.TrimSpace(*in.Name)
		}
		if name == "" || utf8.RuneCountInString(name) > 64 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
			v.Add("name", "is required: up to 64 characters, no control characters")
		}
	}
	if in.Description != nil && (utf8.RuneCountInString(*in.Description) > 500 || strings.IndexFunc(*in.Description, isControlNotNewline) >= 0) {
		v.Add("description", "must be at most 500 characters without control characters")
	}
	if creating && len(in.Rule) == 0 {
		v.Add("rule", "is required")
	}
	return v.Err()
}

func isControlNotNewline(r rune) bool { return unicode.IsControl(r) && r != '\n' }

// Create saves a segment and counts it.
func (s *Segments) Create(ctx context.Context, merchantID, staffID uint64, in SegmentInput) (Segment, error) {
	if err := in.validate(true); err != nil {
		return Segment{}, err
	}
	a, err := s.Compile(ctx, merchantID, in.Rule)
	if err != nil {
		return Segment{}, err
	}
	count, err := s.Count(ctx, a)
	if err != nil {
		return Segment{}, err
	}
	now := s.now()
	seg := Segment{MerchantID: merchantID, Name: strings.TrimSpace(*in.Name), Rule: compactJSON(in.Rule),
		CachedCount: &count, CountedAt: &now, CreatedBy: staffID, CreatedAt: now, UpdatedAt: now}
	if in.Description != nil {
		seg.Description = *in.Description
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&seg).Error; err != nil {
			if db.IsDuplicate(err) {
				return apperr.New(apperr.ErrConflict, "a segment named %q exists", seg.Name)
			}
			return fmt.Errorf("member: create segment: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "segment.create", TargetType: "segment",
			TargetIDs: []uint64{seg.ID}, After: map[string]any{"name": seg.Name, "rule": json.RawMessage(seg.Rule)}}, now)
	})
	return seg, err
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// Get returns a segment of the merchant.
func (s *Segments) Get(ctx context.Context, merchantID, id uint64) (Segment, error) {
	return db.TakeOne[Segment](s.db.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id),
		ErrSegmentNotFound, "member: segment %d", id)
}

// List returns the merchant's segments, newest first.
func (s *Segments) List(ctx context.Context, merchantID uint64) ([]Segment, error) {
	var out []Segment
	// idx_segments_merchant; merchants keep tens of segments.
	if err := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("id DESC").Limit(1000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("member: segments: %w", err)
	}
	return out, nil
}

// Update changes a segment; a new rule is validated and counted.
func (s *Segments) Update(ctx context.Context, merchantID, id uint64, in SegmentInput) (Segment, error) {
	if err := in.validate(false); err != nil {
		return Segment{}, err
	}
	var count *int64
	if len(in.Rule) > 0 {
		a, err := s.Compile(ctx, merchantID, in.Rule)
		if err != nil {
			return Segment{}, err
		}
		n, err := s.Count(ctx, a)
		if err != nil {
			return Segment{}, err
		}
		count = &n
	}
	var seg Segment
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if seg, err = (&Segments{db: tx, zones: s.zones, now: s.now}).Get(ctx, merchantID, id); err != nil {
			return err
		}
		before := map[string]any{"name": seg.Name, "description": seg.Description, "rule": json.RawMessage(seg.Rule)}
		now := s.now()
		if in.Name != nil {
			seg.Name = strings.TrimSpace(*in.Name)
		}
		if in.Description != nil {
			seg.Description = *in.Description
		}
		if count != nil {
			seg.Rule, seg.CachedCount, seg.CountedAt = compactJSON(in.Rule), count, &now
		}
		seg.UpdatedAt = now
		err = tx.Model(&Segment{}).Where("merchant_id = ? AND id = ?", merchantID, id).
			Select("name", "description", "rule", "cached_count", "counted_at", "updated_at").Updates(&seg).Error
		if db.IsDuplicate(err) {
			return apperr.New(apperr.ErrConflict, "a segment named %q exists", seg.Name)
		}
		if err != nil {
			return fmt.Errorf("member: update segment: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "segment.update", TargetType: "segment",
			TargetIDs: []uint64{id}, Before: before,
			After: map[string]any{"name": seg.Name, "description": seg.Description, "rule": json.RawMessage(seg.Rule)}}, now)
	})
	return seg, err
}

// Delete removes a segment.
func (s *Segments) Delete(ctx context.Context, merchantID, id uint64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		seg, err := (&Segments{db: tx, zones: s.zones, now: s.now}).Get(ctx, merchantID, id)
		if err != nil {
			return err
		}
		if err := tx.Where("merchant_id = ? AND id = ?", merchantID, id).Delete(&Segment{}).Error; err != nil {
			return fmt.Errorf("member: delete segment: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "segment.delete", TargetType: "segment",
			TargetIDs: []uint64{id}, Before: map[string]any{"name": seg.Name, "rule": json.RawMessage(seg.Rule)}}, s.now())
	})
}

// Refresh recounts a saved segment and stores the count with its time.
func (s *Segments) Refresh(ctx context.Context, merchantID, id uint64) (Segment, error) {
	seg, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Segment{}, err
	}
	a, err := s.Compile(ctx, merchantID, json.RawMessage(seg.Rule))
	if err != nil {
		return Segment{}, err
	}
	n, err := s.Count(ctx, a)
	if err != nil {
		return Segment{}, err
	}
	now := s.now()
	seg.CachedCount, seg.CountedAt = &n, &now
	if err := s.db.WithContext(ctx).Model(&Segment{}).Where("merchant_id = ? AND id = ?", merchantID, id).
		Updates(map[string]any{"cached_count": n, "counted_at": now}).Error; err != nil {
		return Segment{}, fmt.Errorf("member: refresh segment: %w", err)
	}
	return seg, nil
}

// AudienceOf compiles a saved segment's rule for now: what the campaign
// engine freezes when a send starts.
func (s *Segments) AudienceOf(ctx context.Context, merchantID, id uint64) (Audience, error) {
	seg, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Audience{}, err
	}
	return s.Compile(ctx, merchantID, json.RawMessage(seg.Rule))
}
