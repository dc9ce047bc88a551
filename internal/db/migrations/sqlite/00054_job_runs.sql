-- +goose Up
-- Once-per-period jobs of a merchant (the nightly attribute pass, one per
-- local date): the primary key lets one instance claim a run; a claim
-- whose runner died (started long ago, never finished) may be taken over.
CREATE TABLE job_runs (
  merchant_id INTEGER NOT NULL,
  job         TEXT NOT NULL,
  run_key     TEXT NOT NULL,
  owner       TEXT NOT NULL,
  started_at  DATETIME NOT NULL,
  finished_at DATETIME NULL,
  result      TEXT NULL,
  PRIMARY KEY (merchant_id, job, run_key)
);

-- +goose Down
DROP TABLE job_runs;
