-- +goose Up
-- Which lots a redemption took its points from, so a cancelled redemption
-- gives each lot back what it took.
CREATE TABLE points_redemption_lots (
  merchant_id   INTEGER NOT NULL,
  redemption_id INTEGER NOT NULL,
  lot_id        INTEGER NOT NULL,
  points        INTEGER NOT NULL,
  PRIMARY KEY (merchant_id, redemption_id, lot_id)
);

-- +goose Down
DROP TABLE points_redemption_lots;
