-- +goose Up
-- Purchase facts of a member, written by the points package in the same
-- transaction as each order and refund (see member/facts.go): orders not
-- fully refunded, paid minus refunded spend, and the first and last order
-- times among the counted orders. Segments and the lifecycle job filter on
-- them.
ALTER TABLE members ADD COLUMN order_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN total_spend_fen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN first_order_at DATETIME NULL;
ALTER TABLE members ADD COLUMN last_order_at DATETIME NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN last_order_at;
ALTER TABLE members DROP COLUMN first_order_at;
ALTER TABLE members DROP COLUMN total_spend_fen;
ALTER TABLE members DROP COLUMN order_count;
