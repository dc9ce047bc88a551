-- +goose Up
-- Members merged into another when a unionid showed they were one person.
CREATE TABLE member_merges (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id    BIGINT UNSIGNED NOT NULL,
  from_member_id BIGINT UNSIGNED NOT NULL,
  into_member_id BIGINT UNSIGNED NOT NULL,
  reason         VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at     DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_member_merges_from (merchant_id, from_member_id),
  KEY idx_member_merges_into (merchant_id, into_member_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_merges;
