// Package inbox makes official-account callbacks durable and applies them
// exactly once.
//
// The callback handler hands each verified event to Writer.Accept, which
// returns only after the event is committed to wechat_events (or found to be
// a duplicate of one already there); only then does WeChat get "success".
// Writes from concurrent requests are grouped into one multi-row INSERT, so
// a burst of callbacks costs a few commits, not one per request.
//
// Dispatcher then applies stored events in the background. Each event is
// marked processed in the same transaction as its effects, with a
// conditional update that only one transaction can win, so an event takes
// effect once even if two instances pick it up or a process dies half-way.
package inbox

import (
	"time"
	"unicode/utf8"

	"github.com/wxloyalty/loyalty/wechat"
)

// Row is a wechat_events row.
type Row struct {
	ID          uint64 `gorm:"primaryKey"`
	MerchantID  uint64
	DedupeKey   string
	MsgType     string
	Event       string
	OpenID      string `gorm:"column:openid"`
	EventKey    string
	Ticket      string
	Content     string
	MsgID       int64
	Status      string
	CreateTime  time.Time
	ReceivedAt  time.Time
	Attempts    int
	LeaseOwner  *string
	LeaseUntil  *time.Time
	ProcessedAt *time.Time
	LastError   string
}

// TableName implements gorm's tabler.
func (Row) TableName() string { return "wechat_events" }

// Stored is an event as read back for processing.
type Stored struct {
	wechat.Event
	ID       uint64
	Attempts int // failed attempts so far
}

func (r Row) stored() Stored {
	return Stored{ID: r.ID, Attempts: r.Attempts, Event: wechat.Event{
		MerchantID: r.MerchantID, DedupeKey: r.DedupeKey, MsgType: r.MsgType, EventType: r.Event,
		OpenID: r.OpenID, EventKey: r.EventKey, Ticket: r.Ticket, Content: r.Content,
		MsgID: r.MsgID, Status: r.Status, CreateTime: r.CreateTime,
	}}
}

func rowOf(ev wechat.Event, now time.Time) Row {
	// Clip to the column sizes: one oversized field must not fail the whole
	// multi-row insert it shares with other requests.
	return Row{
		MerchantID: ev.MerchantID, DedupeKey: ev.DedupeKey,
		MsgType: clip(ev.MsgType, 32), Event: clip(ev.EventType, 64), OpenID: clip(ev.OpenID, 64),
		EventKey: clip(ev.EventKey, 255), Ticket: clip(ev.Ticket, 255), Content: clip(ev.Content, 2048),
		MsgID: ev.MsgID, Status: clip(ev.Status, 64), CreateTime: ev.CreateTime, ReceivedAt: now,
	}
}

// clip shortens s to at most n characters (MySQL VARCHAR lengths count
// characters, not bytes).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
