-- +goose Up
-- Staff accounts of a merchant. Usernames are lower-cased and unique across
-- the service, so login needs no merchant id.
CREATE TABLE staff (
  id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id   INTEGER NOT NULL,
  username      TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role          TEXT NOT NULL,
  disabled_at   DATETIME NULL,
  created_at    DATETIME NOT NULL,
  updated_at    DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_staff_username ON staff (username);
CREATE INDEX idx_staff_merchant ON staff (merchant_id, id);

-- +goose Down
DROP TABLE staff;
