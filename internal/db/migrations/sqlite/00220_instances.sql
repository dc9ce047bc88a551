-- +goose Up
-- The running instances, each beating every few seconds (internal/cluster).
-- While Redis is away the instances share the send rate and the login
-- limits by the number seen alive here. idx_instances_seen serves the count
-- and the housekeeping of instances gone.
CREATE TABLE instances (
  name        TEXT NOT NULL PRIMARY KEY,
  started_at  DATETIME NOT NULL,
  seen_at     DATETIME NOT NULL
);
CREATE INDEX idx_instances_seen ON instances (seen_at);

-- +goose Down
DROP TABLE instances;
