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
)

// Validate checks the credential formats. Field names in the returned
// *apperr.Validation are app_id, app_secret, token, aes_key, mp_app_id and
// mp_app_secret; callers rename them to their own keys with RenameFields.
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
