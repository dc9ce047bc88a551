-- +goose Up
-- Member imports (member/import.go): one row per (merchant, file content).
-- uk_member_imports_file finds the job of a file again, so importing the
-- same file twice resumes or reports the first job instead of importing
-- anew. cursor is the last CSV row whose batch committed (written in the
-- batch's transaction): a resumed run skips the rows up to it. The lease
-- (owner, until) keeps two runs of one job from overlapping.
CREATE TABLE IF NOT EXISTS member_imports (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id   BIGINT UNSIGNED NOT NULL,
  file_hash     CHAR(64)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  file_name     VARCHAR(255)    NOT NULL DEFAULT '',
  status        VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  rows_read     INT             NOT NULL DEFAULT 0,
  cursor_row    INT             NOT NULL DEFAULT 0,
  created       INT             NOT NULL DEFAULT 0,
  existing      INT             NOT NULL DEFAULT 0,
  rejected      INT             NOT NULL DEFAULT 0,
  rejected_rows MEDIUMTEXT      NULL,
  error         VARCHAR(255)    NOT NULL DEFAULT '',
  lease_owner   VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  lease_until   DATETIME(3)     NULL,
  created_at    DATETIME(3)     NOT NULL,
  updated_at    DATETIME(3)     NOT NULL,
  finished_at   DATETIME(3)     NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_member_imports_file (merchant_id, file_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS member_imports;
