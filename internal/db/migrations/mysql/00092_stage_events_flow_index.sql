-- +goose Up
-- Stage flows since a time (member/dashboard.go: churn and win-back
-- rates): the stage changes after the comparison period began, grouped by
-- (from_stage, to_stage), from the index alone. Subtracting them from the
-- current stage counts gives the counts at each period's start.
CREATE INDEX idx_stage_events_flow ON member_stage_events (merchant_id, occurred_at, from_stage, to_stage);

-- +goose Down
DROP INDEX idx_stage_events_flow ON member_stage_events;
