-- +goose Up
-- Inbox of official-account callbacks: written before WeChat gets its
-- "success", processed afterwards. uk_wechat_events_dedupe (a hash of MsgId,
-- or FromUserName+CreateTime+Event) turns WeChat's retries into no-ops;
-- idx_wechat_events_pending finds unprocessed rows (processed_at IS NULL) in
-- id order without scanning processed ones.
CREATE TABLE wechat_events (
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  dedupe_key   TEXT NOT NULL,
  msg_type     TEXT NOT NULL,
  event        TEXT NOT NULL DEFAULT '',
  openid       TEXT NOT NULL,
  event_key    TEXT NOT NULL DEFAULT '',
  ticket       TEXT NOT NULL DEFAULT '',
  content      TEXT NOT NULL DEFAULT '',
  msg_id       INTEGER NOT NULL DEFAULT 0,
  status       TEXT NOT NULL DEFAULT '',
  create_time  DATETIME NOT NULL,
  received_at  DATETIME NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  lease_owner  TEXT NULL,
  lease_until  DATETIME NULL,
  processed_at DATETIME NULL,
  last_error   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX uk_wechat_events_dedupe ON wechat_events (merchant_id, dedupe_key);
CREATE INDEX idx_wechat_events_pending ON wechat_events (processed_at, id);

-- +goose Down
DROP TABLE wechat_events;
