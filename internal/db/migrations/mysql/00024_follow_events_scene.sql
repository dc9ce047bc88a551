-- +goose Up
-- Acquisition-channel figures: "distinct members whose subscribe carried
-- scene S" reads only this index (covering), one contiguous range per scene
-- and kind, already in member_id order for the DISTINCT.
CREATE INDEX idx_follow_events_scene ON member_follow_events (merchant_id, scene, kind, member_id);

-- +goose Down
DROP INDEX idx_follow_events_scene ON member_follow_events;
