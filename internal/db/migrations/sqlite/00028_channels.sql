-- +goose Up
-- Acquisition channels: a named QR code whose scene ends up in the
-- members it brings (members.channel_scene, follow history). The scene is
-- unique per merchant, so figures per channel are unambiguous.
CREATE TABLE channels (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  name        TEXT NOT NULL,
  scene       TEXT NOT NULL,
  permanent   INTEGER NOT NULL,
  ticket      TEXT NOT NULL,
  url         TEXT NOT NULL,
  image_url   TEXT NOT NULL,
  expires_at  DATETIME NULL,
  created_by  INTEGER NOT NULL DEFAULT 0,
  created_at  DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_channels_scene ON channels (merchant_id, scene);
CREATE INDEX idx_channels_merchant ON channels (merchant_id, id);

-- +goose Down
DROP TABLE channels;
