-- +goose Up
-- Daily quota ledger of a merchant's WeChat account: messages sent per
-- local day, and until when WeChat said the quota is exhausted (45009).
CREATE TABLE wechat_send_quota (
  merchant_id     INTEGER NOT NULL,
  day             TEXT NOT NULL,
  used            INTEGER NOT NULL DEFAULT 0,
  exhausted_until DATETIME NULL,
  PRIMARY KEY (merchant_id, day)
);

-- +goose Down
DROP TABLE wechat_send_quota;
