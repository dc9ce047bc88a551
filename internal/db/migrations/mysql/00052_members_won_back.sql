-- +goose Up
-- When a churned member bought again (the lifecycle's won-back mark; kept
-- until the member is loyal or churns again).
ALTER TABLE members ADD COLUMN won_back_at DATETIME(3) NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN won_back_at;
