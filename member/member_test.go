package member_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// Follow, unfollow, follow again: one member throughout, reactivated, the
// acquisition channel of the first follow kept, the history complete.
func TestFollowUnfollowFollowAgain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.follow("o_1", "", "spring-poster", 0)
		m := f.byOpenID("o_1")
		if m.FollowStatus != member.FollowFollowing || m.Source != member.SourceOAFollow ||
			m.ChannelScene == nil || *m.ChannelScene != "spring-poster" || m.FollowedAt == nil {
			t.Fatalf("after follow: %+v", m)
		}

		f.deliver(f.event(wechat.EventUnsubscribe, "o_1", "", 60))
		m2 := f.byOpenID("o_1")
		if m2.ID != m.ID || m2.FollowStatus != member.FollowUnfollowed || m2.UnfollowedAt == nil {
			t.Fatalf("after unfollow: %+v", m2)
		}

		f.follow("o_1", "", "autumn-poster", 120)
		m3 := f.byOpenID("o_1")
		if m3.ID != m.ID || m3.FollowStatus != member.FollowFollowing {
			t.Fatalf("after refollow: %+v", m3)
		}
		if *m3.ChannelScene != "spring-poster" {
			t.Fatalf("channel %q, want the first one kept", *m3.ChannelScene)
		}
		if !m3.FollowedAt.After(*m.FollowedAt) {
			t.Fatalf("followed_at not moved on refollow: %v then %v", m.FollowedAt, m3.FollowedAt)
		}
		if n := f.count("members"); n != 1 {
			t.Fatalf("%d members, want 1", n)
		}
		h := f.profile(m.ID).History
		if len(h) != 3 || h[0].Kind != "subscribe" || h[1].Kind != "unsubscribe" || h[2].Kind != "subscribe" ||
			*h[0].Scene != "autumn-poster" {
			t.Fatalf("history %+v", h)
		}
	})
}

// Events may be processed out of order (two instances, retries): the
// member's state follows WeChat's event time, not processing order.
func TestOutOfOrderEventsKeepLatestState(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		sim.Follow(f.creds.AppID, "o_1", "")
		unfollow := f.event(wechat.EventUnsubscribe, "o_1", "", 10)
		follow := f.event(wechat.EventSubscribe, "o_1", "", 0)
		f.deliver(unfollow)
		f.deliver(follow)
		m := f.byOpenID("o_1")
		if m.FollowStatus != member.FollowUnfollowed {
			t.Fatalf("status %s, want unfollowed (the later event)", m.FollowStatus)
		}
		if h := f.profile(m.ID).History; len(h) != 2 {
			t.Fatalf("history %+v, want both events", h)
		}
	})
}

// WeChat's retries (the same push three times) change nothing more than
// the first delivery.
func TestDuplicateDeliveryHasOneEffect(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		sim.Follow(f.creds.AppID, "o_1", "")
		ev := f.event(wechat.EventSubscribe, "o_1", "qrscene_x", 0)
		f.deliver(ev, ev, ev)
		f.deliver(ev)
		if n := f.count("members"); n != 1 {
			t.Fatalf("%d members", n)
		}
		if n := f.count("member_follow_events"); n != 1 {
			t.Fatalf("%d history rows, want 1", n)
		}
		if n := f.count("wechat_events"); n != 1 {
			t.Fatalf("%d stored events, want 1", n)
		}
	})
}

func TestMessagesOpenTheServiceWindowAndEnrolOldFollowers(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		// Someone who followed before the service was installed writes in.
		f.deliver(f.event(wechat.MsgTypeText, "o_old", "hello", 0))
		m := f.byOpenID("o_old")
		if m.Source != member.SourceOAMessage || m.FollowStatus != member.FollowFollowing || m.LastInteractionAt == nil {
			t.Fatalf("enrolled member %+v", m)
		}
		first := *m.LastInteractionAt
		f.deliver(f.event(wechat.EventClick, "o_old", "MENU_POINTS", 30))
		if got := f.byOpenID("o_old").LastInteractionAt; !got.After(first) {
			t.Fatalf("click did not move last interaction: %v", got)
		}
		// A scan by an existing follower is recorded as a channel touch.
		f.deliver(f.event(wechat.EventScan, "o_old", "store-9", 60))
		m = f.byOpenID("o_old")
		if *m.ChannelScene != "store-9" {
			t.Fatalf("scan scene %v", m.ChannelScene)
		}
		if h := f.profile(m.ID).History; len(h) != 1 || h[0].Kind != member.HistoryScan {
			t.Fatalf("history %+v", h)
		}
	})
}

func (f *fixture) mpLogin(openID, unionID string) member.Member {
	f.t.Helper()
	m, err := f.svc.LoginMiniProgram(context.Background(), f.merchantID, sim.LoginCode(f.creds.MPAppID, openID, unionID))
	if err != nil {
		f.t.Fatalf("mini-program login: %v", err)
	}
	return m
}

func TestUnionIDStitching(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		t.Run("official account first", func(t *testing.T) {
			f := newFixture(t, gdb)
			f.follow("o_1", "u_1", "", 0)
			oa := f.byOpenID("o_1")
			if oa.UnionID == nil || *oa.UnionID != "u_1" {
				t.Fatalf("unionid not fetched on follow: %+v", oa)
			}
			mp := f.mpLogin("mp_1", "u_1")
			if mp.ID != oa.ID || mp.MPOpenID == nil || *mp.MPOpenID != "mp_1" {
				t.Fatalf("mini-program login made %+v, want member %d with the mini-program openid", mp, oa.ID)
			}
			if again := f.mpLogin("mp_1", "u_1"); again.ID != oa.ID {
				t.Fatal("second login changed member")
			}
			if n := f.count("members"); n != 1 {
				t.Fatalf("%d members, want 1", n)
			}
		})
		t.Run("mini-program first", func(t *testing.T) {
			f := newFixture(t, gdb)
			mp := f.mpLogin("mp_1", "u_1")
			if mp.Source != member.SourceMPLogin || mp.FollowStatus != member.FollowNone {
				t.Fatalf("new member %+v", mp)
			}
			f.follow("o_1", "u_1", "poster", 0)
			oa := f.byOpenID("o_1")
			if oa.ID != mp.ID || oa.FollowStatus != member.FollowFollowing || *oa.ChannelScene != "poster" {
				t.Fatalf("follow made %+v, want member %d following", oa, mp.ID)
			}
			if n := f.count("members"); n != 1 {
				t.Fatalf("%d members, want 1", n)
			}
		})
		t.Run("late unionid merges", func(t *testing.T) {
			f := newFixture(t, gdb)
			// The mini-program was not yet bound to the Open Platform: no
			// unionid at first login.
			early := f.mpLogin("mp_1", "")
			name := "小王"
			if _, err := f.svc.UpdateProfile(context.Background(), f.merchantID, early.ID, member.ProfileUpdate{
				Name:      &name,
				CareDates: &[]member.CareDateInput{{Kind: member.CareWedding, DateInput: member.DateInput{Month: 5, Day: 20}}},
				Consents:  map[string]bool{member.ConsentSubscribe: true},
			}); err != nil {
				t.Fatal(err)
			}
			f.follow("o_1", "u_1", "", 0)
			if n := f.count("members"); n != 2 {
				t.Fatalf("%d members before the unionid is known, want 2", n)
			}
			// Now the mini-program login returns the unionid: same person.
			merged := f.mpLogin("mp_1", "u_1")
			if n := f.count("members"); n != 1 {
				t.Fatalf("%d members after merge, want 1", n)
			}
			if merged.ID != early.ID {
				t.Fatalf("survivor %d, want the older member %d", merged.ID, early.ID)
			}
			if *merged.OAOpenID != "o_1" || *merged.MPOpenID != "mp_1" || *merged.UnionID != "u_1" ||
				merged.FollowStatus != member.FollowFollowing || merged.Name != name {
				t.Fatalf("merged member %+v", merged)
			}
			p := f.profile(merged.ID)
			if len(p.CareDates) != 1 || len(p.Consents) != 1 || len(p.History) != 1 {
				t.Fatalf("merged profile lost data: %+v", p)
			}
			if n := f.count("member_merges"); n != 1 {
				t.Fatalf("%d merge records", n)
			}
		})
		t.Run("merged-away id resolves to the survivor", func(t *testing.T) {
			f := newFixture(t, gdb)
			f.follow("o_1", "u_1", "", 0) // older: the survivor
			young := f.mpLogin("mp_1", "")
			survivor := f.mpLogin("mp_1", "u_1")
			if survivor.ID == young.ID {
				t.Fatal("the younger member survived")
			}
			got, err := f.svc.Resolve(context.Background(), f.merchantID, young.ID)
			if err != nil || got.ID != survivor.ID {
				t.Fatalf("resolve %d: %v %v, want %d", young.ID, got.ID, err, survivor.ID)
			}
		})
	})
}

func TestOAuthLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		ctx := context.Background()
		_, err := f.svc.LoginOAuth(ctx, f.merchantID, sim.OAuthCode(f.creds.AppID, "o_snap", "", true))
		if !errors.Is(err, apperr.ErrForbidden) {
			t.Fatalf("snapshot user: %v, want ErrForbidden", err)
		}
		if n := f.count("members"); n != 0 {
			t.Fatalf("snapshot user enrolled: %d members", n)
		}
		m, err := f.svc.LoginOAuth(ctx, f.merchantID, sim.OAuthCode(f.creds.AppID, "o_h5", "", false))
		if err != nil || m.Source != member.SourceOAuth || *m.OAOpenID != "o_h5" || m.FollowStatus != member.FollowNone {
			t.Fatalf("H5 login: %+v %v", m, err)
		}
		// The same person following later is the same member.
		f.follow("o_h5", "", "", 0)
		if got := f.byOpenID("o_h5"); got.ID != m.ID || got.FollowStatus != member.FollowFollowing {
			t.Fatalf("after follow %+v", got)
		}
		if m.Name != "" || m.AvatarURL != nil {
			t.Fatalf("snsapi_base shares no profile: %+v", m)
		}
		// Sharing the WeChat profile (snsapi_userinfo): the avatar, and the
		// nickname while the member has no name; a written name wins.
		sim.SetUserProfile(f.creds.AppID, "o_h5", "小王🍵", "https://thirdwx.qlogo.cn/mmopen/h5/132")
		m, err = f.svc.LoginOAuth(ctx, f.merchantID, sim.OAuthUserInfoCode(f.creds.AppID, "o_h5", ""))
		if err != nil || m.Name != "小王🍵" || m.AvatarURL == nil || *m.AvatarURL != "https://thirdwx.qlogo.cn/mmopen/h5/132" {
			t.Fatalf("shared profile: %+v %v", m, err)
		}
		if got := f.byOpenID("o_h5"); got.Name != "小王🍵" || got.AvatarURL == nil {
			t.Fatalf("shared profile not stored: %+v", got)
		}
		gdb.Exec("UPDATE members SET name = ? WHERE id = ?", "王小明", m.ID)
		sim.SetUserProfile(f.creds.AppID, "o_h5", "小王2", "https://thirdwx.qlogo.cn/mmopen/h5b/132")
		m, err = f.svc.LoginOAuth(ctx, f.merchantID, sim.OAuthUserInfoCode(f.creds.AppID, "o_h5", ""))
		if err != nil || m.Name != "王小明" || *m.AvatarURL != "https://thirdwx.qlogo.cn/mmopen/h5b/132" {
			t.Fatalf("shared again with a written name: %+v %v", m, err)
		}
		// What a profile edit would refuse is left out.
		sim.SetUserProfile(f.creds.AppID, "o_h5b", "bad\x00name", "http://insecure.example.com/a.png")
		m2, err := f.svc.LoginOAuth(ctx, f.merchantID, sim.OAuthUserInfoCode(f.creds.AppID, "o_h5b", ""))
		if err != nil || m2.Name != "" || m2.AvatarURL != nil {
			t.Fatalf("odd profile: %+v %v", m2, err)
		}
		if _, err := f.svc.LoginOAuth(ctx, f.merchantID, "used-or-bogus"); !errors.Is(err, apperr.ErrInvalid) {
			t.Fatalf("bad code: %v, want ErrInvalid", err)
		}
		url, err := f.svc.OAuthURL(ctx, f.merchantID, "https://shop.example.com/h5", "abc123")
		if err != nil || url == "" {
			t.Fatalf("oauth url: %q %v", url, err)
		}
		if _, err := f.svc.OAuthURL(ctx, f.merchantID, "javascript:alert(1)", "x"); !errors.Is(err, apperr.ErrInvalid) {
			t.Fatalf("bad redirect: %v", err)
		}
	})
}

func TestPhoneBinding(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		ctx := context.Background()
		a := f.mpLogin("mp_a", "")
		b := f.mpLogin("mp_b", "")
		got, err := f.svc.BindPhone(ctx, f.merchantID, a.ID, sim.PhoneCode(f.creds.MPAppID, "13800138000"))
		if err != nil || got.Phone == nil || *got.Phone != "13800138000" {
			t.Fatalf("bind: %+v %v", got, err)
		}
		_, err = f.svc.BindPhone(ctx, f.merchantID, b.ID, sim.PhoneCode(f.creds.MPAppID, "13800138000"))
		if !errors.Is(err, apperr.ErrConflict) {
			t.Fatalf("second member with the same phone: %v, want ErrConflict", err)
		}
		if _, err := f.svc.BindPhone(ctx, f.merchantID, b.ID, "nope"); !errors.Is(err, apperr.ErrInvalid) {
			t.Fatalf("bad code: %v, want ErrInvalid", err)
		}
		if p := f.profile(b.ID); p.Member.Phone != nil {
			t.Fatal("phone written despite the conflict")
		}
	})
}

// A transient WeChat failure fetching the unionid delays the follow (the
// event is retried); if WeChat stays down, the follow is applied without it.
func TestFollowWaitsForUnionIDThenGivesUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		sim.Follow(f.creds.AppID, "o_1", "u_1")
		// Warm the token so the faults hit user info.
		if _, err := f.svc.LoginMiniProgram(context.Background(), f.merchantID, sim.LoginCode(f.creds.MPAppID, "mp_x", "")); err != nil {
			t.Fatal(err)
		}
		sim.Script("/cgi-bin/user/info", wechattest.Fault{ErrCode: -1})
		defer sim.ClearFaults()
		f.deliver(f.event(wechat.EventSubscribe, "o_1", "", 0))
		if _, err := f.svc.ByOAOpenID(context.Background(), f.merchantID, "o_1"); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("member created while WeChat was failing: %v", err)
		}
		f.clock.Add(time.Minute)
		f.drain()
		m := f.byOpenID("o_1")
		if m.UnionID == nil || *m.UnionID != "u_1" {
			t.Fatalf("after the retry: %+v, want the unionid", m)
		}

		sim.Follow(f.creds.AppID, "o_2", "u_2")
		sim.Script("/cgi-bin/user/info", wechattest.Fault{ErrCode: -1}, wechattest.Fault{ErrCode: -1},
			wechattest.Fault{ErrCode: -1}, wechattest.Fault{ErrCode: -1})
		f.deliver(f.event(wechat.EventSubscribe, "o_2", "", 0))
		for range 4 {
			f.clock.Add(time.Minute)
			f.drain()
		}
		m = f.byOpenID("o_2")
		if m.FollowStatus != member.FollowFollowing || m.UnionID != nil {
			t.Fatalf("after giving up on the unionid: %+v", m)
		}
	})
}

func TestProfileUpdate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		ctx := context.Background()
		m := f.mpLogin("mp_1", "")
		up := func(body string) (member.Profile, error) {
			var u member.ProfileUpdate
			if err := json.Unmarshal([]byte(body), &u); err != nil {
				t.Fatal(err)
			}
			return f.svc.UpdateProfile(ctx, f.merchantID, m.ID, u)
		}
		p, err := up(`{"name":"  王小明 ","gender":"male","birthday":{"month":2,"day":29},
			"care_dates":[{"kind":"wedding_anniversary","month":10,"day":1,"year":2015},
			              {"kind":"child_birthday","label":"朵朵","month":6,"day":1},
			              {"kind":"custom","label":"第一次来店","month":3,"day":8}],
			"consents":{"template":true,"sms":false}}`)
		if err != nil {
			t.Fatal(err)
		}
		if p.Member.Name != "王小明" || p.Member.Gender != member.GenderMale || *p.Member.BirthdayMonth != 2 ||
			*p.Member.BirthdayDay != 29 || p.Member.BirthdayYear != nil || len(p.CareDates) != 3 || len(p.Consents) != 2 {
			t.Fatalf("profile %+v", p)
		}
		var grantedAt *time.Time
		for _, c := range p.Consents {
			if c.Channel == member.ConsentTemplate {
				grantedAt = c.GrantedAt
				if !c.Granted || c.GrantedAt == nil {
					t.Fatalf("template consent %+v", c)
				}
			}
			if c.Channel == member.ConsentSMS && (c.Granted || c.GrantedAt != nil) {
				t.Fatalf("sms consent %+v", c)
			}
		}

		// Absent fields stay; null clears the birthday; [] clears care
		// dates; withdrawing consent keeps when it was given.
		f.clock.Add(time.Hour)
		p, err = up(`{"birthday":null,"care_dates":[],"consents":{"template":false}}`)
		if err != nil {
			t.Fatal(err)
		}
		if p.Member.Name != "王小明" || p.Member.BirthdayMonth != nil || len(p.CareDates) != 0 {
			t.Fatalf("profile after clearing %+v", p)
		}
		for _, c := range p.Consents {
			if c.Channel == member.ConsentTemplate {
				if c.Granted || c.RevokedAt == nil || c.GrantedAt == nil || !c.GrantedAt.Equal(*grantedAt) {
					t.Fatalf("withdrawn consent %+v", c)
				}
			}
		}
		// A year makes Feb 29 depend on the year.
		if _, err := up(`{"birthday":{"month":2,"day":29,"year":2000}}`); err != nil {
			t.Fatalf("Feb 29 2000: %v", err)
		}
	})
}

// Every invalid field is named, and a request with any invalid field
// changes nothing, not even its valid fields.
func TestProfileValidation(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		fields []string
	}{
		{"month 13", `{"birthday":{"month":13,"day":1}}`, []string{"birthday.month"}},
		{"day 31 in April", `{"birthday":{"month":4,"day":31}}`, []string{"birthday.day"}},
		{"Feb 29 in a common year", `{"birthday":{"month":2,"day":29,"year":2023}}`, []string{"birthday.day"}},
		{"Feb 30", `{"birthday":{"month":2,"day":30}}`, []string{"birthday.day"}},
		{"future year", `{"birthday":{"month":1,"day":1,"year":2999}}`, []string{"birthday.year"}},
		{"birthday missing day", `{"birthday":{"month":5}}`, []string{"birthday.day"}},
		{"birthday unknown field", `{"birthday":{"month":5,"day":1,"hour":3}}`, []string{"birthday.hour"}},
		{"birthday wrong type", `{"birthday":{"month":"May","day":1}}`, []string{"birthday.month"}},
		{"birthday not an object", `{"birthday":"1990-01-01"}`, []string{"birthday"}},
		{"gender", `{"gender":"other"}`, []string{"gender"}},
		{"long name", `{"name":"` + strings.Repeat("名", 65) + `"}`, []string{"name"}},
		{"control characters", `{"name":"bad\u0000name"}`, []string{"name"}},
		{"care kind", `{"care_dates":[{"kind":"party","month":1,"day":1}]}`, []string{"care_dates[0].kind"}},
		{"custom needs label", `{"care_dates":[{"kind":"custom","month":1,"day":1}]}`, []string{"care_dates[0].label"}},
		{"second care date bad", `{"care_dates":[{"kind":"child_birthday","month":1,"day":1},{"kind":"child_birthday","month":0,"day":1}]}`,
			[]string{"care_dates[1].month"}},
		{"consent channel", `{"consents":{"fax":true}}`, []string{"consents.fax"}},
		{"several at once with a valid name", `{"name":"ok","gender":"x","birthday":{"month":2,"day":31}}`,
			[]string{"gender", "birthday.day"}},
	}
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.mpLogin("mp_1", "")
		before := f.profile(m.ID)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var u member.ProfileUpdate
				if err := json.Unmarshal([]byte(tc.body), &u); err != nil {
					t.Fatalf("test body: %v", err)
				}
				_, err := f.svc.UpdateProfile(context.Background(), f.merchantID, m.ID, u)
				var v *apperr.Validation
				if !errors.As(err, &v) {
					t.Fatalf("err %v, want a validation error", err)
				}
				for _, field := range tc.fields {
					if _, ok := v.Fields[field]; !ok {
						t.Errorf("field %q not named in %v", field, v.Fields)
					}
				}
				after := f.profile(m.ID)
				if after.Member.Name != before.Member.Name || after.Member.Gender != before.Member.Gender ||
					after.Member.BirthdayMonth != nil || len(after.CareDates) != 0 || len(after.Consents) != 0 {
					t.Fatalf("invalid update changed the profile: %+v", after)
				}
			})
		}
	})
}

// One merchant never sees another's members, even for the same person
// (the same openid cannot occur across apps, but a forged or mistaken one
// must not cross tenants either).
func TestTenantScoping(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newFixture(t, gdb)
		b := newFixture(t, gdb)
		a.follow("o_same", "", "", 0)
		sim.Follow(b.creds.AppID, "o_same", "")
		b.deliver(b.event(wechat.EventSubscribe, "o_same", "", 0))
		ma, mb := a.byOpenID("o_same"), b.byOpenID("o_same")
		if ma.ID == mb.ID || ma.MerchantID != a.merchantID || mb.MerchantID != b.merchantID {
			t.Fatalf("members %+v and %+v", ma, mb)
		}
		ctx := context.Background()
		if _, err := b.svc.Get(ctx, b.merchantID, ma.ID); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("merchant B read A's member: %v", err)
		}
		name := "x"
		if _, err := b.svc.UpdateProfile(ctx, b.merchantID, ma.ID, member.ProfileUpdate{Name: &name}); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("merchant B changed A's member: %v", err)
		}
		if got := a.byOpenID("o_same"); got.Name != "" {
			t.Fatal("A's member changed")
		}
	})
}

func TestUnknownMerchant(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		_, err := f.svc.LoginMiniProgram(context.Background(), dbtest.NewMerchantID(), "code")
		if !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("login at an unknown merchant: %v, want ErrNotFound", err)
		}
	})
}
