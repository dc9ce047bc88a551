-- +goose Up
-- Every care message decided: one row per (rule, member, occurrence), the
-- occurrence naming what is celebrated (a birthday's year, an anniversary
-- year, a care date and year, a stage event, a points expiry date, or
-- "follow"). uk_care_sends makes a rule fire at most once per member and
-- occurrence whatever the number of schedulers: the row is written in the
-- transaction that plans its delivery, and deliveries are planned only for
-- the rows that transaction inserted (found by batch, idx_care_sends_batch).
-- idx_care_sends_rule lists a rule's recent sends.
CREATE TABLE care_sends (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  rule_id     BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  occurrence  VARCHAR(40)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  local_date  CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  campaign_id BIGINT UNSIGNED NOT NULL,
  batch       CHAR(16)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_care_sends (merchant_id, rule_id, member_id, occurrence),
  KEY idx_care_sends_rule (merchant_id, rule_id, id),
  KEY idx_care_sends_batch (merchant_id, batch)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE care_sends;
