-- +goose Up
-- Lots: the points of each credit (earn, gift, positive adjustment), with
-- what is left of them and when they expire. status: pending (held until
-- available_at), active, used (nothing left), expired, cancelled (a refund
-- took all of a pending lot). The member's active lots' remaining always add
-- up to available + debt and the pending lots' to pending. Redemptions take
-- from the lots that expire first (idx_points_lots_member). The jobs find
-- due lots across merchants with idx_points_lots_expiry and
-- idx_points_lots_release, and change each with a conditional UPDATE on its
-- status, so a lot expires or is released once however many instances run
-- them.
CREATE TABLE points_lots (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  member_id    BIGINT UNSIGNED NOT NULL,
  ledger_id    BIGINT UNSIGNED NOT NULL,
  status       VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  points       BIGINT          NOT NULL,
  remaining    BIGINT          NOT NULL,
  available_at DATETIME(3)     NULL,
  expires_at   DATETIME(3)     NULL,
  created_at   DATETIME(3)     NOT NULL,
  updated_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_points_lots_member (merchant_id, member_id, status, expires_at),
  KEY idx_points_lots_expiry (status, expires_at),
  KEY idx_points_lots_release (status, available_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_lots;
