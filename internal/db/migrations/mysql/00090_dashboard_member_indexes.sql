-- +goose Up
-- Indexes of the admin dashboard (member/dashboard.go), one statement so
-- the table is scanned once to build them all:
--   idx_members_created: new members of a period by channel, a range of
--     creation times read from the index alone;
--   idx_members_first_order: the first-order cohorts of the retention table
--     and "customers at a time" (index only);
--   idx_members_interaction: members whose last official-account
--     interaction falls in a period (active members);
--   idx_members_value: the current lifecycle, pyramid and RFM distributions
--     and average CLV in one index-only scan, already in GROUP BY order
--     (no temporary table, no row reads). The nightly pass and order
--     refreshes that change these columns update it too.
ALTER TABLE members
  ADD INDEX idx_members_created     (merchant_id, created_at, channel_scene),
  ADD INDEX idx_members_first_order (merchant_id, first_order_at),
  ADD INDEX idx_members_interaction (merchant_id, last_interaction_at),
  ADD INDEX idx_members_value       (merchant_id, lifecycle_stage, pyramid_tier, rfm_r, rfm_f, rfm_m, clv_fen);

-- +goose Down
ALTER TABLE members
  DROP INDEX idx_members_created, DROP INDEX idx_members_first_order,
  DROP INDEX idx_members_interaction, DROP INDEX idx_members_value;
