package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/event"
)

// Outbox records events for delivery: it implements event.Emitter. Each
// event is written, in the caller's transaction, as one webhook_events row
// and one pending delivery per enabled endpoint that subscribes to it;
// an event nobody subscribes to writes nothing (the common case costs one
// cached lookup).
type Outbox struct {
	endpoints *Endpoints
	rows      deliveryRows
	now       func() time.Time
	retention time.Duration
}

// NewOutbox returns the outbox. retention is how long a delivery is
// retried before it is parked as dead (default 24 h).
func NewOutbox(endpoints *Endpoints, now func() time.Time, retention time.Duration) *Outbox {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &Outbox{endpoints: endpoints, rows: newDeliveryRows(endpoints.db), now: now, retention: retention}
}

// DefaultRetention is how long deliveries are retried by default.
const DefaultRetention = 24 * time.Hour

// Emit implements event.Emitter.
func (o *Outbox) Emit(ctx context.Context, tx *gorm.DB, events ...event.Event) error {
	for _, ev := range events {
		if !ev.Type.Valid() {
			return fmt.Errorf("webhook: emit: unknown event type %q", ev.Type)
		}
		eps, err := o.endpoints.enabled(ctx, tx, ev.MerchantID)
		if err != nil {
			return err
		}
		var ids []uint64
		for _, e := range eps {
			if e.wants(ev.Type) {
				ids = append(ids, e.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		data, err := json.Marshal(ev.Data)
		if err != nil {
			return fmt.Errorf("webhook: emit %s: %w", ev.Type, err)
		}
		now := o.now()
		row := eventRow{MerchantID: ev.MerchantID, Type: ev.Type, Data: string(data), CreatedAt: now}
		if err := tx.WithContext(ctx).Create(&row).Error; err != nil {
			return fmt.Errorf("webhook: emit %s: %w", ev.Type, err)
		}
		if err := o.rows.plan(ctx, tx, ev.MerchantID, row.ID, ids, now, now.Add(o.retention)); err != nil {
			return err
		}
	}
	return nil
}
