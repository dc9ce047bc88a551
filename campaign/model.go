package campaign

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"
)

// Kind is what a campaign is for. Marketing and care sends are
// frequency-capped and held in quiet hours; service messages (points
// notices) are neither, and have a rate lane marketing cannot take.
type Kind string

// Campaign kinds.
const (
	KindMarketing Kind = "marketing"
	KindCare      Kind = "care"
	KindService   Kind = "service"
)

// Status is where a campaign stands: draft → scheduled → running ⇄ paused
// → completed, or cancelled from any but completed.
type Status string

// Campaign statuses.
const (
	StatusDraft     Status = "draft"
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusPaused    Status = "paused"
	StatusCompleted Status = "completed"
	StatusCancelled Status = "cancelled"
)

// Statuses lists the campaign statuses.
var Statuses = []Status{StatusDraft, StatusScheduled, StatusRunning, StatusPaused, StatusCompleted, StatusCancelled}

// Channel is the kind of WeChat message a campaign sends.
type Channel string

// Channels.
const (
	ChannelTemplate        Channel = "template"         // official-account template message
	ChannelMPSubscribe     Channel = "mp_subscribe"     // mini-program subscribe message (needs a grant)
	ChannelCustomerService Channel = "customer_service" // text inside the 48-hour window
)

// Channels lists the channels.
var Channels = []Channel{ChannelTemplate, ChannelMPSubscribe, ChannelCustomerService}

// ScheduleKind says when a campaign sends.
type ScheduleKind string

// Schedules.
const (
	ScheduleNow  ScheduleKind = "now"
	ScheduleAt   ScheduleKind = "at"
	ScheduleCron ScheduleKind = "cron"
)

// Campaign is a campaigns row.
type Campaign struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantID      uint64
	Name            string
	Kind            Kind
	Status          Status
	Channel         Channel
	TemplateID      string
	Message         Message // a JSON column
	Target          Target  // a JSON column
	Gift            *Gift   // a JSON column; nil: no gift
	HoldoutPct      int
	ScheduleKind    ScheduleKind
	SendAt          *time.Time
	Cron            string
	NextRunAt       *time.Time
	AttributionDays int
	Step            int
	StepStartedAt   *time.Time
	AudienceRule    *string // the step's frozen rule (JSON, the segment rule language)
	PlanMaxMember   uint64
	PlanCursor      uint64
	PlanDone        bool
	PauseReason     string
	NoticeKind      *NoticeKind // a service notice kind's campaign (notices.go); nil for any other
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
// ({{name}}, {{points}}, {{tier}}, {{expiring_points}}, {{merchant}}),
// each with an optional fallback for members whose value is empty:
// {{name|亲爱的会员}}.
type Message struct {
	// Fields maps a template field (keyword1, thing2...) to its text.
	Fields map[string]string `json:"fields,omitempty"`
	URL    string            `json:"url,omitempty"`  // template: a web page to open
	Page   string            `json:"page,omitempty"` // a mini-program page to open
	Text   string            `json:"text,omitempty"` // customer-service text
}

// Target says who a campaign reaches: a saved segment or members holding
// any of some tags (or both: members in both), or all the merchant's
// members, minus members holding any of the excluded tags.
type Target struct {
	// AllMembers targets every member of the merchant (no segment needed);
	// it excludes SegmentID, TagIDs and Rule.
	AllMembers    bool     `json:"all_members,omitempty"`
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

// Message, Target and Gift are stored as JSON text. They read and write
// themselves (database/sql's Valuer and Scanner), so a struct, a map of
// columns or a raw statement all store the same text, and a column that
// does not hold their JSON is an error, never a silently empty value.

// Value implements driver.Valuer.
func (m Message) Value() (driver.Value, error) { return jsonValue(m) }

// Scan implements sql.Scanner.
func (m *Message) Scan(src any) error { *m = Message{}; return scanJSON(m, src) }

// Value implements driver.Valuer.
func (t Target) Value() (driver.Value, error) { return jsonValue(t) }

// Scan implements sql.Scanner.
func (t *Target) Scan(src any) error { *t = Target{}; return scanJSON(t, src) }

// Value implements driver.Valuer.
func (g Gift) Value() (driver.Value, error) { return jsonValue(g) }

// Scan implements sql.Scanner.
func (g *Gift) Scan(src any) error { *g = Gift{}; return scanJSON(g, src) }

func jsonValue(v any) (driver.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("campaign: store %T: %w", v, err)
	}
	return string(b), nil
}

func scanJSON(dst any, src any) error {
	var b []byte
	switch s := src.(type) {
	case nil:
		return nil
	case []byte:
		b = s
	case string:
		b = []byte(s)
	default:
		return fmt.Errorf("campaign: read %T: unexpected column type %T", dst, src)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("campaign: read %T: %w", dst, err)
	}
	return nil
}
