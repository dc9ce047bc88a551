// Package referral is the referral programme (推荐性购买, DOMAIN.md): every
// member can invite others with a share link for the member centre and a
// personal official-account QR code; a member new to the merchant who
// arrives through an invitation (a follow with the code's scene, or a
// mini-program or H5 login carrying its ref) is recorded as referred, first
// touch wins, one level; after the referee's first paid order both are
// rewarded with the merchant's points, once, in the order's transaction,
// and a fully refunded first order takes both rewards back.
//
// Anti-fraud: a member cannot refer themselves (nor a record sharing their
// unionid or phone); a person counts once, whatever member records they
// make: the unionid and phone of every counted referee are kept as digests
// (referral_identities), and a referee who shares one with an earlier
// referral is recorded as ineligible and earns nothing.
package referral

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
	"github.com/wxloyalty/loyalty/wechat"
)

// ScenePrefix starts the QR scene of every member's invitation code
// ("ref_" + code); merchant channels may not use it (admin/channels.go).
const ScenePrefix = "ref_"

// Status of a referral.
type Status string

// Statuses. A referral starts pending (or ineligible); the referee's first
// paid order converts it; a full refund of that order reverses it, for
// good.
const (
	StatusPending    Status = "pending"    // the referee has not bought yet
	StatusConverted  Status = "converted"  // first paid order made: both rewarded
	StatusReversed   Status = "reversed"   // that order was refunded: rewards taken back
	StatusIneligible Status = "ineligible" // recorded, never rewarded (Reason says why)
)

// Reasons a referral is ineligible.
const (
	ReasonSelf      = "self_referral"      // the referee shares the referrer's unionid or phone
	ReasonDuplicate = "duplicate_identity" // the referee's unionid or phone already counted for a referral
)

// Settings are a merchant's rewards: points for the referrer and for the
// referee on the referee's first paid order (0: none).
type Settings struct {
	MerchantID     uint64 `gorm:"primaryKey" json:"-"`
	ReferrerPoints int64  `json:"referrer_points"`
	RefereePoints  int64  `json:"referee_points"`
	UpdatedAt      time.Time
}

// TableName implements gorm's tabler.
func (Settings) TableName() string { return "referral_settings" }

// Code is a member's invitation.
type Code struct {
	ID          uint64 `gorm:"primaryKey"`
	MerchantID  uint64
	MemberID    uint64
	Code        string
	QRTicket    *string
	QRURL       *string `gorm:"column:qr_url"`
	QRImageURL  *string `gorm:"column:qr_image_url"`
	QRExpiresAt *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements gorm's tabler.
func (Code) TableName() string { return "referral_codes" }

// Referral is one referred member.
type Referral struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantID      uint64
	ReferrerID      uint64
	RefereeID       uint64
	Code            string
	Source          string // member source of the referee: oa_follow, mp_login, oa_oauth
	Status          Status
	Reason          *string
	OrderExternalID *string
	ReferrerPoints  int64
	RefereePoints   int64
	CreatedAt       time.Time
	ConvertedAt     *time.Time
	ReversedAt      *time.Time
	UpdatedAt       time.Time
}

// TableName implements gorm's tabler.
func (Referral) TableName() string { return "referrals" }

// identity is a referral_identities row.
type identity struct {
	MerchantID uint64 `gorm:"primaryKey"`
	Kind       string `gorm:"primaryKey"`
	Digest     string `gorm:"primaryKey"`
	ReferralID uint64
	CreatedAt  time.Time
}

func (identity) TableName() string { return "referral_identities" }

// QRCodes creates official-account QR codes; *wechat.Accounts satisfies it.
type QRCodes interface {
	CreateQRCode(ctx context.Context, merchantID uint64, q wechat.QRRequest) (wechat.QRCode, error)
}

// Names gives members' display names; *member.Service satisfies it.
type Names interface {
	Names(ctx context.Context, merchantID uint64, ids []uint64) (map[uint64]string, error)
}

// Service is the referral programme.
type Service struct {
	db        *gorm.DB
	qr        QRCodes
	names     Names
	publicURL string
	now       func() time.Time
	log       *slog.Logger
}

// NewService returns the referral programme. publicURL is the service's
// public URL, the base of the share links.
func NewService(gdb *gorm.DB, qr QRCodes, names Names, publicURL string, now func() time.Time, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: gdb, qr: qr, names: names, publicURL: strings.TrimRight(publicURL, "/"), now: now, log: log}
}

// maxRewardPoints bounds each reward.
const maxRewardPoints = 1_000_000

// GetSettings returns the merchant's rewards (none configured: both 0).
func (s *Service) GetSettings(ctx context.Context, merchantID uint64) (Settings, error) {
	return s.settings(ctx, s.db, merchantID)
}

func (s *Service) settings(ctx context.Context, q *gorm.DB, merchantID uint64) (Settings, error) {
	var st Settings
	err := q.WithContext(ctx).Where("merchant_id = ?", merchantID).Take(&st).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Settings{MerchantID: merchantID}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("referral: settings: %w", err)
	}
	return st, nil
}

// SaveSettings replaces the merchant's rewards. They apply to conversions
// from now on; rewards already given stay.
func (s *Service) SaveSettings(ctx context.Context, merchantID uint64, in Settings) (Settings, error) {
	v := &apperr.Validation{}
	if in.ReferrerPoints < 0 || in.ReferrerPoints > maxRewardPoints {
		v.Add("referrer_points", fmt.Sprintf("must be 0 (off) to %d", maxRewardPoints))
	}
	if in.RefereePoints < 0 || in.RefereePoints > maxRewardPoints {
		v.Add("referee_points", fmt.Sprintf("must be 0 (off) to %d", maxRewardPoints))
	}
	if err := v.Err(); err != nil {
		return Settings{}, err
	}
	now := s.now()
	out := Settings{MerchantID: merchantID, ReferrerPoints: in.ReferrerPoints, RefereePoints: in.RefereePoints, UpdatedAt: now}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		before, err := s.settings(ctx, tx, merchantID)
		if err != nil {
			return err
		}
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "merchant_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"referrer_points", "referee_points", "updated_at"})}).
			Create(&out).Error; err != nil {
			return fmt.Errorf("referral: save settings: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "referral.settings", TargetType: "merchant",
			TargetIDs: []uint64{merchantID},
			Before:    map[string]any{"referrer_points": before.ReferrerPoints, "referee_points": before.RefereePoints},
			After:     map[string]any{"referrer_points": out.ReferrerPoints, "referee_points": out.RefereePoints}}, now)
	})
	return out, err
}

// codeAlphabet leaves out look-alikes (0/O, 1/I/L): a code may be read out
// or typed.
const codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

func newCode() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = codeAlphabet[int(b[i])%len(codeAlphabet)]
	}
	return string(b)
}

// codeOf returns the member's invitation, creating it on first use. Two
// requests at once meet uk_referral_codes_member; the loser reads the
// winner's.
func (s *Service) codeOf(ctx context.Context, merchantID, memberID uint64) (Code, error) {
	for range 5 {
		var c Code
		err := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Take(&c).Error
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return Code{}, fmt.Errorf("referral: code of %d: %w", memberID, err)
		}
		now := s.now()
		c = Code{MerchantID: merchantID, MemberID: memberID, Code: newCode(), CreatedAt: now, UpdatedAt: now}
		err = s.db.WithContext(ctx).Create(&c).Error
		if err == nil {
			return c, nil
		}
		if !db.IsDuplicate(err) {
			return Code{}, fmt.Errorf("referral: create code: %w", err)
		}
		// Another request made the member's code, or (rarely) the code is
		// taken: read again, or draw another.
	}
	return Code{}, fmt.Errorf("referral: no free invitation code for member %d", memberID)
}

// qrLifetime is how long a personal QR code lives (WeChat's longest for a
// temporary code: permanent ones are limited to 100,000 per account, fewer
// than a merchant's members); qrRenewBefore is how long before its expiry
// a new one is made, so a shared image keeps working for a while.
const (
	qrLifetime    = 30 * 24 * time.Hour
	qrRenewBefore = 7 * 24 * time.Hour
)

// Invite is a member's invitation as the member API shows it.
type Invite struct {
	Code string `json:"code"`
	Link string `json:"link"` // the member centre with ?ref=
	// QR is the personal QR code; nil when WeChat could not make one
	// (QRError says why): the link still works.
	QR      *QR    `json:"qr"`
	QRError string `json:"qr_error,omitempty"`
}

// QR is a personal official-account QR code: scanning it follows the
// account with the member's scene.
type QR struct {
	Ticket    string     `json:"ticket"`
	URL       string     `json:"url"`       // what the code encodes
	ImageURL  string     `json:"image_url"` // the image
	Scene     string     `json:"scene"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Invite returns the member's invitation: their code, share link and QR
// code (made, or renewed near its expiry, through WeChat).
func (s *Service) Invite(ctx context.Context, merchantID, memberID uint64) (Invite, error) {
	c, err := s.codeOf(ctx, merchantID, memberID)
	if err != nil {
		return Invite{}, err
	}
	out := Invite{Code: c.Code, Link: s.publicURL + "/m/" + strconv.FormatUint(merchantID, 10) + "/?ref=" + c.Code}
	scene := ScenePrefix + c.Code
	now := s.now()
	if c.QRTicket == nil || (c.QRExpiresAt != nil && c.QRExpiresAt.Sub(now) < qrRenewBefore) {
		code, err := s.qr.CreateQRCode(ctx, merchantID, wechat.QRRequest{Scene: scene, ExpiresIn: qrLifetime})
		if err != nil {
			s.log.WarnContext(ctx, "referral: personal QR code not made", "merchant_id", merchantID, "member_id", memberID,
				"errcode", wechat.ErrCode(err), "error", err)
			out.QRError = "WeChat could not make the QR code now; share the link instead"
			if c.QRTicket == nil || c.QRExpiresAt.Before(now) {
				return out, nil
			}
		} else {
			var exp *time.Time
			if !code.ExpiresAt.IsZero() {
				t := code.ExpiresAt.UTC().Truncate(time.Millisecond)
				exp = &t
			}
			c.QRTicket, c.QRURL, c.QRImageURL, c.QRExpiresAt = &code.Ticket, &code.URL, &code.ImageURL, exp
			// Two requests at once both make a code; either ticket works.
			if err := s.db.WithContext(ctx).Model(&Code{}).Where("id = ?", c.ID).Updates(map[string]any{
				"qr_ticket": code.Ticket, "qr_url": code.URL, "qr_image_url": code.ImageURL, "qr_expires_at": exp,
				"updated_at": now}).Error; err != nil {
				return Invite{}, fmt.Errorf("referral: save QR code: %w", err)
			}
		}
	}
	out.QR = &QR{Ticket: *c.QRTicket, URL: deref(c.QRURL), ImageURL: deref(c.QRImageURL), Scene: scene, ExpiresAt: c.QRExpiresAt}
	return out, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// digest is what referral_identities keeps of an identity.
func digest(merchantID uint64, kind, value string) string {
	h := sha256.Sum256([]byte(strconv.FormatUint(merchantID, 10) + "\x00" + kind + "\x00" + value))
	return hex.EncodeToString(h[:])
}

// person is what the rules read of a member, in the caller's transaction.
type person struct {
	ID      uint64
	UnionID *string `gorm:"column:unionid"`
	Phone   *string
	Erased  bool
}

func readPerson(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) (*person, error) {
	var p struct {
		ID       uint64
		UnionID  *string `gorm:"column:unionid"`
		Phone    *string
		ErasedAt *time.Time
	}
	err := tx.WithContext(ctx).Table("members").Select("id, unionid, phone, erased_at").
		Where("merchant_id = ? AND id = ?", merchantID, memberID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("referral: member %d: %w", memberID, err)
	}
	return &person{ID: p.ID, UnionID: p.UnionID, Phone: p.Phone, Erased: p.ErasedAt != nil}, nil
}

// identities returns the digests of the person's unionid and phone.
func (p person) identities(merchantID uint64) map[string]string {
	out := map[string]string{}
	if p.UnionID != nil && *p.UnionID != "" {
		out["unionid"] = digest(merchantID, "unionid", *p.UnionID)
	}
	if p.Phone != nil && *p.Phone != "" {
		out["phone"] = digest(merchantID, "phone", *p.Phone)
	}
	return out
}

// sharesIdentity reports whether a and b share a unionid or phone.
func sharesIdentity(a, b person) bool {
	return a.UnionID != nil && b.UnionID != nil && *a.UnionID != "" && *a.UnionID == *b.UnionID ||
		a.Phone != nil && b.Phone != nil && *a.Phone != "" && *a.Phone == *b.Phone
}

// claim records the person's identities for the referral, unless one of
// them already counted for another referral: then it records nothing and
// reports false. The member row is locked by the caller's transaction;
// two people cannot race for one unionid or phone (both are unique among
// members), and an insert meeting a concurrent one fails the transaction,
// which its caller retries.
func (s *Service) claim(ctx context.Context, tx *gorm.DB, merchantID, referralID uint64, p person) (bool, error) {
	ids := p.identities(merchantID)
	var taken []identity
	for kind, d := range ids {
		var rows []identity
		if err := tx.WithContext(ctx).Where("merchant_id = ? AND kind = ? AND digest = ?", merchantID, kind, d).
			Find(&rows).Error; err != nil {
			return false, fmt.Errorf("referral: identities: %w", err)
		}
		taken = append(taken, rows...)
	}
	for _, t := range taken {
		if t.ReferralID != referralID {
			return false, nil
		}
	}
	now := s.now()
	for kind, d := range ids {
		if err := tx.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
			Create(&identity{MerchantID: merchantID, Kind: kind, Digest: d, ReferralID: referralID, CreatedAt: now}).Error; err != nil {
			return false, fmt.Errorf("referral: claim identity: %w", err)
		}
	}
	return true, nil
}

// Joined is the member package's join hook: a new member who arrived
// through an invitation (a follow with a referral scene, a login with a
// ref) is recorded as the inviter's referral. It runs in the transaction
// that created the member; an unknown code is ignored.
func (s *Service) Joined(ctx context.Context, tx *gorm.DB, m member.Member, j member.Join) error {
	code := j.Ref
	if code == "" {
		var ok bool
		if code, ok = strings.CutPrefix(j.Scene, ScenePrefix); !ok {
			return nil // a merchant channel's scene
		}
	}
	if code == "" || len(code) > 16 {
		return nil
	}
	var c Code
	err := tx.WithContext(ctx).Where("merchant_id = ? AND code = ?", m.MerchantID, code).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		s.log.InfoContext(ctx, "referral: unknown invitation code ignored", "merchant_id", m.MerchantID, "member_id", m.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("referral: code: %w", err)
	}
	if c.MemberID == m.ID {
		return nil
	}
	referrer, err := readPerson(ctx, tx, m.MerchantID, c.MemberID)
	if err != nil || referrer == nil || referrer.Erased {
		return err
	}
	var n int64
	if err := tx.WithContext(ctx).Model(&Referral{}).Where("merchant_id = ? AND referee_id = ?", m.MerchantID, m.ID).
		Count(&n).Error; err != nil {
		return fmt.Errorf("referral: referee: %w", err)
	}
	if n > 0 {
		return nil // first touch wins
	}
	referee := person{ID: m.ID, UnionID: m.UnionID, Phone: m.Phone}
	now := s.now()
	r := Referral{MerchantID: m.MerchantID, ReferrerID: c.MemberID, RefereeID: m.ID, Code: c.Code, Source: m.Source,
		Status: StatusPending, CreatedAt: now, UpdatedAt: now}
	if sharesIdentity(referee, *referrer) {
		r.Status, r.Reason = StatusIneligible, strPtr(ReasonSelf)
	}
	if err := tx.WithContext(ctx).Create(&r).Error; err != nil {
		return fmt.Errorf("referral: record: %w", err)
	}
	if r.Status != StatusPending {
		return nil
	}
	ok, err := s.claim(ctx, tx, m.MerchantID, r.ID, referee)
	if err != nil || ok {
		return err
	}
	return s.setIneligible(ctx, tx, r.ID, ReasonDuplicate)
}

func (s *Service) setIneligible(ctx context.Context, tx *gorm.DB, id uint64, reason string) error {
	if err := tx.WithContext(ctx).Model(&Referral{}).Where("id = ? AND status = ?", id, StatusPending).
		Updates(map[string]any{"status": StatusIneligible, "reason": reason, "updated_at": s.now()}).Error; err != nil {
		return fmt.Errorf("referral: mark ineligible: %w", err)
	}
	return nil
}

func strPtr(s string) *string { return &s }

// grantKey is the idempotency key of a reward of the referral: one per
// referral and side, so a reward is given once however often an order is
// posted or retried.
func grantKey(id uint64, side string) string {
	return "referral:" + strconv.FormatUint(id, 10) + ":" + side
}

// OrderRecorded converts the buyer's pending referral on their first paid
// order: both sides get the merchant's rewards (points.OrderHook). It runs
// in the order's transaction, which holds the buyer's member row, so two
// orders of one referee are serialised and only the first converts.
func (s *Service) OrderRecorded(ctx context.Context, tx *gorm.DB, o points.OrderFact) ([]points.Grant, error) {
	var r Referral
	err := tx.WithContext(ctx).Where("merchant_id = ? AND referee_id = ? AND status = ?", o.MerchantID, o.MemberID, StatusPending).
		Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("referral: of %d: %w", o.MemberID, err)
	}
	referee, err := readPerson(ctx, tx, o.MerchantID, o.MemberID)
	if err != nil || referee == nil {
		return nil, err
	}
	referrer, err := readPerson(ctx, tx, o.MerchantID, r.ReferrerID)
	if err != nil {
		return nil, err
	}
	// A phone (or unionid) learnt since the referral was recorded may be
	// the referrer's or another counted referee's.
	if referrer != nil && sharesIdentity(*referee, *referrer) {
		return nil, s.setIneligible(ctx, tx, r.ID, ReasonSelf)
	}
	if ok, err := s.claim(ctx, tx, o.MerchantID, r.ID, *referee); err != nil {
		return nil, err
	} else if !ok {
		return nil, s.setIneligible(ctx, tx, r.ID, ReasonDuplicate)
	}
	st, err := s.settings(ctx, tx, o.MerchantID)
	if err != nil {
		return nil, err
	}
	referrerPts, refereePts := st.ReferrerPoints, st.RefereePoints
	if referrer == nil || referrer.Erased {
		referrerPts = 0
	}
	now := s.now()
	res := tx.WithContext(ctx).Model(&Referral{}).Where("id = ? AND status = ?", r.ID, StatusPending).Updates(map[string]any{
		"status": StatusConverted, "order_external_id": o.ExternalID, "converted_at": now,
		"referrer_points": referrerPts, "referee_points": refereePts, "updated_at": now})
	if res.Error != nil {
		return nil, fmt.Errorf("referral: convert: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, nil
	}
	var grants []points.Grant
	if referrerPts > 0 {
		grants = append(grants, points.Grant{MemberID: r.ReferrerID, Points: referrerPts, RefType: points.RefReferral, Key: grantKey(r.ID, "referrer"),
			Reason: fmt.Sprintf("referral reward: member %d made their first order", r.RefereeID)})
	}
	if refereePts > 0 {
		grants = append(grants, points.Grant{MemberID: r.RefereeID, Points: refereePts, RefType: points.RefReferral, Key: grantKey(r.ID, "referee"),
			Reason: "welcome reward: first order after an invitation"})
	}
	return grants, nil
}

// OrderRefunded reverses the referral converted by an order when the order
// is refunded in full: both rewards are taken back (points.OrderHook),
// and the referral stays reversed, so a later order gives nothing.
func (s *Service) OrderRefunded(ctx context.Context, tx *gorm.DB, rf points.RefundFact) ([]points.Revoke, error) {
	if !rf.FullyRefunded {
		return nil, nil
	}
	var r Referral
	err := tx.WithContext(ctx).Where("merchant_id = ? AND referee_id = ? AND status = ? AND order_external_id = ?",
		rf.MerchantID, rf.MemberID, StatusConverted, rf.ExternalID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("referral: of order %s: %w", rf.ExternalID, err)
	}
	now := s.now()
	res := tx.WithContext(ctx).Model(&Referral{}).Where("id = ? AND status = ?", r.ID, StatusConverted).
		Updates(map[string]any{"status": StatusReversed, "reversed_at": now, "updated_at": now})
	if res.Error != nil {
		return nil, fmt.Errorf("referral: reverse: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, nil
	}
	reason := "referral reward taken back: order " + rf.ExternalID + " refunded"
	return []points.Revoke{
		{GrantKey: grantKey(r.ID, "referrer"), RefType: points.RefReferral, Key: grantKey(r.ID, "referrer") + ":reversed", Reason: reason},
		{GrantKey: grantKey(r.ID, "referee"), RefType: points.RefReferral, Key: grantKey(r.ID, "referee") + ":reversed", Reason: reason},
	}, nil
}

// MergeHook moves referrals when two member records are merged
// (member.MergeHook): what the merged-away member brought counts for the
// survivor; the survivor keeps their own referrer when both had one. A
// referral that now links the survivor to themselves becomes ineligible.
func (s *Service) MergeHook(ctx context.Context, tx *gorm.DB, merchantID, fromID, intoID uint64) error {
	now := s.now()
	q := tx.WithContext(ctx).Model(&Referral{})
	if err := q.Where("merchant_id = ? AND referrer_id = ?", merchantID, fromID).
		Updates(map[string]any{"referrer_id": intoID, "updated_at": now}).Error; err != nil {
		return fmt.Errorf("referral: merge referrer: %w", err)
	}
	var n int64
	if err := tx.WithContext(ctx).Model(&Referral{}).Where("merchant_id = ? AND referee_id = ?", merchantID, intoID).
		Count(&n).Error; err != nil {
		return fmt.Errorf("referral: merge: %w", err)
	}
	if n == 0 {
		if err := tx.WithContext(ctx).Model(&Referral{}).Where("merchant_id = ? AND referee_id = ?", merchantID, fromID).
			Updates(map[string]any{"referee_id": intoID, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("referral: merge referee: %w", err)
		}
	}
	if err := tx.WithContext(ctx).Model(&Referral{}).
		Where("merchant_id = ? AND referrer_id = ? AND referee_id = ? AND status = ?", merchantID, intoID, intoID, StatusPending).
		Updates(map[string]any{"status": StatusIneligible, "reason": ReasonSelf, "updated_at": now}).Error; err != nil {
		return fmt.Errorf("referral: merge: %w", err)
	}
	// The merged-away member's invitation code keeps working for the
	// survivor unless they have one of their own.
	var own int64
	if err := tx.WithContext(ctx).Model(&Code{}).Where("merchant_id = ? AND member_id = ?", merchantID, intoID).
		Count(&own).Error; err != nil {
		return fmt.Errorf("referral: merge code: %w", err)
	}
	if own == 0 {
		if err := tx.WithContext(ctx).Model(&Code{}).Where("merchant_id = ? AND member_id = ?", merchantID, fromID).
			Updates(map[string]any{"member_id": intoID, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("referral: merge code: %w", err)
		}
	}
	return nil
}
