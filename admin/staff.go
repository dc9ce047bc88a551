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
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/db"
)

// Role is a staff member's role (see authz for what each may do).
type Role = authz.Role

// Roles, re-exported for callers that only know admin.
const (
	RoleOwner    = authz.RoleOwner
	RoleAdmin    = authz.RoleAdmin
	RoleMarketer = authz.RoleMarketer
	RoleViewer   = authz.RoleViewer
)

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
	pw  *Passwords
	// dummyHash is compared against when the username does not exist, so a
	// failed login takes as long whether or not the account exists.
	dummyHash []byte
}

// NewStaffs returns the staff store; pw hashes and checks passwords (nil:
// NewPasswords with the production settings).
func NewStaffs(gdb *gorm.DB, now func() time.Time, pw *Passwords) *Staffs {
	if pw == nil {
		pw = NewPasswords(PasswordOptions{})
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("not a real password"), pw.cost)
	return &Staffs{db: gdb, now: now, pw: pw, dummyHash: h}
}

// Passwords returns the bounded bcrypt worker the store uses.
func (s *Staffs) Passwords() *Passwords { return s.pw }

// with returns the store on another handle (a transaction).
func (s *Staffs) with(tx *gorm.DB) *Staffs {
	return &Staffs{db: tx, now: s.now, pw: s.pw, dummyHash: s.dummyHash}
}

// Create adds a staff account. Usernames are case-insensitive and unique
// across the whole service.
func (s *Staffs) Create(ctx context.Context, merchantID uint64, username, password string, role Role) (Staff, error) {
	username = normalizeUsername(username)
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
	hash, err := s.pw.Hash(ctx, password)
	if err != nil {
		return Staff{}, err
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
	username = normalizeUsername(username)
	var st Staff
	err = s.db.WithContext(ctx).Where("username = ?", username).Take(&st).Error
	hash := []byte(st.PasswordHash)
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		hash = s.dummyHash
	case err != nil:
		return "", time.Time{}, fmt.Errorf("admin: login: %w", err)
	}
	ok, err := s.pw.Matches(ctx, hash, password)
	if err != nil {
		return "", time.Time{}, err
	}
	if !ok || st.ID == 0 || st.DisabledAt != nil {
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
func (s *Staffs) Authenticate(ctx context.Context, token string) (authz.Principal, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 128 {
		return authz.Principal{}, ErrBadToken
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
		return authz.Principal{}, ErrBadToken
	}
	if err != nil {
		return authz.Principal{}, fmt.Errorf("admin: authenticate: %w", err)
	}
	return authz.Principal{MerchantID: row.MerchantID, StaffID: row.StaffID, Name: row.Username, Role: row.Role}, nil
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
	hash, err := s.pw.Hash(ctx, password)
	if err != nil {
		return err
	}
	username = normalizeUsername(username)
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

// normalizeUsername is the one spelling of a username: trimmed, lower case.
func normalizeUsername(u string) string { return strings.ToLower(strings.TrimSpace(u)) }

// List returns the merchant's staff accounts in creation order.
func (s *Staffs) List(ctx context.Context, merchantID uint64) ([]Staff, error) {
	var out []Staff
	// idx_staff_merchant.
	if err := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("admin: list staff: %w", err)
	}
	return out, nil
}

// StaffInput creates a staff account through the API. Without a password
// one is generated and returned once.
type StaffInput struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     Role   `json:"role"`
}

var errStaffNotFound = apperr.New(apperr.ErrNotFound, "staff account not found")

// errOwnersOnly is the answer to an admin touching owner accounts.
var errOwnersOnly = apperr.New(apperr.ErrForbidden, "only an owner can create, change or grant the owner role")

// CreateBy creates a staff account on behalf of actor (owner or admin). Only
// owners make owners.
func (s *Staffs) CreateBy(ctx context.Context, actor authz.Principal, in StaffInput) (Staff, string, error) {
	if in.Role == RoleOwner && actor.Role != RoleOwner {
		return Staff{}, "", errOwnersOnly
	}
	generated := ""
	if in.Password == "" {
		generated = GeneratePassword()
		in.Password = generated
	}
	var st Staff
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		rows, err := lockStaff(ctx, tx, actor.MerchantID, actor.StaffID)
		if err != nil {
			return err
		}
		me := rows[actor.StaffID]
		if err := mayManage(me); err != nil {
			return err
		}
		if in.Role == RoleOwner && me.Role != RoleOwner {
			return errOwnersOnly
		}
		st, err = s.with(tx).Create(ctx, actor.MerchantID, in.Username, in.Password, in.Role)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, actor.MerchantID, audit.Entry{Action: "staff.create", TargetType: "staff",
			TargetIDs: []uint64{st.ID}, After: map[string]any{"username": st.Username, "role": st.Role}}, st.CreatedAt)
	})
	if err != nil {
		return Staff{}, "", err
	}
	return st, generated, nil
}

// StaffUpdate changes a staff account; absent fields stay.
type StaffUpdate struct {
	Role     *Role   `json:"role"`
	Disabled *bool   `json:"disabled"`
	Password *string `json:"password"`
}

// UpdateBy changes another staff account of actor's merchant. Nobody
// changes their own role or disables themselves (so a merchant cannot lock
// itself out; passwords of one's own go through ChangePassword); only
// owners touch owners. Disabling or resetting the password ends the
// account's sessions.
func (s *Staffs) UpdateBy(ctx context.Context, actor authz.Principal, id uint64, u StaffUpdate) (Staff, error) {
	v := &apperr.Validation{}
	if u.Role != nil && !u.Role.Valid() {
		v.Add("role", "must be owner, admin, marketer or viewer")
	}
	if u.Password != nil && (len(*u.Password) < minPassword || len(*u.Password) > maxPassword) {
		v.Add("password", fmt.Sprintf("must be %d to %d bytes long", minPassword, maxPassword))
	}
	if u.Role == nil && u.Disabled == nil && u.Password == nil {
		v.Add("body", "must change role, disabled or password")
	}
	if err := v.Err(); err != nil {
		return Staff{}, err
	}
	var hash []byte
	if u.Password != nil {
		var err error
		if hash, err = s.pw.Hash(ctx, *u.Password); err != nil {
			return Staff{}, err
		}
	}
	var st Staff
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if id == actor.StaffID {
			return apperr.New(apperr.ErrForbidden, "you cannot change your own account here; use /me/password for your password")
		}
		rows, err := lockStaff(ctx, tx, actor.MerchantID, actor.StaffID, id)
		if err != nil {
			return err
		}
		me, target := rows[actor.StaffID], rows[id]
		if target == nil {
			return errStaffNotFound
		}
		st = *target
		// What the actor may do is what its stored row says now, not the
		// role it had when its request was authenticated: of two owners
		// demoting each other at once, the second finds itself no owner.
		if err := mayManage(me); err != nil {
			return err
		}
		if (st.Role == RoleOwner || (u.Role != nil && *u.Role == RoleOwner)) && me.Role != RoleOwner {
			return errOwnersOnly
		}
		wasOwner := st.Role == RoleOwner && st.DisabledAt == nil
		before := map[string]any{"role": st.Role, "disabled": st.DisabledAt != nil}
		now := s.now()
		changes := map[string]any{"updated_at": now}
		revoke := false
		if u.Role != nil {
			st.Role = *u.Role
			changes["role"] = st.Role
		}
		if u.Disabled != nil {
			switch {
			case *u.Disabled && st.DisabledAt == nil:
				st.DisabledAt = &now
				revoke = true
			case !*u.Disabled:
				st.DisabledAt = nil
			}
			changes["disabled_at"] = st.DisabledAt
		}
		if hash != nil {
			st.PasswordHash = string(hash)
			changes["password_hash"] = st.PasswordHash
			revoke = true
		}
		st.UpdatedAt = now
		if wasOwner && (st.Role != RoleOwner || st.DisabledAt != nil) && !otherOwner(rows, id) {
			return apperr.New(apperr.ErrConflict, "a merchant keeps at least one enabled owner; make another owner first")
		}
		if err := tx.Model(&Staff{}).Where("merchant_id = ? AND id = ?", actor.MerchantID, id).Updates(changes).Error; err != nil {
			return fmt.Errorf("admin: update staff: %w", err)
		}
		if revoke {
			if err := tx.Model(&session{}).Where("merchant_id = ? AND staff_id = ? AND revoked_at IS NULL", actor.MerchantID, id).
				Update("revoked_at", now).Error; err != nil {
				return fmt.Errorf("admin: revoke sessions: %w", err)
			}
		}
		after := map[string]any{"role": st.Role, "disabled": st.DisabledAt != nil, "password_reset": hash != nil}
		return audit.Record(ctx, tx, actor.MerchantID, audit.Entry{Action: "staff.update", TargetType: "staff",
			TargetIDs: []uint64{id}, Before: before, After: after}, now)
	})
	return st, err
}

// ErrWrongPassword is the answer to a password change whose current
// password is wrong (the caller counts it as a failed login).
var ErrWrongPassword error = apperr.Invalid("current_password", "is not your current password")

// lockStaff locks, in id order, the given staff accounts of the merchant
// and every enabled owner, and returns them by id. One lock order for
// every staff change (idx_staff_merchant, ascending id), so two changes
// queue instead of deadlocking, and the set of owners cannot shrink under
// a change that checks it.
func lockStaff(ctx context.Context, tx *gorm.DB, merchantID uint64, ids ...uint64) (map[uint64]*Staff, error) {
	var rows []Staff
	err := tx.WithContext(ctx).Clauses(clause.Locking{Strength: "UPDATE"}).
		Where("merchant_id = ? AND (id IN ? OR (role = ? AND disabled_at IS NULL))", merchantID, ids, RoleOwner).
		Order("id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("admin: lock staff: %w", err)
	}
	out := make(map[uint64]*Staff, len(rows))
	for i := range rows {
		out[rows[i].ID] = &rows[i]
	}
	return out, nil
}

// mayManage refuses an actor whose stored account can no longer manage
// staff (disabled or demoted since its request was authenticated).
func mayManage(me *Staff) error {
	if me == nil || me.DisabledAt != nil || !(authz.Principal{StaffID: me.ID, Role: me.Role}).Can(authz.StaffManage) {
		return apperr.New(apperr.ErrForbidden, "your account can no longer manage staff")
	}
	return nil
}

// otherOwner reports whether rows (from lockStaff) hold an enabled owner
// other than id.
func otherOwner(rows map[uint64]*Staff, id uint64) bool {
	for _, r := range rows {
		if r.ID != id && r.Role == RoleOwner && r.DisabledAt == nil {
			return true
		}
	}
	return false
}

// ChangePassword changes the caller's own password after checking the
// current one, and ends the caller's other sessions (the one in use,
// currentToken, stays).
func (s *Staffs) ChangePassword(ctx context.Context, p authz.Principal, currentToken, current, next string) error {
	v := &apperr.Validation{}
	if current == "" {
		v.Add("current_password", "is required")
	}
	if len(next) < minPassword || len(next) > maxPassword {
		v.Add("new_password", fmt.Sprintf("must be %d to %d bytes long", minPassword, maxPassword))
	}
	if next != "" && next == current {
		v.Add("new_password", "must differ from the current password")
	}
	if err := v.Err(); err != nil {
		return err
	}
	var st Staff
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND id = ?", p.MerchantID, p.StaffID).Take(&st).Error; err != nil {
		return fmt.Errorf("admin: change password: %w", err)
	}
	// bcrypt runs outside the transaction: a row lock is not held for the
	// length of two hashes.
	ok, err := s.pw.Matches(ctx, []byte(st.PasswordHash), current)
	if err != nil {
		return err
	}
	if !ok {
		return ErrWrongPassword
	}
	hash, err := s.pw.Hash(ctx, next)
	if err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		// The hash checked above must still be the stored one: two changes
		// racing with the same current password do not both win.
		res := tx.Model(&Staff{}).Where("id = ? AND password_hash = ?", st.ID, st.PasswordHash).
			Updates(map[string]any{"password_hash": string(hash), "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("admin: change password: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return apperr.New(apperr.ErrConflict, "your password was changed meanwhile; sign in again")
		}
		if err := tx.Model(&session{}).Where("merchant_id = ? AND staff_id = ? AND revoked_at IS NULL AND token_hash <> ?",
			p.MerchantID, p.StaffID, hashToken(currentToken)).Update("revoked_at", now).Error; err != nil {
			return fmt.Errorf("admin: revoke sessions: %w", err)
		}
		return audit.Record(ctx, tx, p.MerchantID, audit.Entry{Action: "staff.password_change", TargetType: "staff",
			TargetIDs: []uint64{st.ID}}, now)
	})
}

// PurgeSessions deletes sessions that ended more than a day ago.
func (s *Staffs) PurgeSessions(ctx context.Context) error {
	cutoff := s.now().Add(-24 * time.Hour)
	return s.db.WithContext(ctx).Where("expires_at < ? OR revoked_at < ?", cutoff, cutoff).Delete(&session{}).Error
}
