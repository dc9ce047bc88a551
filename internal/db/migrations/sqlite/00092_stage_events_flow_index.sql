-- +goose Up
-- Stage flows since a time (member/dashboard.go); see the MySQL migration.
CREATE INDEX idx_stage_events_flow ON member_stage_events (merchant_id, occurred_at, from_stage, to_stage);

-- +goose Down
DROP INDEX idx_stage_events_flow;
