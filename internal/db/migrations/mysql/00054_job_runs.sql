-- +goose Up
-- Once-per-period jobs of a merchant (the nightly attribute pass, one per
-- local date): the primary key lets one instance claim a run; a claim
-- whose runner died (started long ago, never finished) may be taken over.
-- result holds the run's summary (JSON).
CREATE TABLE job_runs (
  merchant_id BIGINT UNSIGNED NOT NULL,
  job         VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  run_key     VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  owner       VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  started_at  DATETIME(3)     NOT NULL,
  finished_at DATETIME(3)     NULL,
  result      TEXT            NULL,
  PRIMARY KEY (merchant_id, job, run_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE job_runs;
