package member

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// RefreshTokenTTL is how long a refresh token may wait for its one use: a
// member who opens the mini-program at least once a month stays signed in.
const RefreshTokenTTL = 30 * 24 * time.Hour

// refreshPrefix marks member refresh tokens (recognisable by secret
// scanners, never mistaken for an access token or a staff credential).
const refreshPrefix = "lmr_"

// refreshToken is a member_refresh_tokens row.
type refreshToken struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	MemberID   uint64
	Family     string // one per login; rotation keeps it
	TokenHash  string
	ExpiresAt  time.Time
	UsedAt     *time.Time // rotated: the next token of the family replaced it
	RevokedAt  *time.Time
	CreatedAt  time.Time
}

func (refreshToken) TableName() string { return "member_refresh_tokens" }

// ErrBadRefreshToken is the one answer to an unknown, expired, used or
// revoked refresh token: the member signs in again.
var ErrBadRefreshToken = apperr.New(apperr.ErrUnauthenticated, "invalid, expired or revoked refresh token; sign in again")

// Session is a member's refresh token, returned once.
type Session struct {
	MemberID         uint64
	RefreshToken     string
	RefreshExpiresAt time.Time
}

func hashRefresh(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newSecret(n int) (string, error) {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("member: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// issueRefresh stores a new refresh token of family for the member.
func (s *Service) issueRefresh(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, family string) (Session, error) {
	secret, err := newSecret(32)
	if err != nil {
		return Session{}, err
	}
	token := refreshPrefix + secret
	now := s.now()
	row := refreshToken{MerchantID: merchantID, MemberID: memberID, Family: family, TokenHash: hashRefresh(token),
		ExpiresAt: now.Add(RefreshTokenTTL), CreatedAt: now}
	if err := tx.WithContext(ctx).Create(&row).Error; err != nil {
		return Session{}, fmt.Errorf("member: store refresh token: %w", err)
	}
	return Session{MemberID: memberID, RefreshToken: token, RefreshExpiresAt: row.ExpiresAt}, nil
}

// OpenSession starts a login's family of refresh tokens and returns its
// first token.
func (s *Service) OpenSession(ctx context.Context, merchantID, memberID uint64) (Session, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return Session{}, fmt.Errorf("member: %w", err)
	}
	return s.issueRefresh(ctx, s.db, merchantID, memberID, hex.EncodeToString(raw))
}

// errRefreshReused makes Refresh revoke a family after its transaction.
var errRefreshReused = errors.New("member: refresh token reused")

// Refresh spends a refresh token of the merchant and returns the next one
// of its family, for the member it belongs to now (following a merge).
// A token is good once: a used one presented again means it was copied,
// and the whole family is revoked (the thief and the member both sign in
// again). Tokens of an erased member are refused.
func (s *Service) Refresh(ctx context.Context, merchantID uint64, token string) (Session, error) {
	if !strings.HasPrefix(token, refreshPrefix) || len(token) > 128 {
		return Session{}, ErrBadRefreshToken
	}
	var out Session
	var family string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row refreshToken
		// uk_member_refresh_tokens_hash; locked so that two refreshes with
		// one token queue, and the second sees the first's use.
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("token_hash = ? AND merchant_id = ?", hashRefresh(token), merchantID).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrBadRefreshToken
		}
		if err != nil {
			return fmt.Errorf("member: refresh: %w", err)
		}
		now := s.now()
		switch {
		case row.RevokedAt != nil || !row.ExpiresAt.After(now):
			return ErrBadRefreshToken
		case row.UsedAt != nil:
			family = row.Family
			return errRefreshReused
		}
		m, err := (&Service{db: tx, now: s.now}).Resolve(ctx, merchantID, row.MemberID)
		if isNotFound(err) || (err == nil && m.ErasedAt != nil) {
			family = row.Family
			return errRefreshReused // nobody to sign in: end the family too
		}
		if err != nil {
			return err
		}
		if err := tx.Model(&refreshToken{}).Where("id = ?", row.ID).Update("used_at", now).Error; err != nil {
			return fmt.Errorf("member: refresh: %w", err)
		}
		out, err = s.issueRefresh(ctx, tx, merchantID, m.ID, row.Family)
		return err
	})
	if errors.Is(err, errRefreshReused) {
		if rerr := s.revokeFamily(ctx, merchantID, family); rerr != nil {
			return Session{}, rerr
		}
		s.log.WarnContext(ctx, "member: refresh token reused or member gone; login revoked", "merchant_id", merchantID)
		return Session{}, ErrBadRefreshToken
	}
	return out, err
}

// RevokeSession ends the login a refresh token belongs to (its whole
// family). An unknown token is not an error: the login is over either way.
func (s *Service) RevokeSession(ctx context.Context, merchantID uint64, token string) error {
	if !strings.HasPrefix(token, refreshPrefix) || len(token) > 128 {
		return nil
	}
	var row refreshToken
	err := s.db.WithContext(ctx).Where("token_hash = ? AND merchant_id = ?", hashRefresh(token), merchantID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("member: revoke session: %w", err)
	}
	return s.revokeFamily(ctx, merchantID, row.Family)
}

func (s *Service) revokeFamily(ctx context.Context, merchantID uint64, family string) error {
	// idx_member_refresh_tokens_family.
	err := s.db.WithContext(ctx).Model(&refreshToken{}).
		Where("family = ? AND merchant_id = ? AND revoked_at IS NULL", family, merchantID).
		Update("revoked_at", s.now()).Error
	if err != nil {
		return fmt.Errorf("member: revoke session: %w", err)
	}
	return nil
}

// revokeMemberSessions ends every login of the member, inside tx (erasure).
func revokeMemberSessions(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, now time.Time) error {
	// idx_member_refresh_tokens_member.
	err := tx.WithContext(ctx).Model(&refreshToken{}).
		Where("merchant_id = ? AND member_id = ? AND revoked_at IS NULL", merchantID, memberID).
		Update("revoked_at", now).Error
	if err != nil {
		return fmt.Errorf("member: revoke sessions of %d: %w", memberID, err)
	}
	return nil
}

// PurgeRefreshTokens deletes refresh tokens that expired more than a day
// ago (housekeeping; any instance may run it).
func (s *Service) PurgeRefreshTokens(ctx context.Context) error {
	// idx_member_refresh_tokens_expiry.
	err := s.db.WithContext(ctx).Where("expires_at < ?", s.now().Add(-24*time.Hour)).Delete(&refreshToken{}).Error
	if err != nil {
		return fmt.Errorf("member: purge refresh tokens: %w", err)
	}
	return nil
}
