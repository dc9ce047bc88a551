-- +goose Up
-- Member imports (see the MySQL file).
CREATE TABLE IF NOT EXISTS member_imports (
  id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id   INTEGER NOT NULL,
  file_hash     TEXT NOT NULL,
  file_name     TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  rows_read     INTEGER NOT NULL DEFAULT 0,
  cursor_row    INTEGER NOT NULL DEFAULT 0,
  created       INTEGER NOT NULL DEFAULT 0,
  existing      INTEGER NOT NULL DEFAULT 0,
  rejected      INTEGER NOT NULL DEFAULT 0,
  rejected_rows TEXT NULL,
  error         TEXT NOT NULL DEFAULT '',
  lease_owner   TEXT NULL,
  lease_until   DATETIME NULL,
  created_at    DATETIME NOT NULL,
  updated_at    DATETIME NOT NULL,
  finished_at   DATETIME NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uk_member_imports_file ON member_imports (merchant_id, file_hash);

-- +goose Down
DROP TABLE IF EXISTS member_imports;
