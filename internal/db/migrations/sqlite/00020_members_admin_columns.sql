-- +goose Up
-- Merchant-side member fields of the admin API: a staff remark, the
-- lifecycle stage (computed by the lifecycle job; until it runs every member
-- is 'potential', which is right while there are no orders), the loyalty
-- tier (tiers come with points) and the time of a PIPL erasure.
ALTER TABLE members ADD COLUMN remark TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN lifecycle_stage TEXT NOT NULL DEFAULT 'potential';
ALTER TABLE members ADD COLUMN tier_id INTEGER NULL;
ALTER TABLE members ADD COLUMN erased_at DATETIME NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN erased_at;
ALTER TABLE members DROP COLUMN tier_id;
ALTER TABLE members DROP COLUMN lifecycle_stage;
ALTER TABLE members DROP COLUMN remark;
