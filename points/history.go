package points

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/member"
)

// PurchaseHook runs inside the transaction of every order and refund, after
// the order row and the member's purchase facts are written (member's
// computed attributes refresh the lifecycle stage this way).
type PurchaseHook func(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error

// OnPurchase registers a hook run after every order and refund. Register
// before serving.
func (s *Service) OnPurchase(h PurchaseHook) { s.purchaseHooks = append(s.purchaseHooks, h) }

// OrderWriter is called before a new order's transaction (reads it needs
// happen there, not on a second connection while the transaction holds
// one) and returns what writes the order into the member's row inside the
// transaction, as the first statement on the member (it takes the member
// row's lock): the purchase facts and everything the OnPurchase hooks
// would refresh after them, with the new order (not yet stored) given in
// memory. member.Attributes.OrderWriter is one.
type OrderWriter func(ctx context.Context, merchantID uint64) (
	func(ctx context.Context, tx *gorm.DB, memberID uint64, d member.PurchaseDelta, o member.Order) error, error)

// UseOrderWriter makes new orders call w in place of member.RecordPurchase
// and the OnPurchase hooks (refunds and merges still run the hooks), so w
// must do what the hooks do. Call before serving.
func (s *Service) UseOrderWriter(w OrderWriter) { s.orderWriter = w }

func (s *Service) afterPurchase(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error {
	for _, h := range s.purchaseHooks {
		if err := h(ctx, tx, merchantID, memberID); err != nil {
			return err
		}
	}
	return nil
}

// History reads orders for member's computed attributes; it satisfies
// member.OrderSource.
type History struct{ db *gorm.DB }

// NewHistory returns the order history reader.
func NewHistory(gdb *gorm.DB) History { return History{db: gdb} }

type historyRow struct {
	MemberID    uint64
	AmountFen   int64
	RefundedFen int64
	CampaignID  *uint64
	Items       *string
	OrderedAt   time.Time
}

// MemberOrders returns the counted orders (not fully refunded) of members
// with ids in [fromID, toID], oldest first per member. It reads the range
// of idx_points_orders_member (merchant_id, member_id, ordered_at), already
// in the order wanted.
func (h History) MemberOrders(ctx context.Context, gdb *gorm.DB, merchantID, fromID, toID uint64) (map[uint64]member.History, error) {
	var rows []historyRow
	err := gdb.WithContext(ctx).Model(&Order{}).
		Select("member_id, amount_fen, refunded_fen, campaign_id, items, ordered_at").
		Where("merchant_id = ? AND member_id BETWEEN ? AND ? AND refunded_fen < amount_fen", merchantID, fromID, toID).
		Order("member_id, ordered_at, id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("points: order history: %w", err)
	}
	out := map[uint64]member.History{}
	for _, r := range rows {
		var items []Item
		if r.Items != nil {
			if json.Unmarshal([]byte(*r.Items), &items) != nil {
				items = nil
			}
		}
		out[r.MemberID] = append(out[r.MemberID], historyOrder(r.OrderedAt, r.AmountFen-r.RefundedFen, r.CampaignID != nil, items))
	}
	return out, nil
}

// historyOrder is an order as the attributes see it.
func historyOrder(at time.Time, netFen int64, campaign bool, items []Item) member.Order {
	o := member.Order{At: at.UTC(), NetFen: netFen, Campaign: campaign}
	for _, it := range items {
		o.Categories = append(o.Categories, it.Category)
	}
	return o
}

// newHistoryOrder is a new order, before it is stored, as MemberOrders
// will read it back.
func newHistoryOrder(in OrderInput, orderedAt time.Time) member.Order {
	return historyOrder(orderedAt, in.AmountFen, in.CampaignID != nil, in.Items)
}

// RecentTotals streams, per member with counted orders since the time,
// their number, net spend and last order time: one grouped scan of the
// merchant's orders of the period.
func (h History) RecentTotals(ctx context.Context, merchantID uint64, since time.Time,
	fn func(memberID uint64, orders, spendFen int64, last time.Time)) error {
	rows, err := h.db.WithContext(ctx).Model(&Order{}).
		Select("member_id, COUNT(*), SUM(amount_fen - refunded_fen), MAX(ordered_at)").
		Where("merchant_id = ? AND ordered_at >= ? AND refunded_fen < amount_fen", merchantID, since).
		Group("member_id").Rows()
	if err != nil {
		return fmt.Errorf("points: recent totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uint64
		var n, spend int64
		var last timeScanner
		if err := rows.Scan(&id, &n, &spend, &last); err != nil {
			return fmt.Errorf("points: recent totals: %w", err)
		}
		fn(id, n, spend, last.t)
	}
	return rows.Err()
}

// timeScanner reads MAX(ordered_at), which SQLite returns as text.
type timeScanner struct{ t time.Time }

func (s *timeScanner) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		s.t = x.UTC()
		return nil
	case string:
		return s.parse(x)
	case []byte:
		return s.parse(string(x))
	}
	return fmt.Errorf("points: cannot read %T as a time", v)
}

func (s *timeScanner) parse(text string) error {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, text); err == nil {
			s.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("points: cannot read %q as a time", text)
}
