-- +goose Up
-- Mini-program subscribe-message grants a member gave (one send each),
-- recorded by the mini-program after wx.requestSubscribeMessage.
CREATE TABLE member_subscription_grants (
  merchant_id INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  template_id TEXT NOT NULL,
  remaining   INTEGER NOT NULL DEFAULT 0,
  updated_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, member_id, template_id)
);

-- +goose Down
DROP TABLE member_subscription_grants;
