-- +goose Up
-- Acquisition channels: a named QR code whose scene ends up in the
-- members it brings (members.channel_scene, follow history). The scene is
-- unique per merchant, so figures per channel are unambiguous.
CREATE TABLE channels (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  name        VARCHAR(64)     NOT NULL,
  scene       VARCHAR(64)     NOT NULL,
  permanent   TINYINT(1)      NOT NULL,
  ticket      VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  url         VARCHAR(255)    NOT NULL,
  image_url   VARCHAR(512)    NOT NULL,
  expires_at  DATETIME(3)     NULL,
  created_by  BIGINT UNSIGNED NOT NULL DEFAULT 0,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_channels_scene (merchant_id, scene),
  KEY idx_channels_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE channels;
