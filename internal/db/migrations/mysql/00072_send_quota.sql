-- +goose Up
-- Daily quota ledger of a merchant's WeChat account: messages sent per
-- local day, and until when WeChat said the quota is exhausted (45009).
CREATE TABLE wechat_send_quota (
  merchant_id     BIGINT UNSIGNED NOT NULL,
  day             CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  used            BIGINT          NOT NULL DEFAULT 0,
  exhausted_until DATETIME(3)     NULL,
  PRIMARY KEY (merchant_id, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE wechat_send_quota;
