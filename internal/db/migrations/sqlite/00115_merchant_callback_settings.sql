-- +goose Up
-- Callback settings of the official account: its original id ("gh_...",
-- set by the merchant or learnt from the first verified encrypted callback;
-- '' until known), which every callback's ToUserName must then match, and
-- whether an account with an EncodingAESKey still takes plaintext callbacks
-- (compatible mode, while switching encryption in the WeChat console).
ALTER TABLE merchants ADD COLUMN oa_original_id TEXT NOT NULL DEFAULT '';
ALTER TABLE merchants ADD COLUMN oa_compatible_mode BOOLEAN NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE merchants DROP COLUMN oa_compatible_mode;
ALTER TABLE merchants DROP COLUMN oa_original_id;
