-- +goose Up
-- Satisfaction surveys (docs/README.md, "Satisfaction surveys"; DOMAIN:
-- satisfaction = experience − expectation). surveys is what a merchant
-- asks: NPS 0–10 and satisfaction 1–5 always, any of the seven satisfaction
-- indicators (JSON list), optionally an expectation score; when enabled,
-- it is sent delay_hours after a member's last paid order, at most once
-- every min_days_between days per member. idx_surveys_enabled finds the
-- merchants with work.
CREATE TABLE surveys (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id      BIGINT UNSIGNED NOT NULL,
  name             VARCHAR(64)     NOT NULL,
  enabled          TINYINT(1)      NOT NULL DEFAULT 0,
  indicators       TEXT            NOT NULL,
  ask_expectation  TINYINT(1)      NOT NULL DEFAULT 0,
  delay_hours      INT             NOT NULL DEFAULT 24,
  min_days_between INT             NOT NULL DEFAULT 30,
  channel          VARCHAR(20)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'template',
  template_id      VARCHAR(64)     NOT NULL DEFAULT '',
  message          TEXT            NOT NULL,
  active_since     DATETIME(3)     NULL,
  created_at       DATETIME(3)     NOT NULL,
  updated_at       DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_surveys_enabled (enabled, merchant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One invitation per member and the order it follows
-- (uk_survey_invitations: however many passes or instances run), written
-- in the transaction that plans its delivery in the survey's campaign of
-- the day (found again by batch, as care_sends). "At most once per N days"
-- is checked under the member's row lock through idx_survey_invitations_member.
CREATE TABLE survey_invitations (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id    BIGINT UNSIGNED NOT NULL,
  survey_id      BIGINT UNSIGNED NOT NULL,
  member_id      BIGINT UNSIGNED NOT NULL,
  since_order_at DATETIME(3)     NOT NULL,
  local_date     CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  campaign_id    BIGINT UNSIGNED NOT NULL,
  batch          CHAR(16)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  invited_at     DATETIME(3)     NOT NULL,
  expires_at     DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_survey_invitations (merchant_id, member_id, since_order_at),
  KEY idx_survey_invitations_member (merchant_id, member_id, invited_at),
  KEY idx_survey_invitations_batch (merchant_id, batch),
  KEY idx_survey_invitations_time (merchant_id, invited_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One answer per invitation (uk_survey_answers_invitation: a second answer
-- is refused). idx_survey_answers_time serves the results and the
-- detractor care rule (events since its watermark).
CREATE TABLE survey_answers (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id   BIGINT UNSIGNED NOT NULL,
  survey_id     BIGINT UNSIGNED NOT NULL,
  invitation_id BIGINT UNSIGNED NOT NULL,
  member_id     BIGINT UNSIGNED NOT NULL,
  nps           INT             NOT NULL,
  satisfaction  INT             NOT NULL,
  expectation   INT             NULL,
  indicators    TEXT            NOT NULL,
  comment       VARCHAR(500)    NOT NULL DEFAULT '',
  answered_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_survey_answers_invitation (invitation_id),
  KEY idx_survey_answers_time (merchant_id, answered_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The campaign of a survey's local day (as care_runs).
CREATE TABLE survey_runs (
  merchant_id BIGINT UNSIGNED NOT NULL,
  survey_id   BIGINT UNSIGNED NOT NULL,
  local_date  CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  campaign_id BIGINT UNSIGNED NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, survey_id, local_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each member's last answer: attributes for segments and churn risk.
ALTER TABLE members ADD COLUMN last_nps INT NULL, ADD COLUMN last_satisfaction INT NULL, ADD COLUMN last_survey_at DATETIME(3) NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN last_survey_at, DROP COLUMN last_satisfaction, DROP COLUMN last_nps;
DROP TABLE survey_runs;
DROP TABLE survey_answers;
DROP TABLE survey_invitations;
DROP TABLE surveys;
