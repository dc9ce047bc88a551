-- +goose Up
-- One row per person per merchant. The WeChat identities (official-account
-- openid, mini-program openid, unionid) and the phone number are each unique
-- within a merchant, so two events for one person cannot create two members;
-- NULL means "not known" and may repeat.
CREATE TABLE members (
  id                  INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id         INTEGER NOT NULL,
  oa_openid           TEXT NULL,
  mp_openid           TEXT NULL,
  unionid             TEXT NULL,
  phone               TEXT NULL,
  name                TEXT NOT NULL DEFAULT '',
  gender              INTEGER NOT NULL DEFAULT 0,
  birthday_month      INTEGER NULL,
  birthday_day        INTEGER NULL,
  birthday_year       INTEGER NULL,
  source              TEXT NOT NULL,
  follow_status       TEXT NOT NULL DEFAULT 'none',
  followed_at         DATETIME NULL,
  unfollowed_at       DATETIME NULL,
  follow_changed_at   DATETIME NULL,
  channel_scene       TEXT NULL,
  last_interaction_at DATETIME NULL,
  created_at          DATETIME NOT NULL,
  updated_at          DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_members_oa_openid ON members (merchant_id, oa_openid);
CREATE UNIQUE INDEX uk_members_mp_openid ON members (merchant_id, mp_openid);
CREATE UNIQUE INDEX uk_members_unionid ON members (merchant_id, unionid);
CREATE UNIQUE INDEX uk_members_phone ON members (merchant_id, phone);
CREATE INDEX idx_members_merchant ON members (merchant_id, id);

-- +goose Down
DROP TABLE members;
