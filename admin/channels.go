package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// Channel is an acquisition channel: a named parametric QR code (a poster
// in a store, a table card, a flyer). Followers who scan it arrive with its
// scene, which the member keeps as their channel.
type Channel struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	Name       string
	Scene      string
	Permanent  bool
	Ticket     string
	URL        string
	ImageURL   string
	ExpiresAt  *time.Time
	CreatedBy  uint64
	CreatedAt  time.Time
}

// TableName implements gorm's tabler.
func (Channel) TableName() string { return "channels" }

// QRCodes creates WeChat QR codes; *wechat.Accounts satisfies it.
type QRCodes interface {
	CreateQRCode(ctx context.Context, merchantID uint64, q wechat.QRRequest) (wechat.QRCode, error)
}

// ChannelFigures are what a channel brought.
type ChannelFigures struct {
	Followers int64 // members who followed through the channel's code
	Members   int64 // members whose first channel it is
	Orders    int64 // orders (not fully refunded) of those members
}

// ChannelStats counts per scene; the member package satisfies it.
type ChannelStats interface {
	ChannelFigures(ctx context.Context, merchantID uint64, scenes []string) (map[string]ChannelFigures, error)
}

// Channels manages acquisition channels.
type Channels struct {
	db    *gorm.DB
	qr    QRCodes
	stats ChannelStats
	now   func() time.Time
}

// NewChannels returns the channel store.
func NewChannels(gdb *gorm.DB, qr QRCodes, stats ChannelStats, now func() time.Time) *Channels {
	return &Channels{db: gdb, qr: qr, stats: stats, now: now}
}

// ChannelInput creates a channel.
type ChannelInput struct {
	Name      string `json:"name"`
	Scene     string `json:"scene"`     // what WeChat carries back; letters, digits, - _ . (1-64)
	Permanent bool   `json:"permanent"` // permanent codes never expire (WeChat allows 100,000 per account)
	// ExpiresInSeconds is a temporary code's lifetime: 60 s to 30 days
	// (default 30 days).
	ExpiresInSeconds int `json:"expires_in_seconds"`
}

var sceneRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

const maxTempQR = 30 * 24 * time.Hour

// referralScenePrefix starts the scenes of members' personal invitation QR
// codes (referral.ScenePrefix; admin does not import the feature).
const referralScenePrefix = "ref_"

// Create asks WeChat for the QR code, then stores the channel. A scene is
// unique per merchant (checked before WeChat is called, and by
// uk_channels_scene at insert).
func (s *Channels) Create(ctx context.Context, p authz.Principal, in ChannelInput) (Channel, error) {
	v := &apperr.Validation{}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 64 || strings.IndexFunc(in.Name, unicode.IsControl) >= 0 {
		v.Add("name", "is required: up to 64 characters, no control characters")
	}
	switch {
	case !sceneRe.MatchString(in.Scene):
		v.Add("scene", "must be 1-64 letters, digits, '.', '_' or '-'")
	case strings.HasPrefix(in.Scene, referralScenePrefix):
		v.Add("scene", "must not start with "+referralScenePrefix+": those are members' invitation codes")
	}
	expires := time.Duration(in.ExpiresInSeconds) * time.Second
	switch {
	case in.Permanent && in.ExpiresInSeconds != 0:
		v.Add("expires_in_seconds", "must be absent for a permanent code")
	case !in.Permanent && in.ExpiresInSeconds == 0:
		expires = maxTempQR
	case !in.Permanent && (expires < time.Minute || expires > maxTempQR):
		v.Add("expires_in_seconds", "must be 60 to 2592000 (30 days)")
	}
	if err := v.Err(); err != nil {
		return Channel{}, err
	}
	var taken int64
	if err := s.db.WithContext(ctx).Model(&Channel{}).Where("merchant_id = ? AND scene = ?", p.MerchantID, in.Scene).
		Count(&taken).Error; err != nil {
		return Channel{}, fmt.Errorf("admin: channel scene: %w", err)
	}
	if taken > 0 {
		return Channel{}, apperr.New(apperr.ErrConflict, "scene %q is already used by another channel", in.Scene)
	}
	code, err := s.qr.CreateQRCode(ctx, p.MerchantID, wechat.QRRequest{Scene: in.Scene, Permanent: in.Permanent, ExpiresIn: expires})
	if err != nil {
		return Channel{}, wechatFailure("create the QR code", err)
	}
	now := s.now()
	ch := Channel{MerchantID: p.MerchantID, Name: in.Name, Scene: in.Scene, Permanent: in.Permanent,
		Ticket: code.Ticket, URL: code.URL, ImageURL: code.ImageURL, CreatedBy: p.StaffID, CreatedAt: now}
	if !code.ExpiresAt.IsZero() {
		t := code.ExpiresAt.UTC().Truncate(time.Millisecond)
		ch.ExpiresAt = &t
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&ch).Error; err != nil {
			if db.IsDuplicate(err) {
				return apperr.New(apperr.ErrConflict, "scene %q is already used by another channel", in.Scene)
			}
			return fmt.Errorf("admin: create channel: %w", err)
		}
		return audit.Record(ctx, tx, p.MerchantID, audit.Entry{Action: "channel.create", TargetType: "channel",
			TargetIDs: []uint64{ch.ID}, After: map[string]any{"name": ch.Name, "scene": ch.Scene, "permanent": ch.Permanent}}, now)
	})
	return ch, err
}

// ChannelReport is a channel with its figures.
type ChannelReport struct {
	Channel
	ChannelFigures
}

// List returns the merchant's channels, newest first, with their figures.
func (s *Channels) List(ctx context.Context, merchantID uint64) ([]ChannelReport, error) {
	var chans []Channel
	// idx_channels_merchant; a merchant has tens to hundreds of channels.
	if err := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("id DESC").Limit(1000).
		Find(&chans).Error; err != nil {
		return nil, fmt.Errorf("admin: list channels: %w", err)
	}
	scenes := make([]string, len(chans))
	for i, c := range chans {
		scenes[i] = c.Scene
	}
	figures, err := s.stats.ChannelFigures(ctx, merchantID, scenes)
	if err != nil {
		return nil, err
	}
	out := make([]ChannelReport, len(chans))
	for i, c := range chans {
		out[i] = ChannelReport{Channel: c, ChannelFigures: figures[c.Scene]}
	}
	return out, nil
}

// wechatFailure turns a WeChat error into a client error that says what
// WeChat answered: a misconfigured account is the merchant's to fix (422),
// a busy WeChat is worth retrying (503).
func wechatFailure(what string, err error) error {
	code := wechat.ErrCode(err)
	msg := fmt.Sprintf("WeChat refused to %s", what)
	if code != 0 {
		msg += fmt.Sprintf(": %s (errcode %d)", wechat.Describe(code), code)
	}
	if isTransient(err) {
		return fmt.Errorf("%w: %w", apperr.New(apperr.ErrUnavailable, "%s; try again shortly", msg), err)
	}
	return fmt.Errorf("%w: %w", apperr.New(apperr.ErrUnprocessable, "%s", msg), err)
}

func isTransient(err error) bool {
	return errors.Is(err, wechat.ErrTransient) || errors.Is(err, wechat.ErrRateLimited) ||
		errors.Is(err, wechat.ErrQuotaExhausted)
}
