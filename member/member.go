// Package member owns the people a merchant keeps: signup from WeChat
// follows, mini-program and H5 logins, identity stitching (official-account
// openid, mini-program openid and unionid in one record), the profile a
// member edits (name, gender, birthday, care dates, consents) and the
// follow history.
package member

import (
	"time"
)

// Follow statuses.
const (
	FollowNone       = "none"       // never followed as far as we know (mini-program or H5 only)
	FollowFollowing  = "following"  // follows the official account
	FollowUnfollowed = "unfollowed" // followed once, then unfollowed
)

// Sources: how a member first reached the merchant.
const (
	SourceOAFollow  = "oa_follow"  // followed the official account
	SourceOAMessage = "oa_message" // a follower from before the service was installed, seen when they interacted
	SourceMPLogin   = "mp_login"   // opened the mini-program
	SourceOAuth     = "oa_oauth"   // opened an H5 page inside WeChat
)

// Member is one person of one merchant.
type Member struct {
	ID                uint64  `gorm:"primaryKey"`
	MerchantID        uint64  `gorm:"not null"`
	OAOpenID          *string `gorm:"column:oa_openid"`
	MPOpenID          *string `gorm:"column:mp_openid"`
	UnionID           *string `gorm:"column:unionid"`
	Phone             *string
	Name              string
	AvatarURL         *string // shared through snsapi_userinfo (login.go)
	Gender            Gender
	BirthdayMonth     *int
	BirthdayDay       *int
	BirthdayYear      *int
	Source            string
	FollowStatus      string
	FollowedAt        *time.Time
	UnfollowedAt      *time.Time
	FollowChangedAt   *time.Time // WeChat time of the follow event last applied; older events do not override it
	ChannelScene      *string    // QR scene that first brought the member (acquisition channel)
	LastInteractionAt *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
	Remark            string     // staff's note (admin API), at most 500 characters
	LifecycleStage    string     `gorm:"default:potential"` // potential, new, repeat, ... (computed; see Stages)
	TierID            *uint64    // loyalty tier, none until tiers exist
	ErasedAt          *time.Time // set by a PIPL erasure: the row is an anonymous tombstone
}

// Lifecycle stages, in the order a member usually moves through them.
// Every member starts potential; the lifecycle job moves them on.
const (
	StagePotential = "potential" // no purchase yet
	StageNew       = "new"       // first purchase recently
	StageRepeat    = "repeat"    // bought again
	StageLoyal     = "loyal"     // buys regularly
	StageAtRisk    = "at_risk"   // overdue compared with their rhythm
	StageChurned   = "churned"   // no purchase for long
	StageWonBack   = "won_back"  // churned, then bought again
	StageLost      = "lost"      // churned for very long
)

// Stages lists the lifecycle stages.
var Stages = []string{StagePotential, StageNew, StageRepeat, StageLoyal, StageAtRisk, StageChurned, StageWonBack, StageLost}

// Gender as WeChat and the profile API use it.
type Gender int

// Genders.
const (
	GenderUnknown Gender = 0
	GenderMale    Gender = 1
	GenderFemale  Gender = 2
)

func (g Gender) String() string {
	switch g {
	case GenderMale:
		return "male"
	case GenderFemale:
		return "female"
	}
	return "unknown"
}

// CareDate is a date a member wants remembered.
type CareDate struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	MemberID   uint64
	Kind       string
	Label      string
	Month      int
	Day        int
	Year       *int
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// TableName implements gorm's tabler.
func (CareDate) TableName() string { return "member_care_dates" }

// Care date kinds.
const (
	CareWedding       = "wedding_anniversary"
	CareChildBirthday = "child_birthday"
	CareCustom        = "custom"
)

// Consent is a member's consent to one marketing channel.
type Consent struct {
	MerchantID uint64 `gorm:"primaryKey"`
	MemberID   uint64 `gorm:"primaryKey"`
	Channel    string `gorm:"primaryKey"`
	Granted    bool
	GrantedAt  *time.Time
	RevokedAt  *time.Time
	UpdatedAt  time.Time
}

// TableName implements gorm's tabler.
func (Consent) TableName() string { return "member_consents" }

// Consent channels.
const (
	ConsentTemplate  = "template"  // official-account template messages
	ConsentSubscribe = "subscribe" // subscribe messages
	ConsentSMS       = "sms"
)

// FollowEvent is one entry of a member's follow history.
type FollowEvent struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	MemberID   uint64
	EventID    uint64 // the wechat_events row it came from
	Kind       string // subscribe, unsubscribe, scan
	Scene      *string
	OccurredAt time.Time
	CreatedAt  time.Time
}

// TableName implements gorm's tabler.
func (FollowEvent) TableName() string { return "member_follow_events" }

// Follow history kinds.
const (
	HistorySubscribe   = "subscribe"
	HistoryUnsubscribe = "unsubscribe"
	HistoryScan        = "scan"
)

// mergeRecord is a member_merges row.
type mergeRecord struct {
	ID           uint64 `gorm:"primaryKey"`
	MerchantID   uint64
	FromMemberID uint64
	IntoMemberID uint64
	Reason       string
	CreatedAt    time.Time
}

func (mergeRecord) TableName() string { return "member_merges" }

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// later returns the later of a (possibly nil) time and t.
func later(a *time.Time, t time.Time) *time.Time {
	if a != nil && a.After(t) {
		return a
	}
	return &t
}
