-- +goose Up
-- One row per (endpoint, event): the delivery state machine of
-- webhook/deliveries.go. uk_webhook_deliveries makes an event reach an
-- endpoint's queue once. idx_webhook_deliveries_due finds the endpoints
-- with due rows (status, next_attempt_at) and the expired leases;
-- idx_webhook_deliveries_claim claims one endpoint's oldest due rows;
-- idx_webhook_deliveries_list lists a merchant's rows by status (the
-- dead-letter list) newest first.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id     BIGINT UNSIGNED NOT NULL,
  endpoint_id     BIGINT UNSIGNED NOT NULL,
  event_id        BIGINT UNSIGNED NOT NULL,
  status          VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempts        INT             NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(3)     NOT NULL,
  give_up_at      DATETIME(3)     NOT NULL,
  lease_owner     VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  lease_until     DATETIME(3)     NULL,
  last_status     INT             NOT NULL DEFAULT 0,
  last_error      VARCHAR(255)    NOT NULL DEFAULT '',
  delivered_at    DATETIME(3)     NULL,
  created_at      DATETIME(3)     NOT NULL,
  updated_at      DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_webhook_deliveries (endpoint_id, event_id),
  KEY idx_webhook_deliveries_due (status, next_attempt_at, endpoint_id),
  KEY idx_webhook_deliveries_claim (endpoint_id, status, next_attempt_at, id),
  KEY idx_webhook_deliveries_list (merchant_id, status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS webhook_deliveries;
