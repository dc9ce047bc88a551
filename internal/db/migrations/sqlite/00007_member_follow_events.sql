-- +goose Up
-- Follow history. uk_follow_events_event makes applying one WeChat event
-- twice (a retry, or two instances racing) fail instead of writing twice.
CREATE TABLE member_follow_events (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  event_id    INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  scene       TEXT NULL,
  occurred_at DATETIME NOT NULL,
  created_at  DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_follow_events_event ON member_follow_events (merchant_id, event_id);
CREATE INDEX idx_follow_events_member ON member_follow_events (merchant_id, member_id, occurred_at);

-- +goose Down
DROP TABLE member_follow_events;
