-- +goose Up
-- Auto-tagging (docs/README.md, "Auto-tagging"): a tag rule keeps a tag on
-- exactly the members its segment rule matches. At most one live rule per
-- tag (checked under the tag's row lock).
CREATE TABLE tag_rules (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  tag_id      BIGINT UNSIGNED NOT NULL,
  rule        TEXT            NOT NULL,
  enabled     TINYINT(1)      NOT NULL DEFAULT 1,
  created_by  BIGINT UNSIGNED NOT NULL DEFAULT 0,
  created_at  DATETIME(3)     NOT NULL,
  updated_at  DATETIME(3)     NOT NULL,
  deleted_at  DATETIME(3)     NULL,
  PRIMARY KEY (id),
  KEY idx_tag_rules_merchant (merchant_id, id),
  KEY idx_tag_rules_tag (merchant_id, tag_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each gain and loss of a tag by a rule: the member's tag history.
CREATE TABLE member_tag_events (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  tag_id      BIGINT UNSIGNED NOT NULL,
  rule_id     BIGINT UNSIGNED NOT NULL,
  action      VARCHAR(8)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  cause       VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  occurred_at DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_member_tag_events_member (merchant_id, member_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Members whose fields changed (an order, points, a stage, a profile edit)
-- since their tag rules were last evaluated: written in the change's
-- transaction, worked off within seconds. version grows with every mark, so
-- the worker deletes a row only if no change marked it again meanwhile.
CREATE TABLE member_tag_pending (
  merchant_id BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  marked_at   DATETIME(3)     NOT NULL,
  version     BIGINT UNSIGNED NOT NULL DEFAULT 1,
  PRIMARY KEY (merchant_id, member_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_tag_pending;
DROP TABLE member_tag_events;
DROP TABLE tag_rules;
