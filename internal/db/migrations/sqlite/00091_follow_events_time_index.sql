-- +goose Up
-- Follow figures of a period (member/dashboard.go); see the MySQL migration.
CREATE INDEX idx_follow_events_time ON member_follow_events (merchant_id, kind, occurred_at, scene, member_id);

-- +goose Down
DROP INDEX idx_follow_events_time;
