package campaign

// Satisfaction surveys (DOMAIN, "Satisfaction": satisfaction = experience −
// expectation; dissatisfaction drives churn). A merchant defines a survey:
// NPS (0–10) and a satisfaction score (1–5) always, any of the seven
// satisfaction indicators of the CRM material (each scored 1–5), and
// optionally the member's expectation (1–5) so the experience can be set
// against it. When enabled, a member is invited delay_hours after their
// last paid order, at most once every min_days_between days, through the
// delivery engine (survey_pass.go); they answer in the member centre
// (survey_answers.go); the results are survey_results.go.
//
// This file is the surveys' definitions and their admin API.

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
)

// Indicator is one of the seven satisfaction indicators of the CRM
// material (seed-digest C71), asked as a 1–5 score.
type Indicator string

// The seven satisfaction indicators.
const (
	IndicatorReputation       Indicator = "reputation"        // 对产品的美誉度: how good the product is
	IndicatorBrandNomination  Indicator = "brand_nomination"  // 对品牌的指名度: would ask for us by name
	IndicatorReturn           Indicator = "return"            // 消费后的回头率: will come back
	IndicatorComplaint        Indicator = "complaint"         // 消费后的投诉率: nothing to complain about (5) … much (1)
	IndicatorSpendPerOrder    Indicator = "spend_per_order"   // 单次交易的购买额: would spend as much or more
	IndicatorPriceSensitivity Indicator = "price_sensitivity" // 对价格变化的敏感度: would stay if prices rose
	IndicatorRecommendation   Indicator = "recommendation"    // 向其他人的推荐率: has recommended us
)

// Indicators lists the indicators in the material's order.
var Indicators = []Indicator{IndicatorReputation, IndicatorBrandNomination, IndicatorReturn, IndicatorComplaint,
	IndicatorSpendPerOrder, IndicatorPriceSensitivity, IndicatorRecommendation}

// Survey bounds and defaults.
const (
	DefaultSurveyDelayHours = 24
	MaxSurveyDelayHours     = 30 * 24
	DefaultSurveyMinDays    = 30
	MaxSurveyMinDays        = 365
	// SurveyAnswerDays is how long an invitation can be answered.
	SurveyAnswerDays = 14
	// surveyStaleDays: orders older than the delay by more than this are
	// not surveyed (a survey enabled today does not ask about last year).
	surveyStaleDays = 7
	// DetractorMax is the highest NPS score of a detractor (0–6).
	DetractorMax = 6
	// PromoterMin is the lowest NPS score of a promoter (9–10).
	PromoterMin = 9
)

// IndicatorList is a JSON list column.
type IndicatorList []Indicator

// Value implements driver.Valuer.
func (l IndicatorList) Value() (driver.Value, error) {
	if l == nil {
		l = IndicatorList{}
	}
	return jsonValue(l)
}

// Scan implements sql.Scanner.
func (l *IndicatorList) Scan(src any) error { *l = nil; return scanJSON(l, src) }

// Survey is a surveys row: what a merchant asks and when.
type Survey struct {
	ID             uint64        `gorm:"primaryKey" json:"id"`
	MerchantID     uint64        `json:"-"`
	Name           string        `json:"name"`
	Enabled        bool          `json:"enabled"`
	Indicators     IndicatorList `json:"indicators"`
	AskExpectation bool          `json:"ask_expectation"`
	DelayHours     int           `json:"delay_hours"`
	MinDaysBetween int           `json:"min_days_between"`
	Channel        Channel       `json:"channel"`
	TemplateID     string        `json:"template_id"`
	Message        Message       `json:"message"`
	ActiveSince    *time.Time    `json:"active_since"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// TableName implements gorm's tabler.
func (Survey) TableName() string { return "surveys" }

// SurveyFacts records a member's last answer on the member (attributes
// for segments, and churn risk) in the answer's transaction;
// *member.Attributes satisfies it.
type SurveyFacts interface {
	RecordSurvey(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, nps, satisfaction int, at time.Time) error
}

// Surveys is the survey service: definitions, the invitation pass, answers
// and results.
type Surveys struct {
	db        *gorm.DB
	mysql     bool
	rows      deliveryRows
	camps     *Campaigns
	zones     Zones
	facts     SurveyFacts
	events    event.Emitter
	publicURL string
	now       func() time.Time
	care      *Care
}

// NewSurveys returns the survey service on the care service's engine.
// facts and events may be nil (tests that need neither); publicURL makes
// the member centre link of a message that names none.
func NewSurveys(c *Care, facts SurveyFacts, events event.Emitter, publicURL string) *Surveys {
	return &Surveys{db: c.db, mysql: c.mysql, rows: c.rows, camps: c.camps, zones: c.zones, facts: facts, events: events,
		publicURL: strings.TrimRight(publicURL, "/"), now: c.now, care: c}
}

var errSurveyNotFound = apperr.New(apperr.ErrNotFound, "survey not found")

// SurveyInput creates or edits a survey; absent fields stay (edit) or take
// their defaults (create).
type SurveyInput struct {
	Name           *string      `json:"name"`
	Enabled        *bool        `json:"enabled"`
	Indicators     *[]Indicator `json:"indicators"`
	AskExpectation *bool        `json:"ask_expectation"`
	DelayHours     *int         `json:"delay_hours"`
	MinDaysBetween *int         `json:"min_days_between"`
	Channel        *Channel     `json:"channel"`
	TemplateID     *string      `json:"template_id"`
	Message        *Message     `json:"message"`
}

// List returns the merchant's surveys, newest first.
func (s *Surveys) List(ctx context.Context, merchantID uint64) ([]Survey, error) {
	out := []Survey{}
	if err := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("survey: list: %w", err)
	}
	return out, nil
}

// Get returns one survey.
func (s *Surveys) Get(ctx context.Context, merchantID, id uint64) (Survey, error) {
	return s.getIn(ctx, s.db, merchantID, id, false)
}

func (s *Surveys) getIn(ctx context.Context, tx *gorm.DB, merchantID, id uint64, lock bool) (Survey, error) {
	var v Survey
	q := tx.WithContext(ctx)
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	err := q.Where("merchant_id = ? AND id = ?", merchantID, id).Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Survey{}, errSurveyNotFound
	}
	if err != nil {
		return Survey{}, fmt.Errorf("survey: %d: %w", id, err)
	}
	if v.Indicators == nil {
		v.Indicators = IndicatorList{}
	}
	return v, nil
}

func applySurvey(v *Survey, in SurveyInput) {
	if in.Name != nil {
		v.Name = strings.TrimSpace(*in.Name)
	}
	if in.Enabled != nil {
		v.Enabled = *in.Enabled
	}
	if in.Indicators != nil {
		v.Indicators = IndicatorList(*in.Indicators)
	}
	if in.AskExpectation != nil {
		v.AskExpectation = *in.AskExpectation
	}
	if in.DelayHours != nil {
		v.DelayHours = *in.DelayHours
	}
	if in.MinDaysBetween != nil {
		v.MinDaysBetween = *in.MinDaysBetween
	}
	if in.Channel != nil {
		v.Channel = *in.Channel
	}
	if in.TemplateID != nil {
		v.TemplateID = strings.TrimSpace(*in.TemplateID)
	}
	if in.Message != nil {
		v.Message = *in.Message
	}
}

// SurveyPage is the member centre's survey page of a merchant: where a
// message that names no link sends the member.
func (s *Surveys) SurveyPage(merchantID uint64) string {
	return fmt.Sprintf("%s/m/%d/survey", s.publicURL, merchantID)
}

// check validates a survey: bounds here, the message as the campaign it
// becomes would be checked (the template must exist in WeChat).
func (s *Surveys) check(ctx context.Context, v Survey, messageChanged bool) error {
	bad := &apperr.Validation{}
	if n := utf8.RuneCountInString(v.Name); n == 0 || n > 64 {
		bad.Add("name", "must be 1 to 64 characters")
	}
	seen := map[Indicator]bool{}
	for i, ind := range v.Indicators {
		if !slices.Contains(Indicators, ind) {
			bad.Add(fmt.Sprintf("indicators[%d]", i), "must be one of "+indicatorList())
		} else if seen[ind] {
			bad.Add(fmt.Sprintf("indicators[%d]", i), "is listed twice")
		}
		seen[ind] = true
	}
	if v.DelayHours < 0 || v.DelayHours > MaxSurveyDelayHours {
		bad.Add("delay_hours", fmt.Sprintf("must be 0 to %d (hours after the order)", MaxSurveyDelayHours))
	}
	if v.MinDaysBetween < 1 || v.MinDaysBetween > MaxSurveyMinDays {
		bad.Add("min_days_between", fmt.Sprintf("must be 1 to %d days", MaxSurveyMinDays))
	}
	if !slices.Contains(Channels, v.Channel) {
		bad.Add("channel", "must be template, mp_subscribe or customer_service")
	}
	if err := bad.Err(); err != nil || !messageChanged {
		return err
	}
	c := Campaign{MerchantID: v.MerchantID, Name: "survey", Kind: KindCare, Channel: v.Channel, TemplateID: v.TemplateID,
		Message: v.Message, ScheduleKind: ScheduleNow, AttributionDays: 7}
	err := s.camps.validate(ctx, &c)
	var inv *apperr.Validation
	switch {
	case errors.As(err, &inv):
		for f, reason := range inv.Fields {
			if f == "target" || strings.HasPrefix(f, "target.") || f == "name" {
				continue
			}
			bad.Add(f, reason)
		}
	case err != nil:
		return err
	}
	return bad.Err()
}

func indicatorList() string {
	names := make([]string, len(Indicators))
	for i, ind := range Indicators {
		names[i] = string(ind)
	}
	return strings.Join(names, ", ")
}

func surveySummary(v Survey) map[string]any {
	return map[string]any{"name": v.Name, "enabled": v.Enabled, "indicators": v.Indicators, "ask_expectation": v.AskExpectation,
		"delay_hours": v.DelayHours, "min_days_between": v.MinDaysBetween, "channel": v.Channel, "template_id": v.TemplateID,
		"message": v.Message}
}

// Create saves a new survey.
func (s *Surveys) Create(ctx context.Context, merchantID uint64, in SurveyInput) (Survey, error) {
	v := Survey{MerchantID: merchantID, Indicators: IndicatorList{}, DelayHours: DefaultSurveyDelayHours,
		MinDaysBetween: DefaultSurveyMinDays, Channel: ChannelTemplate}
	applySurvey(&v, in)
	return s.save(ctx, merchantID, Survey{}, v, true)
}

// Update edits a survey. Enabling it starts it from now: orders before do
// not invite. Messages already planned keep what they were planned with.
func (s *Surveys) Update(ctx context.Context, merchantID, id uint64, in SurveyInput) (Survey, error) {
	old, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Survey{}, err
	}
	v := old
	applySurvey(&v, in)
	return s.save(ctx, merchantID, old, v, in.Message != nil || in.TemplateID != nil || in.Channel != nil)
}

func (s *Surveys) save(ctx context.Context, merchantID uint64, old, v Survey, messageChanged bool) (Survey, error) {
	if v.Channel == ChannelTemplate && v.Message.URL == "" && v.Message.Page == "" {
		v.Message.URL = s.SurveyPage(merchantID)
	}
	// Checked before the transaction: the template check asks WeChat.
	if err := s.check(ctx, v, messageChanged || old.ID == 0); err != nil {
		return Survey{}, err
	}
	now := s.now()
	v.MerchantID, v.UpdatedAt = merchantID, now
	if v.Enabled && (old.ID == 0 || !old.Enabled) {
		v.ActiveSince = &now
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if v.Enabled {
			// One survey follows orders: a member is never asked twice
			// about one order.
			var other []uint64
			if err := tx.Model(&Survey{}).Where("merchant_id = ? AND enabled = ? AND id <> ?", merchantID, true, old.ID).
				Pluck("id", &other).Error; err != nil {
				return fmt.Errorf("survey: enabled surveys: %w", err)
			}
			if len(other) > 0 {
				return apperr.Invalid("enabled", fmt.Sprintf("survey %d is already enabled: switch it off first (one survey follows orders)", other[0]))
			}
		}
		action := "survey.create"
		if old.ID == 0 {
			v.CreatedAt = now
			if err := tx.Create(&v).Error; err != nil {
				return fmt.Errorf("survey: create: %w", err)
			}
		} else {
			action = "survey.update"
			cur, err := s.getIn(ctx, tx, merchantID, old.ID, true)
			if err != nil {
				return err
			}
			if !cur.UpdatedAt.Equal(old.UpdatedAt) {
				return apperr.New(apperr.ErrConflict, "the survey was changed by someone else meanwhile: reload it and try again")
			}
			if err := tx.Model(&Survey{}).Where("merchant_id = ? AND id = ?", merchantID, old.ID).Updates(map[string]any{
				"name": v.Name, "enabled": v.Enabled, "indicators": v.Indicators, "ask_expectation": v.AskExpectation,
				"delay_hours": v.DelayHours, "min_days_between": v.MinDaysBetween, "channel": v.Channel,
				"template_id": v.TemplateID, "message": v.Message, "active_since": v.ActiveSince, "updated_at": now}).Error; err != nil {
				return fmt.Errorf("survey: update: %w", err)
			}
		}
		var before map[string]any
		if old.ID != 0 {
			before = surveySummary(old)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: action, TargetType: "survey",
			TargetIDs: []uint64{v.ID}, Before: before, After: surveySummary(v)}, now)
	})
	if err != nil {
		return Survey{}, err
	}
	return v, nil
}
