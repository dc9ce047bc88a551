package campaign

// Answers: the member centre shows a member their pending invitation and
// takes their answer, once per invitation. The answer, the member's last
// scores (SurveyFacts: segments and churn risk) and the survey.answered
// webhook event are written in one transaction; the detractor care rule
// reads the answers afterwards (care_scheduler.go).

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
	"github.com/wxloyalty/loyalty/internal/db"
)

// IndicatorScores are an answer's indicator scores (JSON column).
type IndicatorScores map[Indicator]int

// Value implements driver.Valuer.
func (m IndicatorScores) Value() (driver.Value, error) {
	if m == nil {
		m = IndicatorScores{}
	}
	return jsonValue(m)
}

// Scan implements sql.Scanner.
func (m *IndicatorScores) Scan(src any) error { *m = nil; return scanJSON(m, src) }

// SurveyAnswer is a survey_answers row.
type SurveyAnswer struct {
	ID           uint64          `gorm:"primaryKey" json:"id"`
	MerchantID   uint64          `json:"-"`
	SurveyID     uint64          `json:"survey_id"`
	InvitationID uint64          `json:"invitation_id"`
	MemberID     uint64          `json:"member_id"`
	NPS          int             `gorm:"column:nps" json:"nps"`
	Satisfaction int             `json:"satisfaction"`
	Expectation  *int            `json:"expectation"`
	Indicators   IndicatorScores `json:"indicators"`
	Comment      string          `json:"comment"`
	AnsweredAt   time.Time       `json:"answered_at"`
}

// TableName implements gorm's tabler.
func (SurveyAnswer) TableName() string { return "survey_answers" }

// PendingSurvey is what the member centre shows: the invitation and the
// questions of its survey.
type PendingSurvey struct {
	InvitationID   uint64      `json:"invitation_id"`
	SurveyID       uint64      `json:"survey_id"`
	Name           string      `json:"name"`
	OrderAt        time.Time   `json:"order_at"`
	ExpiresAt      time.Time   `json:"expires_at"`
	Indicators     []Indicator `json:"indicators"`
	AskExpectation bool        `json:"ask_expectation"`
}

// Pending returns the member's latest invitation not yet answered nor
// expired, or nil.
func (s *Surveys) Pending(ctx context.Context, merchantID, memberID uint64) (*PendingSurvey, error) {
	var inv SurveyInvitation
	// idx_survey_invitations_member (merchant_id, member_id, invited_at).
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ? AND expires_at > ?", merchantID, memberID, s.now().UTC()).
		Where("NOT EXISTS (SELECT 1 FROM survey_answers a WHERE a.invitation_id = survey_invitations.id)").
		Order("invited_at DESC, id DESC").Take(&inv).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("survey: pending of member %d: %w", memberID, err)
	}
	v, err := s.Get(ctx, merchantID, inv.SurveyID)
	if err != nil {
		return nil, err
	}
	return &PendingSurvey{InvitationID: inv.ID, SurveyID: v.ID, Name: v.Name, OrderAt: inv.SinceOrderAt, ExpiresAt: inv.ExpiresAt,
		Indicators: append([]Indicator{}, v.Indicators...), AskExpectation: v.AskExpectation}, nil
}

// AnswerInput is a member's answer.
type AnswerInput struct {
	NPS          *int              `json:"nps"`
	Satisfaction *int              `json:"satisfaction"`
	Expectation  *int              `json:"expectation"`
	Indicators   map[Indicator]int `json:"indicators"`
	Comment      string            `json:"comment"`
}

// checkAnswer validates an answer against its survey: every score in
// range, every indicator of the survey answered and no other, the
// expectation only when asked.
func checkAnswer(v Survey, in AnswerInput) error {
	bad := &apperr.Validation{}
	if in.NPS == nil || *in.NPS < 0 || *in.NPS > 10 {
		bad.Add("nps", "must be a whole number from 0 to 10")
	}
	if in.Satisfaction == nil || *in.Satisfaction < 1 || *in.Satisfaction > 5 {
		bad.Add("satisfaction", "must be a whole number from 1 to 5")
	}
	switch {
	case v.AskExpectation && (in.Expectation == nil || *in.Expectation < 1 || *in.Expectation > 5):
		bad.Add("expectation", "must be a whole number from 1 to 5")
	case !v.AskExpectation && in.Expectation != nil:
		bad.Add("expectation", "this survey does not ask for an expectation")
	}
	for _, ind := range v.Indicators {
		n, ok := in.Indicators[ind]
		if !ok || n < 1 || n > 5 {
			bad.Add("indicators."+string(ind), "must be a whole number from 1 to 5")
		}
	}
	for ind := range in.Indicators {
		if !slices.Contains(v.Indicators, ind) {
			bad.Add("indicators."+string(ind), "is not a question of this survey")
		}
	}
	if utf8.RuneCountInString(in.Comment) > 500 {
		bad.Add("comment", "must be at most 500 characters")
	}
	return bad.Err()
}

var errInvitationNotFound = apperr.New(apperr.ErrNotFound, "survey invitation not found")

// Answer records the member's answer to an invitation: once (a second
// answer is refused with a conflict and changes nothing), within its
// answering time, validated against its survey.
func (s *Surveys) Answer(ctx context.Context, merchantID, memberID, invitationID uint64, in AnswerInput) (SurveyAnswer, error) {
	var inv SurveyInvitation
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ? AND id = ?", merchantID, memberID, invitationID).
		Take(&inv).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return SurveyAnswer{}, errInvitationNotFound
	}
	if err != nil {
		return SurveyAnswer{}, fmt.Errorf("survey: invitation %d: %w", invitationID, err)
	}
	v, err := s.Get(ctx, merchantID, inv.SurveyID)
	if err != nil {
		return SurveyAnswer{}, err
	}
	if err := checkAnswer(v, in); err != nil {
		return SurveyAnswer{}, err
	}
	now := s.now()
	if !now.Before(inv.ExpiresAt) {
		return SurveyAnswer{}, apperr.New(apperr.ErrConflict, "this survey closed on %s: it can no longer be answered",
			inv.ExpiresAt.UTC().Format(time.DateOnly))
	}
	a := SurveyAnswer{MerchantID: merchantID, SurveyID: v.ID, InvitationID: inv.ID, MemberID: memberID, NPS: *in.NPS,
		Satisfaction: *in.Satisfaction, Expectation: in.Expectation, Indicators: IndicatorScores(in.Indicators),
		Comment: strings.TrimSpace(in.Comment), AnsweredAt: now}
	if a.Indicators == nil {
		a.Indicators = IndicatorScores{}
	}
	err = retryTx(ctx, s.db, func(tx *gorm.DB) error {
		// The member's row first, as an order takes it: the last scores
		// and churn risk are written under it.
		var locked []uint64
		if err := tx.Table("members").Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("merchant_id = ? AND id = ? AND erased_at IS NULL", merchantID, memberID).Pluck("id", &locked).Error; err != nil {
			return fmt.Errorf("survey: member %d: %w", memberID, err)
		}
		if len(locked) == 0 {
			return errInvitationNotFound
		}
		a.ID = 0
		if err := tx.Create(&a).Error; err != nil {
			if db.IsDuplicate(err) { // uk_survey_answers_invitation
				return errAnswered
			}
			return fmt.Errorf("survey: answer: %w", err)
		}
		if s.facts != nil {
			if err := s.facts.RecordSurvey(ctx, tx, merchantID, memberID, a.NPS, a.Satisfaction, now); err != nil {
				return err
			}
		}
		return event.Emit(ctx, s.events, tx, event.Event{MerchantID: merchantID, Type: event.SurveyAnswered,
			Data: event.Survey{MemberID: memberID, SurveyID: v.ID, InvitationID: inv.ID, AnswerID: a.ID, NPS: a.NPS,
				Satisfaction: a.Satisfaction, Expectation: a.Expectation, Indicators: indicatorMap(a.Indicators),
				Detractor: a.NPS <= DetractorMax, AnsweredAt: now.UTC()}})
	})
	if err != nil {
		return SurveyAnswer{}, err
	}
	return a, nil
}

var errAnswered = apperr.New(apperr.ErrConflict, "this survey has already been answered: an answer counts once")

func indicatorMap(m IndicatorScores) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}
