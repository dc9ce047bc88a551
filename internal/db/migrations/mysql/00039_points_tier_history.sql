-- +goose Up
-- Every change of a member's tier (upgrade, downgrade, grace started,
-- retained at review, merge), with the qualifying value at the time.
CREATE TABLE points_tier_history (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  member_id    BIGINT UNSIGNED NOT NULL,
  from_tier_id BIGINT UNSIGNED NULL,
  to_tier_id   BIGINT UNSIGNED NULL,
  reason       VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  qualifying   BIGINT          NOT NULL,
  created_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_points_tier_history_member (merchant_id, member_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_tier_history;
