package member

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
)

// Member codes are what a member shows at the till (as a QR code and a
// barcode) so staff or a POS can name them without asking for a phone
// number: a short signed value that names the member, rotates every
// minute, and counts for one order.
//
// A code is "M" and the base32 of: the member id and the issue time (both
// unsigned varints), 4 random bytes, and the first 8 bytes of an
// HMAC-SHA256 over the merchant id and all that, with a key derived from
// the service secret for this purpose only. The merchant is not in the
// code, only in the signature: another merchant's code does not verify.
// Codes are not stored; uses are (member_code_uses), so a code cannot name
// the buyer of a second order.
const (
	// MemberCodeTTL is how long a member code is accepted after it was
	// issued: the member centre shows a new one every MemberCodeRefresh,
	// and the rest is slack for a slow scan.
	MemberCodeTTL = 90 * time.Second
	// MemberCodeRefresh is when the member's app should fetch the next code.
	MemberCodeRefresh = 60 * time.Second

	codePrefix = "M"
	codeMACLen = 8
	codeEpoch  = 1_767_225_600 // 2026-01-01 UTC: keeps the time varint short
)

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Codes issues, checks and spends member codes.
type Codes struct {
	db   *gorm.DB
	keys [][]byte // the current key first; the others only verify
	now  func() time.Time
}

// NewCodes returns the member-code issuer; key must come from
// secrets.Keyring.SigningKey("member-code"), old from the old keys of the
// keyring (codes live seconds, but a key change should not fail the code
// on a member's screen).
func NewCodes(gdb *gorm.DB, key []byte, now func() time.Time, old ...[]byte) *Codes {
	return &Codes{db: gdb, keys: append([][]byte{key}, old...), now: now}
}

// MemberCode is a code to show and when it stops being accepted.
type MemberCode struct {
	Code         string    `json:"code"`
	ExpiresAt    time.Time `json:"expires_at"`
	RefreshAfter time.Time `json:"refresh_after"`
}

// Issue returns a fresh code for the member.
func (c *Codes) Issue(merchantID, memberID uint64) (MemberCode, error) {
	// Whole seconds: the expiry Check derives from the code is the one
	// answered here.
	now := time.Unix(max(c.now().Unix(), codeEpoch), 0).UTC()
	payload := binary.AppendUvarint(nil, memberID)
	payload = binary.AppendUvarint(payload, uint64(now.Unix()-codeEpoch))
	nonce := make([]byte, 4)
	if _, err := rand.Read(nonce); err != nil {
		return MemberCode{}, fmt.Errorf("member: code nonce: %w", err)
	}
	payload = append(payload, nonce...)
	raw := append(payload, codeMAC(c.keys[0], merchantID, payload)...)
	return MemberCode{Code: codePrefix + codeEncoding.EncodeToString(raw),
		ExpiresAt: now.Add(MemberCodeTTL), RefreshAfter: now.Add(MemberCodeRefresh)}, nil
}

func codeMAC(key []byte, merchantID uint64, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("member-code/v1"))
	m.Write(binary.BigEndian.AppendUint64(nil, merchantID))
	m.Write(payload)
	return m.Sum(nil)[:codeMACLen]
}

var (
	errCodeInvalid = apperr.Invalid("member_code", "is not a member code of this merchant")
	errCodeExpired = apperr.Invalid("member_code", "has expired: ask the member to show the code on their screen again")
	errCodeUsed    = apperr.New(apperr.ErrConflict, "member_code was already used for another order: ask the member to show the current code")
)

// codeNormal is a code as read: trimmed and upper-cased (some scanners and
// keyboards change case).
func codeNormal(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// Check returns the member a code of the merchant names and when the code
// expires. A code that does not verify (forged, mistyped, another
// merchant's) or has expired is a 400 naming member_code.
func (c *Codes) Check(merchantID uint64, code string) (memberID uint64, expiresAt time.Time, err error) {
	code = codeNormal(code)
	body, ok := strings.CutPrefix(code, codePrefix)
	if !ok || len(code) > 48 {
		return 0, time.Time{}, errCodeInvalid
	}
	raw, err := codeEncoding.DecodeString(body)
	if err != nil || len(raw) <= codeMACLen {
		return 0, time.Time{}, errCodeInvalid
	}
	payload, mac := raw[:len(raw)-codeMACLen], raw[len(raw)-codeMACLen:]
	verified := false
	for _, k := range c.keys {
		if hmac.Equal(mac, codeMAC(k, merchantID, payload)) {
			verified = true
			break
		}
	}
	if !verified {
		return 0, time.Time{}, errCodeInvalid
	}
	id, n := binary.Uvarint(payload)
	issued, m := binary.Uvarint(payload[max(n, 0):])
	if n <= 0 || m <= 0 || len(payload) != n+m+4 || id == 0 {
		return 0, time.Time{}, errCodeInvalid
	}
	expiresAt = time.Unix(int64(issued)+codeEpoch, 0).UTC().Add(MemberCodeTTL)
	if !c.now().Before(expiresAt) {
		return 0, time.Time{}, errCodeExpired
	}
	return id, expiresAt, nil
}

// codeUse is a member_code_uses row.
type codeUse struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	Code       string
	MemberID   uint64
	ExternalID string
	ExpiresAt  time.Time
	CreatedAt  time.Time
}

func (codeUse) TableName() string { return "member_code_uses" }

// Use spends a code on the order with the external id and returns the
// member it names. The same order may use it again (a POS retrying the
// order); another order may not (409), whichever instance it reaches: the
// use is a unique row.
func (c *Codes) Use(ctx context.Context, merchantID uint64, code, externalID string) (uint64, error) {
	memberID, expiresAt, err := c.Check(merchantID, code)
	if err != nil {
		return 0, err
	}
	u := codeUse{MerchantID: merchantID, Code: codeNormal(code), MemberID: memberID, ExternalID: externalID,
		ExpiresAt: expiresAt, CreatedAt: c.now()}
	err = c.db.WithContext(ctx).Create(&u).Error
	if err == nil {
		return memberID, nil
	}
	if !db.IsDuplicate(err) {
		return 0, fmt.Errorf("member: record code use: %w", err)
	}
	var prev codeUse
	if err := c.db.WithContext(ctx).Where("merchant_id = ? AND code = ?", merchantID, u.Code).Take(&prev).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return 0, errCodeUsed // purged in between: it was used all the same
		}
		return 0, fmt.Errorf("member: code use: %w", err)
	}
	if prev.ExternalID != externalID {
		return 0, errCodeUsed
	}
	return memberID, nil
}

// PurgeUses deletes the uses of codes that expired over an hour ago: such
// codes are refused for their age already.
func (c *Codes) PurgeUses(ctx context.Context) error {
	err := c.db.WithContext(ctx).Where("expires_at < ?", c.now().Add(-time.Hour)).Delete(&codeUse{}).Error
	if err != nil {
		return fmt.Errorf("member: purge code uses: %w", err)
	}
	return nil
}
