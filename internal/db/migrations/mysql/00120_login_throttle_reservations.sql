-- +goose Up
-- A login attempt is now counted before its password is checked (a
-- reservation), so parallel guesses cannot all pass the lock check before
-- any failure is written. attempts numbers the reservations of a key;
-- pending counts those whose password check has not finished. A success
-- forgets the key's failures only if it was alone (pending was 0 when it was
-- counted) and last (attempts did not move since): a success in the middle
-- of a burst uncounts only itself. last_failure_at is the time of the last
-- counted attempt.
ALTER TABLE login_throttle
  ADD COLUMN attempts BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN pending  INT UNSIGNED    NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE login_throttle DROP COLUMN pending, DROP COLUMN attempts;
