-- +goose Up
-- Gifts of sent deliveries are retried with backoff and given up with a
-- reason (campaign/record.go): gift_attempts counts the failed attempts,
-- gift_next_at is when the next one is due, gift_error keeps the last
-- failure. idx_deliveries_gift (gift_state, merchant_id, gift_next_at)
-- finds, per merchant, the gifts whose time has come, so one merchant's
-- failing gifts cannot crowd out another's.
ALTER TABLE campaign_deliveries
  ADD COLUMN gift_attempts TINYINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN gift_next_at  DATETIME(3)      NULL,
  ADD COLUMN gift_error    VARCHAR(255)     NOT NULL DEFAULT '',
  DROP INDEX idx_deliveries_gift,
  ADD INDEX idx_deliveries_gift (gift_state, merchant_id, gift_next_at);
UPDATE campaign_deliveries SET gift_next_at = updated_at WHERE gift_state = 1;

-- +goose Down
ALTER TABLE campaign_deliveries
  DROP INDEX idx_deliveries_gift,
  ADD INDEX idx_deliveries_gift (gift_state, id),
  DROP COLUMN gift_error,
  DROP COLUMN gift_next_at,
  DROP COLUMN gift_attempts;
