-- +goose Up
-- Per-channel marketing consent with the time it was given or withdrawn.
CREATE TABLE member_consents (
  merchant_id BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  channel     VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  granted     TINYINT(1)      NOT NULL,
  granted_at  DATETIME(3)     NULL,
  revoked_at  DATETIME(3)     NULL,
  updated_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, member_id, channel)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_consents;
