-- +goose Up
-- Server-to-server keys (POS, shop). Only the SHA-256 of a key is stored;
-- uk_api_keys_hash makes authentication one index probe. scopes is a
-- comma-separated list of permissions.
CREATE TABLE api_keys (
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  name         TEXT NOT NULL,
  prefix       TEXT NOT NULL,
  key_hash     TEXT NOT NULL,
  scopes       TEXT NOT NULL,
  created_by   INTEGER NOT NULL,
  expires_at   DATETIME NULL,
  last_used_at DATETIME NULL,
  revoked_at   DATETIME NULL,
  created_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_api_keys_hash ON api_keys (key_hash);
CREATE INDEX idx_api_keys_merchant ON api_keys (merchant_id, id);

-- +goose Down
DROP TABLE api_keys;
