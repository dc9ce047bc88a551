-- +goose Up
-- Inbox of official-account callbacks: written before WeChat gets its
-- "success", processed afterwards. uk_wechat_events_dedupe (a hash of MsgId,
-- or FromUserName+CreateTime+Event) turns WeChat's retries into no-ops;
-- idx_wechat_events_pending finds unprocessed rows (processed_at IS NULL) in
-- id order without scanning processed ones.
CREATE TABLE wechat_events (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  dedupe_key   CHAR(64)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  msg_type     VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event        VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  openid       VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_key    VARCHAR(255)    NOT NULL DEFAULT '',
  ticket       VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  content      VARCHAR(2048)   NOT NULL DEFAULT '',
  msg_id       BIGINT          NOT NULL DEFAULT 0,
  status       VARCHAR(64)     NOT NULL DEFAULT '',
  create_time  DATETIME(3)     NOT NULL,
  received_at  DATETIME(3)     NOT NULL,
  attempts     INT UNSIGNED    NOT NULL DEFAULT 0,
  lease_owner  VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  lease_until  DATETIME(3)     NULL,
  processed_at DATETIME(3)     NULL,
  last_error   VARCHAR(255)    NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  UNIQUE KEY uk_wechat_events_dedupe (merchant_id, dedupe_key),
  KEY idx_wechat_events_pending (processed_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE wechat_events;
