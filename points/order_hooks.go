package points

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/member"
)

// OrderHook lets another feature add ledger effects to orders and refunds
// (the referral programme's rewards on a referee's first paid order),
// inside the order's or refund's transaction: the effect exists exactly
// when the order does. The hook decides; points writes the ledger, so
// balances, lots, debt and events stay this package's alone. cmd/loyalty
// wires it (UseOrderHook).
type OrderHook interface {
	// OrderRecorded is told of a new order (never of a replayed one) after
	// the order row is written and returns the points to give.
	OrderRecorded(ctx context.Context, tx *gorm.DB, o OrderFact) ([]Grant, error)
	// OrderRefunded is told of a new refund after the order row is updated
	// and returns the grants to take back.
	OrderRefunded(ctx context.Context, tx *gorm.DB, r RefundFact) ([]Revoke, error)
}

// OrderFact is a new order as an OrderHook sees it.
type OrderFact struct {
	MerchantID uint64
	MemberID   uint64
	OrderID    uint64
	ExternalID string
	AmountFen  int64
	OrderedAt  time.Time
}

// RefundFact is a new refund as an OrderHook sees it.
type RefundFact struct {
	MerchantID    uint64
	MemberID      uint64
	OrderID       uint64
	ExternalID    string // the order's
	RefundID      string
	FullyRefunded bool // nothing is left of the order after this refund
}

// Grant is points an OrderHook gives a member: once per Key (a repeated
// key gives nothing), available at once and expiring by the rules' policy.
type Grant struct {
	MemberID uint64
	Points   int64
	RefType  string // what the entry refers to: one of HookRefTypes
	Reason   string
	Key      string // idempotency key, at most 100 characters
}

// Revoke takes back the grant made under GrantKey (whatever of it is left
// to take: what the member spent becomes debt), once per Key. A grant that
// was never made takes nothing.
type Revoke struct {
	GrantKey string
	RefType  string // one of HookRefTypes
	Key      string
	Reason   string
}

// RefReferral is the ref_type of referral rewards and their reversals.
const RefReferral = "referral"

// HookRefTypes are the ref_types an order hook may give its entries (a
// closed set: the ledger's ref_type is part of the API).
var HookRefTypes = []string{RefReferral}

// UseOrderHook adds h to the hooks of orders and refunds. Call before
// serving.
func (s *Service) UseOrderHook(h OrderHook) { s.orderHooks = append(s.orderHooks, h) }

// orderEffects runs the order hooks for the new order o of the locked
// account a (the buyer's, saved by the caller) and makes their grants.
func (s *Service) orderEffects(ctx context.Context, tx *gorm.DB, a *account, e env, o Order) error {
	for _, h := range s.orderHooks {
		grants, err := h.OrderRecorded(ctx, tx, OrderFact{MerchantID: o.MerchantID, MemberID: o.MemberID, OrderID: o.ID,
			ExternalID: o.ExternalID, AmountFen: o.AmountFen, OrderedAt: o.OrderedAt})
		if err != nil {
			return err
		}
		for _, g := range grants {
			if err := s.hookGrant(ctx, tx, a, e, g); err != nil {
				return err
			}
		}
	}
	return nil
}

// refundEffects runs the order hooks for a new refund of the order o; a is
// the order member's locked account (saved by the caller).
func (s *Service) refundEffects(ctx context.Context, tx *gorm.DB, a *account, o Order, refundID string, refundedFen int64) error {
	for _, h := range s.orderHooks {
		revokes, err := h.OrderRefunded(ctx, tx, RefundFact{MerchantID: o.MerchantID, MemberID: o.MemberID, OrderID: o.ID,
			ExternalID: o.ExternalID, RefundID: refundID, FullyRefunded: refundedFen >= o.AmountFen})
		if err != nil {
			return err
		}
		for _, r := range revokes {
			if err := s.hookRevoke(ctx, tx, a, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// otherAccount locks another member's account for a hook's grant or
// revoke: the member row first, as every operation that may change a tier
// does. Lock order: the order's member, then this one; referrals only
// point at older members, so two orders never take them in opposite
// orders.
func (s *Service) otherAccount(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) (*account, error) {
	if err := member.LockMember(ctx, tx, merchantID, memberID); err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			return nil, nil // merged or gone: nothing to give
		}
		return nil, err
	}
	return s.lockAccount(ctx, tx, merchantID, memberID)
}

func (s *Service) hookGrant(ctx context.Context, tx *gorm.DB, buyer *account, e env, g Grant) error {
	if g.Points <= 0 {
		return nil
	}
	if g.Key == "" || len(g.Key) > 100 || !slices.Contains(HookRefTypes, g.RefType) {
		return fmt.Errorf("points: order hook grant %q of ref_type %q", g.Key, g.RefType)
	}
	key := "hook:" + g.Key
	if prev, err := entryByKey(ctx, tx, buyer.MerchantID, key); err != nil || prev != nil {
		return err
	}
	a := buyer
	if g.MemberID != buyer.MemberID {
		var err error
		if a, err = s.otherAccount(ctx, tx, buyer.MerchantID, g.MemberID); err != nil || a == nil {
			return err
		}
	}
	now := s.now()
	c := creditSpec{Kind: KindGift, Reason: g.Reason, RefType: g.RefType, RefID: clip(g.Key, 64), Key: key,
		RuleVersion: e.rules.Version, Points: g.Points, ExpiresAt: e.rules.Rules.Expiry.ExpiresAt(now, e.loc)}
	if _, _, err := s.credit(ctx, tx, a, c); err != nil {
		return err
	}
	if a == buyer {
		return nil // the order upgrades and saves the buyer's account
	}
	if e.tiersByPoints() {
		if err := s.maybeUpgrade(ctx, tx, a, e, now); err != nil {
			return err
		}
	}
	return s.saveAccount(ctx, tx, a)
}

func (s *Service) hookRevoke(ctx context.Context, tx *gorm.DB, owner *account, r Revoke) error {
	if r.Key == "" || len(r.Key) > 100 || !slices.Contains(HookRefTypes, r.RefType) {
		return fmt.Errorf("points: order hook revoke %q of ref_type %q", r.Key, r.RefType)
	}
	grant, err := entryByKey(ctx, tx, owner.MerchantID, "hook:"+r.GrantKey)
	if err != nil || grant == nil {
		return err
	}
	key := "hook:" + r.Key
	if prev, err := entryByKey(ctx, tx, owner.MerchantID, key); err != nil || prev != nil {
		return err
	}
	// The grant's points may have moved with a merge; the entry names the
	// member that holds them now.
	a := owner
	if grant.MemberID != owner.MemberID {
		if a, err = s.otherAccount(ctx, tx, owner.MerchantID, grant.MemberID); err != nil || a == nil {
			return err
		}
	}
	n := grant.Points + grant.Pending
	if n <= 0 {
		return nil
	}
	if _, _, err := s.debit(ctx, tx, a, debitSpec{Kind: KindReverse, Reason: r.Reason, RefType: r.RefType,
		RefID: clip(r.Key, 64), Key: key, Points: n, AllowDebt: true}); err != nil {
		return err
	}
	if a == owner {
		return nil // the refund saves the order member's account
	}
	return s.saveAccount(ctx, tx, a)
}
