-- +goose Up
-- Per-channel marketing consent with the time it was given or withdrawn.
CREATE TABLE member_consents (
  merchant_id INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  channel     TEXT NOT NULL,
  granted     BOOLEAN NOT NULL,
  granted_at  DATETIME NULL,
  revoked_at  DATETIME NULL,
  updated_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, member_id, channel)
);

-- +goose Down
DROP TABLE member_consents;
