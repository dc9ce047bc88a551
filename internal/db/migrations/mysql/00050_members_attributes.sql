-- +goose Up
-- Computed attributes of a member (member/attributes.go) and the city of
-- the profile: RFM scores 1-5 (quintiles within the merchant over the
-- trailing 12 months; NULL without a purchase in that time), the value
-- pyramid tier (platinum, gold, iron, lead), the CLV estimate in fen, the
-- churn-risk score 0-100 with its reason, and when they were computed.
-- Segments filter on them. Columns only: an instant ALTER.
ALTER TABLE members
  ADD COLUMN city          VARCHAR(64)      NULL,
  ADD COLUMN rfm_r         TINYINT UNSIGNED NULL,
  ADD COLUMN rfm_f         TINYINT UNSIGNED NULL,
  ADD COLUMN rfm_m         TINYINT UNSIGNED NULL,
  ADD COLUMN pyramid_tier  VARCHAR(16)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  ADD COLUMN clv_fen       BIGINT           NULL,
  ADD COLUMN churn_risk    TINYINT UNSIGNED NULL,
  ADD COLUMN churn_reason  VARCHAR(64)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  ADD COLUMN attributes_at DATETIME(3)      NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN attributes_at, DROP COLUMN churn_reason, DROP COLUMN churn_risk, DROP COLUMN clv_fen,
  DROP COLUMN pyramid_tier, DROP COLUMN rfm_m, DROP COLUMN rfm_f, DROP COLUMN rfm_r, DROP COLUMN city;
