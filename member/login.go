package member

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
)

// LoginMiniProgram signs a member in from the mini-program: the wx.login
// code gives the mini-program openid (and the unionid when the merchant's
// apps share an Open Platform account), which find or create the member. A
// member already known from the official account is recognised by unionid
// and gets the mini-program openid added, never a second record.
func (s *Service) LoginMiniProgram(ctx context.Context, merchantID uint64, code string) (Member, error) {
	return s.LoginMiniProgramVia(ctx, merchantID, code, "")
}

// LoginMiniProgramVia is LoginMiniProgram through an invitation: ref is the
// invitation code the mini-program was opened with (empty: none). A member
// this login creates is told to the join hooks with it (joins.go).
func (s *Service) LoginMiniProgramVia(ctx context.Context, merchantID uint64, code, ref string) (Member, error) {
	if err := checkCode(code); err != nil {
		return Member{}, err
	}
	sess, err := s.wx.Code2Session(ctx, merchantID, code)
	if err != nil {
		return Member{}, wechatError(err, "code")
	}
	var m Member
	err = s.inTx(ctx, func(st store) error {
		var err error
		m, err = s.identify(ctx, st, merchantID, byMPOpenID, sess.OpenID, sess.UnionID, SourceMPLogin, ref)
		return err
	})
	return m, err
}

// LoginOAuth signs a member in from an H5 page opened in WeChat, with the
// code of a snsapi_base authorization, or of a snsapi_userinfo one when the
// member chose to share their WeChat name and avatar (shareProfile). Virtual users of the Moments
// snapshot page are refused.
func (s *Service) LoginOAuth(ctx context.Context, merchantID uint64, code string) (Member, error) {
	return s.LoginOAuthVia(ctx, merchantID, code, "")
}

// LoginOAuthVia is LoginOAuth through an invitation (the member centre's
// share link carries ?ref=): see LoginMiniProgramVia.
func (s *Service) LoginOAuthVia(ctx context.Context, merchantID uint64, code, ref string) (Member, error) {
	if err := checkCode(code); err != nil {
		return Member{}, err
	}
	u, err := s.wx.OAuthExchange(ctx, merchantID, code)
	if err != nil {
		return Member{}, wechatError(err, "code")
	}
	if u.Snapshot {
		return Member{}, apperr.New(apperr.ErrForbidden,
			"this is a WeChat snapshot-page visitor, not a real user; open the page in WeChat to sign in")
	}
	if u.ProfileErr != nil {
		s.log.WarnContext(ctx, "member: the shared WeChat profile could not be read; signed in without it",
			"merchant_id", merchantID, "error", u.ProfileErr)
	}
	var m Member
	err = s.inTx(ctx, func(st store) error {
		var err error
		if m, err = s.identify(ctx, st, merchantID, byOAOpenID, u.OpenID, u.UnionID, SourceOAuth, ref); err != nil {
			return err
		}
		return s.shareProfile(ctx, st, &m, u.Nickname, u.AvatarURL)
	})
	return m, err
}

// shareProfile stores what a member shared through snsapi_userinfo: the
// avatar, and the WeChat nickname as their name only while they have none
// (a name they or the staff wrote wins). What WeChat sends that a profile
// edit would refuse (too long, control characters, an avatar that is not
// an https URL) is left out.
func (s *Service) shareProfile(ctx context.Context, st store, m *Member, nickname, avatar string) error {
	changed := false
	if name := strings.TrimSpace(nickname); m.Name == "" && name != "" &&
		utf8.RuneCountInString(name) <= maxNameLength && strings.IndexFunc(name, unicode.IsControl) < 0 {
		m.Name, changed = name, true
	}
	if u, err := url.Parse(avatar); err == nil && u.Scheme == "https" && u.Host != "" && len(avatar) <= 512 &&
		(m.AvatarURL == nil || *m.AvatarURL != avatar) {
		m.AvatarURL, changed = &avatar, true
	}
	if !changed {
		return nil
	}
	m.UpdatedAt = s.now()
	return st.save(ctx, m)
}

// identify finds the member by an openid, else by unionid (adding the
// openid to them), else creates one; and links a newly learnt unionid,
// merging records that turn out to be one person. A member it creates is
// told to the join hooks with ref.
func (s *Service) identify(ctx context.Context, st store, merchantID uint64, col identity, openID, unionID, source, ref string) (Member, error) {
	m, err := st.by(ctx, merchantID, col, openID, true)
	if err == nil {
		if err := s.attachUnionID(ctx, st, &m, unionID); err != nil {
			return Member{}, err
		}
		return m, st.save(ctx, &m)
	}
	if !isNotFound(err) {
		return Member{}, err
	}
	if unionID != "" {
		m, err = st.by(ctx, merchantID, byUnionID, unionID, true)
		if err == nil {
			slot := &m.MPOpenID
			if col == byOAOpenID {
				slot = &m.OAOpenID
			}
			if *slot == nil {
				*slot = strPtr(openID)
				m.UpdatedAt = s.now()
				return m, st.save(ctx, &m)
			}
			// One unionid with two openids of the same app cannot happen;
			// do not attach it to a second record.
			s.log.WarnContext(ctx, "member: unionid already linked to another openid", "merchant_id", merchantID, "member_id", m.ID)
			unionID = ""
		} else if !isNotFound(err) {
			return Member{}, err
		}
	}
	now := s.now()
	m = Member{MerchantID: merchantID, UnionID: strPtr(unionID), Source: source, FollowStatus: FollowNone,
		CreatedAt: now, UpdatedAt: now}
	if col == byMPOpenID {
		m.MPOpenID = strPtr(openID)
	} else {
		m.OAOpenID = strPtr(openID)
	}
	if err := s.created(ctx, st, &m); err != nil {
		return Member{}, err
	}
	return m, s.joined(ctx, st, m, Join{Ref: ref})
}

// OAuthURL returns the WeChat authorization URL for an H5 page: WeChat sends
// the browser back to redirectURI with code and state, and the page posts
// the code to the H5 login.
func (s *Service) OAuthURL(ctx context.Context, merchantID uint64, redirectURI, state string) (string, error) {
	return s.OAuthURLScope(ctx, merchantID, redirectURI, state, "")
}

// OAuthURLScope is OAuthURL with the scope: snsapi_base (the default: silent,
// openid only) or snsapi_userinfo (WeChat asks the member to share their
// name and avatar; the member centre asks for it only when they choose to).
func (s *Service) OAuthURLScope(ctx context.Context, merchantID uint64, redirectURI, state, scope string) (string, error) {
	v := &apperr.Validation{}
	if scope == "" {
		scope = "snsapi_base"
	}
	if scope != "snsapi_base" && scope != "snsapi_userinfo" {
		v.Add("scope", "must be snsapi_base or snsapi_userinfo")
	}
	u, err := url.Parse(redirectURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(redirectURI) > 1024 {
		v.Add("redirect_uri", "must be an absolute http(s) URL of at most 1024 characters")
	}
	if !stateRe.MatchString(state) {
		v.Add("state", "must be at most 128 letters or digits")
	}
	if err := v.Err(); err != nil {
		return "", err
	}
	out, err := s.wx.OAuthURL(ctx, merchantID, redirectURI, state, scope)
	if err != nil {
		return "", wechatError(err, "redirect_uri")
	}
	return out, nil
}

// WeChat allows a state of up to 128 letters and digits.
var stateRe = regexp.MustCompile(`^[A-Za-z0-9]{0,128}$`)

// BindPhone stores the member's phone number, verified by WeChat through
// the mini-program's getPhoneNumber button code. A number can belong to one
// member of a merchant only.
func (s *Service) BindPhone(ctx context.Context, merchantID, memberID uint64, code string) (Member, error) {
	if err := checkCode(code); err != nil {
		return Member{}, err
	}
	p, err := s.wx.PhoneNumber(ctx, merchantID, code)
	if err != nil {
		return Member{}, wechatError(err, "code")
	}
	phone := p.Number
	if p.CountryCode != "" && p.CountryCode != "86" {
		phone = "+" + p.CountryCode + p.Number
	}
	var m Member
	err = s.inTx(ctx, func(st store) error {
		var err error
		if m, err = st.get(ctx, merchantID, memberID, true); err != nil {
			return err
		}
		if str(m.Phone) == phone {
			return nil
		}
		other, err := st.by(ctx, merchantID, byPhone, phone, false)
		if err == nil && other.ID != m.ID {
			return apperr.New(apperr.ErrConflict, "this phone number is already bound to another member")
		}
		if err != nil && !isNotFound(err) {
			return err
		}
		m.Phone, m.UpdatedAt = &phone, s.now()
		return st.save(ctx, &m)
	})
	if db.IsDuplicate(err) {
		return Member{}, apperr.New(apperr.ErrConflict, "this phone number is already bound to another member")
	}
	return m, err
}

func checkCode(code string) error {
	if code == "" || len(code) > 256 {
		return apperr.Invalid("code", "is required (at most 256 characters)")
	}
	return nil
}
