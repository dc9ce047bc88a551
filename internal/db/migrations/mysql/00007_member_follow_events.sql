-- +goose Up
-- Follow history. uk_follow_events_event makes applying one WeChat event
-- twice (a retry, or two instances racing) fail instead of writing twice.
CREATE TABLE member_follow_events (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  event_id    BIGINT UNSIGNED NOT NULL,
  kind        VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  scene       VARCHAR(64)     NULL,
  occurred_at DATETIME(3)     NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_follow_events_event (merchant_id, event_id),
  KEY idx_follow_events_member (merchant_id, member_id, occurred_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_follow_events;
