-- +goose Up
-- One row per (campaign, step, member): uk_deliveries makes planning
-- re-runnable and sending twice impossible. See the MySQL file for the
-- statuses and indexes.
CREATE TABLE campaign_deliveries (
  id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id     INTEGER NOT NULL,
  campaign_id     INTEGER NOT NULL,
  step            INTEGER NOT NULL,
  member_id       INTEGER NOT NULL,
  openid          TEXT NOT NULL DEFAULT '',
  capped          INTEGER NOT NULL DEFAULT 1,
  status          TEXT NOT NULL,
  reason          TEXT NOT NULL DEFAULT '',
  errcode         INTEGER NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at DATETIME NULL,
  lease_owner     TEXT NULL,
  lease_until     DATETIME NULL,
  msg_id          INTEGER NULL,
  sent_at         DATETIME NULL,
  finished_at     DATETIME NULL,
  gift_state      INTEGER NOT NULL DEFAULT 0,
  created_at      DATETIME NOT NULL,
  updated_at      DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_deliveries ON campaign_deliveries (campaign_id, step, member_id);
CREATE INDEX idx_deliveries_claim ON campaign_deliveries (campaign_id, status, id);
CREATE INDEX idx_deliveries_lease ON campaign_deliveries (status, lease_until);
CREATE INDEX idx_deliveries_msg ON campaign_deliveries (merchant_id, msg_id);
CREATE INDEX idx_deliveries_member ON campaign_deliveries (merchant_id, member_id, sent_at);
CREATE INDEX idx_deliveries_gift ON campaign_deliveries (gift_state, id);

-- +goose Down
DROP TABLE campaign_deliveries;
