-- +goose Up
-- Indexes of the admin dashboard (member/dashboard.go); see the MySQL
-- migration for what each serves.
CREATE INDEX idx_members_created     ON members (merchant_id, created_at, channel_scene);
CREATE INDEX idx_members_first_order ON members (merchant_id, first_order_at);
CREATE INDEX idx_members_interaction ON members (merchant_id, last_interaction_at);
CREATE INDEX idx_members_value       ON members (merchant_id, lifecycle_stage, pyramid_tier, rfm_r, rfm_f, rfm_m, clv_fen);

-- +goose Down
DROP INDEX idx_members_value;
DROP INDEX idx_members_interaction;
DROP INDEX idx_members_first_order;
DROP INDEX idx_members_created;
