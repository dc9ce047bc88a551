-- +goose Up
-- The outbox: one row per event, written in the transaction of the change
-- that caused it (and only when some endpoint subscribes to it). Its id is
-- the event's idempotency id (evt_<id>). The body is kept once however
-- many endpoints receive it.
CREATE TABLE IF NOT EXISTS webhook_events (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  type        VARCHAR(40)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  data        MEDIUMTEXT      NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_webhook_events_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS webhook_events;
