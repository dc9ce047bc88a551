-- +goose Up
-- TEMPLATESENDJOBFINISH receipts by msgid, for the campaign engine. A receipt
-- may arrive before the sender has stored the msgid, so receipts are kept on
-- their own rather than applied to a delivery row.
CREATE TABLE wechat_template_receipts (
  merchant_id BIGINT UNSIGNED NOT NULL,
  msg_id      BIGINT          NOT NULL,
  openid      VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status      VARCHAR(64)     NOT NULL,
  occurred_at DATETIME(3)     NOT NULL,
  received_at DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, msg_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE wechat_template_receipts;
