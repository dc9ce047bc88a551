package campaign

import (
	"encoding/json"
	"time"
)

// Campaign kinds. Marketing and care sends are frequency-capped and held
// in quiet hours; service messages (points notices) are neither, and have
// a rate lane marketing cannot take.
const (
	KindMarketing = "marketing"
	KindCare      = "care"
	KindService   = "service"
)

// Campaign statuses: draft → scheduled → running ⇄ paused → completed, or
// cancelled from any but completed.
const (
	StatusDraft     = "draft"
	StatusScheduled = "scheduled"
	StatusRunning   = "running"
	StatusPaused    = "paused"
	StatusCompleted = "completed"
	StatusCancelled = "cancelled"
)

// Channels.
const (
	ChannelTemplate        = "template"         // official-account template message
	ChannelMPSubscribe     = "mp_subscribe"     // mini-program subscribe message (needs a grant)
	ChannelCustomerService = "customer_service" // text inside the 48-hour window
)

// Schedules.
const (
	ScheduleNow  = "now"
	ScheduleAt   = "at"
	ScheduleCron = "cron"
)

// Campaign is a campaigns row.
type Campaign struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantID      uint64
	Name            string
	Kind            string
	Status          string
	Channel         string
	TemplateID      string
	Message         string  // JSON Message
	Target          string  // JSON Target
	Gift            *string // JSON Gift
	HoldoutPct      int
	ScheduleKind    string
	SendAt          *time.Time
	Cron            string
	NextRunAt       *time.Time
	AttributionDays int
	Step            int
	StepStartedAt   *time.Time
	AudienceRule    *string
	PlanMaxMember   uint64
	PlanCursor      uint64
	PlanDone        bool
	PauseReason     string
	CreatedBy       uint64
	CreatedAt       time.Time
	UpdatedAt       time.Time
	CompletedAt     *time.Time
}

// TableName implements gorm's tabler.
func (Campaign) TableName() string { return "campaigns" }

// Capped reports whether the campaign's sends count toward (and obey) the
// marketing frequency cap and quiet hours.
func (c Campaign) Capped() bool { return c.Kind != KindService }

// Message is what a campaign sends. Values may hold member variables
// ({{name}}, {{points}}, {{tier}}, {{expiring_points}}, {{merchant}}).
type Message struct {
	// Fields maps a template field (keyword1, thing2...) to its text.
	Fields map[string]string `json:"fields,omitempty"`
	URL    string            `json:"url,omitempty"`  // template: a web page to open
	Page   string            `json:"page,omitempty"` // a mini-program page to open
	Text   string            `json:"text,omitempty"` // customer-service text
}

// Target says who a campaign reaches: a saved segment or members holding
// any of some tags (or both: members in both), minus members holding any
// of the excluded tags.
type Target struct {
	SegmentID     uint64   `json:"segment_id,omitempty"`
	TagIDs        []uint64 `json:"tag_ids,omitempty"`
	ExcludeTagIDs []uint64 `json:"exclude_tag_ids,omitempty"`
	// Rule is a one-off rule instead of a saved segment (care automations
	// use it); the segment rule language.
	Rule json.RawMessage `json:"rule,omitempty"`
}

// Gift is granted once to each member a campaign delivers to.
type Gift struct {
	Points   int64  `json:"points,omitempty"`
	RewardID uint64 `json:"reward_id,omitempty"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryHoldout   = "holdout"
	DeliverySkipped   = "skipped"
	DeliveryClaimed   = "claimed"
	DeliverySending   = "sending"
	DeliverySent      = "sent"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
	DeliveryUnknown   = "unknown"
)

// Skip and failure reasons.
const (
	ReasonNoOpenID      = "no_openid"
	ReasonNotFollowing  = "not_following"
	ReasonNoConsent     = "no_consent"
	ReasonFrequencyCap  = "frequency_cap"
	ReasonNoGrant       = "no_subscription"
	ReasonOutsideWindow = "outside_window"
	ReasonInvalidOpenID = "invalid_openid"
	ReasonBadTemplate   = "invalid_template"
	ReasonTransient     = "wechat_unavailable"
	ReasonRejected      = "wechat_rejected"
	ReasonUserBlock     = "user_block"
	ReasonSystem        = "system_failed"
	ReasonNoAccount     = "no_account"
)

// Gift states of a delivery.
const (
	giftNone    = 0
	giftDue     = 1
	giftGranted = 2
)

// Delivery is a campaign_deliveries row.
type Delivery struct {
	ID            uint64 `gorm:"primaryKey"`
	MerchantID    uint64
	CampaignID    uint64
	Step          int
	MemberID      uint64
	OpenID        string `gorm:"column:openid"`
	Capped        bool
	Status        string
	Reason        string
	ErrCode       int `gorm:"column:errcode"`
	Attempts      int
	NextAttemptAt *time.Time
	LeaseOwner    *string
	LeaseUntil    *time.Time
	MsgID         *int64
	SentAt        *time.Time
	FinishedAt    *time.Time
	GiftState     int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TableName implements gorm's tabler.
func (Delivery) TableName() string { return "campaign_deliveries" }
