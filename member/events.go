package member

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/inbox"
)

// RegisterHandlers makes the dispatcher send follow, unfollow, scan, click
// and message events here.
func (s *Service) RegisterHandlers(d *inbox.Dispatcher) {
	d.Handle(wechat.EventSubscribe, s.onSubscribe)
	d.Handle(wechat.EventUnsubscribe, s.onUnsubscribe)
	d.Handle(wechat.EventScan, s.onScan)
	d.Handle(wechat.EventClick, s.onInteraction)
	d.Handle(inbox.KindMessage, s.onInteraction)
}

// onSubscribe creates the member of a new follower, or reactivates a
// returning one, and records the follow. The unionid (present when the
// official account is bound to an Open Platform account) is fetched first,
// outside the transaction, so a member who used the mini-program before
// following is recognised instead of duplicated. Once the follow is
// committed, the follow hooks hear of it (the points service gives the
// first-follow bonus).
func (s *Service) onSubscribe(ctx context.Context, ev inbox.Stored, apply inbox.Apply) error {
	unionID, err := s.lookupUnionID(ctx, ev)
	if err != nil {
		return err
	}
	var memberID uint64
	err = apply(func(tx *gorm.DB) error {
		m, isNew, err := s.followerFor(ctx, store{tx}, ev, unionID, SourceOAFollow)
		if err != nil {
			return err
		}
		defer func() { memberID = m.ID }()
		t := ev.CreateTime
		if m.FollowChangedAt == nil || !t.Before(*m.FollowChangedAt) {
			m.FollowStatus, m.FollowedAt, m.FollowChangedAt = FollowFollowing, &t, &t
		}
		if err := s.finishFollowEvent(ctx, store{tx}, &m, isNew, ev, HistorySubscribe); err != nil {
			return err
		}
		if isNew {
			// A follower new to the merchant may come through a member's
			// invitation (their personal QR code's scene).
			if err := s.joined(ctx, store{tx}, m, Join{Scene: ev.Scene()}); err != nil {
				return err
			}
		}
		return s.refreshAttributes(ctx, tx, m, isNew)
	})
	if err != nil || memberID == 0 {
		return err
	}
	for _, h := range s.onFollow {
		h(ctx, ev.MerchantID, memberID)
	}
	return nil
}

// refreshAttributes recomputes a known member's attributes after a follow
// change (a new member has none to change).
func (s *Service) refreshAttributes(ctx context.Context, tx *gorm.DB, m Member, isNew bool) error {
	if s.attrs == nil || isNew {
		return nil
	}
	return s.attrs.Refresh(ctx, tx, m.MerchantID, m.ID)
}

// onUnsubscribe marks the member unfollowed (never deletes: history, points
// and orders stay, and a later follow reactivates the same member).
func (s *Service) onUnsubscribe(ctx context.Context, ev inbox.Stored, apply inbox.Apply) error {
	return apply(func(tx *gorm.DB) error {
		m, isNew, err := s.followerFor(ctx, store{tx}, ev, "", SourceOAFollow)
		if err != nil {
			return err
		}
		t := ev.CreateTime
		if m.FollowChangedAt == nil || !t.Before(*m.FollowChangedAt) {
			m.FollowStatus, m.UnfollowedAt, m.FollowChangedAt = FollowUnfollowed, &t, &t
		}
		// Unfollowing is not an interaction: it must not open the
		// customer-service window.
		if err := s.finishHistory(ctx, store{tx}, &m, isNew, ev, HistoryUnsubscribe); err != nil {
			return err
		}
		return s.refreshAttributes(ctx, tx, m, isNew)
	})
}

// onScan records a parametric QR scan by someone who already follows:
// channel attribution for existing followers.
func (s *Service) onScan(ctx context.Context, ev inbox.Stored, apply inbox.Apply) error {
	return apply(func(tx *gorm.DB) error {
		m, isNew, err := s.followerFor(ctx, store{tx}, ev, "", SourceOAMessage)
		if err != nil {
			return err
		}
		return s.finishFollowEvent(ctx, store{tx}, &m, isNew, ev, HistoryScan)
	})
}

// onInteraction notes that the member wrote to or clicked in the official
// account, which opens WeChat's 48-hour customer-service window. A message
// from someone unknown (a follower from before the service was installed)
// makes them a member.
func (s *Service) onInteraction(ctx context.Context, ev inbox.Stored, apply inbox.Apply) error {
	return apply(func(tx *gorm.DB) error {
		st := store{tx}
		// The common case, a known member, is one indexed UPDATE.
		res := tx.WithContext(ctx).Model(&Member{}).
			Where("merchant_id = ? AND oa_openid = ? AND (last_interaction_at IS NULL OR last_interaction_at < ?)",
				ev.MerchantID, ev.OpenID, ev.CreateTime).
			Updates(map[string]any{"last_interaction_at": ev.CreateTime, "updated_at": s.now()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected > 0 {
			return nil
		}
		m, isNew, err := s.followerFor(ctx, st, ev, "", SourceOAMessage)
		if err != nil {
			return err
		}
		m.LastInteractionAt = later(m.LastInteractionAt, ev.CreateTime)
		return s.write(ctx, st, &m, isNew)
	})
}

// followerFor returns the member of the event's openid, locked, or a new
// one (isNew, not yet written) for an openid never seen. A new follower is
// matched to an existing member by unionid first (someone who used the
// mini-program before following).
func (s *Service) followerFor(ctx context.Context, st store, ev inbox.Stored, unionID, source string) (m Member, isNew bool, err error) {
	m, err = st.by(ctx, ev.MerchantID, byOAOpenID, ev.OpenID, true)
	if err == nil {
		return m, false, s.attachUnionID(ctx, st, &m, unionID)
	}
	if !isNotFound(err) {
		return Member{}, false, err
	}
	if unionID != "" {
		m, err = st.by(ctx, ev.MerchantID, byUnionID, unionID, true)
		switch {
		case err == nil && m.OAOpenID == nil:
			m.OAOpenID = strPtr(ev.OpenID)
			return m, false, nil
		case err == nil:
			s.log.WarnContext(ctx, "member: unionid already linked to another official-account openid",
				"merchant_id", ev.MerchantID, "member_id", m.ID)
			unionID = ""
		case !isNotFound(err):
			return Member{}, false, err
		}
	}
	now := s.now()
	m = Member{MerchantID: ev.MerchantID, OAOpenID: strPtr(ev.OpenID), UnionID: strPtr(unionID), Source: source,
		FollowStatus: FollowFollowing, CreatedAt: now}
	if ev.EventType == wechat.EventUnsubscribe {
		m.FollowStatus = FollowUnfollowed
	}
	return m, true, nil
}

// write inserts a new member or updates a known one: one statement either
// way.
func (s *Service) write(ctx context.Context, st store, m *Member, isNew bool) error {
	m.UpdatedAt = s.now()
	if isNew {
		return s.created(ctx, st, m)
	}
	return st.save(ctx, m)
}

// finishFollowEvent records the acquisition channel (the first QR scene
// ever seen for the member is kept), the interaction time and the history.
func (s *Service) finishFollowEvent(ctx context.Context, st store, m *Member, isNew bool, ev inbox.Stored, kind string) error {
	if scene := ev.Scene(); scene != "" && m.ChannelScene == nil {
		m.ChannelScene = &scene
	}
	m.LastInteractionAt = later(m.LastInteractionAt, ev.CreateTime)
	return s.finishHistory(ctx, st, m, isNew, ev, kind)
}

func (s *Service) finishHistory(ctx context.Context, st store, m *Member, isNew bool, ev inbox.Stored, kind string) error {
	if err := s.write(ctx, st, m, isNew); err != nil {
		return err
	}
	return st.addHistory(ctx, &FollowEvent{MerchantID: m.MerchantID, MemberID: m.ID, EventID: ev.ID, Kind: kind,
		Scene: strPtr(ev.Scene()), OccurredAt: ev.CreateTime, CreatedAt: s.now()})
}

// lookupUnionID asks WeChat for the follower's unionid. Transient failures
// are retried a few times (the event is retried with backoff); after that,
// or when the account may not call the API at all (unverified accounts get
// 48001), the follow is applied without it: the unionid can still arrive
// with a later event or login, and the records are merged then.
func (s *Service) lookupUnionID(ctx context.Context, ev inbox.Stored) (string, error) {
	info, err := s.wx.UserInfo(ctx, ev.MerchantID, ev.OpenID)
	if err == nil {
		return info.UnionID, nil
	}
	retryable := errors.Is(err, wechat.ErrTransient) || errors.Is(err, wechat.ErrRateLimited) ||
		errors.Is(err, wechat.ErrTokenInvalid)
	if retryable && ev.Attempts < maxUnionIDAttempts {
		return "", err
	}
	s.log.InfoContext(ctx, "member: follow applied without unionid", "merchant_id", ev.MerchantID,
		"errcode", wechat.ErrCode(err), "error", err)
	return "", nil
}

// maxUnionIDAttempts is how often a follow waits for WeChat's user info
// before it is applied without the unionid (with backoff: about 15 s).
const maxUnionIDAttempts = 3
