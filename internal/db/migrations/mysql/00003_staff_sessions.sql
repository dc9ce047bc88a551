-- +goose Up
-- Bearer sessions of staff. Only the SHA-256 of the token is stored.
CREATE TABLE staff_sessions (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  staff_id    BIGINT UNSIGNED NOT NULL,
  token_hash  CHAR(64)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expires_at  DATETIME(3)     NOT NULL,
  revoked_at  DATETIME(3)     NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_staff_sessions_token (token_hash),
  KEY idx_staff_sessions_staff (merchant_id, staff_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE staff_sessions;
