-- +goose Up
-- A merchant's webhook endpoints: where events are delivered and which.
-- events is a JSON array of event types; secret is the signing secret,
-- sealed with the service's key (shown once, at creation or rotation).
-- idx_webhook_endpoints_merchant lists a merchant's endpoints (and is the
-- outbox's one probe when it looks up who subscribes to an event).
CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id   BIGINT UNSIGNED NOT NULL,
  url           VARCHAR(2048)   NOT NULL,
  description   VARCHAR(255)    NOT NULL DEFAULT '',
  events        TEXT            NOT NULL,
  secret        VARCHAR(512)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  enabled       TINYINT(1)      NOT NULL DEFAULT 1,
  created_at    DATETIME(3)     NOT NULL,
  updated_at    DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_webhook_endpoints_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS webhook_endpoints;
