-- +goose Up
-- widens: uk_deliveries with notice_key (default ''): every row of the
-- previous release has '', so its plans still meet their duplicates.
-- Service notices: a notice kind is a service campaign (notice_kind), its
-- deliveries one per event (notice_key joins uk_deliveries); see the MySQL
-- migration.
ALTER TABLE campaigns ADD COLUMN notice_kind TEXT NULL;
CREATE UNIQUE INDEX uk_campaigns_notice ON campaigns (merchant_id, notice_kind);
ALTER TABLE campaign_deliveries ADD COLUMN notice_key TEXT NOT NULL DEFAULT '';
ALTER TABLE campaign_deliveries ADD COLUMN vars TEXT NULL;
DROP INDEX uk_deliveries;
CREATE UNIQUE INDEX uk_deliveries ON campaign_deliveries (campaign_id, step, member_id, notice_key);

-- +goose Down
DROP INDEX uk_deliveries;
CREATE UNIQUE INDEX uk_deliveries ON campaign_deliveries (campaign_id, step, member_id);
ALTER TABLE campaign_deliveries DROP COLUMN vars;
ALTER TABLE campaign_deliveries DROP COLUMN notice_key;
DROP INDEX uk_campaigns_notice;
ALTER TABLE campaigns DROP COLUMN notice_kind;
