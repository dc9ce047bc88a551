-- +goose Up
-- A merchant is one tenant: its own official account and optional
-- mini-program. Secrets are stored encrypted (internal/secrets); the id is the
-- merchant_id every other table carries.
CREATE TABLE merchants (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name              VARCHAR(128)    NOT NULL,
  time_zone         VARCHAR(64)     NOT NULL DEFAULT 'Asia/Shanghai',
  sandbox           TINYINT(1)      NOT NULL DEFAULT 0,
  oa_app_id         VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  oa_app_secret_enc VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  oa_token_enc      VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  oa_aes_key_enc    VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  mp_app_id         VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  mp_app_secret_enc VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  created_at        DATETIME(3)     NOT NULL,
  updated_at        DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_merchants_oa_app_id (oa_app_id),
  UNIQUE KEY uk_merchants_mp_app_id (mp_app_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE merchants;
