-- +goose Up
-- The running instances, each beating every few seconds (internal/cluster).
-- While Redis is away the instances share the send rate and the login
-- limits by the number seen alive here. idx_instances_seen serves the count
-- and the housekeeping of instances gone.
CREATE TABLE instances (
  name        VARCHAR(100)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  started_at  DATETIME(3)   NOT NULL,
  seen_at     DATETIME(3)   NOT NULL,
  PRIMARY KEY (name),
  KEY idx_instances_seen (seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE instances;
