package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
)

// Role is a staff member's role.
type Role string

// Roles: owner and admin manage staff and settings; marketer manages
// segments, campaigns and care rules; viewer only reads.
const (
	RoleOwner    Role = "owner"
	RoleAdmin    Role = "admin"
	RoleMarketer Role = "marketer"
	RoleViewer   Role = "viewer"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleMarketer, RoleViewer:
		return true
	}
	return false
}

// Staff is a staff account.
type Staff struct {
	ID           uint64 `gorm:"primaryKey"`
	MerchantID   uint64
	Username     string
	PasswordHash string
	Role         Role
	DisabledAt   *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// TableName implements gorm's tabler.
func (Staff) TableName() string { return "staff" }

// session is a staff_sessions row.
type session struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	StaffID    uint64
	TokenHash  string
	ExpiresAt  time.Time
	RevokedAt  *time.Time
	CreatedAt  time.Time
}

func (session) TableName() string { return "staff_sessions" }

// Principal is the authenticated caller of the admin API.
type Principal struct {
	MerchantID uint64
	StaffID    uint64
	Username   string
	Role       Role
}

// Password rules. bcrypt reads at most 72 bytes, so longer passwords are
// refused rather than silently truncated.
const (
	minPassword = 8
	maxPassword = 72
)

var usernameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,63}$`)

// SessionTTL is how long a staff login lasts.
const SessionTTL = 12 * time.Hour

// tokenPrefix marks staff session tokens, so a leaked one is recognisable
// (secret scanners) and cannot be confused with an API key.
const tokenPrefix = "lss_"

// Staffs manages staff accounts and their sessions.
type Staffs struct {
	db  *gorm.DB
	now func() time.Time
	// dummyHash is compared against when the username does not exist, so a
	// failed login takes as long whether or not the account exists.
	dummyHash []byte
}

// NewStaffs returns the staff store.
func NewStaffs(gdb *gorm.DB, now func() time.Time) *Staffs {
	h, _ := bcrypt.GenerateFromPassword([]byte("not a real password"), bcrypt.DefaultCost)
	return &Staffs{db: gdb, now: now, dummyHash: h}
}

// Create adds a staff account. Usernames are case-insensitive and unique
// across the whole service.
func (s *Staffs) Create(ctx context.Context, merchantID uint64, username, password string, role Role) (Staff, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	v := &apperr.Validation{}
	if !usernameRe.MatchString(username) {
		v.Add("username", "must be 3-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if len(password) < minPassword || len(password) > maxPassword {
		v.Add("password", fmt.Sprintf("must be %d to %d bytes long", minPassword, maxPassword))
	}
	if !role.Valid() {
		v.Add("role", "must be owner, admin, marketer or viewer")
	}
	if err := v.Err(); err != nil {
		return Staff{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return Staff{}, fmt.Errorf("admin: hash password: %w", err)
	}
	now := s.now()
	st := Staff{MerchantID: merchantID, Username: username, PasswordHash: string(hash), Role: role,
		CreatedAt: now, UpdatedAt: now}
	if err := s.db.WithContext(ctx).Create(&st).Error; err != nil {
		if db.IsDuplicate(err) {
			return Staff{}, apperr.New(apperr.ErrConflict, "username %q is taken", username)
		}
		return Staff{}, fmt.Errorf("admin: create staff: %w", err)
	}
	return st, nil
}

// ErrBadLogin is the one answer to a failed login, whatever failed.
var ErrBadLogin = apperr.New(apperr.ErrUnauthenticated, "invalid username or password")

// Login checks the password and opens a session. The token is returned once;
// only its SHA-256 is stored.
func (s *Staffs) Login(ctx context.Context, username, password string) (token string, expires time.Time, err error) {
	username = strings.ToLower(strings.TrimSpace(username))
	var st Staff
	err = s.db.WithContext(ctx).Where("username = ?", username).Take(&st).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return "", time.Time{}, ErrBadLogin
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("admin: login: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(st.PasswordHash), []byte(password)) != nil || st.DisabledAt != nil {
		return "", time.Time{}, ErrBadLogin
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, fmt.Errorf("admin: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	expires = now.Add(SessionTTL)
	sess := session{MerchantID: st.MerchantID, StaffID: st.ID, TokenHash: hashToken(token), ExpiresAt: expires, CreatedAt: now}
	if err := s.db.WithContext(ctx).Create(&sess).Error; err != nil {
		return "", time.Time{}, fmt.Errorf("admin: open session: %w", err)
	}
	return token, expires, nil
}

// ErrBadToken is the one answer to a missing, unknown, expired or revoked
// token.
var ErrBadToken = apperr.New(apperr.ErrUnauthenticated, "missing, invalid or expired token")

// Authenticate returns the principal behind a session token.
func (s *Staffs) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 128 {
		return Principal{}, ErrBadToken
	}
	var row struct {
		MerchantID uint64
		StaffID    uint64
		Username   string
		Role       Role
	}
	// One indexed lookup (uk_staff_sessions_token) joined to the account, so
	// a disabled account loses its sessions at once.
	err := s.db.WithContext(ctx).Table("staff_sessions AS s").
		Select("s.merchant_id, s.staff_id, st.username, st.role").
		Joins("JOIN staff AS st ON st.id = s.staff_id AND st.merchant_id = s.merchant_id").
		Where("s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND st.disabled_at IS NULL",
			hashToken(token), s.now()).
		Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Principal{}, ErrBadToken
	}
	if err != nil {
		return Principal{}, fmt.Errorf("admin: authenticate: %w", err)
	}
	return Principal{MerchantID: row.MerchantID, StaffID: row.StaffID, Username: row.Username, Role: row.Role}, nil
}

// Logout revokes the session of token.
func (s *Staffs) Logout(ctx context.Context, token string) error {
	err := s.db.WithContext(ctx).Model(&session{}).
		Where("token_hash = ? AND revoked_at IS NULL", hashToken(token)).
		Update("revoked_at", s.now()).Error
	if err != nil {
		return fmt.Errorf("admin: logout: %w", err)
	}
	return nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// GeneratePassword returns a random password for accounts created without
// one (shown once to the operator).
func GeneratePassword() string {
	raw := make([]byte, 12)
	_, _ = rand.Read(raw)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// SetPassword replaces the password of a staff account of the merchant and
// revokes its open sessions.
func (s *Staffs) SetPassword(ctx context.Context, merchantID uint64, username, password string) error {
	if len(password) < minPassword || len(password) > maxPassword {
		return apperr.Invalid("password", fmt.Sprintf("must be %d to %d bytes long", minPassword, maxPassword))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("admin: hash password: %w", err)
	}
	username = strings.ToLower(strings.TrimSpace(username))
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var st Staff
		err := tx.Where("merchant_id = ? AND username = ?", merchantID, username).Take(&st).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return apperr.New(apperr.ErrNotFound, "no staff account %q", username)
		}
		if err != nil {
			return fmt.Errorf("admin: set password: %w", err)
		}
		now := s.now()
		if err := tx.Model(&st).Updates(map[string]any{"password_hash": string(hash), "updated_at": now}).Error; err != nil {
			return fmt.Errorf("admin: set password: %w", err)
		}
		return tx.Model(&session{}).Where("merchant_id = ? AND staff_id = ? AND revoked_at IS NULL", merchantID, st.ID).
			Update("revoked_at", now).Error
	})
}
