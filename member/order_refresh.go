package member

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OrderWriter returns what adds a new order of the merchant to a member's
// purchase facts and refreshes their stage, churn risk and CLV in the
// order's transaction. Call it before the transaction begins: it reads the
// merchant's CRM settings on a connection of its own, which a transaction
// holding one must not wait for (with every pooled connection in such a
// transaction, none would be left to read them).
//
// The returned function writes with three statements: the member row read
// and locked (its attributes and facts), the member's counted orders, and
// one UPDATE writing the facts and the changed attributes (plus a stage
// event when the stage moves). It does what RecordPurchase followed by
// Refresh does, with the same results: the new order o, not yet stored, is
// added to the history read in memory. Call it as the first statement that
// touches the member (it takes the member row's lock, the order
// RecordPurchase documents). A member that does not exist is
// apperr.ErrNotFound.
func (a *Attributes) OrderWriter(ctx context.Context, merchantID uint64) (func(ctx context.Context, tx *gorm.DB, memberID uint64, d PurchaseDelta, o Order) error, error) {
	s, err := a.merchants.CRMSettings(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx *gorm.DB, memberID uint64, d PurchaseDelta, o Order) error {
		return a.recordOrder(ctx, tx, merchantID, memberID, d, o, s)
	}, nil
}

func (a *Attributes) recordOrder(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, d PurchaseDelta, o Order, s CRMSettings) error {
	var cur struct {
		Attrs        attrRow `gorm:"embedded"`
		OrderCount   int64
		FirstOrderAt *time.Time
		LastOrderAt  *time.Time
	}
	err := tx.WithContext(ctx).Table("members").Clauses(clause.Locking{Strength: "UPDATE"}).
		Select(attrColumns+", order_count, first_order_at, last_order_at").
		Where("merchant_id = ? AND id = ?", merchantID, memberID).Take(&cur).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errMemberNotFound
	}
	if err != nil {
		return fmt.Errorf("member: lock %d for an order: %w", memberID, err)
	}
	orders, err := a.orders.MemberOrders(ctx, tx, merchantID, memberID, memberID)
	if err != nil {
		return err
	}
	// The new order has the highest id: it goes after every order of the
	// same time or earlier, as "ORDER BY ordered_at, id" would put it.
	hist := orders[memberID]
	o.At = o.At.UTC()
	i := len(hist)
	for i > 0 && hist[i-1].At.After(o.At) {
		i--
	}
	hist = append(hist[:i:i], append(History{o}, hist[i:]...)...)

	f := PurchaseFacts{OrderCount: cur.OrderCount + d.Orders, TotalSpendFen: cur.Attrs.TotalSpendFen + d.SpendFen,
		FirstOrderAt: utcPtr(cur.FirstOrderAt), LastOrderAt: utcPtr(cur.LastOrderAt)}
	at := d.OrderedAt.UTC()
	if f.FirstOrderAt == nil || f.FirstOrderAt.After(at) {
		f.FirstOrderAt = &at
	}
	if f.LastOrderAt == nil || f.LastOrderAt.Before(at) {
		f.LastOrderAt = &at
	}
	before := cur.Attrs
	before.TotalSpendFen = f.TotalSpendFen // the attributes see the spend with the order, as after RecordPurchase
	now := a.now()
	referrer, err := a.referrerIfItMatters(ctx, tx, merchantID, memberID, hist, s, now)
	if err != nil {
		return err
	}
	after := next(before, hist, s, nil, referrer, now)

	sets := "order_count = ?, total_spend_fen = ?, first_order_at = ?, last_order_at = ?"
	args := []any{f.OrderCount, f.TotalSpendFen, f.FirstOrderAt, f.LastOrderAt}
	changed := !attrEqual(before, after)
	if changed {
		sets += ", lifecycle_stage = ?, won_back_at = ?, clv_fen = ?, churn_risk = ?, churn_reason = ?, attributes_at = ?"
		args = append(args, after.LifecycleStage, after.WonBackAt, after.CLVFen, after.ChurnRisk, after.ChurnReason, now)
	}
	args = append(args, merchantID, memberID)
	if err := tx.WithContext(ctx).Exec("UPDATE members SET "+sets+" WHERE merchant_id = ? AND id = ?", args...).Error; err != nil {
		return fmt.Errorf("member: record order of %d: %w", memberID, err)
	}
	if changed && after.LifecycleStage != before.LifecycleStage {
		ev := StageEvent{MerchantID: merchantID, MemberID: memberID, FromStage: before.LifecycleStage,
			ToStage: after.LifecycleStage, Reason: after.stageReason, OccurredAt: now}
		if err := tx.WithContext(ctx).Create(&ev).Error; err != nil {
			return fmt.Errorf("member: stage event: %w", err)
		}
		return a.emitStages(ctx, tx, merchantID, []StageEvent{ev})
	}
	return nil
}
