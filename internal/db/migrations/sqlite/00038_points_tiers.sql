-- +goose Up
-- A merchant's tiers: level orders them, threshold qualifies for them,
-- multiplier_pct scales order points, benefits is a JSON array of texts.
CREATE TABLE points_tiers (
  id             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id    INTEGER NOT NULL,
  name           TEXT NOT NULL,
  level          INTEGER NOT NULL,
  threshold      INTEGER NOT NULL,
  multiplier_pct INTEGER NOT NULL DEFAULT 100,
  benefits       TEXT NOT NULL,
  created_at     DATETIME NOT NULL,
  updated_at     DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_points_tiers_level ON points_tiers (merchant_id, level);

-- +goose Down
DROP TABLE points_tiers;
