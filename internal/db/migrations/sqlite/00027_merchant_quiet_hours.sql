-- +goose Up
-- Quiet hours: no marketing sends between quiet_start and quiet_end, in
-- minutes after local midnight (default 21:00-09:00).
ALTER TABLE merchants ADD COLUMN quiet_start INTEGER NOT NULL DEFAULT 1260;
ALTER TABLE merchants ADD COLUMN quiet_end INTEGER NOT NULL DEFAULT 540;

-- +goose Down
ALTER TABLE merchants DROP COLUMN quiet_end;
ALTER TABLE merchants DROP COLUMN quiet_start;
