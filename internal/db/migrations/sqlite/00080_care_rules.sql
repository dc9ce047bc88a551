-- +goose Up
-- Care automations (campaign/care.go). See the MySQL file for the columns.
CREATE TABLE care_rules (
  id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id       INTEGER NOT NULL,
  name              TEXT NOT NULL,
  kind              TEXT NOT NULL,
  enabled           INTEGER NOT NULL DEFAULT 1,
  channel           TEXT NOT NULL,
  template_id       TEXT NOT NULL DEFAULT '',
  message           TEXT NOT NULL,
  gift              TEXT NULL,
  send_minute       INTEGER NOT NULL DEFAULT 600,
  days              INTEGER NOT NULL DEFAULT 0,
  care_date_kind    TEXT NOT NULL DEFAULT '',
  label             TEXT NOT NULL DEFAULT '',
  include_lead_tier INTEGER NOT NULL DEFAULT 0,
  active_since      DATETIME NOT NULL,
  scanned_through   TEXT NULL,
  watermark         DATETIME NULL,
  created_by        INTEGER NOT NULL DEFAULT 0,
  created_at        DATETIME NOT NULL,
  updated_at        DATETIME NOT NULL,
  deleted_at        DATETIME NULL
);
CREATE INDEX idx_care_rules_merchant ON care_rules (merchant_id, id);
CREATE INDEX idx_care_rules_enabled ON care_rules (enabled, merchant_id);

-- +goose Down
DROP TABLE care_rules;
