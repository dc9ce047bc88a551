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
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  member_id    INTEGER NOT NULL,
  family       TEXT NOT NULL,
  token_hash   TEXT NOT NULL,
  expires_at   DATETIME NOT NULL,
  used_at      DATETIME NULL,
  revoked_at   DATETIME NULL,
  created_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_member_refresh_tokens_hash ON member_refresh_tokens (token_hash);
CREATE INDEX idx_member_refresh_tokens_member ON member_refresh_tokens (merchant_id, member_id);
CREATE INDEX idx_member_refresh_tokens_family ON member_refresh_tokens (family);
CREATE INDEX idx_member_refresh_tokens_expiry ON member_refresh_tokens (expires_at);

-- +goose Down
DROP TABLE member_refresh_tokens;
