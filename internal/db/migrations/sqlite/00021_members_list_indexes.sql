-- +goose Up
-- Indexes of the admin member list and export (member/filter.go, listQuery).
-- One per filter, each (merchant_id, <filter>, id, <every other filter>,
-- erased_at): equality on the filter plus the keyset "id < cursor" is one
-- range in the list's order, and the other filters are checked on the index
-- entries, so a page reads the index only (the deferred join then reads the
-- page's rows by id). The text search ranges (name and phone prefix) carry
-- the filters likewise. See the MySQL migration for the measurements. The
-- name is indexed NOCASE: SQLite's LIKE ignores ASCII case (as MySQL's
-- collation does), and uses an index for a prefix only if it does too.
CREATE INDEX idx_members_follow   ON members (merchant_id, follow_status, id, lifecycle_stage, tier_id, birthday_month, channel_scene, erased_at);
CREATE INDEX idx_members_channel  ON members (merchant_id, channel_scene, id, follow_status, lifecycle_stage, tier_id, birthday_month, erased_at);
CREATE INDEX idx_members_stage    ON members (merchant_id, lifecycle_stage, id, follow_status, tier_id, birthday_month, channel_scene, erased_at);
CREATE INDEX idx_members_tier     ON members (merchant_id, tier_id, id, follow_status, lifecycle_stage, birthday_month, channel_scene, erased_at);
CREATE INDEX idx_members_birthday ON members (merchant_id, birthday_month, id, follow_status, lifecycle_stage, tier_id, channel_scene, erased_at);
CREATE INDEX idx_members_name     ON members (merchant_id, name COLLATE NOCASE, follow_status, lifecycle_stage, tier_id, birthday_month, channel_scene, erased_at);
CREATE INDEX idx_members_phone    ON members (merchant_id, phone, follow_status, lifecycle_stage, tier_id, birthday_month, channel_scene, erased_at);

-- +goose Down
DROP INDEX idx_members_phone;
DROP INDEX idx_members_name;
DROP INDEX idx_members_birthday;
DROP INDEX idx_members_tier;
DROP INDEX idx_members_stage;
DROP INDEX idx_members_channel;
DROP INDEX idx_members_follow;
