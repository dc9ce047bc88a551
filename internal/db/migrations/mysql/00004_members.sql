-- +goose Up
-- One row per person per merchant. The WeChat identities (official-account
-- openid, mini-program openid, unionid) and the phone number are each unique
-- within a merchant, so two events for one person cannot create two members;
-- NULL means "not known" and may repeat.
CREATE TABLE members (
  id                  BIGINT UNSIGNED   NOT NULL AUTO_INCREMENT,
  merchant_id         BIGINT UNSIGNED   NOT NULL,
  oa_openid           VARCHAR(64)       CHARACTER SET ascii COLLATE ascii_bin NULL,
  mp_openid           VARCHAR(64)       CHARACTER SET ascii COLLATE ascii_bin NULL,
  unionid             VARCHAR(64)       CHARACTER SET ascii COLLATE ascii_bin NULL,
  phone               VARCHAR(20)       CHARACTER SET ascii COLLATE ascii_bin NULL,
  name                VARCHAR(64)       NOT NULL DEFAULT '',
  gender              TINYINT UNSIGNED  NOT NULL DEFAULT 0,
  birthday_month      TINYINT UNSIGNED  NULL,
  birthday_day        TINYINT UNSIGNED  NULL,
  birthday_year       SMALLINT UNSIGNED NULL,
  source              VARCHAR(16)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  follow_status       VARCHAR(16)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'none',
  followed_at         DATETIME(3)       NULL,
  unfollowed_at       DATETIME(3)       NULL,
  follow_changed_at   DATETIME(3)       NULL,
  channel_scene       VARCHAR(64)       NULL,
  last_interaction_at DATETIME(3)       NULL,
  created_at          DATETIME(3)       NOT NULL,
  updated_at          DATETIME(3)       NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_members_oa_openid (merchant_id, oa_openid),
  UNIQUE KEY uk_members_mp_openid (merchant_id, mp_openid),
  UNIQUE KEY uk_members_unionid (merchant_id, unionid),
  UNIQUE KEY uk_members_phone (merchant_id, phone),
  KEY idx_members_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE members;
