-- +goose Up
-- Satisfaction surveys (see the MySQL file).
CREATE TABLE surveys (
  id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id      INTEGER NOT NULL,
  name             TEXT NOT NULL,
  enabled          BOOLEAN NOT NULL DEFAULT 0,
  indicators       TEXT NOT NULL,
  ask_expectation  BOOLEAN NOT NULL DEFAULT 0,
  delay_hours      INTEGER NOT NULL DEFAULT 24,
  min_days_between INTEGER NOT NULL DEFAULT 30,
  channel          TEXT NOT NULL DEFAULT 'template',
  template_id      TEXT NOT NULL DEFAULT '',
  message          TEXT NOT NULL,
  active_since     DATETIME NULL,
  created_at       DATETIME NOT NULL,
  updated_at       DATETIME NOT NULL
);
CREATE INDEX idx_surveys_enabled ON surveys (enabled, merchant_id);

CREATE TABLE survey_invitations (
  id             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id    INTEGER NOT NULL,
  survey_id      INTEGER NOT NULL,
  member_id      INTEGER NOT NULL,
  since_order_at DATETIME NOT NULL,
  local_date     TEXT NOT NULL,
  campaign_id    INTEGER NOT NULL,
  batch          TEXT NOT NULL,
  invited_at     DATETIME NOT NULL,
  expires_at     DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_survey_invitations ON survey_invitations (merchant_id, member_id, since_order_at);
CREATE INDEX idx_survey_invitations_member ON survey_invitations (merchant_id, member_id, invited_at);
CREATE INDEX idx_survey_invitations_batch ON survey_invitations (merchant_id, batch);
CREATE INDEX idx_survey_invitations_time ON survey_invitations (merchant_id, invited_at);

CREATE TABLE survey_answers (
  id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id   INTEGER NOT NULL,
  survey_id     INTEGER NOT NULL,
  invitation_id INTEGER NOT NULL,
  member_id     INTEGER NOT NULL,
  nps           INTEGER NOT NULL,
  satisfaction  INTEGER NOT NULL,
  expectation   INTEGER NULL,
  indicators    TEXT NOT NULL,
  comment       TEXT NOT NULL DEFAULT '',
  answered_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_survey_answers_invitation ON survey_answers (invitation_id);
CREATE INDEX idx_survey_answers_time ON survey_answers (merchant_id, answered_at);

CREATE TABLE survey_runs (
  merchant_id INTEGER NOT NULL,
  survey_id   INTEGER NOT NULL,
  local_date  TEXT NOT NULL,
  campaign_id INTEGER NOT NULL,
  created_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, survey_id, local_date)
);

ALTER TABLE members ADD COLUMN last_nps INTEGER NULL;
ALTER TABLE members ADD COLUMN last_satisfaction INTEGER NULL;
ALTER TABLE members ADD COLUMN last_survey_at DATETIME NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN last_survey_at;
ALTER TABLE members DROP COLUMN last_satisfaction;
ALTER TABLE members DROP COLUMN last_nps;
DROP TABLE survey_runs;
DROP TABLE survey_answers;
DROP TABLE survey_invitations;
DROP TABLE surveys;
