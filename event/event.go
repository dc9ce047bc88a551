// Package event is the neutral vocabulary of the domain events other
// systems can hear about (through webhooks): what happened, to which
// merchant, with what data. Features that cause an event (member, points,
// campaign) emit it through an Emitter inside the transaction of the
// change, so the event exists exactly when the change does; the webhook
// package implements the Emitter as a transactional outbox.
package event

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
)

// Type names a kind of event; it is part of the public webhook contract.
type Type string

// Event types.
const (
	MemberCreated     Type = "member.created"
	MemberMerged      Type = "member.merged"
	PointsChanged     Type = "points.changed"
	TierChanged       Type = "tier.changed"
	StageChanged      Type = "stage.changed"
	CampaignCompleted Type = "campaign.completed"
	CouponIssued      Type = "coupon.issued"
	CouponVerified    Type = "coupon.verified"
	SurveyAnswered    Type = "survey.answered"
)

// Types lists the event types, in a stable order.
var Types = []Type{MemberCreated, MemberMerged, PointsChanged, TierChanged, StageChanged, CampaignCompleted,
	CouponIssued, CouponVerified, SurveyAnswered}

// Valid reports whether t is a known event type.
func (t Type) Valid() bool { return slices.Contains(Types, t) }

// Event is one thing that happened to a merchant's data. Data is
// marshalled to JSON as the "data" member of the delivered body.
type Event struct {
	MerchantID uint64
	Type       Type
	Data       any
}

// Emitter records events inside tx, the transaction of the change that
// caused them: if tx rolls back, the events were never emitted.
type Emitter interface {
	Emit(ctx context.Context, tx *gorm.DB, events ...Event) error
}

// Emit records events through e, or does nothing when e is nil (a feature
// built without webhooks, as in most tests).
func Emit(ctx context.Context, e Emitter, tx *gorm.DB, events ...Event) error {
	if e == nil || len(events) == 0 {
		return nil
	}
	return e.Emit(ctx, tx, events...)
}

// Emitters is several emitters as one: each event goes to every one of
// them, in the same transaction (webhooks and service notices hear the
// same events).
type Emitters []Emitter

// Emit implements Emitter.
func (es Emitters) Emit(ctx context.Context, tx *gorm.DB, events ...Event) error {
	for _, e := range es {
		if err := Emit(ctx, e, tx, events...); err != nil {
			return err // the transaction rolls back: the others need not run
		}
	}
	return nil
}

// Payloads of the emitted events: the "data" member of a delivery's body.
type (
	// Member is the data of member.created.
	Member struct {
		MemberID uint64 `json:"member_id"`
		Source   string `json:"source"`
	}
	// Merge is the data of member.merged: merged_member_id no longer
	// exists; its identities and history now belong to member_id.
	Merge struct {
		MemberID       uint64 `json:"member_id"`
		MergedMemberID uint64 `json:"merged_member_id"`
	}
	// Points is the data of points.changed: the balances after the change
	// and how much the change moved them.
	Points struct {
		MemberID        uint64 `json:"member_id"`
		Available       int64  `json:"available"`
		Pending         int64  `json:"pending"`
		AvailableChange int64  `json:"available_change"`
		PendingChange   int64  `json:"pending_change"`
		// Entries are the ledger entries of the change, for service
		// notices (not part of the webhook body).
		Entries []PointsEntry `json:"-"`
	}
	// PointsEntry is one ledger entry of a points change.
	PointsEntry struct {
		ID      uint64 // the ledger entry: a notice's idempotency key
		Kind    string // earn, redeem, reverse, adjust, gift, expire, release
		Points  int64  // change of the available balance
		Pending int64  // change of the pending balance
		Reason  string
		RefType string // what it is for: order, refund, checkin, bonus, reward, referral...
		RefID   string
	}
	// Tier is the data of tier.changed (nil: no tier).
	Tier struct {
		MemberID   uint64  `json:"member_id"`
		FromTierID *uint64 `json:"from_tier_id"`
		ToTierID   *uint64 `json:"to_tier_id"`
		Reason     string  `json:"reason"`
		// For service notices (not part of the webhook body): the tier
		// history row (a notice's idempotency key), the tiers' names, and
		// whether the move is up.
		ChangeID uint64 `json:"-"`
		FromName string `json:"-"`
		ToName   string `json:"-"`
		Up       bool   `json:"-"`
	}
	// Coupon is the data of coupon.issued: a coupon reward was redeemed
	// and its coupon is ready to show at the till.
	Coupon struct {
		MemberID     uint64    `json:"member_id"`
		CouponID     uint64    `json:"coupon_id"`
		RedemptionID uint64    `json:"redemption_id"`
		RewardID     uint64    `json:"reward_id"`
		RewardName   string    `json:"reward_name"`
		Code         string    `json:"-"` // shown to the member only, never sent to other systems
		ExpiresAt    time.Time `json:"expires_at"`
	}
	// CouponVerification is the data of coupon.verified: a coupon was
	// used (核销) at the till, once. StaffID or APIKeyID says who verified
	// it (the other is null); UsedBy is their username or key name.
	CouponVerification struct {
		MemberID     uint64    `json:"member_id"`
		CouponID     uint64    `json:"coupon_id"`
		RedemptionID uint64    `json:"redemption_id"`
		RewardID     uint64    `json:"reward_id"`
		RewardName   string    `json:"reward_name"`
		Store        string    `json:"store"`
		StaffID      *uint64   `json:"staff_id"`
		APIKeyID     *uint64   `json:"api_key_id"`
		UsedBy       string    `json:"used_by"`
		VerifiedAt   time.Time `json:"verified_at"`
	}
	// Stage is the data of stage.changed.
	Stage struct {
		MemberID  uint64 `json:"member_id"`
		FromStage string `json:"from_stage"`
		ToStage   string `json:"to_stage"`
		Reason    string `json:"reason"`
	}
	// Campaign is the data of campaign.completed.
	Campaign struct {
		CampaignID uint64 `json:"campaign_id"`
		Step       int    `json:"step"`
	}
	// Survey is the data of survey.answered: a member answered a
	// satisfaction survey (detractor: NPS 0–6).
	Survey struct {
		MemberID     uint64         `json:"member_id"`
		SurveyID     uint64         `json:"survey_id"`
		InvitationID uint64         `json:"invitation_id"`
		AnswerID     uint64         `json:"answer_id"`
		NPS          int            `json:"nps"`
		Satisfaction int            `json:"satisfaction"`
		Expectation  *int           `json:"expectation"`
		Indicators   map[string]int `json:"indicators"`
		Detractor    bool           `json:"detractor"`
		AnsweredAt   time.Time      `json:"answered_at"`
	}
)
