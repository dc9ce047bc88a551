package member

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// OAuthStateTTL is how long an H5 sign-in may take from the authorization
// URL to the login: WeChat redirects back at once, so minutes are plenty.
const OAuthStateTTL = 10 * time.Minute

// OAuthState returns a fresh state for an H5 authorization of the merchant:
// a nonce, its expiry and a MAC over both and the merchant, in hex (WeChat
// allows up to 128 letters and digits; this is 64). The login accepts only
// a state this service issued for the same merchant that has not expired,
// so a state made up by a third party, or lifted from another merchant's
// sign-in, is refused before WeChat is asked about the code. (The page
// also keeps the state and compares it when WeChat sends the browser back:
// that is what ties the sign-in to this browser.)
func (t *Tokens) OAuthState(merchantID uint64) string {
	var body [16]byte
	_, _ = rand.Read(body[:8]) // crypto/rand never fails
	binary.BigEndian.PutUint64(body[8:], uint64(t.now().Add(OAuthStateTTL).Unix()))
	return hex.EncodeToString(body[:]) + hex.EncodeToString(t.stateMAC(merchantID, body[:]))
}

// CheckOAuthState reports whether state is one OAuthState issued for the
// merchant and still within its time.
func (t *Tokens) CheckOAuthState(merchantID uint64, state string) bool {
	raw, err := hex.DecodeString(state)
	if err != nil || len(raw) != 32 {
		return false
	}
	if !hmac.Equal(raw[16:], t.stateMAC(merchantID, raw[:16])) {
		return false
	}
	exp := int64(binary.BigEndian.Uint64(raw[8:16]))
	return t.now().Unix() < exp
}

func (t *Tokens) stateMAC(merchantID uint64, body []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("oauth-state|" + strconv.FormatUint(merchantID, 10) + "|"))
	m.Write(body)
	return m.Sum(nil)[:16]
}
