-- +goose Up
-- Merchant-side member fields of the admin API: a staff remark, the
-- lifecycle stage (computed by the lifecycle job; until it runs every member
-- is 'potential', which is right while there are no orders), the loyalty
-- tier (tiers come with points) and the time of a PIPL erasure. Columns only:
-- appending columns with defaults is an instant ALTER on MariaDB 10.3+ and
-- MySQL 8, which mixing in index builds would turn into a table rebuild.
ALTER TABLE members
  ADD COLUMN remark          VARCHAR(500)    NOT NULL DEFAULT '',
  ADD COLUMN lifecycle_stage VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'potential',
  ADD COLUMN tier_id         BIGINT UNSIGNED NULL,
  ADD COLUMN erased_at       DATETIME(3)     NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN erased_at, DROP COLUMN tier_id, DROP COLUMN lifecycle_stage, DROP COLUMN remark;
