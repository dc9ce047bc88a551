-- +goose Up
-- Refresh tokens of members (mini-program, H5): the access token lives two
-- hours, a refresh token 30 days and is good for one refresh. Only the
-- SHA-256 of a token is stored (uk_member_refresh_tokens_hash: one probe per
-- refresh). family groups the tokens of one login: each refresh marks its
-- token used and adds the next; a used token presented again revokes the
-- whole family (it was copied). idx_member_refresh_tokens_member serves the
-- revocation of a member's tokens (erasure), idx_member_refresh_tokens_family
-- the revocation of a login, idx_member_refresh_tokens_expiry housekeeping.
CREATE TABLE member_refresh_tokens (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  member_id    BIGINT UNSIGNED NOT NULL,
  family       CHAR(32)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  token_hash   CHAR(64)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expires_at   DATETIME(3)     NOT NULL,
  used_at      DATETIME(3)     NULL,
  revoked_at   DATETIME(3)     NULL,
  created_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_member_refresh_tokens_hash (token_hash),
  KEY idx_member_refresh_tokens_member (merchant_id, member_id),
  KEY idx_member_refresh_tokens_family (family),
  KEY idx_member_refresh_tokens_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_refresh_tokens;
