// Package admin is the merchant side of the service: merchants and their
// WeChat credentials, staff accounts and sessions, the authentication
// middleware of the admin API, and the sandbox tools.
package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/secrets"
	"github.com/wxloyalty/loyalty/internal/ttlcache"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
)

// Merchant is a tenant. Its id is the merchant_id of every other table.
type Merchant struct {
	ID             uint64 `gorm:"primaryKey"`
	Name           string
	TimeZone       string
	Sandbox        bool
	OAAppID        string  `gorm:"column:oa_app_id"`
	OAAppSecretEnc string  `gorm:"column:oa_app_secret_enc"`
	OATokenEnc     string  `gorm:"column:oa_token_enc"`
	OAAESKeyEnc    string  `gorm:"column:oa_aes_key_enc"`
	OAOriginalID   string  `gorm:"column:oa_original_id"`     // the account's "gh_..." id, "" until known
	OACompatible   bool    `gorm:"column:oa_compatible_mode"` // plaintext callbacks despite an AES key
	MPAppID        *string `gorm:"column:mp_app_id"`
	MPAppSecretEnc string  `gorm:"column:mp_app_secret_enc"`
	QuietStart     int     // minutes after local midnight when quiet hours begin
	QuietEnd       int     // minutes after local midnight when they end
	FrequencyCap   int     // capped messages per member per window (00240)
	CapWindowDays  int     // the frequency cap's window in days
	BuyingCadence  string  // high, medium or low: sets lifecycle thresholds
	PlatinumPct    int     // value pyramid: top share that is platinum
	GoldPct        int     // value pyramid: the next share, gold
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Purposes bind each encrypted column to its meaning (AEAD associated data).
const (
	purposeOASecret = "merchant.oa_app_secret"
	purposeOAToken  = "merchant.oa_token"
	purposeOAAESKey = "merchant.oa_aes_key"
	purposeMPSecret = "merchant.mp_app_secret"
)

// MerchantInput creates or updates a merchant.
type MerchantInput struct {
	Name        string
	TimeZone    string // IANA name; default Asia/Shanghai
	Sandbox     bool   // a demo merchant served by the WeChat simulator
	Credentials wechat.Credentials
}

// DefaultTimeZone is the merchant time zone unless one is given.
const DefaultTimeZone = "Asia/Shanghai"

// validate checks the input; field names are the merchant API's.
func (in *MerchantInput) validate() error {
	v := &apperr.Validation{}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 128 {
		v.Add("name", "is required and must be at most 128 characters")
	}
	if in.TimeZone == "" {
		in.TimeZone = DefaultTimeZone
	}
	if _, err := time.LoadLocation(in.TimeZone); err != nil {
		v.Add("time_zone", "must be an IANA time zone such as Asia/Shanghai")
	}
	var cv *apperr.Validation
	if err := in.Credentials.Validate(); errors.As(err, &cv) {
		for f, reason := range cv.Fields {
			v.Add(f, reason)
		}
	}
	return v.Err()
}

// Merchants stores merchants. It implements wechat.CredentialSource.
type Merchants struct {
	db       *gorm.DB
	keys     *secrets.Keyring
	now      func() time.Time
	onChange func(merchantID uint64) // told when credentials change (wechat.Accounts.Invalidate)
	crm      *ttlcache.Cache[uint64, member.CRMSettings]
}

// crmTTL bounds how long CRMSettings serves a merchant's CRM thresholds
// from memory (every order's attribute refresh reads them). A change
// through UpdateSettings applies at once in this instance, and within
// crmTTL in others; the nightly pass reads them afresh.
const crmTTL = 5 * time.Second

// NewMerchants returns the merchant store. onChange may be nil.
func NewMerchants(gdb *gorm.DB, keys *secrets.Keyring, now func() time.Time, onChange func(uint64)) *Merchants {
	if onChange == nil {
		onChange = func(uint64) {}
	}
	return &Merchants{db: gdb, keys: keys, now: now, onChange: onChange,
		crm: ttlcache.New[uint64, member.CRMSettings](crmTTL)}
}

// Create adds a merchant. Its official-account AppID (and mini-program AppID)
// must not belong to another merchant.
func (s *Merchants) Create(ctx context.Context, in MerchantInput) (Merchant, error) {
	if err := in.validate(); err != nil {
		return Merchant{}, err
	}
	m := Merchant{Name: in.Name, TimeZone: in.TimeZone, Sandbox: in.Sandbox,
		QuietStart: DefaultQuietStart, QuietEnd: DefaultQuietEnd, FrequencyCap: DefaultFrequencyCap, CapWindowDays: DefaultCapWindowDays, BuyingCadence: member.DefaultCRMSettings.Cadence,
		PlatinumPct: member.DefaultCRMSettings.PlatinumPct, GoldPct: member.DefaultCRMSettings.GoldPct}
	setAppIDs(&m, in.Credentials)
	now := s.now()
	m.CreatedAt, m.UpdatedAt = now, now
	// The secrets are bound to the merchant's id, which exists only once
	// the row does: insert without them, then seal and write them, in one
	// transaction so no reader sees a merchant without its secrets.
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&m).Error; err != nil {
			return err
		}
		if err := s.seal(&m, in.Credentials); err != nil {
			return err
		}
		return tx.Model(&m).UpdateColumns(sealedColumns(&m, nil)).Error
	})
	if err != nil {
		if db.IsDuplicate(err) {
			return Merchant{}, apperr.New(apperr.ErrConflict, "a merchant with this AppID already exists")
		}
		return Merchant{}, fmt.Errorf("admin: create merchant: %w", err)
	}
	return m, nil
}

// Ensure creates the merchant with in's official-account AppID, or updates
// its name, time zone and credentials when it exists. It is how credentials
// given in the configuration file take effect at startup.
func (s *Merchants) Ensure(ctx context.Context, in MerchantInput) (Merchant, bool, error) {
	if err := in.validate(); err != nil {
		return Merchant{}, false, err
	}
	var m Merchant
	err := s.db.WithContext(ctx).Where("oa_app_id = ?", in.Credentials.AppID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		m, err = s.Create(ctx, in)
		if db.IsDuplicate(err) || errors.Is(err, apperr.ErrConflict) {
			// Another instance created it at the same moment.
			return s.Ensure(ctx, in)
		}
		return m, err == nil, err
	}
	if err != nil {
		return Merchant{}, false, fmt.Errorf("admin: find merchant: %w", err)
	}
	current, err := s.credentials(m)
	if err != nil {
		return Merchant{}, false, err
	}
	// The configuration file does not carry the callback settings: keep
	// the ones set through the settings API or learnt from callbacks.
	in.Credentials.OriginalID = current.OriginalID
	in.Credentials.CompatibleMode = current.CompatibleMode && in.Credentials.EncodingAESKey != ""
	if current == in.Credentials && m.Name == in.Name && m.TimeZone == in.TimeZone && m.Sandbox == in.Sandbox {
		return m, false, nil
	}
	m.Name, m.TimeZone, m.Sandbox, m.UpdatedAt = in.Name, in.TimeZone, in.Sandbox, s.now()
	if err := s.seal(&m, in.Credentials); err != nil {
		return Merchant{}, false, err
	}
	err = s.db.WithContext(ctx).Model(&m).Select("*").Omit("id", "created_at").Updates(&m).Error
	if err != nil {
		if db.IsDuplicate(err) {
			return Merchant{}, false, apperr.New(apperr.ErrConflict, "the mini-program AppID belongs to another merchant")
		}
		return Merchant{}, false, fmt.Errorf("admin: update merchant: %w", err)
	}
	s.onChange(m.ID)
	return m, false, nil
}

// Get returns a merchant.
func (s *Merchants) Get(ctx context.Context, id uint64) (Merchant, error) {
	var m Merchant
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Merchant{}, fmt.Errorf("admin: merchant %d: %w", id, apperr.ErrNotFound)
	}
	if err != nil {
		return Merchant{}, fmt.Errorf("admin: merchant %d: %w", id, err)
	}
	return m, nil
}

// WeChatCredentials implements wechat.CredentialSource.
func (s *Merchants) WeChatCredentials(ctx context.Context, merchantID uint64) (wechat.Credentials, error) {
	m, err := s.Get(ctx, merchantID)
	if err != nil {
		return wechat.Credentials{}, err
	}
	return s.credentials(m)
}

// LearnOriginalID implements wechat.OriginalIDStore: it stores the
// official account's original id learnt from a verified encrypted callback
// when the merchant has none yet (a conditional update, so of several
// instances learning at once one writes and one audit entry is recorded),
// and drops the cached account so the next callback is checked against it.
func (s *Merchants) LearnOriginalID(ctx context.Context, merchantID uint64, originalID string) error {
	if !wechat.ValidOriginalID(originalID) {
		return apperr.Invalid("original_id", "is not an official account's original id")
	}
	learnt := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		res := tx.Model(&Merchant{}).Where("id = ? AND oa_original_id = ''", merchantID).
			Updates(map[string]any{"oa_original_id": originalID, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("admin: learn original id of merchant %d: %w", merchantID, res.Error)
		}
		if res.RowsAffected == 0 {
			return nil // known already (or no such merchant)
		}
		learnt = true
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "settings.original_id_learnt", TargetType: "merchant",
			TargetIDs: []uint64{merchantID}, Before: map[string]string{"original_id": ""},
			After: map[string]string{"original_id": originalID, "source": "verified encrypted callback"}}, now)
	})
	if err != nil {
		return err
	}
	if learnt {
		s.onChange(merchantID)
	}
	return nil
}

// Location returns the merchant's time zone.
func (s *Merchants) Location(ctx context.Context, merchantID uint64) (*time.Location, error) {
	m, err := s.Get(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	return time.LoadLocation(m.TimeZone)
}

// CRMSettings returns the merchant's thresholds for computed attributes,
// cached for crmTTL.
func (s *Merchants) CRMSettings(ctx context.Context, merchantID uint64) (member.CRMSettings, error) {
	return s.crm.Get(ctx, merchantID, func(ctx context.Context) (member.CRMSettings, error) {
		m, err := s.Get(ctx, merchantID)
		if err != nil {
			return member.CRMSettings{}, err
		}
		return member.CRMSettings{Cadence: m.BuyingCadence, PlatinumPct: m.PlatinumPct, GoldPct: m.GoldPct}, nil
	})
}

// CRMSettingsIn is CRMSettings for a caller holding transaction tx: a miss
// of the cache is read through tx, not on a second connection, so callers
// holding connections cannot exhaust the pool waiting for more.
func (s *Merchants) CRMSettingsIn(ctx context.Context, tx *gorm.DB, merchantID uint64) (member.CRMSettings, error) {
	return s.crm.Get(ctx, merchantID, func(ctx context.Context) (member.CRMSettings, error) {
		var m Merchant
		err := tx.WithContext(ctx).Select("id", "buying_cadence", "platinum_pct", "gold_pct").Where("id = ?", merchantID).Take(&m).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return member.CRMSettings{}, fmt.Errorf("admin: merchant %d: %w", merchantID, apperr.ErrNotFound)
		}
		if err != nil {
			return member.CRMSettings{}, fmt.Errorf("admin: merchant %d: %w", merchantID, err)
		}
		return member.CRMSettings{Cadence: m.BuyingCadence, PlatinumPct: m.PlatinumPct, GoldPct: m.GoldPct}, nil
	})
}

// CountReal counts merchants that are not sandbox demos.
func (s *Merchants) CountReal(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Merchant{}).Where("sandbox = ?", false).Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("admin: count merchants: %w", err)
	}
	return n, nil
}

// FirstReal returns the id of the oldest merchant that is not a sandbox
// demo, if any: one row at most, read through the primary key.
func (s *Merchants) FirstReal(ctx context.Context) (uint64, bool, error) {
	var ids []uint64
	err := s.db.WithContext(ctx).Model(&Merchant{}).Where("sandbox = ?", false).Order("id").Limit(1).Pluck("id", &ids).Error
	if err != nil {
		return 0, false, fmt.Errorf("admin: find real merchant: %w", err)
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	return ids[0], true, nil
}

// SandboxIDs returns the ids of the sandbox merchants.
func (s *Merchants) SandboxIDs(ctx context.Context) ([]uint64, error) {
	var ids []uint64
	if err := s.db.WithContext(ctx).Model(&Merchant{}).Where("sandbox = ?", true).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("admin: list sandbox merchants: %w", err)
	}
	return ids, nil
}

// FirstSandbox returns the oldest sandbox merchant, if any.
func (s *Merchants) FirstSandbox(ctx context.Context) (Merchant, bool, error) {
	var m Merchant
	err := s.db.WithContext(ctx).Where("sandbox = ?", true).Order("id").Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Merchant{}, false, nil
	}
	if err != nil {
		return Merchant{}, false, fmt.Errorf("admin: find sandbox merchant: %w", err)
	}
	return m, true, nil
}

// sealedField is one encrypted column of a merchant row.
type sealedField struct {
	column string
	label  secrets.Label
	stored *string
}

// sealedFields lists m's encrypted columns, each with the label its value
// is bound to: the column's purpose and the merchant's id, so a value
// copied into another column or another merchant's row does not decrypt.
func sealedFields(m *Merchant) []sealedField {
	owner := fmt.Sprintf("merchant/%d", m.ID)
	return []sealedField{
		{"oa_app_secret_enc", secrets.Label{Purpose: purposeOASecret, Owner: owner}, &m.OAAppSecretEnc},
		{"oa_token_enc", secrets.Label{Purpose: purposeOAToken, Owner: owner}, &m.OATokenEnc},
		{"oa_aes_key_enc", secrets.Label{Purpose: purposeOAAESKey, Owner: owner}, &m.OAAESKeyEnc},
		{"mp_app_secret_enc", secrets.Label{Purpose: purposeMPSecret, Owner: owner}, &m.MPAppSecretEnc},
	}
}

// sealedColumns returns m's encrypted columns named in only (all when only
// is nil) and their values, for an UPDATE that leaves updated_at alone.
func sealedColumns(m *Merchant, only []string) map[string]any {
	out := map[string]any{}
	for _, f := range sealedFields(m) {
		if only == nil || slices.Contains(only, f.column) {
			out[f.column] = *f.stored
		}
	}
	return out
}

// plainSecrets returns c's secrets in the order of sealedFields.
func plainSecrets(c *wechat.Credentials) []*string {
	return []*string{&c.AppSecret, &c.Token, &c.EncodingAESKey, &c.MPAppSecret}
}

// setAppIDs copies c's (public) app ids into m.
func setAppIDs(m *Merchant, c wechat.Credentials) {
	m.OAAppID = c.AppID
	m.OAOriginalID, m.OACompatible = c.OriginalID, c.CompatibleMode
	m.MPAppID = nil
	if c.MPAppID != "" {
		id := c.MPAppID
		m.MPAppID = &id
	}
}

// seal writes c into m: app ids as they are, secrets encrypted under the
// current key and bound to m.ID, which must be set.
func (s *Merchants) seal(m *Merchant, c wechat.Credentials) error {
	if m.ID == 0 {
		return errors.New("admin: sealing credentials of a merchant without an id")
	}
	setAppIDs(m, c)
	plain := plainSecrets(&c)
	for i, f := range sealedFields(m) {
		enc, err := s.keys.Encrypt(f.label, *plain[i])
		if err != nil {
			return fmt.Errorf("admin: encrypt credentials: %w", err)
		}
		*f.stored = enc
	}
	return nil
}

// credentials decrypts m's secrets. A value that does not open (sealed for
// another merchant, under an unknown key, or altered) is an error naming
// the merchant and the column.
func (s *Merchants) credentials(m Merchant) (wechat.Credentials, error) {
	c := wechat.Credentials{AppID: m.OAAppID, OriginalID: m.OAOriginalID, CompatibleMode: m.OACompatible}
	if m.MPAppID != nil {
		c.MPAppID = *m.MPAppID
	}
	plain := plainSecrets(&c)
	for i, f := range sealedFields(&m) {
		v, err := s.keys.Decrypt(f.label, *f.stored)
		if err != nil {
			return wechat.Credentials{}, fmt.Errorf("admin: merchant %d credentials (%s): %w", m.ID, f.column, err)
		}
		*plain[i] = v
	}
	return c, nil
}

// RotationReport says what RotateSecrets did.
type RotationReport struct {
	KeyID            string   `json:"key_id"`              // the key everything is now under
	Merchants        int      `json:"merchants"`           // merchants examined
	MerchantsChanged int      `json:"merchants_rewritten"` // merchants with at least one value rewritten
	SecretsRewritten int      `json:"secrets_rewritten"`   // values rewritten
	Failed           []uint64 `json:"failed_merchants"`    // merchants whose secrets could not be decrypted
}

// RotateSecrets re-encrypts every stored secret that is not yet under the
// current key in the current format (values of an old key, and v1 values
// that were not bound to their merchant). Each merchant is rewritten in its
// own transaction, with its row locked as a settings update locks it, so
// it runs while the service serves; values already current are left alone,
// so running it again changes nothing. A merchant whose secrets do not all
// decrypt is left as it is and reported in Failed.
func (s *Merchants) RotateSecrets(ctx context.Context) (RotationReport, error) {
	rep := RotationReport{KeyID: s.keys.KeyID(), Failed: []uint64{}}
	ids, err := s.IDs(ctx)
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		n, err := s.rotateOne(ctx, id)
		switch {
		case errors.Is(err, secrets.ErrDecrypt):
			rep.Failed = append(rep.Failed, id)
			continue
		case errors.Is(err, apperr.ErrNotFound):
			continue // deleted meanwhile
		case err != nil:
			return rep, err
		}
		rep.Merchants++
		if n > 0 {
			rep.MerchantsChanged++
			rep.SecretsRewritten += n
		}
	}
	return rep, nil
}

// rotateOne rewrites one merchant's stale values and returns how many.
func (s *Merchants) rotateOne(ctx context.Context, id uint64) (int, error) {
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m Merchant
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", id).Take(&m).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("admin: merchant %d: %w", id, apperr.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("admin: merchant %d: %w", id, err)
		}
		var changed []string
		for _, f := range sealedFields(&m) {
			// Every value must open, current ones too: a value copied from
			// another merchant is reported, not carried forward.
			plain, err := s.keys.Decrypt(f.label, *f.stored)
			if err != nil {
				return fmt.Errorf("admin: merchant %d (%s): %w", id, f.column, err)
			}
			if s.keys.Current(*f.stored) {
				continue
			}
			if *f.stored, err = s.keys.Encrypt(f.label, plain); err != nil {
				return fmt.Errorf("admin: encrypt credentials: %w", err)
			}
			changed = append(changed, f.column)
		}
		if len(changed) == 0 {
			return nil
		}
		n = len(changed)
		// updated_at stays: the credentials did not change, only how they
		// are stored.
		if err := tx.Model(&m).UpdateColumns(sealedColumns(&m, changed)).Error; err != nil {
			return fmt.Errorf("admin: merchant %d: rewrite secrets: %w", id, err)
		}
		return nil
	})
	return n, err
}

// IDs returns the ids of all merchants.
func (s *Merchants) IDs(ctx context.Context) ([]uint64, error) {
	var ids []uint64
	if err := s.db.WithContext(ctx).Model(&Merchant{}).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("admin: list merchants: %w", err)
	}
	return ids, nil
}
