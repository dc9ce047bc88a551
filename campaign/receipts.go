// Package campaign holds campaigns and the delivery engine: targets frozen
// into one delivery row per member (planning), rows leased to workers of
// any instance and sent once through a per-account rate limiter and daily
// quota, WeChat's errcodes driving what happens to a row, the campaign or
// the account, and the delivery receipts WeChat pushes for template
// messages (TEMPLATESENDJOBFINISH), matched to rows by msgid.
package campaign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/inbox"
)

// Receipt is WeChat's final word on one template message.
type Receipt struct {
	MerchantID uint64 `gorm:"primaryKey"`
	MsgID      int64  `gorm:"primaryKey"`
	OpenID     string `gorm:"column:openid"`
	Status     string // as WeChat sent it
	OccurredAt time.Time
	ReceivedAt time.Time
}

// TableName implements gorm's tabler.
func (Receipt) TableName() string { return "wechat_template_receipts" }

// Receipt outcomes.
const (
	OutcomeDelivered = "delivered"
	OutcomeBlocked   = "failed_user_block" // the user blocks the account's messages
	OutcomeFailed    = "failed_system"
)

// Outcome maps WeChat's status text ("success", "failed:user block",
// "failed: system failed") to an outcome.
func (r Receipt) Outcome() string {
	switch r.Status {
	case "success":
		return OutcomeDelivered
	case "failed:user block", "failed: user block":
		return OutcomeBlocked
	}
	return OutcomeFailed
}

// Receipts stores template receipts.
type Receipts struct {
	db   *gorm.DB
	rows deliveryRows
	now  func() time.Time
}

// NewReceipts returns the receipt store.
func NewReceipts(gdb *gorm.DB, now func() time.Time) *Receipts {
	return &Receipts{db: gdb, rows: deliveryRows{db: gdb, mysql: gdb.Dialector.Name() == db.MySQL}, now: now}
}

// RegisterHandlers makes the dispatcher send TEMPLATESENDJOBFINISH here.
func (r *Receipts) RegisterHandlers(d *inbox.Dispatcher) {
	d.Handle(wechat.EventTemplateFinish, r.onFinish)
}

func (r *Receipts) onFinish(ctx context.Context, ev inbox.Stored, apply inbox.Apply) error {
	if ev.MsgID == 0 {
		return nil // nothing to match it to; marked processed as is
	}
	return apply(func(tx *gorm.DB) error {
		// The first receipt for a msgid wins; WeChat sends one per message.
		rc := Receipt{MerchantID: ev.MerchantID, MsgID: ev.MsgID, OpenID: ev.OpenID, Status: ev.Status,
			OccurredAt: ev.CreateTime, ReceivedAt: r.now()}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rc).Error; err != nil {
			return err
		}
		// The row whose send returned this msgid; one that is not stored
		// yet picks the receipt up when it is (markSent).
		return r.rows.applyReceipt(ctx, tx, rc)
	})
}

// Get returns the receipt of a msgid.
func (r *Receipts) Get(ctx context.Context, merchantID uint64, msgID int64) (Receipt, error) {
	var out Receipt
	err := r.db.WithContext(ctx).Where("merchant_id = ? AND msg_id = ?", merchantID, msgID).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Receipt{}, fmt.Errorf("campaign: receipt %d: %w", msgID, apperr.ErrNotFound)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("campaign: receipt %d: %w", msgID, err)
	}
	return out, nil
}
