-- +goose Up
-- A merchant is one tenant: its own official account and optional
-- mini-program. Secrets are stored encrypted (internal/secrets); the id is the
-- merchant_id every other table carries.
CREATE TABLE merchants (
  id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  name              TEXT NOT NULL,
  time_zone         TEXT NOT NULL DEFAULT 'Asia/Shanghai',
  sandbox           BOOLEAN NOT NULL DEFAULT 0,
  oa_app_id         TEXT NOT NULL,
  oa_app_secret_enc TEXT NOT NULL,
  oa_token_enc      TEXT NOT NULL,
  oa_aes_key_enc    TEXT NOT NULL DEFAULT '',
  mp_app_id         TEXT NULL,
  mp_app_secret_enc TEXT NOT NULL DEFAULT '',
  created_at        DATETIME NOT NULL,
  updated_at        DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_merchants_oa_app_id ON merchants (oa_app_id);
CREATE UNIQUE INDEX uk_merchants_mp_app_id ON merchants (mp_app_id);

-- +goose Down
DROP TABLE merchants;
