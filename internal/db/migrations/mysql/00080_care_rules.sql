-- +goose Up
-- Care automations (campaign/care.go): what a merchant wants sent to whom
-- and when, without anyone pressing a button. kind says whom (birthday,
-- membership_anniversary, care_date, welcome, second_purchase, win_back,
-- won_back_thanks, points_expiring); days is the kind's offset (days
-- before the date, days after the stage change, or days ahead of a points
-- expiry); care_date_kind and label narrow care_date rules; send_minute is
-- the local time (minutes after midnight) the day's sends start. The
-- scheduler's progress: scanned_through is the last local date whose
-- members were looked up (date kinds), watermark the time up to which
-- events were read (welcome and stage kinds), active_since when the rule
-- was last enabled (nothing before it fires). Deleted rules are kept
-- (deleted_at) so their sends stay explained. idx_care_rules_enabled finds
-- the merchants the scheduler has work for.
CREATE TABLE care_rules (
  id                BIGINT UNSIGNED   NOT NULL AUTO_INCREMENT,
  merchant_id       BIGINT UNSIGNED   NOT NULL,
  name              VARCHAR(64)       NOT NULL,
  kind              VARCHAR(24)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  enabled           TINYINT(1)        NOT NULL DEFAULT 1,
  channel           VARCHAR(24)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  template_id       VARCHAR(128)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  message           TEXT              NOT NULL,
  gift              TEXT              NULL,
  send_minute       SMALLINT UNSIGNED NOT NULL DEFAULT 600,
  days              SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  care_date_kind    VARCHAR(32)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  label             VARCHAR(64)       NOT NULL DEFAULT '',
  include_lead_tier TINYINT(1)        NOT NULL DEFAULT 0,
  active_since      DATETIME(3)       NOT NULL,
  scanned_through   CHAR(10)          CHARACTER SET ascii COLLATE ascii_bin NULL,
  watermark         DATETIME(3)       NULL,
  created_by        BIGINT UNSIGNED   NOT NULL DEFAULT 0,
  created_at        DATETIME(3)       NOT NULL,
  updated_at        DATETIME(3)       NOT NULL,
  deleted_at        DATETIME(3)       NULL,
  PRIMARY KEY (id),
  KEY idx_care_rules_merchant (merchant_id, id),
  KEY idx_care_rules_enabled (enabled, merchant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE care_rules;
