package member

import (
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// Tokens issues and checks member access tokens: HS256 JWTs bound to one
// merchant and one member, signed with a key derived from the service
// secret for this purpose only. They are short-lived (TokenTTL) and not
// stored; a member stays signed in with a refresh token (see
// Service.Refresh), which is stored and revocable. Every request with an
// access token also reads the member, so an erased member's tokens stop at
// once.
type Tokens struct {
	key    []byte
	verify any // what the jwt parser checks signatures with: key, or key and the old keys
	ttl    time.Duration
	now    func() time.Time
}

// TokenTTL is how long a member access token lasts; the app then spends
// its refresh token for a new one.
const TokenTTL = 2 * time.Hour

const (
	tokenIssuer   = "loyalty"
	tokenAudience = "member"
)

// NewTokens returns the token issuer; key must come from
// secrets.Keyring.SigningKey("member-token"). Tokens signed with any of old
// (the keys of LOYALTY_SECRET_KEYS_OLD, secrets.Keyring.VerifyingKeys) are
// still accepted, so replacing the secret key does not sign every member
// out; only key signs.
func NewTokens(key []byte, now func() time.Time, old ...[]byte) *Tokens {
	t := &Tokens{key: key, verify: key, ttl: TokenTTL, now: now}
	if len(old) > 0 {
		set := jwt.VerificationKeySet{Keys: []jwt.VerificationKey{key}}
		for _, k := range old {
			set.Keys = append(set.Keys, k)
		}
		t.verify = set
	}
	return t
}

type memberClaims struct {
	MerchantID uint64 `json:"mid"`
	jwt.RegisteredClaims
}

// Issue returns a token for the member and its expiry.
func (t *Tokens) Issue(merchantID, memberID uint64) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, memberClaims{
		MerchantID: merchantID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: tokenIssuer, Audience: jwt.ClaimStrings{tokenAudience},
			Subject:  strconv.FormatUint(memberID, 10),
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
		},
	})
	s, err := tok.SignedString(t.key)
	return s, exp, err
}

// ErrBadMemberToken is the one answer to a missing, forged, expired or
// foreign token.
var ErrBadMemberToken = apperr.New(apperr.ErrUnauthenticated, "missing, invalid or expired member token")

// Check returns the merchant and member a token was issued for. Only HS256
// is accepted (no "none", no algorithm switching), and issuer, audience and
// expiry are required.
func (t *Tokens) Check(token string) (merchantID, memberID uint64, err error) {
	var c memberClaims
	_, err = jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.verify, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuer), jwt.WithAudience(tokenAudience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(t.now))
	if err != nil {
		return 0, 0, ErrBadMemberToken
	}
	id, err := strconv.ParseUint(c.Subject, 10, 64)
	if err != nil || id == 0 || c.MerchantID == 0 {
		return 0, 0, ErrBadMemberToken
	}
	return c.MerchantID, id, nil
}
