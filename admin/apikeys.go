package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
)

// APIKey is a server-to-server credential of a merchant (a POS or shop
// system). The key itself is shown once, at creation; only its SHA-256 is
// stored.
type APIKey struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	Name       string
	Prefix     string // the key's first characters, to tell keys apart in lists
	KeyHash    string
	Scopes     string // comma-separated authz.Perm values
	CreatedBy  uint64 // staff id
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	CreatedAt  time.Time
}

// TableName implements gorm's tabler.
func (APIKey) TableName() string { return "api_keys" }

// ScopeList returns the key's scopes.
func (k APIKey) ScopeList() []authz.Perm {
	var out []authz.Perm
	for s := range strings.SplitSeq(k.Scopes, ",") {
		if s != "" {
			out = append(out, authz.Perm(s))
		}
	}
	return out
}

// apiKeyPrefix marks API keys (secret scanners recognise it; it cannot be
// mistaken for a staff session token).
const apiKeyPrefix = "lsk_"

// APIKeys manages API keys.
type APIKeys struct {
	db  *gorm.DB
	now func() time.Time
}

// NewAPIKeys returns the API key store.
func NewAPIKeys(gdb *gorm.DB, now func() time.Time) *APIKeys { return &APIKeys{db: gdb, now: now} }

// APIKeyInput creates an API key.
type APIKeyInput struct {
	Name      string       `json:"name"`
	Scopes    []authz.Perm `json:"scopes"`
	ExpiresAt *time.Time   `json:"expires_at"`
}

// maxKeysPerMerchant bounds live keys per merchant (a leak of the create
// call cannot mint keys without end).
const maxKeysPerMerchant = 50

// Create makes a key with the given scopes and returns it with the secret,
// which is never shown again. The creating staff member's own permissions
// bound the scopes: nobody can mint a key that does more than they can.
func (s *APIKeys) Create(ctx context.Context, p authz.Principal, in APIKeyInput) (APIKey, string, error) {
	v := &apperr.Validation{}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 64 || strings.IndexFunc(in.Name, unicode.IsControl) >= 0 {
		v.Add("name", "is required: up to 64 characters, no control characters")
	}
	if len(in.Scopes) == 0 {
		v.Add("scopes", "must name at least one permission, e.g. orders:write")
	}
	for i, sc := range in.Scopes {
		switch {
		case !sc.Valid():
			v.Add(fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("%q is not a permission", sc))
		case sc == authz.APIKeysManage || sc == authz.StaffManage || sc == authz.Sandbox:
			v.Add(fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("%q cannot be given to an API key", sc))
		case !p.Can(sc):
			v.Add(fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("you do not hold %q yourself", sc))
		}
	}
	now := s.now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		v.Add("expires_at", "must be in the future")
	}
	if err := v.Err(); err != nil {
		return APIKey{}, "", err
	}
	scopes := slices.Clone(in.Scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	parts := make([]string, len(scopes))
	for i, sc := range scopes {
		parts[i] = string(sc)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return APIKey{}, "", fmt.Errorf("admin: %w", err)
	}
	secret := apiKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	k := APIKey{MerchantID: p.MerchantID, Name: in.Name, Prefix: secret[:len(apiKeyPrefix)+6], KeyHash: hashToken(secret),
		Scopes: strings.Join(parts, ","), CreatedBy: p.StaffID, CreatedAt: now}
	if in.ExpiresAt != nil {
		t := in.ExpiresAt.UTC().Truncate(time.Millisecond)
		k.ExpiresAt = &t
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var live int64
		if err := tx.Model(&APIKey{}).Where("merchant_id = ? AND revoked_at IS NULL", p.MerchantID).
			Count(&live).Error; err != nil {
			return fmt.Errorf("admin: count api keys: %w", err)
		}
		if live >= maxKeysPerMerchant {
			return apperr.New(apperr.ErrConflict, "a merchant can hold at most %d live API keys; revoke one first", maxKeysPerMerchant)
		}
		if err := tx.Create(&k).Error; err != nil {
			return fmt.Errorf("admin: create api key: %w", err)
		}
		return audit.Record(ctx, tx, p.MerchantID, audit.Entry{Action: "api_key.create", TargetType: "api_key",
			TargetIDs: []uint64{k.ID}, After: map[string]any{"name": k.Name, "scopes": k.Scopes, "expires_at": k.ExpiresAt}}, now)
	})
	if err != nil {
		return APIKey{}, "", err
	}
	return k, secret, nil
}

// List returns the merchant's keys, newest first (revoked ones included,
// so the history is visible).
func (s *APIKeys) List(ctx context.Context, merchantID uint64) ([]APIKey, error) {
	var out []APIKey
	if err := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("admin: list api keys: %w", err)
	}
	return out, nil
}

var errKeyNotFound = apperr.New(apperr.ErrNotFound, "API key not found")

// Revoke revokes a key of the merchant; revoking twice is not an error.
func (s *APIKeys) Revoke(ctx context.Context, merchantID, id uint64) (APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("merchant_id = ? AND id = ?", merchantID, id).Take(&k).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errKeyNotFound
			}
			return fmt.Errorf("admin: revoke api key: %w", err)
		}
		if k.RevokedAt != nil {
			return nil
		}
		now := s.now()
		k.RevokedAt = &now
		if err := tx.Model(&APIKey{}).Where("merchant_id = ? AND id = ?", merchantID, id).
			Update("revoked_at", now).Error; err != nil {
			return fmt.Errorf("admin: revoke api key: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "api_key.revoke", TargetType: "api_key",
			TargetIDs: []uint64{id}, Before: map[string]any{"name": k.Name}}, now)
	})
	return k, err
}

// Authenticate returns the principal of an API key. Expired, revoked and
// unknown keys all get ErrBadToken.
func (s *APIKeys) Authenticate(ctx context.Context, secret string) (authz.Principal, error) {
	if !strings.HasPrefix(secret, apiKeyPrefix) || len(secret) > 128 {
		return authz.Principal{}, ErrBadToken
	}
	var k APIKey
	now := s.now()
	// uk_api_keys_hash: one index probe.
	err := s.db.WithContext(ctx).Where("key_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
		hashToken(secret), now).Take(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return authz.Principal{}, ErrBadToken
	}
	if err != nil {
		return authz.Principal{}, fmt.Errorf("admin: authenticate api key: %w", err)
	}
	// Last use is kept to the minute: one write per key per minute, not per
	// request.
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
		if err := s.db.WithContext(ctx).Model(&APIKey{}).Where("id = ?", k.ID).Update("last_used_at", now).Error; err != nil {
			return authz.Principal{}, fmt.Errorf("admin: api key last use: %w", err)
		}
	}
	return authz.Principal{MerchantID: k.MerchantID, APIKeyID: k.ID, Name: k.Name, Scopes: k.ScopeList()}, nil
}
