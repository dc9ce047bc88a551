package points

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
)

// MenuKeyPoints is the menu button key (CLICK event) that asks for the
// balance, like sending the keyword.
const MenuKeyPoints = "POINTS_BALANCE"

// KeywordReply answers a follower who sends the merchant's keyword (积分 by
// default, see Rules.Keyword) or clicks the POINTS_BALANCE menu button
// with their balance, as the passive reply. Register it with
// wechat.Keywords. It must answer within WeChat's 5 seconds, so it reads
// little: the keyword (cached a minute per merchant), the member id by
// openid (one probe of uk_members_oa_openid) and the account row (one
// primary-key probe).
func (s *Service) KeywordReply(ctx context.Context, ev wechat.Event) (string, bool) {
	switch {
	case ev.MsgType == wechat.MsgTypeText:
		text := strings.TrimSpace(ev.Content)
		if text == "" || len(text) > 64 {
			return "", false
		}
		kw, err := s.keyword(ctx, ev.MerchantID)
		if err != nil {
			s.log.WarnContext(ctx, "points: keyword", "merchant_id", ev.MerchantID, "error", err)
			return "", false
		}
		if text != kw {
			return "", false
		}
	case ev.MsgType == wechat.MsgTypeEvent && ev.EventType == wechat.EventClick && ev.EventKey == MenuKeyPoints:
	default:
		return "", false
	}
	reply, err := s.balanceReply(ctx, ev.MerchantID, ev.OpenID)
	if err != nil {
		s.log.WarnContext(ctx, "points: balance reply", "merchant_id", ev.MerchantID, "error", err)
		return "", false
	}
	return reply, true
}

func (s *Service) keyword(ctx context.Context, merchantID uint64) (string, error) {
	if v, ok := s.keywords.Load(merchantID); ok {
		if e := v.(keywordEntry); time.Since(e.at) < cacheTTL {
			return e.keyword, nil
		}
	}
	rs, err := s.rules(ctx, s.db, merchantID)
	if err != nil {
		return "", err
	}
	s.keywords.Store(merchantID, keywordEntry{keyword: rs.Rules.Keyword, at: time.Now()})
	return rs.Rules.Keyword, nil
}

func (s *Service) balanceReply(ctx context.Context, merchantID uint64, openID string) (string, error) {
	id, err := member.MemberIDByOAOpenID(ctx, s.db, merchantID, openID)
	if errors.Is(err, apperr.ErrNotFound) {
		return "您还没有积分。", nil
	}
	if err != nil {
		return "", err
	}
	var a account
	err = s.db.WithContext(ctx).Select("available, pending").Where("merchant_id = ? AND member_id = ?", merchantID, id).
		Limit(1).Find(&a).Error
	if err != nil {
		return "", fmt.Errorf("points: account %d: %w", id, err)
	}
	reply := fmt.Sprintf("您的可用积分：%d", a.Available)
	if a.Pending > 0 {
		reply += fmt.Sprintf("\n待入账积分：%d", a.Pending)
	}
	return reply, nil
}
