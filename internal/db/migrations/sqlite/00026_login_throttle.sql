-- +goose Up
-- Failed-login counters per username and per client address, shared by all
-- instances. A login comes before any tenant is known, so this table is the
-- one besides merchants without a merchant_id.
CREATE TABLE login_throttle (
  throttle_key     TEXT NOT NULL PRIMARY KEY,
  failures         INTEGER NOT NULL DEFAULT 0,
  last_failure_at DATETIME NOT NULL,
  locked_until     DATETIME NULL
);

-- +goose Down
DROP TABLE login_throttle;
