-- +goose Up
-- One row per (campaign, step, member): uk_deliveries makes planning
-- re-runnable and sending twice impossible. Status: pending, holdout,
-- skipped, claimed (leased to a worker, not yet sent), sending (WeChat may
-- have it), sent, delivered, failed, unknown (was sending when its worker
-- died: never resent automatically). idx_deliveries_claim is the queue
-- (campaign, status, id); idx_deliveries_lease finds expired leases;
-- idx_deliveries_msg matches receipts; idx_deliveries_member serves the
-- frequency cap and attribution (capped sends of a member by time).
CREATE TABLE campaign_deliveries (
  id              BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  merchant_id     BIGINT UNSIGNED  NOT NULL,
  campaign_id     BIGINT UNSIGNED  NOT NULL,
  step            INT UNSIGNED     NOT NULL,
  member_id       BIGINT UNSIGNED  NOT NULL,
  openid          VARCHAR(64)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  capped          TINYINT(1)       NOT NULL DEFAULT 1,
  status          VARCHAR(12)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reason          VARCHAR(32)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  errcode         INT              NOT NULL DEFAULT 0,
  attempts        TINYINT UNSIGNED NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(3)      NULL,
  lease_owner     VARCHAR(80)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  lease_until     DATETIME(3)      NULL,
  msg_id          BIGINT           NULL,
  sent_at         DATETIME(3)      NULL,
  finished_at     DATETIME(3)      NULL,
  gift_state      TINYINT UNSIGNED NOT NULL DEFAULT 0,
  created_at      DATETIME(3)      NOT NULL,
  updated_at      DATETIME(3)      NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_deliveries (campaign_id, step, member_id),
  KEY idx_deliveries_claim (campaign_id, status, id),
  KEY idx_deliveries_lease (status, lease_until),
  KEY idx_deliveries_msg (merchant_id, msg_id),
  KEY idx_deliveries_member (merchant_id, member_id, sent_at),
  KEY idx_deliveries_gift (gift_state, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE campaign_deliveries;
