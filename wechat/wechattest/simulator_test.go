package wechattest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/miniprogram/subscribe"
	"github.com/silenceper/wechat/v2/officialaccount/basic"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/util"
)

func templateMsg(to string) *message.TemplateMessage {
	m := &message.TemplateMessage{
		ToUser:     to,
		TemplateID: tplPoints,
		URL:        "https://example.com/points",
		Data: map[string]*message.TemplateDataItem{
			"thing1":  {Value: "Coffee"},
			"amount2": {Value: "+10"},
		},
	}
	m.MiniProgram.AppID = mpApp.AppID
	m.MiniProgram.PagePath = "pages/points/index"
	return m
}

func TestTemplateSend(t *testing.T) {
	sim, _ := newSim(t, "")
	sim.Follow(oaApp.AppID, "o_follower", "")
	sim.OAuthCode(oaApp.AppID, "o_visitor", "", false) // known, never followed
	tpl := newOA(oaApp).GetTemplate()

	id1, err := tpl.Send(templateMsg("o_follower"))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := tpl.Send(templateMsg("o_follower"))
	if err != nil {
		t.Fatal(err)
	}
	if id1 != firstMsgID || id2 != id1+1 {
		t.Fatalf("msgids = %d, %d; want %d, %d", id1, id2, firstMsgID, firstMsgID+1)
	}

	_, err = tpl.Send(templateMsg("o_visitor"))
	wantCode(t, err, "43004")
	_, err = tpl.Send(templateMsg("o_nobody"))
	wantCode(t, err, "40003")
	bad := templateMsg("o_follower")
	bad.TemplateID = "tpl-unknown"
	_, err = tpl.Send(bad)
	wantCode(t, err, "40037")

	sent := sim.Sent()
	if len(sent) != 2 {
		t.Fatalf("Sent() has %d entries, want 2", len(sent))
	}
	s := sent[0]
	if s.Kind != "template" || s.AppID != oaApp.AppID || s.ToUser != "o_follower" || s.TemplateID != tplPoints ||
		s.MsgID != id1 || s.URL != "https://example.com/points" || s.Page != "pages/points/index" ||
		s.Data["thing1"] != "Coffee" || s.Data["amount2"] != "+10" {
		t.Fatalf("unexpected Sent entry %+v", s)
	}
	if n := sim.CountRequests("/cgi-bin/message/template/send"); n != 5 {
		t.Fatalf("CountRequests = %d, want 5", n)
	}
}

func TestStableTokenReuseAndInvalidation(t *testing.T) {
	clock := newFakeClock()
	sim, base := newSim(t, "", WithClock(clock.Now))
	sim.Follow(oaApp.AppID, "o1", "")

	// Two clients with separate caches get the same stable token.
	tok1, err := newOA(oaApp).GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := newOA(oaApp).GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	if tok1 == "" || tok1 != tok2 {
		t.Fatalf("stable tokens differ: %q vs %q", tok1, tok2)
	}
	if n := sim.CountRequests("/cgi-bin/stable_token"); n != 2 {
		t.Fatalf("stable_token requests = %d, want 2", n)
	}

	// Someone force-refreshes: the cached token is now invalid.
	oa := newOA(oaApp)
	if _, err := oa.GetTemplate().Send(templateMsg("o1")); err != nil {
		t.Fatal(err)
	}
	sim.InvalidateTokens(oaApp.AppID)
	_, err = oa.GetTemplate().Send(templateMsg("o1"))
	wantCode(t, err, "40001")

	// A fresh client gets a new token that works.
	oa = newOA(oaApp)
	if _, err := oa.GetTemplate().Send(templateMsg("o1")); err != nil {
		t.Fatal(err)
	}
	// The SDK still caches it (real time), but by the simulator's clock it expires.
	clock.Advance(7201 * time.Second)
	_, err = oa.GetTemplate().Send(templateMsg("o1"))
	wantCode(t, err, "42001")

	// force_refresh issues a new token; the old one keeps working for 5 minutes.
	resp := post(t, base+"/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"`+oaApp.AppID+`","secret":"`+oaApp.Secret+`"}`)
	var a, b tokenBody
	mustJSON(t, resp, &a)
	resp = post(t, base+"/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"`+oaApp.AppID+`","secret":"`+oaApp.Secret+`","force_refresh":true}`)
	mustJSON(t, resp, &b)
	if a.AccessToken == "" || a.AccessToken == b.AccessToken || b.ExpiresIn != 7200 {
		t.Fatalf("force_refresh did not issue a new token: %+v %+v", a, b)
	}
	checkUserInfo := func(tok string) int {
		_, body := get(t, base+"/cgi-bin/user/info?lang=zh_CN&openid=o1&access_token="+url.QueryEscape(tok))
		var e errBody
		mustJSON(t, body, &e)
		return e.ErrCode
	}
	if c := checkUserInfo(a.AccessToken); c != 0 {
		t.Fatalf("old token within grace: errcode %d", c)
	}
	clock.Advance(6 * time.Minute)
	if c := checkUserInfo(a.AccessToken); c != 40001 {
		t.Fatalf("old token after grace: errcode %d, want 40001", c)
	}
	if c := checkUserInfo(b.AccessToken); c != 0 {
		t.Fatalf("new token: errcode %d", c)
	}
}

func TestTokenEndpoint(t *testing.T) {
	sim, base := newSim(t, "")
	tokenURL := func(a App) string {
		return base + "/cgi-bin/token?grant_type=client_credential&appid=" + a.AppID + "&secret=" + a.Secret
	}
	var t1, t2 tokenBody
	_, body := get(t, tokenURL(oaApp))
	mustJSON(t, body, &t1)
	_, body = get(t, tokenURL(oaApp))
	mustJSON(t, body, &t2)
	if t1.AccessToken == "" || t1.AccessToken == t2.AccessToken || t2.ExpiresIn != 7200 {
		t.Fatalf("/cgi-bin/token must issue a new token per call: %+v %+v", t1, t2)
	}

	for _, tc := range []struct {
		app  App
		code int
	}{
		{App{AppID: "wx-unknown", Secret: "x"}, 40013},
		{App{AppID: oaApp.AppID, Secret: "wrong"}, 40125},
	} {
		var e errBody
		_, body := get(t, tokenURL(tc.app))
		mustJSON(t, body, &e)
		if e.ErrCode != tc.code || e.ErrMsg != errMsg(tc.code) {
			t.Fatalf("%+v: got %+v, want %d", tc.app, e, tc.code)
		}
	}
	// Through the SDK (stable token) as well.
	_, err := newOA(App{AppID: oaApp.AppID, Secret: "wrong"}).GetAccessToken()
	wantCode(t, err, "40125")

	// An MP token does not work on OA endpoints and vice versa.
	sim.Follow(oaApp.AppID, "o1", "")
	mpTok, err := newMP(mpApp).GetContext().GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	var e errBody
	mustJSON(t, post(t, base+"/cgi-bin/message/template/send?access_token="+mpTok, `{"touser":"o1","template_id":"`+tplPoints+`"}`), &e)
	if e.ErrCode != 40001 {
		t.Fatalf("MP token on OA endpoint: %+v", e)
	}
	mustJSON(t, post(t, base+"/wxa/business/getuserphonenumber?access_token="+t2.AccessToken, `{"code":"x"}`), &e)
	if e.ErrCode != 40001 {
		t.Fatalf("OA token on MP endpoint: %+v", e)
	}
	mustJSON(t, post(t, base+"/cgi-bin/message/template/send", `{}`), &e)
	if e.ErrCode != 41001 {
		t.Fatalf("missing token: %+v", e)
	}
}

func TestMPSubscribeSpendsGrants(t *testing.T) {
	sim, _ := newSim(t, "")
	sim.Grant(mpApp.AppID, "o_mp", tplSub, 1)
	sub := newMP(mpApp).GetSubscribe()
	msg := &subscribe.Message{
		ToUser: "o_mp", TemplateID: tplSub, Page: "pages/coupon/index",
		Data: map[string]*subscribe.DataItem{"thing1": {Value: "Coupon"}, "number2": {Value: 3}},
	}
	id, err := sub.SendGetMsgID(msg)
	if err != nil {
		t.Fatal(err)
	}
	if id < firstMsgID {
		t.Fatalf("msgid %d", id)
	}
	wantCode(t, sub.Send(msg), "43101")

	msg.ToUser = "o_stranger"
	wantCode(t, sub.Send(msg), "40003")
	msg.ToUser, msg.TemplateID = "o_mp", "tpl-unknown"
	wantCode(t, sub.Send(msg), "40037")

	sent := sim.Sent()
	if len(sent) != 1 {
		t.Fatalf("Sent() = %+v", sent)
	}
	if s := sent[0]; s.Kind != "mp_subscribe" || s.MsgID != id || s.Page != "pages/coupon/index" ||
		s.Data["thing1"] != "Coupon" || s.Data["number2"] != "3" {
		t.Fatalf("unexpected Sent entry %+v", s)
	}
}

func TestOASubscribeBizsend(t *testing.T) {
	sim, _ := newSim(t, "")
	sim.Grant(oaApp.AppID, "o1", tplSub, 2)
	sub := newOA(oaApp).GetSubscribe()
	msg := &message.SubscribeMessage{
		ToUser: "o1", TemplateID: tplSub, Page: "https://example.com/c",
		Data: map[string]*message.SubscribeDataItem{"thing1": {Value: "Coupon"}},
	}
	for i := 0; i < 2; i++ {
		if err := sub.Send(msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	wantCode(t, sub.Send(msg), "43101")
	sent := sim.Sent()
	if len(sent) != 2 || sent[0].Kind != "oa_subscribe" || sent[0].MsgID != 0 || sent[0].Page != "https://example.com/c" {
		t.Fatalf("Sent() = %+v", sent)
	}
}

func TestCustomMessageWindow(t *testing.T) {
	clock := newFakeClock()
	sim, _ := newSim(t, "", WithClock(clock.Now))
	sim.Follow(oaApp.AppID, "o1", "")
	send := func() error {
		// New client each time: the simulator clock jumps past token expiry.
		return newOA(oaApp).GetCustomerMessageManager().Send(message.NewCustomerTextMessage("o1", "hello"))
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(47 * time.Hour)
	if err := send(); err != nil {
		t.Fatalf("within 48h: %v", err)
	}
	clock.Advance(2 * time.Hour)
	wantCode(t, send(), "45015")
	sim.Interact(oaApp.AppID, "o1")
	if err := send(); err != nil {
		t.Fatalf("after interaction: %v", err)
	}
	sim.Unfollow(oaApp.AppID, "o1")
	wantCode(t, send(), "43004")

	sent := sim.Sent()
	if len(sent) != 3 || sent[0].Kind != "custom" || sent[0].Content != "hello" || sent[0].ToUser != "o1" {
		t.Fatalf("Sent() = %+v", sent)
	}
}

func TestUserInfo(t *testing.T) {
	sim, _ := newSim(t, "")
	sim.Follow(oaApp.AppID, "o1", "u1")
	sim.FollowScene(oaApp.AppID, "o2", "", "store-42")
	sim.FollowScene(oaApp.AppID, "o3", "", "42")
	sim.OAuthCode(oaApp.AppID, "o4", "u4", false)
	users := newOA(oaApp).GetUser()

	info, err := users.GetUserInfo("o1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Subscribe != 1 || info.OpenID != "o1" || info.UnionID != "u1" || info.SubscribeTime == 0 ||
		info.Language != "zh_CN" || info.TagIDList == nil {
		t.Fatalf("info = %+v", info)
	}
	info, err = users.GetUserInfo("o2")
	if err != nil {
		t.Fatal(err)
	}
	if info.SubscribeScene != "ADD_SCENE_QR_CODE" || info.QrSceneStr != "store-42" || info.UnionID != "" {
		t.Fatalf("info = %+v", info)
	}
	if info, err = users.GetUserInfo("o3"); err != nil || info.QrScene != 42 {
		t.Fatalf("info = %+v, %v", info, err)
	}
	if info, err = users.GetUserInfo("o4"); err != nil || info.Subscribe != 0 || info.UnionID != "u4" {
		t.Fatalf("non-follower info = %+v, %v", info, err)
	}
	_, err = users.GetUserInfo("o_nobody")
	wantCode(t, err, "40003")
}

func TestQRCode(t *testing.T) {
	sim, base := newSim(t, "")
	b := newOA(oaApp).GetBasic()

	tk, err := b.GetQRTicket(basic.NewTmpQrRequest(time.Hour, "store-42"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Ticket == "" || tk.ExpireSeconds != 3600 || tk.URL == "" {
		t.Fatalf("ticket = %+v", tk)
	}
	if app, scene, ok := sim.QRScene(tk.Ticket); !ok || app != oaApp.AppID || scene != "store-42" {
		t.Fatalf("QRScene = %q %q %v", app, scene, ok)
	}

	// Fetch the image the way a browser would, via mp.weixin.qq.com (rewritten).
	resp, err := util.DefaultHTTPClient.Get(basic.ShowQRCode(tk))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("showqrcode status %d", resp.StatusCode)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Fatalf("showqrcode body is not a PNG: %v", err)
	}
	if code, _ := get(t, base+"/cgi-bin/showqrcode?ticket=nope"); code != http.StatusNotFound {
		t.Fatalf("unknown ticket status %d", code)
	}

	perm, err := b.GetQRTicket(basic.NewLimitQrRequest(100000))
	if err != nil || perm.Ticket == "" || perm.ExpireSeconds != 0 {
		t.Fatalf("limit ticket = %+v, %v", perm, err)
	}
	if _, scene, _ := sim.QRScene(perm.Ticket); scene != "100000" {
		t.Fatalf("scene = %q", scene)
	}

	for _, req := range []*basic.Request{
		basic.NewLimitQrRequest(100001),
		basic.NewLimitQrRequest(strings.Repeat("x", 65)),
		basic.NewTmpQrRequest(31*24*time.Hour, 7),
		{ActionName: "QR_BOGUS"},
	} {
		_, err := b.GetQRTicket(req)
		wantCode(t, err, "47001")
	}
}

func TestCode2Session(t *testing.T) {
	clock := newFakeClock()
	sim, _ := newSim(t, "", WithClock(clock.Now))
	auth := newMP(mpApp).GetAuth()

	code := sim.LoginCode(mpApp.AppID, "o_mp1", "u1")
	res, err := auth.Code2Session(code)
	if err != nil {
		t.Fatal(err)
	}
	if res.OpenID != "o_mp1" || res.UnionID != "u1" || res.SessionKey == "" {
		t.Fatalf("res = %+v", res)
	}
	_, err = auth.Code2Session(code)
	wantCode(t, err, "40163")
	_, err = auth.Code2Session("garbage")
	wantCode(t, err, "40029")

	res, err = auth.Code2Session("dev:o_manual")
	if err != nil || res.OpenID != "o_manual" || res.UnionID != "" {
		t.Fatalf("dev code: %+v, %v", res, err)
	}

	late := sim.LoginCode(mpApp.AppID, "o_mp2", "")
	clock.Advance(6 * time.Minute)
	_, err = auth.Code2Session(late)
	wantCode(t, err, "40029")

	// OA credentials are not a mini program.
	_, err = newMP(oaApp).GetAuth().Code2Session("dev:x")
	wantCode(t, err, "40013")
	_, err = newMP(App{AppID: mpApp.AppID, Secret: "wrong"}).GetAuth().Code2Session("dev:x")
	wantCode(t, err, "40125")

	// LoginCode made the user known: MP subscribe send reaches grants check.
	wantCode(t, newMP(mpApp).GetSubscribe().Send(&subscribe.Message{ToUser: "o_mp1", TemplateID: tplSub}), "43101")
}

func TestPhoneNumber(t *testing.T) {
	sim, _ := newSim(t, "")
	auth := newMP(mpApp).GetAuth()
	code := sim.PhoneCode(mpApp.AppID, "13800138000")
	res, err := auth.GetPhoneNumber(code)
	if err != nil {
		t.Fatal(err)
	}
	p := res.PhoneInfo
	if p.PhoneNumber != "13800138000" || p.PurePhoneNumber != "13800138000" || p.CountryCode != "86" ||
		p.WaterMark.AppID != mpApp.AppID || p.WaterMark.Timestamp == 0 {
		t.Fatalf("phone info = %+v", p)
	}
	_, err = auth.GetPhoneNumber(code)
	var ce *util.CommonError
	if !errors.As(err, &ce) || ce.ErrCode != 40163 {
		t.Fatalf("reused code: %v", err)
	}
	_, err = auth.GetPhoneNumber("bad")
	if !errors.As(err, &ce) || ce.ErrCode != 40029 {
		t.Fatalf("bad code: %v", err)
	}
	// A login code is not a phone code.
	_, err = auth.GetPhoneNumber(sim.LoginCode(mpApp.AppID, "o1", ""))
	wantCode(t, err, "40029")

	res, err = auth.GetPhoneNumber(sim.PhoneCode(mpApp.AppID, "+852 61234567"))
	if err != nil || res.PhoneInfo.CountryCode != "852" || res.PhoneInfo.PurePhoneNumber != "61234567" {
		t.Fatalf("foreign phone: %+v, %v", res, err)
	}
}

func TestOAuth(t *testing.T) {
	sim, base := newSim(t, "")
	oauth := newOA(oaApp).GetOauth()

	code := sim.OAuthCode(oaApp.AppID, "o_h5", "u_h5", true)
	tok, err := oauth.GetUserAccessToken(code)
	if err != nil {
		t.Fatal(err)
	}
	if tok.OpenID != "o_h5" || tok.UnionID != "u_h5" || tok.IsSnapShotUser != 1 || tok.Scope != "snsapi_base" ||
		tok.AccessToken == "" || tok.RefreshToken == "" || tok.ExpiresIn != 7200 {
		t.Fatalf("tok = %+v", tok)
	}
	_, err = oauth.GetUserAccessToken(code)
	wantCode(t, err, "40163")
	_, err = oauth.GetUserAccessToken("bad")
	wantCode(t, err, "40029")

	tok, err = oauth.GetUserAccessToken(sim.OAuthCode(oaApp.AppID, "o_h6", "", false))
	if err != nil || tok.IsSnapShotUser != 0 || tok.UnionID != "" {
		t.Fatalf("tok = %+v, %v", tok, err)
	}
	if tok, err = oauth.GetUserAccessToken("dev:o_dev"); err != nil || tok.OpenID != "o_dev" {
		t.Fatalf("dev code: %+v, %v", tok, err)
	}

	// The authorize page redirects back with a code and the state.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(extra string) *url.URL {
		q := url.Values{
			"appid": {oaApp.AppID}, "redirect_uri": {"https://shop.example.com/cb?x=1"},
			"response_type": {"code"}, "scope": {"snsapi_base"}, "state": {"st42"},
		}
		resp, err := noFollow.Get(base + "/connect/oauth2/authorize?" + q.Encode() + extra + "#wechat_redirect")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize status %d", resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		if loc.Host != "shop.example.com" || loc.Query().Get("x") != "1" || loc.Query().Get("state") != "st42" || loc.Query().Get("code") == "" {
			t.Fatalf("redirect = %s", loc)
		}
		return loc
	}
	loc := authorize("&sandbox_openid=o_picked")
	if tok, err = oauth.GetUserAccessToken(loc.Query().Get("code")); err != nil || tok.OpenID != "o_picked" {
		t.Fatalf("tok = %+v, %v", tok, err)
	}
	loc = authorize("")
	if tok, err = oauth.GetUserAccessToken(loc.Query().Get("code")); err != nil || !strings.HasPrefix(tok.OpenID, "o_sandbox_") {
		t.Fatalf("tok = %+v, %v", tok, err)
	}
}

func TestScriptedFaults(t *testing.T) {
	sim, _ := newSim(t, "")
	sim.Follow(oaApp.AppID, "o1", "")
	tpl := newOA(oaApp).GetTemplate()
	const path = "/cgi-bin/message/template/send"

	sim.Script(path, Fault{ErrCode: 45009}, Fault{ErrCode: -1, ErrMsg: "boom"}, Fault{HTTPStatus: http.StatusBadGateway})
	_, err := tpl.Send(templateMsg("o1"))
	wantCode(t, err, "errcode=45009 , errmsg=reach max api daily quota limit")
	_, err = tpl.Send(templateMsg("o1"))
	wantCode(t, err, "errmsg=boom")
	_, err = tpl.Send(templateMsg("o1"))
	wantCode(t, err, "statusCode=502")
	if _, err = tpl.Send(templateMsg("o1")); err != nil {
		t.Fatalf("queue should be drained: %v", err)
	}

	// Token endpoints can be faulted too.
	sim.Script("/cgi-bin/stable_token", Fault{ErrCode: 40164})
	_, err = newOA(oaApp).GetAccessToken()
	wantCode(t, err, "40164")

	// Scripted latency, then normal handling.
	sim.Script(path, Fault{Latency: 150 * time.Millisecond})
	start := time.Now()
	if _, err = tpl.Send(templateMsg("o1")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("latency not applied: %v", d)
	}

	// Persistent latency for all paths, then cleared.
	sim.SetLatency("", 100*time.Millisecond)
	start = time.Now()
	if _, err = tpl.Send(templateMsg("o1")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("persistent latency not applied: %v", d)
	}
	sim.Script(path, Fault{ErrCode: 45009})
	sim.ClearFaults()
	if _, err = tpl.Send(templateMsg("o1")); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}

	// Hang until the client gives up.
	sim.Script("/sns/jscode2session", Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = newMP(mpApp).GetAuth().Code2SessionContext(ctx, "dev:x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: %v", err)
	}

	// Faulted requests are recorded; only successful sends are in Sent().
	if n := sim.CountRequests(path); n != 7 {
		t.Fatalf("CountRequests = %d, want 7", n)
	}
	if n := len(sim.Sent()); n != 4 {
		t.Fatalf("Sent = %d, want 4", n)
	}
}

func TestRecordingAndInspection(t *testing.T) {
	sim, base := newSim(t, "")
	sim.Follow(oaApp.AppID, "o1", "")
	if _, err := newOA(oaApp).GetTemplate().Send(templateMsg("o1")); err != nil {
		t.Fatal(err)
	}
	var e errBody
	_, body := get(t, base+"/cgi-bin/no/such/api?x=1")
	mustJSON(t, body, &e)
	if e.ErrCode != 40066 {
		t.Fatalf("unknown path: %+v", e)
	}

	reqs := sim.Requests()
	if len(reqs) != 3 || reqs[0].Path != "/cgi-bin/stable_token" || reqs[1].Path != "/cgi-bin/message/template/send" ||
		reqs[1].Method != http.MethodPost || reqs[1].Query.Get("access_token") == "" ||
		!bytes.Contains(reqs[1].Body, []byte(tplPoints)) || reqs[2].Query.Get("x") != "1" || reqs[2].At.IsZero() {
		t.Fatalf("Requests() = %+v", reqs)
	}
	reqs[1].Body[0] = 'X' // copies must not alias internal state
	if sim.Requests()[1].Body[0] == 'X' {
		t.Fatal("Requests() returned aliased body")
	}

	var sent []Sent
	_, body = get(t, base+"/_sim/sent")
	mustJSON(t, body, &sent)
	if len(sent) != 1 || sent[0].TemplateID != tplPoints {
		t.Fatalf("/_sim/sent = %s", body)
	}
	var jr []struct {
		Path string `json:"path"`
		Body string `json:"body"`
	}
	_, body = get(t, base+"/_sim/requests")
	mustJSON(t, body, &jr)
	if len(jr) != 3 || !strings.Contains(jr[1].Body, `"touser":"o1"`) {
		t.Fatalf("/_sim/requests = %s", body)
	}

	sim.Script("/x", Fault{ErrCode: 1})
	sim.Reset()
	if len(sim.Requests()) != 0 || len(sim.Sent()) != 0 {
		t.Fatal("Reset did not forget requests/sent")
	}
	// Apps, followers and templates survive Reset.
	if _, err := newOA(oaApp).GetTemplate().Send(templateMsg("o1")); err != nil {
		t.Fatal(err)
	}
}

func TestPathPrefix(t *testing.T) {
	const prefix = "/sandbox/wechat-api"
	sim, base := newSim(t, prefix, WithPathPrefix(prefix+"/"))
	sim.Follow(oaApp.AppID, "o1", "")
	sim.Script("/cgi-bin/message/template/send", Fault{ErrCode: 45009})
	tpl := newOA(oaApp).GetTemplate()
	_, err := tpl.Send(templateMsg("o1"))
	wantCode(t, err, "45009")
	if _, err := tpl.Send(templateMsg("o1")); err != nil {
		t.Fatal(err)
	}
	if n := sim.CountRequests("/cgi-bin/message/template/send"); n != 2 {
		t.Fatalf("CountRequests = %d", n)
	}
	if p := sim.Requests()[0].Path; p != "/cgi-bin/stable_token" {
		t.Fatalf("recorded path %q", p)
	}
	var sent []Sent
	_, body := get(t, base+"/_sim/sent")
	mustJSON(t, body, &sent)
	if len(sent) != 1 {
		t.Fatalf("/_sim/sent = %s", body)
	}
}

func TestConcurrentTemplateSends(t *testing.T) {
	sim, _ := newSim(t, "")
	sim.Follow(oaApp.AppID, "o1", "")
	tpl := newOA(oaApp).GetTemplate()
	const n = 50
	ids := make(chan int64, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := tpl.Send(templateMsg("o1"))
			if err != nil {
				errs <- err
				return
			}
			ids <- id
		}()
	}
	// Poke the observation API while sends are in flight (for -race).
	for i := 0; i < 10; i++ {
		_ = sim.Sent()
		_ = sim.Requests()
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("duplicate msgid %d", id)
		}
		seen[id] = true
	}
	if len(seen) != n || len(sim.Sent()) != n {
		t.Fatalf("distinct msgids = %d, sent = %d", len(seen), len(sim.Sent()))
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// The in-process transport answers like the mounted simulator, whatever
// host the request names, and honours the caller's deadline.
func TestRoundTripperServesInProcess(t *testing.T) {
	sim := New()
	sim.AddOfficialAccount(oaApp)
	client := &http.Client{Transport: sim.RoundTripper(), Timeout: 200 * time.Millisecond}
	resp, err := client.Get("https://api.weixin.qq.com/cgi-bin/token?grant_type=client_credential&appid=" +
		oaApp.AppID + "&secret=" + oaApp.Secret)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"access_token"`) || sim.CountRequests("/cgi-bin/token") != 1 {
		t.Fatalf("token: %d %s", resp.StatusCode, raw)
	}
	sim.Script("/cgi-bin/token", Fault{Hang: true})
	if _, err := client.Get("https://api.weixin.qq.com/cgi-bin/token"); err == nil {
		t.Fatal("a hanging simulator did not time out")
	}
}

// A standing fault answers every request of its path (or of all paths)
// until it is cleared; a scripted fault still comes first.
func TestStandingFaults(t *testing.T) {
	sim, _ := newSim(t, "")
	sim.Follow(oaApp.AppID, "o1", "")
	tpl := newOA(oaApp).GetTemplate()
	const path = "/cgi-bin/message/template/send"

	sim.SetFault(path, Fault{ErrCode: 45011})
	for range 3 {
		_, err := tpl.Send(templateMsg("o1"))
		wantCode(t, err, "errcode=45011")
	}
	sim.Script(path, Fault{ErrCode: 45009})
	_, err := tpl.Send(templateMsg("o1"))
	wantCode(t, err, "errcode=45009")
	_, err = tpl.Send(templateMsg("o1"))
	wantCode(t, err, "errcode=45011")
	if n := len(sim.Sent()); n != 0 {
		t.Fatalf("Sent = %d during the outage, want 0", n)
	}
	sim.ClearFault(path)
	if _, err := tpl.Send(templateMsg("o1")); err != nil {
		t.Fatalf("after ClearFault: %v", err)
	}

	// Every path hangs until the client gives up; a path-specific fault
	// overrides it.
	sim.SetFault("", Fault{Hang: true})
	sim.SetFault(path, Fault{ErrCode: 45011})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := newMP(mpApp).GetAuth().Code2SessionContext(ctx, "dev:x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: %v", err)
	}
	_, err = tpl.Send(templateMsg("o1"))
	wantCode(t, err, "errcode=45011")
	sim.ClearFaults()
	if _, err := tpl.Send(templateMsg("o1")); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
	if n := len(sim.Sent()); n != 2 {
		t.Fatalf("Sent = %d, want 2", n)
	}
}
