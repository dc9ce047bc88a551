package wechat

import (
	"regexp"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// Credentials are one merchant's WeChat application credentials: an official
// account (required) and optionally a mini-program.
type Credentials struct {
	AppID          string // official account AppID
	AppSecret      string
	Token          string // callback signature token
	EncodingAESKey string // optional; set for safe (AES) mode callbacks
	MPAppID        string // mini-program AppID, optional
	MPAppSecret    string

	// OriginalID is the official account's original id ("gh_..."), the
	// ToUserName of every genuine callback; "" until the merchant sets it
	// or the first verified encrypted callback teaches it. Callbacks to
	// another account are refused once it is known.
	OriginalID string
	// CompatibleMode lets an account with an EncodingAESKey still take
	// plaintext callbacks, for the time a merchant switches the account's
	// message encryption in the WeChat console. Off, plaintext bodies are
	// refused: their signature does not cover the body.
	CompatibleMode bool
}

// HasMiniProgram reports whether a mini-program is configured.
func (c Credentials) HasMiniProgram() bool { return c.MPAppID != "" }

// Formats published by the WeChat platform: AppIDs are "wx" + 16 hex
// characters, secrets 32 hex characters, the callback token 3-32 letters or
// digits, and the EncodingAESKey 43 letters or digits.
var (
	appIDRe  = regexp.MustCompile(`^wx[0-9a-fA-F]{16}$`)
	secretRe = regexp.MustCompile(`^[0-9a-zA-Z]{32}$`)
	tokenRe  = regexp.MustCompile(`^[0-9a-zA-Z]{3,32}$`)
	aesKeyRe = regexp.MustCompile(`^[0-9a-zA-Z]{43}$`)
	// Original ids are "gh_" and 12 hex characters; letters and digits
	// up to the column's 32 are allowed, so a differently shaped one
	// (test accounts, the sandbox's) is not refused for its shape.
	originalIDRe = regexp.MustCompile(`^gh_[0-9a-zA-Z]{1,29}$`)
)

// ValidOriginalID reports whether s is shaped like an official account's
// original id.
func ValidOriginalID(s string) bool { return originalIDRe.MatchString(s) }

// Validate checks the credential formats. Field names in the returned
// *apperr.Validation are app_id, app_secret, token, aes_key, original_id,
// compatible_mode, mp_app_id and mp_app_secret; callers rename them to their
// own keys with RenameFields.
func (c Credentials) Validate() error {
	v := &apperr.Validation{}
	if !appIDRe.MatchString(c.AppID) {
		v.Add("app_id", `must be "wx" followed by 16 hex characters`)
	}
	if !secretRe.MatchString(c.AppSecret) {
		v.Add("app_secret", "must be the 32-character AppSecret")
	}
	if !tokenRe.MatchString(c.Token) {
		v.Add("token", "must be 3 to 32 letters or digits")
	}
	if c.EncodingAESKey != "" && !aesKeyRe.MatchString(c.EncodingAESKey) {
		v.Add("aes_key", "must be the 43-character EncodingAESKey")
	}
	if c.OriginalID != "" && !ValidOriginalID(c.OriginalID) {
		v.Add("original_id", `must be the account's original id, "gh_" followed by letters or digits`)
	}
	if c.CompatibleMode && c.EncodingAESKey == "" {
		v.Add("compatible_mode", "needs aes_key: without one every callback is plaintext")
	}
	switch {
	case c.MPAppID == "" && c.MPAppSecret != "":
		v.Add("mp_app_id", "is required when mp_app_secret is set")
	case c.MPAppID != "":
		if !appIDRe.MatchString(c.MPAppID) {
			v.Add("mp_app_id", `must be "wx" followed by 16 hex characters`)
		}
		if !secretRe.MatchString(c.MPAppSecret) {
			v.Add("mp_app_secret", "must be the 32-character AppSecret")
		}
	}
	return v.Err()
}
