package campaign

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/wxloyalty/loyalty/points"
)

// ExpiringCoupons lists a merchant's issued coupons expiring soon, by
// coupon id after a cursor; *points.Service satisfies it.
type ExpiringCoupons interface {
	CouponsExpiringSoon(ctx context.Context, merchantID uint64, within time.Duration, afterID uint64, limit int) ([]points.ExpiringCoupon, error)
}

// couponsDue returns the members a coupon_expiring rule reminds today:
// one item per coupon that expires within the rule's days, its
// occurrence the coupon ("coupon:<id>"), so each coupon is announced once
// (uk_care_sends) however many days it stays in the window. A member with
// several such coupons gets one message a day (one delivery per member and
// campaign).
func (s *Care) couponsDue(ctx context.Context, r CareRule, _ *time.Location) ([]careItem, error) {
	if s.coupons == nil {
		return nil, nil
	}
	within := time.Duration(r.Days) * 24 * time.Hour
	var items []careItem
	var after uint64
	for {
		page, err := s.coupons.CouponsExpiringSoon(ctx, r.MerchantID, within, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("care: expiring coupons: %w", err)
		}
		for _, c := range page {
			items = append(items, careItem{c.MemberID, "coupon:" + strconv.FormatUint(c.ID, 10)})
		}
		if len(page) < 1000 {
			return items, nil
		}
		after = page[len(page)-1].ID
	}
}
