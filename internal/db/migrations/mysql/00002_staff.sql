-- +goose Up
-- Staff accounts of a merchant. Usernames are lower-cased and unique across
-- the service, so login needs no merchant id.
CREATE TABLE staff (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id   BIGINT UNSIGNED NOT NULL,
  username      VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  password_hash VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  role          VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  disabled_at   DATETIME(3)     NULL,
  created_at    DATETIME(3)     NOT NULL,
  updated_at    DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_staff_username (username),
  KEY idx_staff_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE staff;
