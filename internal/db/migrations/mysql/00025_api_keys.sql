-- +goose Up
-- Server-to-server keys (POS, shop). Only the SHA-256 of a key is stored;
-- uk_api_keys_hash makes authentication one index probe. scopes is a
-- comma-separated list of permissions.
CREATE TABLE api_keys (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  name         VARCHAR(64)     NOT NULL,
  prefix       VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  key_hash     CHAR(64)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  scopes       VARCHAR(512)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_by   BIGINT UNSIGNED NOT NULL,
  expires_at   DATETIME(3)     NULL,
  last_used_at DATETIME(3)     NULL,
  revoked_at   DATETIME(3)     NULL,
  created_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_api_keys_hash (key_hash),
  KEY idx_api_keys_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE api_keys;
