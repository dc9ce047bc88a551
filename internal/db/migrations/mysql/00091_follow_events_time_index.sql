-- +goose Up
-- Follow figures of a period (member/dashboard.go): new followers by
-- channel and unfollows are one range per kind of occurrence times, and
-- the members who followed or scanned in a period (active members) come
-- from the same entries: covering, no row reads.
CREATE INDEX idx_follow_events_time ON member_follow_events (merchant_id, kind, occurred_at, scene, member_id);

-- +goose Down
DROP INDEX idx_follow_events_time ON member_follow_events;
