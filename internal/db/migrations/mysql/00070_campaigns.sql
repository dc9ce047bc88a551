-- +goose Up
-- Campaigns: who (target: a segment's rule or tags, minus exclusions), what
-- (channel, template, message, optional gift), when (now, at a time, or a
-- cron in the merchant's zone) and where the send stands. Each run is a
-- step; the step's audience rule is frozen (audience_rule, evaluated at
-- step_started_at, members up to plan_max_member) and planned in member-id
-- chunks from plan_cursor. idx_campaigns_due finds what the engine has to
-- start or work on across merchants.
CREATE TABLE campaigns (
  id               BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  merchant_id      BIGINT UNSIGNED  NOT NULL,
  name             VARCHAR(128)     NOT NULL,
  kind             VARCHAR(16)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status           VARCHAR(16)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  channel          VARCHAR(24)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  template_id      VARCHAR(128)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  message          TEXT             NOT NULL,
  target           TEXT             NOT NULL,
  gift             TEXT             NULL,
  holdout_pct      TINYINT UNSIGNED NOT NULL DEFAULT 0,
  schedule_kind    VARCHAR(8)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  send_at          DATETIME(3)      NULL,
  cron             VARCHAR(64)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  next_run_at      DATETIME(3)      NULL,
  attribution_days SMALLINT UNSIGNED NOT NULL DEFAULT 7,
  step             INT UNSIGNED     NOT NULL DEFAULT 0,
  step_started_at  DATETIME(3)      NULL,
  audience_rule    TEXT             NULL,
  plan_max_member  BIGINT UNSIGNED  NOT NULL DEFAULT 0,
  plan_cursor      BIGINT UNSIGNED  NOT NULL DEFAULT 0,
  plan_done        TINYINT(1)       NOT NULL DEFAULT 0,
  pause_reason     VARCHAR(255)     NOT NULL DEFAULT '',
  created_by       BIGINT UNSIGNED  NOT NULL DEFAULT 0,
  created_at       DATETIME(3)      NOT NULL,
  updated_at       DATETIME(3)      NOT NULL,
  completed_at     DATETIME(3)      NULL,
  PRIMARY KEY (id),
  KEY idx_campaigns_merchant (merchant_id, id),
  KEY idx_campaigns_due (status, next_run_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE campaigns;
