-- +goose Up
-- Dates a member wants remembered (wedding anniversary, a child's birthday,
-- custom). idx_care_dates_day serves "whose date is on month/day" scans.
CREATE TABLE member_care_dates (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  label       TEXT NOT NULL DEFAULT '',
  month       INTEGER NOT NULL,
  day         INTEGER NOT NULL,
  year        INTEGER NULL,
  created_at  DATETIME NOT NULL,
  updated_at  DATETIME NOT NULL
);
CREATE INDEX idx_care_dates_member ON member_care_dates (merchant_id, member_id);
CREATE INDEX idx_care_dates_day ON member_care_dates (merchant_id, month, day);

-- +goose Down
DROP TABLE member_care_dates;
