// Package webhook tells a merchant's other systems what happens here:
// merchants register endpoints (a URL, the event types it wants, a signing
// secret shown once); features emit events into a transactional outbox
// (Outbox, in the transaction of the change); a Worker delivers them,
// signed, retried with backoff for a day, then parked in a dead-letter list
// the merchant can replay from.
//
// Delivery is at least once: a receiver deduplicates by the event id
// (header X-Loyalty-Event-Id). See README.md, "Webhooks", for the contract.
package webhook

import (
	"time"

	"github.com/wxloyalty/loyalty/event"
)

// Endpoint is a webhook_endpoints row.
type Endpoint struct {
	ID          uint64       `gorm:"primaryKey"`
	MerchantID  uint64       //
	URL         string       `gorm:"column:url"`
	Description string       //
	Events      []event.Type `gorm:"serializer:json"`
	Secret      string       // sealed with the keyring; never shown after creation
	Enabled     bool         //
	CreatedAt   time.Time    //
	UpdatedAt   time.Time    //
}

// TableName implements gorm's tabler.
func (Endpoint) TableName() string { return "webhook_endpoints" }

// wants reports whether the endpoint subscribes to t.
func (e Endpoint) wants(t event.Type) bool {
	for _, x := range e.Events {
		if x == t {
			return true
		}
	}
	return false
}

// eventRow is a webhook_events row: one emitted event.
type eventRow struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	Type       event.Type
	Data       string // the JSON of the event's data
	CreatedAt  time.Time
}

func (eventRow) TableName() string { return "webhook_events" }

// Status is where a delivery stands.
type Status string

// Delivery statuses.
const (
	StatusPending   Status = "pending"   // waiting for its attempt time
	StatusClaimed   Status = "claimed"   // leased to a worker, which is calling the endpoint
	StatusDelivered Status = "delivered" // the endpoint answered 2xx (final)
	StatusDead      Status = "dead"      // retried for a day without success: in the dead-letter list
)

// Statuses lists the delivery statuses.
var Statuses = []Status{StatusPending, StatusClaimed, StatusDelivered, StatusDead}

// Delivery is a webhook_deliveries row: one event for one endpoint.
type Delivery struct {
	ID            uint64     `gorm:"primaryKey" json:"id"`
	MerchantID    uint64     `json:"-"`
	EndpointID    uint64     `json:"endpoint_id"`
	EventID       uint64     `json:"-"`
	Status        Status     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	GiveUpAt      time.Time  `json:"give_up_at"`
	LeaseOwner    *string    `json:"-"`
	LeaseUntil    *time.Time `json:"-"`
	LastStatus    int        `json:"last_status"` // the endpoint's last HTTP status (0: no answer)
	LastError     string     `json:"last_error"`
	DeliveredAt   *time.Time `json:"delivered_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// TableName implements gorm's tabler.
func (Delivery) TableName() string { return "webhook_deliveries" }
