-- +goose Up
-- Failed-login counters per username and per client address, shared by all
-- instances. A login comes before any tenant is known, so this table is the
-- one besides merchants without a merchant_id.
CREATE TABLE login_throttle (
  throttle_key     VARCHAR(160) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  failures         INT UNSIGNED NOT NULL DEFAULT 0,
  last_failure_at DATETIME(3)  NOT NULL,
  locked_until     DATETIME(3)  NULL,
  PRIMARY KEY (throttle_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE login_throttle;
