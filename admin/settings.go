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
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
)

// Default quiet hours: 21:00 to 09:00 local time.
const (
	DefaultQuietStart = 21 * 60
	DefaultQuietEnd   = 9 * 60
)

// Default marketing frequency cap: two capped messages per member in seven
// days, and the bounds the settings accept.
const (
	DefaultFrequencyCap  = 2
	DefaultCapWindowDays = 7
	MaxFrequencyCap      = 50
	MaxCapWindowDays     = 90
)

// Settings is what a merchant sees of its configuration. Secrets are
// write-only: only whether each is set is shown.
type Settings struct {
	Name       string     `json:"name"`
	TimeZone   string     `json:"time_zone"`
	QuietHours QuietHours `json:"quiet_hours"`
	// FrequencyCap bounds the marketing and care messages a member gets.
	FrequencyCap FrequencyCap   `json:"frequency_cap"`
	Sandbox      bool           `json:"sandbox"`
	WeChat       WeChatSettings `json:"wechat"`
	CRM          CRM            `json:"crm"`
}

// CRM are the thresholds of the computed attributes: the buying cadence
// (high, medium or low) sets when a member is at risk (45/90/180 days
// without a purchase) and churned (90/180/365); the pyramid shares are the
// top percentages of customers by 12-month spend that are platinum and,
// after them, gold.
type CRM struct {
	BuyingCadence string `json:"buying_cadence"`
	PlatinumPct   int    `json:"platinum_pct"`
	GoldPct       int    `json:"gold_pct"`
}

// QuietHours are local times "HH:MM"; no marketing is sent from Start to
// End (across midnight when End is earlier). Equal times mean none.
type QuietHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// FrequencyCap: at most Messages marketing and care messages per member in
// any WindowDays days (service notices do not count).
type FrequencyCap struct {
	Messages   int `json:"messages"`
	WindowDays int `json:"window_days"`
}

// WeChatSettings shows the merchant's WeChat applications.
type WeChatSettings struct {
	AppID          string `json:"app_id"`
	AppSecretSet   bool   `json:"app_secret_set"`
	TokenSet       bool   `json:"token_set"`
	AESKeySet      bool   `json:"aes_key_set"`
	SafeMode       bool   `json:"safe_mode"`
	OriginalID     string `json:"original_id"`     // the account's "gh_..." id, "" until set or learnt; callbacks to others are refused
	CompatibleMode bool   `json:"compatible_mode"` // plaintext callbacks accepted despite an AES key (while switching modes)
	MPAppID        string `json:"mp_app_id"`
	MPAppSecretSet bool   `json:"mp_app_secret_set"`
}

// SettingsUpdate changes some settings; absent fields stay as they are.
type SettingsUpdate struct {
	Name       *string     `json:"name"`
	TimeZone   *string     `json:"time_zone"`
	QuietHours *QuietHours `json:"quiet_hours"`
	// FrequencyCap replaces both figures when given.
	FrequencyCap *FrequencyCap `json:"frequency_cap"`
	WeChat       *WeChatUpdate `json:"wechat"`
	CRM          *CRM          `json:"crm"`
}

// WeChatUpdate changes credentials and callback settings. An empty aes_key
// switches callbacks to plaintext mode (and compatible mode off); an empty
// mp_app_id removes the mini-program. A new app_id forgets the original id
// (it belonged to the old account) unless original_id is given too; an
// empty original_id forgets it, to be learnt again.
type WeChatUpdate struct {
	AppID          *string `json:"app_id"`
	AppSecret      *string `json:"app_secret"`
	Token          *string `json:"token"`
	AESKey         *string `json:"aes_key"`
	OriginalID     *string `json:"original_id"`
	CompatibleMode *bool   `json:"compatible_mode"`
	MPAppID        *string `json:"mp_app_id"`
	MPAppSecret    *string `json:"mp_app_secret"`
}

// Settings returns the merchant's settings.
func (s *Merchants) Settings(ctx context.Context, merchantID uint64) (Settings, error) {
	m, err := s.Get(ctx, merchantID)
	if err != nil {
		return Settings{}, err
	}
	c, err := s.credentials(m)
	if err != nil {
		return Settings{}, err
	}
	return settingsOf(m, c), nil
}

func settingsOf(m Merchant, c wechat.Credentials) Settings {
	return Settings{Name: m.Name, TimeZone: m.TimeZone, Sandbox: m.Sandbox,
		CRM:          CRM{BuyingCadence: m.BuyingCadence, PlatinumPct: m.PlatinumPct, GoldPct: m.GoldPct},
		QuietHours:   QuietHours{Start: clockString(m.QuietStart), End: clockString(m.QuietEnd)},
		FrequencyCap: FrequencyCap{Messages: m.FrequencyCap, WindowDays: m.CapWindowDays},
		WeChat: WeChatSettings{AppID: c.AppID, AppSecretSet: c.AppSecret != "", TokenSet: c.Token != "",
			AESKeySet: c.EncodingAESKey != "", SafeMode: c.EncodingAESKey != "", OriginalID: c.OriginalID,
			CompatibleMode: c.CompatibleMode, MPAppID: c.MPAppID, MPAppSecretSet: c.MPAppSecret != ""}}
}

func clockString(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }

// parseClock reads "HH:MM" (00:00 to 23:59) as minutes after midnight.
func parseClock(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// credentialFields maps wechat.Credentials' validation names to the
// settings API's.
var credentialFields = map[string]string{"app_id": "wechat.app_id", "app_secret": "wechat.app_secret",
	"token": "wechat.token", "aes_key": "wechat.aes_key", "original_id": "wechat.original_id",
	"compatible_mode": "wechat.compatible_mode", "mp_app_id": "wechat.mp_app_id", "mp_app_secret": "wechat.mp_app_secret"}

// UpdateSettings applies u in one transaction, audited with what changed
// (secrets only as "changed").
func (s *Merchants) UpdateSettings(ctx context.Context, merchantID uint64, u SettingsUpdate) (Settings, error) {
	var out Settings
	credsChanged := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m Merchant
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", merchantID).Take(&m).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("admin: merchant %d: %w", merchantID, apperr.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("admin: merchant %d: %w", merchantID, err)
		}
		c, err := s.credentials(m)
		if err != nil {
			return err
		}
		before := settingsOf(m, c)
		v := &apperr.Validation{}
		if u.Name != nil {
			name := strings.TrimSpace(*u.Name)
			if name == "" || utf8.RuneCountInString(name) > 128 {
				v.Add("name", "is required and must be at most 128 characters")
			}
			m.Name = name
		}
		if u.TimeZone != nil {
			if _, err := time.LoadLocation(*u.TimeZone); err != nil || *u.TimeZone == "" || *u.TimeZone == "Local" {
				v.Add("time_zone", "must be an IANA time zone such as Asia/Shanghai")
			}
			m.TimeZone = *u.TimeZone
		}
		if q := u.QuietHours; q != nil {
			start, ok1 := parseClock(q.Start)
			end, ok2 := parseClock(q.End)
			if !ok1 {
				v.Add("quiet_hours.start", `must be a local time "HH:MM"`)
			}
			if !ok2 {
				v.Add("quiet_hours.end", `must be a local time "HH:MM"`)
			}
			m.QuietStart, m.QuietEnd = start, end
		}
		if fc := u.FrequencyCap; fc != nil {
			if fc.Messages < 1 || fc.Messages > MaxFrequencyCap {
				v.Add("frequency_cap.messages", fmt.Sprintf("must be 1 to %d", MaxFrequencyCap))
			}
			if fc.WindowDays < 1 || fc.WindowDays > MaxCapWindowDays {
				v.Add("frequency_cap.window_days", fmt.Sprintf("must be 1 to %d", MaxCapWindowDays))
			}
			m.FrequencyCap, m.CapWindowDays = fc.Messages, fc.WindowDays
		}
		if crm := u.CRM; crm != nil {
			if !slices.Contains(member.Cadences, crm.BuyingCadence) {
				v.Add("crm.buying_cadence", "must be high, medium or low")
			}
			if crm.PlatinumPct < 1 || crm.PlatinumPct > 50 {
				v.Add("crm.platinum_pct", "must be 1 to 50")
			}
			if crm.GoldPct < 1 || crm.GoldPct > 50 {
				v.Add("crm.gold_pct", "must be 1 to 50")
			}
			m.BuyingCadence, m.PlatinumPct, m.GoldPct = crm.BuyingCadence, crm.PlatinumPct, crm.GoldPct
		}
		if w := u.WeChat; w != nil {
			set := func(dst *string, src *string) {
				if src != nil {
					*dst = strings.TrimSpace(*src)
				}
			}
			oldAppID := c.AppID
			set(&c.AppID, w.AppID)
			set(&c.AppSecret, w.AppSecret)
			set(&c.Token, w.Token)
			set(&c.EncodingAESKey, w.AESKey)
			set(&c.MPAppID, w.MPAppID)
			set(&c.MPAppSecret, w.MPAppSecret)
			if w.MPAppID != nil && c.MPAppID == "" {
				c.MPAppSecret = ""
			}
			if c.AppID != oldAppID && w.OriginalID == nil {
				c.OriginalID = ""
			}
			set(&c.OriginalID, w.OriginalID)
			if w.CompatibleMode != nil {
				c.CompatibleMode = *w.CompatibleMode
			} else if c.EncodingAESKey == "" {
				c.CompatibleMode = false
			}
			var cv *apperr.Validation
			if err := apperr.RenameFields(c.Validate(), credentialFields); errors.As(err, &cv) {
				for f, reason := range cv.Fields {
					v.Add(f, reason)
				}
			}
			credsChanged = true
		}
		if err := v.Err(); err != nil {
			return err
		}
		if err := s.seal(&m, c); err != nil {
			return err
		}
		m.UpdatedAt = s.now()
		err = tx.Model(&m).Select("name", "time_zone", "quiet_start", "quiet_end", "frequency_cap", "cap_window_days", "buying_cadence", "platinum_pct", "gold_pct", "oa_app_id", "oa_app_secret_enc",
			"oa_token_enc", "oa_aes_key_enc", "oa_original_id", "oa_compatible_mode", "mp_app_id", "mp_app_secret_enc", "updated_at").Updates(&m).Error
		if db.IsDuplicate(err) {
			return apperr.New(apperr.ErrConflict, "this AppID belongs to another merchant")
		}
		if err != nil {
			return fmt.Errorf("admin: update settings: %w", err)
		}
		out = settingsOf(m, c)
		after := map[string]any{"settings": out}
		if w := u.WeChat; w != nil {
			var changed []string
			for name, p := range map[string]*string{"app_secret": w.AppSecret, "token": w.Token, "aes_key": w.AESKey,
				"mp_app_secret": w.MPAppSecret} {
				if p != nil {
					changed = append(changed, name)
				}
			}
			slices.Sort(changed)
			after["secrets_written"] = changed
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "settings.update", TargetType: "merchant",
			TargetIDs: []uint64{merchantID}, Before: before, After: after}, m.UpdatedAt)
	})
	s.crm.Invalidate(merchantID) // even on failure: the commit's answer may have been lost
	if err != nil {
		return Settings{}, err
	}
	if credsChanged {
		s.onChange(merchantID)
	}
	return out, nil
}

// FrequencyCap returns the merchant's marketing frequency cap: messages
// per member in windowDays days.
func (s *Merchants) FrequencyCap(ctx context.Context, merchantID uint64) (messages, windowDays int, err error) {
	m, err := s.Get(ctx, merchantID)
	if err != nil {
		return 0, 0, err
	}
	return m.FrequencyCap, m.CapWindowDays, nil
}

// QuietHours returns the merchant's quiet hours in minutes after local
// midnight.
func (s *Merchants) QuietHours(ctx context.Context, merchantID uint64) (start, end int, err error) {
	m, err := s.Get(ctx, merchantID)
	if err != nil {
		return 0, 0, err
	}
	return m.QuietStart, m.QuietEnd, nil
}
