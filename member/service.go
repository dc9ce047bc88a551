package member

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// WeChat is what member needs from the WeChat adapter; *wechat.Accounts
// satisfies it.
type WeChat interface {
	UserInfo(ctx context.Context, merchantID uint64, openID string) (wechat.UserInfo, error)
	Code2Session(ctx context.Context, merchantID uint64, code string) (wechat.Session, error)
	PhoneNumber(ctx context.Context, merchantID uint64, code string) (wechat.Phone, error)
	OAuthURL(ctx context.Context, merchantID uint64, redirectURI, state string) (string, error)
	OAuthExchange(ctx context.Context, merchantID uint64, code string) (wechat.OAuthUser, error)
}

// MergeHook moves a feature's rows from one member to another inside the
// merge transaction (points, for example, moves its ledger). Member moves
// its own tables itself.
type MergeHook func(ctx context.Context, tx *gorm.DB, merchantID, fromID, intoID uint64) error

// Service holds the member rules.
type Service struct {
	db         *gorm.DB
	wx         WeChat
	now        func() time.Time
	log        *slog.Logger
	mergeHooks []MergeHook
	attrs      *Attributes // nil: attributes are refreshed only by orders and the nightly pass
	eraseHooks []EraseHook
	joinHooks  []JoinHook    // joins.go
	events     event.Emitter // nil: no events (see UseEvents)
	onFollow   []FollowHook
}

// FollowHook hears that a member follows the official account, after the
// follow is committed (a first follow or a return; a replayed event may
// call it again, so it must be idempotent).
type FollowHook func(ctx context.Context, merchantID, memberID uint64)

// OnFollow adds a hook run after each follow is applied. Set before serving.
func (s *Service) OnFollow(h FollowHook) { s.onFollow = append(s.onFollow, h) }

// NewService returns the member service.
func NewService(gdb *gorm.DB, wx WeChat, now func() time.Time, log *slog.Logger) *Service {
	return &Service{db: gdb, wx: wx, now: now, log: log}
}

// UseAttributes makes follow changes refresh the member's computed
// attributes (churn risk counts unfollowing). Set before serving.
func (s *Service) UseAttributes(a *Attributes) { s.attrs = a }

// UseEvents makes the service emit member.created, in the transaction
// that creates the member. Set before serving.
func (s *Service) UseEvents(e event.Emitter) { s.events = e }

// created records a new member and emits member.created with it.
func (s *Service) created(ctx context.Context, st store, m *Member) error {
	if err := st.create(ctx, m); err != nil {
		return err
	}
	return event.Emit(ctx, s.events, st.db, event.Event{MerchantID: m.MerchantID, Type: event.MemberCreated,
		Data: event.Member{MemberID: m.ID, Source: m.Source}})
}

// OnMerge registers a hook run whenever two members are merged. Register
// before serving.
func (s *Service) OnMerge(h MergeHook) { s.mergeHooks = append(s.mergeHooks, h) }

// inTx runs fn in a transaction. Two transactions creating the same person
// at once (a login and a follow event, say) collide on a unique index; the
// loser is retried once and then finds the winner's row.
func (s *Service) inTx(ctx context.Context, fn func(st store) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return fn(store{tx}) })
		if !db.IsDuplicate(err) {
			return err
		}
	}
	return err
}

// Get returns a member of the merchant.
func (s *Service) Get(ctx context.Context, merchantID, id uint64) (Member, error) {
	return store{s.db}.get(ctx, merchantID, id, false)
}

// ByOAOpenID returns the member with the official-account openid.
func (s *Service) ByOAOpenID(ctx context.Context, merchantID uint64, openID string) (Member, error) {
	return store{s.db}.by(ctx, merchantID, byOAOpenID, openID, false)
}

// Resolve returns the member with id, following a merge if id was merged
// into another member (a token issued before a merge keeps working).
func (s *Service) Resolve(ctx context.Context, merchantID, id uint64) (Member, error) {
	st := store{s.db}
	m, err := st.get(ctx, merchantID, id, false)
	if !isNotFound(err) {
		return m, err
	}
	into, ok, err2 := st.mergedInto(ctx, merchantID, id)
	if err2 != nil {
		return Member{}, err2
	}
	if !ok {
		return Member{}, err
	}
	return st.get(ctx, merchantID, into, false)
}

// attachUnionID gives m the unionid. When another member already has it,
// the two are one person: they are merged and m becomes the survivor.
func (s *Service) attachUnionID(ctx context.Context, st store, m *Member, unionID string) error {
	if unionID == "" || str(m.UnionID) == unionID {
		return nil
	}
	if m.UnionID != nil {
		// WeChat never changes a person's unionid; two different ones mean
		// two people sharing an openid, which cannot happen. Keep what we
		// have and say so.
		s.log.WarnContext(ctx, "member: conflicting unionid ignored", "merchant_id", m.MerchantID, "member_id", m.ID)
		return nil
	}
	other, err := st.by(ctx, m.MerchantID, byUnionID, unionID, true)
	if isNotFound(err) {
		m.UnionID = &unionID
		return nil
	}
	if err != nil {
		return err
	}
	survivor, err := s.merge(ctx, st, m, &other, "unionid")
	if err != nil {
		return err
	}
	*m = survivor
	return nil
}

var errCannotMerge = apperr.New(apperr.ErrConflict, "the two member records hold different identities and cannot be merged")

// merge folds two records of one person into one. The older record (lower
// id) survives, so ids already shared with other systems stay valid as often
// as possible; the other record's identities, blanks of the profile, care
// dates, consents, follow history and (through hooks) other features' rows
// move to it, and a member_merges row remembers where it went.
func (s *Service) merge(ctx context.Context, st store, a, b *Member, reason string) (Member, error) {
	into, from := *a, *b
	if from.ID < into.ID {
		into, from = from, into
	}
	for _, f := range []struct{ into, from **string }{
		{&into.OAOpenID, &from.OAOpenID}, {&into.MPOpenID, &from.MPOpenID},
		{&into.UnionID, &from.UnionID}, {&into.Phone, &from.Phone},
	} {
		switch {
		case *f.from == nil:
		case *f.into == nil:
			*f.into = *f.from
		case **f.into != **f.from:
			return Member{}, errCannotMerge
		}
	}
	if into.FollowChangedAt == nil && from.FollowChangedAt != nil ||
		into.FollowChangedAt != nil && from.FollowChangedAt != nil && from.FollowChangedAt.After(*into.FollowChangedAt) {
		into.FollowStatus, into.FollowedAt, into.UnfollowedAt, into.FollowChangedAt =
			from.FollowStatus, from.FollowedAt, from.UnfollowedAt, from.FollowChangedAt
	}
	if into.ChannelScene == nil {
		into.ChannelScene = from.ChannelScene
	}
	if into.Name == "" {
		into.Name = from.Name
	}
	if into.Gender == GenderUnknown {
		into.Gender = from.Gender
	}
	if into.BirthdayMonth == nil {
		into.BirthdayMonth, into.BirthdayDay, into.BirthdayYear = from.BirthdayMonth, from.BirthdayDay, from.BirthdayYear
	}
	if from.LastInteractionAt != nil {
		into.LastInteractionAt = later(into.LastInteractionAt, *from.LastInteractionAt)
	}
	if from.CreatedAt.Before(into.CreatedAt) {
		into.CreatedAt = from.CreatedAt
	}
	if into.Remark == "" {
		into.Remark = from.Remark
	}
	if into.TierID == nil {
		into.TierID = from.TierID
	}

	tx := st.db.WithContext(ctx)
	mid := into.MerchantID
	// Free the unique identities first: the survivor takes them over.
	if err := tx.Model(&Member{}).Where("merchant_id = ? AND id = ?", mid, from.ID).
		Updates(map[string]any{"oa_openid": nil, "mp_openid": nil, "unionid": nil, "phone": nil}).Error; err != nil {
		return Member{}, fmt.Errorf("member: merge: %w", err)
	}
	if err := tx.Model(&Member{}).Where("merchant_id = ? AND id = ?", mid, into.ID).
		Update("created_at", into.CreatedAt).Error; err != nil {
		return Member{}, fmt.Errorf("member: merge: %w", err)
	}
	if err := st.save(ctx, &into); err != nil {
		return Member{}, err
	}
	steps := []mergeStep{
		{"care dates", func() error {
			return tx.Model(&CareDate{}).Where("merchant_id = ? AND member_id = ?", mid, from.ID).
				Update("member_id", into.ID).Error
		}},
		{"consents", func() error {
			// The survivor's own consent wins for a channel both have. (The
			// channels are read first: MySQL cannot delete from a table it
			// reads in a subquery of the same statement.)
			var channels []string
			err := tx.Model(&Consent{}).Where("merchant_id = ? AND member_id = ?", mid, into.ID).
				Pluck("channel", &channels).Error
			if err == nil && len(channels) > 0 {
				err = tx.Where("merchant_id = ? AND member_id = ? AND channel IN ?", mid, from.ID, channels).
					Delete(&Consent{}).Error
			}
			if err != nil {
				return err
			}
			return tx.Model(&Consent{}).Where("merchant_id = ? AND member_id = ?", mid, from.ID).
				Update("member_id", into.ID).Error
		}},
		{"tags", func() error {
			// Like consents: tags the survivor already holds stay as they
			// are, the others move over.
			var tagIDs []uint64
			err := tx.Model(&memberTag{}).Where("merchant_id = ? AND member_id = ?", mid, into.ID).
				Pluck("tag_id", &tagIDs).Error
			if err == nil && len(tagIDs) > 0 {
				err = tx.Where("merchant_id = ? AND member_id = ? AND tag_id IN ?", mid, from.ID, tagIDs).
					Delete(&memberTag{}).Error
			}
			if err != nil {
				return err
			}
			return tx.Model(&memberTag{}).Where("merchant_id = ? AND member_id = ?", mid, from.ID).
				Update("member_id", into.ID).Error
		}},
		{"follow history", func() error {
			return tx.Model(&FollowEvent{}).Where("merchant_id = ? AND member_id = ?", mid, from.ID).
				Update("member_id", into.ID).Error
		}},
		{"earlier merges", func() error {
			return tx.Model(&mergeRecord{}).Where("merchant_id = ? AND into_member_id = ?", mid, from.ID).
				Update("into_member_id", into.ID).Error
		}},
		{"record", func() error {
			return tx.Create(&mergeRecord{MerchantID: mid, FromMemberID: from.ID, IntoMemberID: into.ID,
				Reason: reason, CreatedAt: s.now()}).Error
		}},
	}
	for _, h := range s.mergeHooks {
		steps = append(steps, mergeStep{"hook", func() error { return h(ctx, st.db, mid, from.ID, into.ID) }})
	}
	steps = append(steps, mergeStep{"delete", func() error {
		return tx.Where("merchant_id = ? AND id = ?", mid, from.ID).Delete(&Member{}).Error
	}})
	for _, step := range steps {
		if err := step.run(); err != nil {
			return Member{}, fmt.Errorf("member: merge %d into %d: %s: %w", from.ID, into.ID, step.what, err)
		}
	}
	s.log.InfoContext(ctx, "members merged", "merchant_id", mid, "member_id", into.ID, "merged_member_id", from.ID, "reason", reason)
	return into, nil
}

type mergeStep struct {
	what string
	run  func() error
}

// wechatError turns a WeChat failure of a member request into an API
// error: a bad code is the client's mistake (field named), the rest is
// WeChat or configuration trouble the member cannot fix.
func wechatError(err error, field string) error {
	switch {
	case errors.Is(err, apperr.ErrNotFound):
		return err // unknown merchant
	case errors.Is(err, wechat.ErrInvalidCode):
		return apperr.Invalid(field, "is invalid, expired or already used")
	case errors.Is(err, wechat.ErrNoMiniProgram):
		return apperr.New(apperr.ErrUnprocessable, "this merchant has no mini-program configured")
	case errors.Is(err, wechat.ErrUnauthorized):
		return fmt.Errorf("%w: %w", apperr.New(apperr.ErrUnavailable, "WeChat rejected the merchant's credentials; contact the merchant"), err)
	default:
		return fmt.Errorf("%w: %w", apperr.New(apperr.ErrUnavailable, "WeChat is unavailable; try again shortly"), err)
	}
}

// Names returns the names of the merchant's members with the given ids
// (one primary-key lookup for all).
func (s *Service) Names(ctx context.Context, merchantID uint64, ids []uint64) (map[uint64]string, error) {
	var rows []struct {
		ID   uint64
		Name string
	}
	if err := s.db.WithContext(ctx).Model(&Member{}).Select("id, name").Where("merchant_id = ? AND id IN ?", merchantID, ids).
		Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("member: names: %w", err)
	}
	out := make(map[uint64]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

// MarkUnfollowed records what WeChat said when a message was refused
// (43004: not a follower): the member no longer follows. A follow event
// that comes later still wins (it carries its own time).
func (s *Service) MarkUnfollowed(ctx context.Context, merchantID, memberID uint64) error {
	now := s.now()
	err := s.db.WithContext(ctx).Model(&Member{}).
		Where("merchant_id = ? AND id = ? AND follow_status = ?", merchantID, memberID, FollowFollowing).
		Updates(map[string]any{"follow_status": FollowUnfollowed, "unfollowed_at": now, "follow_changed_at": now, "updated_at": now}).Error
	if err != nil {
		return fmt.Errorf("member: mark unfollowed: %w", err)
	}
	return nil
}
