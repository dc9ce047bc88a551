package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// refClient drives the referral programme over HTTP as members, a POS and
// the merchant's staff would, with the sandbox's WeChat simulator.
type refClient struct {
	a     *testApp
	t     *testing.T
	staff string
}

func (c refClient) must(method, path, token string, body, out any) {
	c.t.Helper()
	if st := c.a.call(method, path, token, body, out); st != 200 && st != 201 {
		c.t.Fatalf("%s %s: %d", method, path, st)
	}
}

// follow simulates a follow (with a QR scene, or none) and returns the member.
func (c refClient) follow(openID, unionID, scene string) uint64 {
	c.t.Helper()
	var out struct {
		Processed bool
		MemberID  uint64 `json:"member_id"`
	}
	c.must("POST", "/api/admin/v1/sandbox/follow", c.staff, map[string]string{"openid": openID, "unionid": unionID, "scene": scene}, &out)
	if !out.Processed || out.MemberID == 0 {
		c.t.Fatalf("follow %s not processed: %+v", openID, out)
	}
	return out.MemberID
}

func (c refClient) unfollow(openID string) {
	c.t.Helper()
	c.must("POST", "/api/admin/v1/sandbox/unfollow", c.staff, map[string]string{"openid": openID}, nil)
}

type refLogin struct {
	Token  string
	Member struct{ ID uint64 }
}

// h5Login signs in from the member centre (H5 OAuth) with ref, if any.
func (c refClient) h5Login(openID, unionID, ref string) refLogin {
	c.t.Helper()
	var code struct{ Code string }
	c.must("POST", "/api/admin/v1/sandbox/oauth-code", c.staff, map[string]string{"openid": openID, "unionid": unionID}, &code)
	var out refLogin
	c.must("POST", fmt.Sprintf("/api/h5/v1/%d/login", c.a.merchant), "",
		map[string]string{"code": code.Code, "state": c.a.oauthState(c.a.merchant), "ref": ref}, &out)
	return out
}

// mpLogin signs in from the mini-program with ref, if any.
func (c refClient) mpLogin(openID, unionID, ref string) refLogin {
	c.t.Helper()
	var code struct{ Code string }
	c.must("POST", "/api/admin/v1/sandbox/mp-login-code", c.staff, map[string]string{"openid": openID, "unionid": unionID}, &code)
	var out refLogin
	c.must("POST", fmt.Sprintf("/api/mp/v1/%d/login", c.a.merchant), "", map[string]string{"code": code.Code, "ref": ref}, &out)
	return out
}

func (c refClient) bindPhone(token, phone string) {
	c.t.Helper()
	var code struct{ Code string }
	c.must("POST", "/api/admin/v1/sandbox/phone-code", c.staff, map[string]string{"phone": phone}, &code)
	c.must("POST", fmt.Sprintf("/api/mp/v1/%d/phone", c.a.merchant), token, map[string]string{"code": code.Code}, nil)
}

type refInvite struct {
	Code string
	Link string
	QR   *struct {
		Ticket string
		Scene  string
	}
}

func (c refClient) invite(token string) refInvite {
	c.t.Helper()
	var out refInvite
	c.must("GET", fmt.Sprintf("/api/member/v1/%d/invite", c.a.merchant), token, nil, &out)
	if out.QR == nil {
		c.t.Fatalf("no QR code: %+v", out)
	}
	return out
}

// scanScene is the scene WeChat gives a follow through the invitation's QR
// code: what the simulator registered for its ticket.
func (c refClient) scanScene(inv refInvite) string {
	c.t.Helper()
	_, scene, ok := c.a.sandbox.Sim.QRScene(inv.QR.Ticket)
	if !ok || scene != "ref_"+inv.Code || inv.QR.Scene != scene {
		c.t.Fatalf("QR ticket %q: scene %q (%v), want ref_%s", inv.QR.Ticket, scene, ok, inv.Code)
	}
	return scene
}

func (c refClient) order(memberID uint64, externalID string, amountFen int64) {
	c.t.Helper()
	c.must("POST", "/api/admin/v1/orders", c.staff, map[string]any{"external_id": externalID, "member_id": memberID, "amount_fen": amountFen}, nil)
}

func (c refClient) refund(externalID, refundID string, amountFen int64) {
	c.t.Helper()
	c.must("POST", "/api/admin/v1/orders/"+externalID+"/refunds", c.staff, map[string]any{"refund_id": refundID, "amount_fen": amountFen}, nil)
}

// rewards returns the member's referral ledger entries (newest first) and
// their sum.
func (c refClient) rewards(memberID uint64) ([]int64, int64) {
	c.t.Helper()
	var out struct {
		Entries []struct {
			Points  int64
			RefType string `json:"ref_type"`
		}
	}
	c.must("GET", fmt.Sprintf("/api/admin/v1/members/%d/points?limit=100", memberID), c.staff, nil, &out)
	var list []int64
	var sum int64
	for _, e := range out.Entries {
		if e.RefType == "referral" {
			list = append(list, e.Points)
			sum += e.Points
		}
	}
	return list, sum
}

func (c refClient) wantRewards(who string, memberID uint64, want ...int64) {
	c.t.Helper()
	got, _ := c.rewards(memberID)
	if !slices.Equal(got, want) {
		c.t.Fatalf("%s (member %d): referral entries %v, want %v (newest first)", who, memberID, got, want)
	}
}

type refSummary struct {
	Invited      int64
	Converted    int64
	PointsEarned int64 `json:"points_earned"`
	Referrals    []struct{ Name, Status string }
}

func (c refClient) summary(token string) refSummary {
	c.t.Helper()
	var out refSummary
	c.must("GET", fmt.Sprintf("/api/member/v1/%d/referrals", c.a.merchant), token, nil, &out)
	return out
}

// The referral programme end to end, on both databases: invitations (link
// and QR code), referred follows and logins, rewards for both sides on the
// first paid order only (retries and later orders give nothing), no
// self-referral, a person counted once however many records they make
// (unionid, phone), a refunded first order taking both rewards back for
// good, first touch winning, the segment fields and the report.
func TestReferrals(t *testing.T) { eachBackendName(t, testReferrals) }

func testReferrals(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	c := refClient{a: a, t: t, staff: a.login()}

	// Rewards: 200 points for the referrer, 100 for the referee. A bad
	// value is refused with the field named and changes nothing.
	var e errorBody
	if st := a.call("PUT", "/api/admin/v1/referrals/settings", c.staff, map[string]any{"referrer_points": -1, "referee_points": 100}, &e); st != 400 || e.Error.Fields["referrer_points"] == "" {
		t.Fatalf("negative reward: %d %+v", st, e)
	}
	var set struct {
		ReferrerPoints int64 `json:"referrer_points"`
		RefereePoints  int64 `json:"referee_points"`
	}
	c.must("GET", "/api/admin/v1/referrals/settings", c.staff, nil, &set)
	if set.ReferrerPoints != 0 || set.RefereePoints != 0 {
		t.Fatalf("a refused change was saved: %+v", set)
	}
	c.must("PUT", "/api/admin/v1/referrals/settings", c.staff, map[string]any{"referrer_points": 200, "referee_points": 100}, &set)
	if set.ReferrerPoints != 200 || set.RefereePoints != 100 {
		t.Fatalf("settings: %+v", set)
	}

	// R, a follower, takes their invitation: the same code and QR code
	// every time.
	rID := c.follow("o_ref_R", "u_ref_R", "")
	rTok := c.h5Login("o_ref_R", "u_ref_R", "").Token
	inv := c.invite(rTok)
	if want := fmt.Sprintf("%s/m/%d/?ref=%s", a.base, a.merchant, inv.Code); inv.Link != want {
		t.Fatalf("link %q, want %q", inv.Link, want)
	}
	rScene := c.scanScene(inv)
	if again := c.invite(rTok); again.Code != inv.Code || again.QR.Ticket != inv.QR.Ticket {
		t.Fatalf("second invite %+v differs from the first %+v", again, inv)
	}
	if n := a.sandbox.Sim.CountRequests("/cgi-bin/qrcode/create"); n != 1 {
		t.Fatalf("%d QR codes made for one member, want 1", n)
	}

	// B follows through R's QR code; B's first paid order rewards both.
	bID := c.follow("o_ref_B", "u_ref_B", rScene)
	c.order(bID, "ref-B1", 10000)
	c.wantRewards("R", rID, 200)
	c.wantRewards("B", bID, 100)
	// The same order posted again (a POS retry) and a second order give
	// nothing more.
	c.order(bID, "ref-B1", 10000)
	c.order(bID, "ref-B2", 5000)
	c.wantRewards("R", rID, 200)
	c.wantRewards("B", bID, 100)

	// Self-referral: R opening their own link (H5), or their mini-program
	// (the same person by unionid), is no referral.
	c.h5Login("o_ref_R", "u_ref_R", inv.Code)
	if m := c.mpLogin("mp_ref_R", "u_ref_R", inv.Code); m.Member.ID != rID {
		t.Fatalf("R's mini-program login made member %d, not R's %d", m.Member.ID, rID)
	}
	if n := a.count("referrals", "referee_id = ?", rID); n != 0 {
		t.Fatalf("R referred themselves: %d rows", n)
	}

	// D, a second referrer.
	dID := c.follow("o_ref_D", "", "")
	dTok := c.h5Login("o_ref_D", "", "").Token
	dInv := c.invite(dTok)
	dScene := c.scanScene(dInv)

	// First touch wins: C follows through R's code, then unfollows and
	// follows again through D's, and opens D's link; C stays R's.
	cID := c.follow("o_ref_C", "u_ref_C", rScene)
	c.unfollow("o_ref_C")
	c.follow("o_ref_C", "u_ref_C", dScene)
	c.h5Login("o_ref_C", "u_ref_C", dInv.Code)
	// E opens D's link first, then follows through R's code: E is D's.
	eID := c.h5Login("o_ref_E", "u_ref_E", dInv.Code).Member.ID
	if got := c.follow("o_ref_E", "u_ref_E", rScene); got != eID {
		t.Fatalf("E's follow made member %d, not %d", got, eID)
	}
	for _, p := range []struct{ referee, referrer uint64 }{{cID, rID}, {eID, dID}} {
		if n := a.count("referrals", "referee_id = ? AND referrer_id = ?", p.referee, p.referrer); n != 1 ||
			a.count("referrals", "referee_id = ?", p.referee) != 1 {
			t.Fatalf("member %d: not (only) the referral of %d", p.referee, p.referrer)
		}
	}
	// C's first order is partly refunded: the rewards stay.
	c.order(cID, "ref-C1", 10000)
	c.refund("ref-C1", "ref-C1-r1", 4000)
	c.wantRewards("R", rID, 200, 200)
	c.wantRewards("C", cID, 100)

	// B unfollows and follows again through R's code: nothing new.
	c.unfollow("o_ref_B")
	c.follow("o_ref_B", "u_ref_B", rScene)
	c.order(bID, "ref-B3", 5000)
	c.wantRewards("R", rID, 200, 200)
	// B's record is erased; the same person (same unionid) follows again,
	// as a new member, through D's code: recorded, never rewarded.
	c.must("POST", fmt.Sprintf("/api/admin/v1/members/%d/erase", bID), c.staff, nil, nil)
	b2ID := c.follow("o_ref_B2", "u_ref_B", dScene)
	if b2ID == bID {
		t.Fatal("the follow after the erasure found the erased member")
	}
	c.order(b2ID, "ref-B2-1", 10000)
	c.wantRewards("D", dID)
	c.wantRewards("B's second record", b2ID)

	// The same phone on a second member: F signs in through R's link in
	// the mini-program, binds a phone and buys (rewarded); F's record is
	// erased; G signs in through D's link and binds the same phone: G's
	// first order rewards nobody.
	f := c.mpLogin("mp_ref_F", "", inv.Code)
	c.bindPhone(f.Token, "13900002222")
	c.order(f.Member.ID, "ref-F1", 10000)
	c.wantRewards("R", rID, 200, 200, 200)
	c.must("POST", fmt.Sprintf("/api/admin/v1/members/%d/erase", f.Member.ID), c.staff, nil, nil)
	g := c.mpLogin("mp_ref_G", "", dInv.Code)
	c.bindPhone(g.Token, "13900002222")
	c.order(g.Member.ID, "ref-G1", 10000)
	c.wantRewards("D", dID)
	c.wantRewards("G", g.Member.ID)

	// H follows through D's code and buys; the order is refunded in full:
	// both rewards are taken back, and H's next order gives nothing.
	hID := c.follow("o_ref_H", "", dScene)
	c.order(hID, "ref-H1", 10000)
	c.wantRewards("D", dID, 200)
	c.wantRewards("H", hID, 100)
	c.refund("ref-H1", "ref-H1-r1", 10000)
	c.refund("ref-H1", "ref-H1-r1", 10000) // a retried refund takes nothing more
	c.wantRewards("D", dID, -200, 200)
	c.wantRewards("H", hID, -100, 100)
	c.order(hID, "ref-H2", 10000)
	c.wantRewards("D", dID, -200, 200)
	c.wantRewards("H", hID, -100, 100)

	// The members' own view: R brought in B, C and F, all converted; D
	// brought in E (pending) and H (reversed); the two ineligible ones do
	// not count.
	if s := c.summary(rTok); s.Invited != 3 || s.Converted != 3 || s.PointsEarned != 600 || len(s.Referrals) != 3 {
		t.Fatalf("R's summary: %+v", s)
	}
	if s := c.summary(dTok); s.Invited != 2 || s.Converted != 0 || s.PointsEarned != 0 || len(s.Referrals) != 2 {
		t.Fatalf("D's summary: %+v", s)
	}

	// Segments on the referral counts pick exactly R, then R and D.
	for _, tc := range []struct {
		rule map[string]any
		want []uint64
	}{
		{map[string]any{"field": "referrals_converted", "op": "gte", "value": 1}, []uint64{rID}},
		{map[string]any{"field": "referrals_invited", "op": "gte", "value": 2}, []uint64{rID, dID}},
		{map[string]any{"all": []any{map[string]any{"field": "referrals_invited", "op": "gte", "value": 1},
			map[string]any{"field": "referrals_converted", "op": "eq", "value": 0}}}, []uint64{dID}},
	} {
		var pv struct {
			Count  int64
			Sample []struct{ ID uint64 }
		}
		c.must("POST", "/api/admin/v1/segments/preview", c.staff, map[string]any{"rule": tc.rule}, &pv)
		var got []uint64
		for _, m := range pv.Sample {
			got = append(got, m.ID)
		}
		slices.Sort(got)
		if pv.Count != int64(len(tc.want)) || !slices.Equal(got, tc.want) {
			t.Fatalf("segment %v: count %d, members %v, want %v", tc.rule, pv.Count, got, tc.want)
		}
	}

	// The merchant's report.
	var rep struct {
		Invites      int64
		SignUps      int64 `json:"sign_ups"`
		Conversions  int64
		Reversed     int64
		Ineligible   int64
		PointsCost   int64 `json:"points_cost"`
		TopReferrers []struct {
			MemberID  uint64 `json:"member_id"`
			SignUps   int64  `json:"sign_ups"`
			Converted int64
		} `json:"top_referrers"`
	}
	c.must("GET", "/api/admin/v1/referrals/report", c.staff, nil, &rep)
	if rep.Invites != 2 || rep.SignUps != 5 || rep.Conversions != 3 || rep.Reversed != 1 || rep.Ineligible != 2 ||
		rep.PointsCost != 900 || len(rep.TopReferrers) != 2 || rep.TopReferrers[0].MemberID != rID ||
		rep.TopReferrers[0].Converted != 3 || rep.TopReferrers[1].MemberID != dID || rep.TopReferrers[1].SignUps != 2 {
		t.Fatalf("report: %+v", rep)
	}
	// A period after every referral holds none of them.
	later := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	rep.SignUps, rep.TopReferrers = -1, nil
	c.must("GET", "/api/admin/v1/referrals/report?from="+later, c.staff, nil, &rep)
	if rep.SignUps != 0 || rep.Conversions != 0 || rep.Invites != 0 || len(rep.TopReferrers) != 0 {
		t.Fatalf("report of a later period: %+v", rep)
	}
	e = errorBody{}
	if st := a.call("GET", "/api/admin/v1/referrals/report?from=yesterday", c.staff, nil, &e); st != 400 || e.Error.Fields["from"] == "" {
		t.Fatalf("bad from: %d %+v", st, e)
	}
	// Four first orders of one referee posted at once (several tills):
	// one converts the referral, the others give nothing.
	jID := c.follow("o_ref_J", "", rScene)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, _ := json.Marshal(map[string]any{"external_id": fmt.Sprintf("ref-J%d", i), "member_id": jID, "amount_fen": 1000})
			req, _ := http.NewRequest("POST", a.base+"/api/admin/v1/orders", bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+c.staff)
			resp, err := a.client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("order ref-J%d: %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.wantRewards("J", jID, 100)
	c.wantRewards("R", rID, 200, 200, 200, 200)

	// A channel cannot take a scene of the invitation codes.
	e = errorBody{}
	if st := a.call("POST", "/api/admin/v1/channels", c.staff, map[string]any{"name": "x", "scene": "ref_ABC"}, &e); st != 400 || e.Error.Fields["scene"] == "" {
		t.Fatalf("channel with a referral scene: %d %+v", st, e)
	}
}
