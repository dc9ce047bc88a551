// Package admin is the merchant side of the service: merchants and their
// WeChat credentials, staff accounts and sessions, the authentication
// middleware of the admin API, and the sandbox tools.
package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/secrets"
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
	MPAppID        *string `gorm:"column:mp_app_id"`
	MPAppSecretEnc string  `gorm:"column:mp_app_secret_enc"`
	QuietStart     int     // minutes after local midnight when quiet hours begin
	QuietEnd       int     // minutes after local midnight when they end
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
}

// NewMerchants returns the merchant store. onChange may be nil.
func NewMerchants(gdb *gorm.DB, keys *secrets.Keyring, now func() time.Time, onChange func(uint64)) *Merchants {
	if onChange == nil {
		onChange = func(uint64) {}
	}
	return &Merchants{db: gdb, keys: keys, now: now, onChange: onChange}
}

// Create adds a merchant. Its official-account AppID (and mini-program AppID)
// must not belong to another merchant.
func (s *Merchants) Create(ctx context.Context, in MerchantInput) (Merchant, error) {
	if err := in.validate(); err != nil {
		return Merchant{}, err
	}
	m := Merchant{Name: in.Name, TimeZone: in.TimeZone, Sandbox: in.Sandbox,
		QuietStart: DefaultQuietStart, QuietEnd: DefaultQuietEnd, BuyingCadence: member.DefaultCRMSettings.Cadence,
		PlatinumPct: member.DefaultCRMSettings.PlatinumPct, GoldPct: member.DefaultCRMSettings.GoldPct}
	if err := s.seal(&m, in.Credentials); err != nil {
		return Merchant{}, err
	}
	now := s.now()
	m.CreatedAt, m.UpdatedAt = now, now
	if err := s.db.WithContext(ctx).Create(&m).Error; err != nil {
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

// Location returns the merchant's time zone.
func (s *Merchants) Location(ctx context.Context, merchantID uint64) (*time.Location, error) {
	m, err := s.Get(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	return time.LoadLocation(m.TimeZone)
}

// CRMSettings returns the merchant's thresholds for computed attributes.
func (s *Merchants) CRMSettings(ctx context.Context, merchantID uint64) (member.CRMSettings, error) {
	m, err := s.Get(ctx, merchantID)
	if err != nil {
		return member.CRMSettings{}, err
	}
	return member.CRMSettings{Cadence: m.BuyingCadence, PlatinumPct: m.PlatinumPct, GoldPct: m.GoldPct}, nil
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

func (s *Merchants) seal(m *Merchant, c wechat.Credentials) error {
	var err error
	enc := func(purpose, plain string) string {
		if err != nil {
			return ""
		}
		var out string
		out, err = s.keys.Encrypt(purpose, plain)
		return out
	}
	m.OAAppID = c.AppID
	m.OAAppSecretEnc = enc(purposeOASecret, c.AppSecret)
	m.OATokenEnc = enc(purposeOAToken, c.Token)
	m.OAAESKeyEnc = enc(purposeOAAESKey, c.EncodingAESKey)
	m.MPAppID = nil
	if c.MPAppID != "" {
		id := c.MPAppID
		m.MPAppID = &id
	}
	m.MPAppSecretEnc = enc(purposeMPSecret, c.MPAppSecret)
	if err != nil {
		return fmt.Errorf("admin: encrypt credentials: %w", err)
	}
	return nil
}

func (s *Merchants) credentials(m Merchant) (wechat.Credentials, error) {
	var err error
	dec := func(purpose, stored string) string {
		if err != nil {
			return ""
		}
		var out string
		out, err = s.keys.Decrypt(purpose, stored)
		return out
	}
	c := wechat.Credentials{
		AppID:          m.OAAppID,
		AppSecret:      dec(purposeOASecret, m.OAAppSecretEnc),
		Token:          dec(purposeOAToken, m.OATokenEnc),
		EncodingAESKey: dec(purposeOAAESKey, m.OAAESKeyEnc),
		MPAppSecret:    dec(purposeMPSecret, m.MPAppSecretEnc),
	}
	if m.MPAppID != nil {
		c.MPAppID = *m.MPAppID
	}
	if err != nil {
		return wechat.Credentials{}, fmt.Errorf("admin: merchant %d credentials: %w", m.ID, err)
	}
	return c, nil
}

// IDs returns the ids of all merchants.
func (s *Merchants) IDs(ctx context.Context) ([]uint64, error) {
	var ids []uint64
	if err := s.db.WithContext(ctx).Model(&Merchant{}).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("admin: list merchants: %w", err)
	}
	return ids, nil
}
