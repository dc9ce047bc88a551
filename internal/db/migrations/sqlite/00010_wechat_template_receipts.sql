-- +goose Up
-- TEMPLATESENDJOBFINISH receipts by msgid, for the campaign engine. A receipt
-- may arrive before the sender has stored the msgid, so receipts are kept on
-- their own rather than applied to a delivery row.
CREATE TABLE wechat_template_receipts (
  merchant_id INTEGER NOT NULL,
  msg_id      INTEGER NOT NULL,
  openid      TEXT NOT NULL,
  status      TEXT NOT NULL,
  occurred_at DATETIME NOT NULL,
  received_at DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, msg_id)
);

-- +goose Down
DROP TABLE wechat_template_receipts;
