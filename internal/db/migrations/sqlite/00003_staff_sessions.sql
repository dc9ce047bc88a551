-- +goose Up
-- Bearer sessions of staff. Only the SHA-256 of the token is stored.
CREATE TABLE staff_sessions (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  staff_id    INTEGER NOT NULL,
  token_hash  TEXT NOT NULL,
  expires_at  DATETIME NOT NULL,
  revoked_at  DATETIME NULL,
  created_at  DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_staff_sessions_token ON staff_sessions (token_hash);
CREATE INDEX idx_staff_sessions_staff ON staff_sessions (merchant_id, staff_id);

-- +goose Down
DROP TABLE staff_sessions;
