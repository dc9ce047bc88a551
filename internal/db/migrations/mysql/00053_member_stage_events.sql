-- +goose Up
-- Every lifecycle stage change of a member, with its time and reason, for
-- automations (became new, at risk, won back) and reports. A change is
-- written in the transaction that changes members.lifecycle_stage.
-- idx_stage_events_time serves "who entered stage X since T" per merchant.
CREATE TABLE member_stage_events (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  from_stage  VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  to_stage    VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reason      VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  occurred_at DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_stage_events_member (merchant_id, member_id, id),
  KEY idx_stage_events_time (merchant_id, to_stage, occurred_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_stage_events;
