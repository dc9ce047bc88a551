-- +goose Up
-- Purchase facts of a member, written by the points package in the same
-- transaction as each order and refund (see member/facts.go): orders not
-- fully refunded, paid minus refunded spend, and the first and last order
-- times among the counted orders. Segments and the lifecycle job filter on
-- them. Columns only: appending columns with defaults is an instant ALTER.
ALTER TABLE members
  ADD COLUMN order_count     INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN total_spend_fen BIGINT       NOT NULL DEFAULT 0,
  ADD COLUMN first_order_at  DATETIME(3)  NULL,
  ADD COLUMN last_order_at   DATETIME(3)  NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN last_order_at, DROP COLUMN first_order_at, DROP COLUMN total_spend_fen, DROP COLUMN order_count;
