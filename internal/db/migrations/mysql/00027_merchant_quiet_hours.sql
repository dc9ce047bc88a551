-- +goose Up
-- Quiet hours: no marketing sends between quiet_start and quiet_end, in
-- minutes after local midnight (default 21:00-09:00).
ALTER TABLE merchants
  ADD COLUMN quiet_start SMALLINT UNSIGNED NOT NULL DEFAULT 1260,
  ADD COLUMN quiet_end   SMALLINT UNSIGNED NOT NULL DEFAULT 540;

-- +goose Down
ALTER TABLE merchants DROP COLUMN quiet_start, DROP COLUMN quiet_end;
