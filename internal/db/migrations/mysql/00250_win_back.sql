-- +goose Up
-- Win-back with attempts (docs/README.md, "Win-back"). win_back_settings is
-- a merchant's program: whether it runs, how many attempts (DOMAIN: 3),
-- the days between them, the local send time, and each attempt's message
-- and optional offer as JSON (steps).
CREATE TABLE win_back_settings (
  merchant_id       BIGINT UNSIGNED NOT NULL,
  enabled           TINYINT(1)      NOT NULL DEFAULT 0,
  max_attempts      INT             NOT NULL DEFAULT 3,
  interval_days     INT             NOT NULL DEFAULT 7,
  send_minute       INT             NOT NULL DEFAULT 600,
  channel           VARCHAR(20)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'template',
  include_lead_tier TINYINT(1)      NOT NULL DEFAULT 0,
  steps             TEXT            NOT NULL,
  active_since      DATETIME(3)     NULL,
  created_at        DATETIME(3)     NOT NULL,
  updated_at        DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One member's win-back episode: entered when at risk or churned, keyed by
-- the last order it follows (uk_win_back_sequences: one episode per lapse,
-- however many passes run), ended won back by an order or lost after the
-- last unanswered attempt. idx_win_back_sequences_open walks the active
-- ones; idx_win_back_sequences_started serves the report.
CREATE TABLE win_back_sequences (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id       BIGINT UNSIGNED NOT NULL,
  member_id         BIGINT UNSIGNED NOT NULL,
  since_order_at    DATETIME(3)     NOT NULL,
  entered_stage     VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status            VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempts          INT             NOT NULL DEFAULT 0,
  last_attempt_date CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NULL,
  started_at        DATETIME(3)     NOT NULL,
  ended_at          DATETIME(3)     NULL,
  won_back_at       DATETIME(3)     NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_win_back_sequences (merchant_id, member_id, since_order_at),
  KEY idx_win_back_sequences_open (merchant_id, status, id),
  KEY idx_win_back_sequences_started (merchant_id, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every attempt decided: uk_win_back_attempts makes attempt k of an
-- episode happen once, written in the transaction that plans its delivery
-- (found again by batch, as care_sends). offer_points is what the offer
-- costs in points (a reward: its points price), for the cost figure.
CREATE TABLE win_back_attempts (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  sequence_id  BIGINT UNSIGNED NOT NULL,
  member_id    BIGINT UNSIGNED NOT NULL,
  attempt      INT             NOT NULL,
  local_date   CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  campaign_id  BIGINT UNSIGNED NOT NULL,
  offer_points BIGINT          NOT NULL DEFAULT 0,
  batch        CHAR(16)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_win_back_attempts (sequence_id, attempt),
  KEY idx_win_back_attempts_batch (merchant_id, batch),
  KEY idx_win_back_attempts_member (merchant_id, member_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One campaign per attempt number, local date and offer (lead-tier members
-- get the message without the paid offer by default).
CREATE TABLE win_back_runs (
  merchant_id BIGINT UNSIGNED NOT NULL,
  attempt     INT             NOT NULL,
  local_date  CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  offer       TINYINT(1)      NOT NULL,
  campaign_id BIGINT UNSIGNED NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, attempt, local_date, offer)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- When the member's last win-back episode ended lost (DOMAIN: lost after
-- the last unanswered attempt); an order after it wins the member back.
ALTER TABLE members ADD COLUMN win_back_lost_at DATETIME(3) NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN win_back_lost_at;
DROP TABLE win_back_runs;
DROP TABLE win_back_attempts;
DROP TABLE win_back_sequences;
DROP TABLE win_back_settings;
