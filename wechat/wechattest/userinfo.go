package wechattest

import (
	"net/http"
	"strings"
	"time"
)

// webToken is an access token of H5 OAuth (/sns/oauth2/access_token): it
// belongs to one user and carries the scope they granted.
type webToken struct {
	appID, openID, scope string
	expires              time.Time
}

// issueWebTokenLocked issues the token an OAuth code is exchanged for.
func (s *Simulator) issueWebTokenLocked(appID, openID, scope string) string {
	now := s.now()
	for k, t := range s.webTokens {
		if now.Sub(t.expires) > pruneAfter {
			delete(s.webTokens, k)
		}
	}
	tok := randHex(32)
	s.webTokens[tok] = &webToken{appID: appID, openID: openID, scope: scope, expires: now.Add(tokenTTL)}
	return tok
}

// SetUserProfile sets the nickname and avatar URL a user of appID shares
// through snsapi_userinfo. A user without one shares "微信用户" and an
// avatar URL made from their openid.
func (s *Simulator) SetUserProfile(appID, openID, nickname, avatar string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.appLocked(appID).userLocked(openID, "")
	u.nickname, u.avatar = nickname, avatar
}

// handleWebUserInfo is /sns/userinfo: the user's nickname and avatar for
// a token of snsapi_userinfo scope (48001 for a snsapi_base one, as
// WeChat answers), for the token's own openid only.
func (s *Simulator) handleWebUserInfo(r *http.Request) reply {
	if r.Method != http.MethodGet {
		return errReply(43001)
	}
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.webTokens[q.Get("access_token")]
	switch {
	case q.Get("access_token") == "":
		return errReply(41001)
	case t == nil:
		return errReply(40001)
	case s.now().After(t.expires):
		return errReply(42001)
	case q.Get("openid") != t.openID:
		return errReply(40003)
	case !strings.Contains(t.scope, "snsapi_userinfo"):
		return errReply(48001)
	}
	u := s.appLocked(t.appID).userLocked(t.openID, "")
	nickname, avatar := u.nickname, u.avatar
	if nickname == "" {
		nickname = "微信用户"
	}
	if avatar == "" {
		avatar = "https://thirdwx.qlogo.cn/mmopen/sandbox/" + t.openID + "/132"
	}
	return reply{json: struct {
		OpenID     string   `json:"openid"`
		Nickname   string   `json:"nickname"`
		Sex        int      `json:"sex"`
		Province   string   `json:"province"`
		City       string   `json:"city"`
		Country    string   `json:"country"`
		HeadImgURL string   `json:"headimgurl"`
		Privilege  []string `json:"privilege"`
		UnionID    string   `json:"unionid,omitempty"`
	}{t.openID, nickname, 0, "", "", "", avatar, []string{}, u.unionID}}
}

// OAuthUserInfoCode is OAuthCode for a user who granted snsapi_userinfo:
// its token may read their nickname and avatar (/sns/userinfo).
func (s *Simulator) OAuthUserInfoCode(appID, openID, unionID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oauthCodeLocked(appID, openID, unionID, "snsapi_userinfo", false)
}
