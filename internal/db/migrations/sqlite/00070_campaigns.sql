-- +goose Up
-- Campaigns: who (target: a segment's rule or tags, minus exclusions), what
-- (channel, template, message, optional gift), when (now, at a time, or a
-- cron in the merchant's zone) and where the send stands. Each run is a
-- step; the step's audience rule is frozen and planned in member-id chunks.
CREATE TABLE campaigns (
  id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id      INTEGER NOT NULL,
  name             TEXT NOT NULL,
  kind             TEXT NOT NULL,
  status           TEXT NOT NULL,
  channel          TEXT NOT NULL,
  template_id      TEXT NOT NULL DEFAULT '',
  message          TEXT NOT NULL,
  target           TEXT NOT NULL,
  gift             TEXT NULL,
  holdout_pct      INTEGER NOT NULL DEFAULT 0,
  schedule_kind    TEXT NOT NULL,
  send_at          DATETIME NULL,
  cron             TEXT NOT NULL DEFAULT '',
  next_run_at      DATETIME NULL,
  attribution_days INTEGER NOT NULL DEFAULT 7,
  step             INTEGER NOT NULL DEFAULT 0,
  step_started_at  DATETIME NULL,
  audience_rule    TEXT NULL,
  plan_max_member  INTEGER NOT NULL DEFAULT 0,
  plan_cursor      INTEGER NOT NULL DEFAULT 0,
  plan_done        INTEGER NOT NULL DEFAULT 0,
  pause_reason     TEXT NOT NULL DEFAULT '',
  created_by       INTEGER NOT NULL DEFAULT 0,
  created_at       DATETIME NOT NULL,
  updated_at       DATETIME NOT NULL,
  completed_at     DATETIME NULL
);
CREATE INDEX idx_campaigns_merchant ON campaigns (merchant_id, id);
CREATE INDEX idx_campaigns_due ON campaigns (status, next_run_at);

-- +goose Down
DROP TABLE campaigns;
