-- +goose Up
-- Win-back with attempts (see the MySQL file).
CREATE TABLE win_back_settings (
  merchant_id       INTEGER NOT NULL PRIMARY KEY,
  enabled           BOOLEAN NOT NULL DEFAULT 0,
  max_attempts      INTEGER NOT NULL DEFAULT 3,
  interval_days     INTEGER NOT NULL DEFAULT 7,
  send_minute       INTEGER NOT NULL DEFAULT 600,
  channel           TEXT NOT NULL DEFAULT 'template',
  include_lead_tier BOOLEAN NOT NULL DEFAULT 0,
  steps             TEXT NOT NULL,
  active_since      DATETIME NULL,
  created_at        DATETIME NOT NULL,
  updated_at        DATETIME NOT NULL
);

CREATE TABLE win_back_sequences (
  id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id       INTEGER NOT NULL,
  member_id         INTEGER NOT NULL,
  since_order_at    DATETIME NOT NULL,
  entered_stage     TEXT NOT NULL,
  status            TEXT NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  last_attempt_date TEXT NULL,
  started_at        DATETIME NOT NULL,
  ended_at          DATETIME NULL,
  won_back_at       DATETIME NULL
);
CREATE UNIQUE INDEX uk_win_back_sequences ON win_back_sequences (merchant_id, member_id, since_order_at);
CREATE INDEX idx_win_back_sequences_open ON win_back_sequences (merchant_id, status, id);
CREATE INDEX idx_win_back_sequences_started ON win_back_sequences (merchant_id, started_at);

CREATE TABLE win_back_attempts (
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  sequence_id  INTEGER NOT NULL,
  member_id    INTEGER NOT NULL,
  attempt      INTEGER NOT NULL,
  local_date   TEXT NOT NULL,
  campaign_id  INTEGER NOT NULL,
  offer_points INTEGER NOT NULL DEFAULT 0,
  batch        TEXT NOT NULL,
  created_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_win_back_attempts ON win_back_attempts (sequence_id, attempt);
CREATE INDEX idx_win_back_attempts_batch ON win_back_attempts (merchant_id, batch);
CREATE INDEX idx_win_back_attempts_member ON win_back_attempts (merchant_id, member_id);

CREATE TABLE win_back_runs (
  merchant_id INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  local_date  TEXT NOT NULL,
  offer       BOOLEAN NOT NULL,
  campaign_id INTEGER NOT NULL,
  created_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, attempt, local_date, offer)
);

ALTER TABLE members ADD COLUMN win_back_lost_at DATETIME NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN win_back_lost_at;
DROP TABLE win_back_runs;
DROP TABLE win_back_attempts;
DROP TABLE win_back_sequences;
DROP TABLE win_back_settings;
