package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
)

// APIKey is a server-to-server credential of a merchant (a POS or shop
// system). The key itself is shown once, at creation; only its SHA-256 is
// stored. A key acts for the staff account that owns it (its creator,
// unless an owner moved it): it works only while that account is enabled,
// and never does more than the account's current role allows.
type APIKey struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	Name       string
	Prefix     string // the key's first characters, to tell keys apart in lists
	KeyHash    string
	Scopes     string // comma-separated authz.Perm values
	CreatedBy  uint64 // the owning staff account: the creator, or whom an owner moved the key to
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

	touched sync.Map // key id → *atomic.Int64: when this instance last wrote its last use (Unix ms)
	writes  sync.WaitGroup
}

// lastUseEvery is how often a key's last_used_at is written at most: it
// is kept to the minute.
const lastUseEvery = time.Minute

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

// ListedKey is a key with whether its owning account is enabled (a key
// whose owner is disabled does not work).
type ListedKey struct {
	APIKey
	OwnerActive bool
}

// List returns the merchant's keys, newest first (revoked ones included,
// so the history is visible).
func (s *APIKeys) List(ctx context.Context, merchantID uint64) ([]ListedKey, error) {
	var out []ListedKey
	// idx_api_keys_merchant, the owners by primary key.
	if err := s.db.WithContext(ctx).Table("api_keys AS k").
		Select("k.*, CASE WHEN st.disabled_at IS NULL THEN 1 ELSE 0 END AS owner_active").
		Joins("JOIN staff AS st ON st.id = k.created_by").
		Where("k.merchant_id = ?", merchantID).Order("k.id DESC").Find(&out).Error; err != nil {
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
// unknown keys all get ErrBadToken, and so does a key whose owning staff
// account is disabled. The key's scopes are cut to what the owner's role
// allows now: a demoted owner's keys lose the rest on the next request.
func (s *APIKeys) Authenticate(ctx context.Context, secret string) (authz.Principal, error) {
	if !strings.HasPrefix(secret, apiKeyPrefix) || len(secret) > 128 {
		return authz.Principal{}, ErrBadToken
	}
	var row struct {
		APIKey
		OwnerRole Role
	}
	now := s.now()
	// uk_api_keys_hash, then the owner by primary key: two index probes in
	// one statement, so the owner's state is read on every request without
	// a cache that could lag behind a disable.
	err := s.db.WithContext(ctx).Table("api_keys AS k").Select("k.*, st.role AS owner_role").
		Joins("JOIN staff AS st ON st.id = k.created_by AND st.merchant_id = k.merchant_id AND st.disabled_at IS NULL").
		Where("k.key_hash = ? AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)", hashToken(secret), now).
		Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return authz.Principal{}, ErrBadToken
	}
	if err != nil {
		return authz.Principal{}, fmt.Errorf("admin: authenticate api key: %w", err)
	}
	k := row.APIKey
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > lastUseEvery {
		s.touch(ctx, k.ID, now)
	}
	owner := authz.Principal{StaffID: k.CreatedBy, Role: row.OwnerRole}
	scopes := slices.DeleteFunc(k.ScopeList(), func(p authz.Perm) bool { return !owner.Can(p) })
	return authz.Principal{MerchantID: k.MerchantID, APIKeyID: k.ID, Name: k.Name, Scopes: scopes}, nil
}

// touch records the key's use at now, off the request's path: at most one
// write per key per lastUseEvery from this instance (many requests of one
// POS arrive together when the stored time goes stale, and they must not
// all write the same row), in the background, and conditional, so that of
// several instances the first of the minute writes and the others change
// nothing. A failed write is tried again by a later request.
func (s *APIKeys) touch(ctx context.Context, id uint64, now time.Time) {
	v, _ := s.touched.LoadOrStore(id, new(atomic.Int64))
	last := v.(*atomic.Int64)
	prev := last.Load()
	if now.UnixMilli()-prev <= lastUseEvery.Milliseconds() || !last.CompareAndSwap(prev, now.UnixMilli()) {
		return
	}
	s.writes.Add(1)
	go func() {
		defer s.writes.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err := s.db.WithContext(ctx).Model(&APIKey{}).
			Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", id, now.Add(-lastUseEvery)).
			Update("last_used_at", now).Error
		if err != nil {
			last.CompareAndSwap(now.UnixMilli(), prev)
		}
	}()
}

// Wait waits for the last-use writes in flight (at shutdown, in tests).
func (s *APIKeys) Wait() { s.writes.Wait() }

// Reown moves a key of the merchant to another enabled staff account
// (say, before its creator leaves and is disabled). Only an owner may, as
// the stored role says at that moment; the new owner must hold every scope
// of the key. Audited as api_key.reown.
func (s *APIKeys) Reown(ctx context.Context, actor authz.Principal, id, staffID uint64) (APIKey, error) {
	if staffID == 0 {
		return APIKey{}, apperr.Invalid("staff_id", "is required")
	}
	var k APIKey
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var staff []Staff
		// Primary key, both rows locked: neither account changes under us.
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("merchant_id = ? AND id IN ?", actor.MerchantID,
			[]uint64{actor.StaffID, staffID}).Order("id").Find(&staff).Error; err != nil {
			return fmt.Errorf("admin: reown api key: %w", err)
		}
		var me, to *Staff
		for i := range staff {
			if staff[i].ID == actor.StaffID {
				me = &staff[i]
			}
			if staff[i].ID == staffID {
				to = &staff[i]
			}
		}
		if me == nil || me.DisabledAt != nil || me.Role != RoleOwner {
			return apperr.New(apperr.ErrForbidden, "only an owner can move an API key to another staff account")
		}
		if err := tx.Where("merchant_id = ? AND id = ?", actor.MerchantID, id).Take(&k).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errKeyNotFound
			}
			return fmt.Errorf("admin: reown api key: %w", err)
		}
		v := &apperr.Validation{}
		switch {
		case to == nil:
			v.Add("staff_id", "is not a staff account of this merchant")
		case to.DisabledAt != nil:
			v.Add("staff_id", "is a disabled account")
		default:
			owner := authz.Principal{StaffID: to.ID, Role: to.Role}
			for _, sc := range k.ScopeList() {
				if !owner.Can(sc) {
					v.Add("staff_id", fmt.Sprintf("the account does not hold the key's scope %q", sc))
				}
			}
		}
		if k.RevokedAt != nil {
			v.Add("api_key_id", "is revoked")
		}
		if err := v.Err(); err != nil {
			return err
		}
		before := k.CreatedBy
		if before == staffID {
			return nil
		}
		k.CreatedBy = staffID
		if err := tx.Model(&APIKey{}).Where("merchant_id = ? AND id = ?", actor.MerchantID, id).
			Update("created_by", staffID).Error; err != nil {
			return fmt.Errorf("admin: reown api key: %w", err)
		}
		return audit.Record(ctx, tx, actor.MerchantID, audit.Entry{Action: "api_key.reown", TargetType: "api_key",
			TargetIDs: []uint64{id}, Before: map[string]any{"owner_staff_id": before},
			After: map[string]any{"owner_staff_id": staffID}}, s.now())
	})
	return k, err
}
