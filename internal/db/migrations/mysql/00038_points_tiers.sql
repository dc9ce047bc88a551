-- +goose Up
-- A merchant's tiers (普通/银卡/金卡/VIP...): level orders them (higher is
-- better), threshold is the spend in fen or the points earned within the
-- rules' rolling window that qualifies for the tier, multiplier_pct scales
-- order points (100 = x1), benefits is a JSON array of texts shown to
-- members.
CREATE TABLE points_tiers (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id    BIGINT UNSIGNED NOT NULL,
  name           VARCHAR(32)     NOT NULL,
  level          INT             NOT NULL,
  threshold      BIGINT          NOT NULL,
  multiplier_pct INT             NOT NULL DEFAULT 100,
  benefits       TEXT            NOT NULL,
  created_at     DATETIME(3)     NOT NULL,
  updated_at     DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_points_tiers_level (merchant_id, level)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_tiers;
