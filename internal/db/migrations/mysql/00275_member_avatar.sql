-- +goose Up
-- The avatar a member shares through WeChat's snsapi_userinfo (an https
-- URL on WeChat's image host), shown on the member card and in the panel.
ALTER TABLE members ADD COLUMN avatar_url VARCHAR(512) NULL;

-- +goose Down
ALTER TABLE members DROP COLUMN avatar_url;
