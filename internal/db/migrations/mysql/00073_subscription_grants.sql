-- +goose Up
-- Mini-program subscribe-message grants a member gave (one send each),
-- recorded by the mini-program after wx.requestSubscribeMessage.
CREATE TABLE member_subscription_grants (
  merchant_id BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  template_id VARCHAR(128)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  remaining   INT             NOT NULL DEFAULT 0,
  updated_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, member_id, template_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_subscription_grants;
