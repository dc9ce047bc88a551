-- +goose Up
-- Computed attributes of a member (member/attributes.go) and the city of
-- the profile: RFM scores 1-5 (quintiles within the merchant over the
-- trailing 12 months; NULL without a purchase in that time), the value
-- pyramid tier (platinum, gold, iron, lead), the CLV estimate in fen, the
-- churn-risk score 0-100 with its reason, and when they were computed.
ALTER TABLE members ADD COLUMN city TEXT NULL;
ALTER TABLE members ADD COLUMN rfm_r INTEGER NULL;
ALTER TABLE members ADD COLUMN rfm_f INTEGER NULL;
ALTER TABLE members ADD COLUMN rfm_m INTEGER NULL;
ALTER TABLE members ADD COLUMN pyramid_tier TEXT NULL;
ALTER TABLE members ADD COLUMN clv_fen INTEGER NULL;
ALTER TABLE members ADD COLUMN churn_risk INTEGER NULL;
ALTER TABLE members ADD COLUMN churn_reason TEXT NULL;
ALTER TABLE members ADD COLUMN attributes_at DATETIME NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN attributes_at;
ALTER TABLE members DROP COLUMN churn_reason;
ALTER TABLE members DROP COLUMN churn_risk;
ALTER TABLE members DROP COLUMN clv_fen;
ALTER TABLE members DROP COLUMN pyramid_tier;
ALTER TABLE members DROP COLUMN rfm_m;
ALTER TABLE members DROP COLUMN rfm_f;
ALTER TABLE members DROP COLUMN rfm_r;
ALTER TABLE members DROP COLUMN city;
