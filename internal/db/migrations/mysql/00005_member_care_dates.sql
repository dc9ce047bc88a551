-- +goose Up
-- Dates a member wants remembered (wedding anniversary, a child's birthday,
-- custom). idx_care_dates_day serves "whose date is on month/day" scans.
CREATE TABLE member_care_dates (
  id          BIGINT UNSIGNED   NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED   NOT NULL,
  member_id   BIGINT UNSIGNED   NOT NULL,
  kind        VARCHAR(32)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  label       VARCHAR(64)       NOT NULL DEFAULT '',
  month       TINYINT UNSIGNED  NOT NULL,
  day         TINYINT UNSIGNED  NOT NULL,
  year        SMALLINT UNSIGNED NULL,
  created_at  DATETIME(3)       NOT NULL,
  updated_at  DATETIME(3)       NOT NULL,
  PRIMARY KEY (id),
  KEY idx_care_dates_member (merchant_id, member_id),
  KEY idx_care_dates_day (merchant_id, month, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_care_dates;
