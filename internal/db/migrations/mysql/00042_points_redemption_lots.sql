-- +goose Up
-- Which lots a redemption took its points from, so a cancelled redemption
-- gives each lot back what it took (keeping the lots' expiry dates).
CREATE TABLE points_redemption_lots (
  merchant_id   BIGINT UNSIGNED NOT NULL,
  redemption_id BIGINT UNSIGNED NOT NULL,
  lot_id        BIGINT UNSIGNED NOT NULL,
  points        BIGINT          NOT NULL,
  PRIMARY KEY (merchant_id, redemption_id, lot_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_redemption_lots;
