-- +goose Up
-- Gift retries with backoff; see the MySQL migration.
ALTER TABLE campaign_deliveries ADD COLUMN gift_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaign_deliveries ADD COLUMN gift_next_at DATETIME NULL;
ALTER TABLE campaign_deliveries ADD COLUMN gift_error TEXT NOT NULL DEFAULT '';
UPDATE campaign_deliveries SET gift_next_at = updated_at WHERE gift_state = 1;
DROP INDEX idx_deliveries_gift;
CREATE INDEX idx_deliveries_gift ON campaign_deliveries (gift_state, merchant_id, gift_next_at);

-- +goose Down
DROP INDEX idx_deliveries_gift;
CREATE INDEX idx_deliveries_gift ON campaign_deliveries (gift_state, id);
ALTER TABLE campaign_deliveries DROP COLUMN gift_error;
ALTER TABLE campaign_deliveries DROP COLUMN gift_next_at;
ALTER TABLE campaign_deliveries DROP COLUMN gift_attempts;
