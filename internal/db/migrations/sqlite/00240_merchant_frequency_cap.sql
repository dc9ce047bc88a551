-- +goose Up
-- The marketing frequency cap, per merchant: at most frequency_cap capped
-- (marketing and care) messages per member in cap_window_days days. The
-- defaults are what the campaign engine applied to every merchant before.
ALTER TABLE merchants ADD COLUMN frequency_cap INTEGER NOT NULL DEFAULT 2;
ALTER TABLE merchants ADD COLUMN cap_window_days INTEGER NOT NULL DEFAULT 7;

-- +goose Down
ALTER TABLE merchants DROP COLUMN cap_window_days;
ALTER TABLE merchants DROP COLUMN frequency_cap;
