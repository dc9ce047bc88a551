-- +goose Up
-- Coupons for the coupon redemptions made before coupons had states: valid
-- 30 days from the redemption (the sweep expires the older ones), cancelled
-- with their redemption. NOT EXISTS makes it a no-op the second time.
INSERT INTO points_coupons (merchant_id, member_id, redemption_id, reward_id, reward_name, code, status,
  expires_at, created_at, updated_at)
SELECT r.merchant_id, r.member_id, r.id, r.reward_id, r.reward_name, r.code,
  CASE WHEN r.status = 'cancelled' THEN 'cancelled' ELSE 'issued' END,
  r.created_at + INTERVAL 30 DAY, r.created_at, r.created_at
FROM points_redemptions r
WHERE r.code IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM points_coupons c WHERE c.merchant_id = r.merchant_id AND c.redemption_id = r.id);

-- +goose Down
SELECT 1;
