-- +goose Up
-- widens: uk_deliveries with notice_key (default ''): every row of the
-- previous release has '', so its plans still meet their duplicates.
-- Service notices (campaign/notices.go). A merchant's notice kind (points
-- earned, coupon issued...) is a service campaign that never completes:
-- notice_kind names it, one per merchant and kind (uk_campaigns_notice;
-- NULL for every other campaign). Its deliveries are one per event, not
-- one per member: notice_key names the event (a ledger entry, a coupon, a
-- tier change...) and joins uk_deliveries, so the row written in the
-- event's own transaction is the one notice that event can ever produce.
-- Every other delivery keeps notice_key '' and so stays one per (campaign,
-- step, member). vars holds the event's message variables (JSON).
ALTER TABLE campaigns
  ADD COLUMN notice_kind VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ADD UNIQUE KEY uk_campaigns_notice (merchant_id, notice_kind);
ALTER TABLE campaign_deliveries
  ADD COLUMN notice_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  ADD COLUMN vars       TEXT NULL,
  DROP INDEX uk_deliveries,
  ADD UNIQUE KEY uk_deliveries (campaign_id, step, member_id, notice_key);

-- +goose Down
ALTER TABLE campaign_deliveries
  DROP INDEX uk_deliveries,
  ADD UNIQUE KEY uk_deliveries (campaign_id, step, member_id),
  DROP COLUMN vars,
  DROP COLUMN notice_key;
ALTER TABLE campaigns
  DROP INDEX uk_campaigns_notice,
  DROP COLUMN notice_kind;
