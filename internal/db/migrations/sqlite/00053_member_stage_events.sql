-- +goose Up
-- Every lifecycle stage change of a member, with its time and reason, for
-- automations (became new, at risk, won back) and reports. A change is
-- written in the transaction that changes members.lifecycle_stage.
CREATE TABLE member_stage_events (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  from_stage  TEXT NOT NULL,
  to_stage    TEXT NOT NULL,
  reason      TEXT NOT NULL,
  occurred_at DATETIME NOT NULL
);
CREATE INDEX idx_stage_events_member ON member_stage_events (merchant_id, member_id, id);
CREATE INDEX idx_stage_events_time ON member_stage_events (merchant_id, to_stage, occurred_at);

-- +goose Down
DROP TABLE member_stage_events;
