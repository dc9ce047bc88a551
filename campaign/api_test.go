package campaign_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/apicontract"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// api serves the campaign admin routes as cmd/loyalty mounts them, with
// the caller's principal put in the context.
type api struct {
	*env
	engine *gin.Engine
	eng    *campaign.Engine
	member uint64 // the member the member-facing route acts as
}

func newAPI(t *testing.T, gdb *gorm.DB) *api {
	e := newEnv(t, gdb)
	a := &api{env: e, engine: gin.New()}
	a.eng = e.engine(campaign.EngineOptions{Batch: 2, SliceTime: time.Nanosecond}, nil) // one batch per round
	h := campaign.NewHandler(campaign.NewCampaigns(a.eng), campaign.NewGrants(gdb, e.now))
	a.engine.Use(httpx.Recover())
	g := a.engine.Group("/api/admin/v1", func(c *gin.Context) {
		var p authz.Principal
		_ = json.Unmarshal([]byte(c.GetHeader("X-Test-Principal")), &p)
		c.Request = c.Request.WithContext(authz.WithPrincipal(c.Request.Context(), p))
	}, audit.NewRecorder(gdb, e.now).Track())
	h.RegisterAdmin(g)
	campaign.NewCareHandler(campaign.NewCare(a.eng, campaign.CareDeps{}, campaign.CareOptions{})).Register(g)
	h.RegisterMember(a.engine.Group("/api"), func(c *gin.Context) { c.Next() }, func(*gin.Context) (uint64, uint64) {
		return e.merchantID, a.member
	})
	return a
}

func (a *api) do(role authz.Role, merchantID uint64, method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(raw))
	p, _ := json.Marshal(authz.Principal{MerchantID: merchantID, StaffID: 7, Role: role, Name: "x"})
	req.Header.Set("X-Test-Principal", string(p))
	rec := httptest.NewRecorder()
	a.engine.ServeHTTP(rec, req)
	apicontract.Recorded(a.t, req, rec.Code, rec.Header(), rec.Body.Bytes())
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func fieldsOf(out map[string]any) map[string]any {
	e, _ := out["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	return f
}

func validBody(segmentID uint64) map[string]any {
	return map[string]any{"name": "Double points weekend", "channel": "template", "template_id": template,
		"message":  map[string]any{"fields": map[string]string{"first": "Hi {{name}}", "keyword1": "{{points}} points"}},
		"target":   map[string]any{"segment_id": segmentID},
		"schedule": map[string]any{"kind": "now"}}
}

// Bad campaigns are refused at save time, naming what is wrong: a
// template WeChat does not know, a field the template lacks, an unknown
// variable, a deleted segment, a time in the past, a cron that never
// fires; nothing is written.
func TestCampaignValidation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		seg := a.segment()
		deleted := a.segment()
		if err := a.segments.Delete(context.Background(), a.merchantID, deleted); err != nil {
			t.Fatal(err)
		}
		with := func(mut func(b map[string]any)) map[string]any {
			b := validBody(seg)
			mut(b)
			return b
		}
		cases := map[string]map[string]any{
			"template_id": with(func(b map[string]any) { b["template_id"] = "TPL_NOPE" }),
			"message.fields.keyword9": with(func(b map[string]any) {
				b["message"] = map[string]any{"fields": map[string]string{"keyword9": "x"}}
			}),
			"message.fields.first": with(func(b map[string]any) {
				b["message"] = map[string]any{"fields": map[string]string{"first": "Hi {{nickname}}"}}
			}),
			"target.segment_id": with(func(b map[string]any) { b["target"] = map[string]any{"segment_id": deleted} }),
			"schedule.send_at": with(func(b map[string]any) {
				b["schedule"] = map[string]any{"kind": "at", "send_at": a.now().Add(-time.Hour)}
			}),
			"schedule.cron":  with(func(b map[string]any) { b["schedule"] = map[string]any{"kind": "cron", "cron": "0 9 30 2 *"} }),
			"schedule.kind":  with(func(b map[string]any) { b["schedule"] = map[string]any{"kind": "soon"} }),
			"holdout_pct":    with(func(b map[string]any) { b["holdout_pct"] = 90 }),
			"channel":        with(func(b map[string]any) { b["channel"] = "sms" }),
			"target":         with(func(b map[string]any) { b["target"] = map[string]any{} }),
			"gift.points":    with(func(b map[string]any) { b["gift"] = map[string]any{"points": -5} }),
			"name":           with(func(b map[string]any) { b["name"] = "" }),
			"message.text":   with(func(b map[string]any) { b["channel"] = "customer_service"; b["template_id"] = "" }),
			"unknown_option": with(func(b map[string]any) { b["unknown_option"] = 1 }),
		}
		for field, body := range cases {
			code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", body)
			if code != 400 || fieldsOf(out)[field] == nil {
				t.Errorf("%s: %d %v, want 400 naming it", field, code, out)
			}
		}
		var n int64
		gdb.Table("campaigns").Where("merchant_id = ?", a.merchantID).Count(&n)
		if n != 0 {
			t.Fatalf("%d campaigns written by bad input", n)
		}
		if code, _ := a.do(authz.RoleViewer, a.merchantID, "POST", "/api/admin/v1/campaigns", validBody(seg)); code != 403 {
			t.Fatalf("viewer creates a campaign: %d", code)
		}
	})
}

// The lifecycle through the API: draft → scheduled → running ⇄ paused →
// completed; editing a running campaign is refused; dry run, progress,
// deliveries and resend; another merchant's campaign is not found.
func TestCampaignLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		ids := a.seed(12, "life"+randHex(3))
		gdb.Exec("UPDATE members SET follow_status = 'unfollowed' WHERE id = ?", ids[0])
		gdb.Exec("INSERT INTO member_consents (merchant_id, member_id, channel, granted, updated_at) VALUES (?, ?, 'template', 0, ?)",
			a.merchantID, ids[1], a.now())
		seg := a.segment() // following members
		body := validBody(seg)
		body["target"] = map[string]any{"segment_id": seg, "exclude_tag_ids": []int{999}}
		code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", body)
		if code != 201 || out["status"] != "draft" {
			t.Fatalf("create: %d %v", code, out)
		}
		id := uint64(out["id"].(float64))
		path := fmt.Sprintf("/api/admin/v1/campaigns/%d", id)
		// Dry run: 11 following members; one withdrew template consent.
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", path+"/dry-run", nil)
		skipped, _ := out["skipped_by_reason"].(map[string]any)
		if code != 200 || out["targeted"] != 11.0 || out["would_get"] != 10.0 || skipped["no_consent"] != 1.0 {
			t.Fatalf("dry run: %d %v", code, out)
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "PATCH", path, map[string]any{"name": "Renamed"}); code != 200 {
			t.Fatalf("edit a draft: %d", code)
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/resume", nil); code != 409 {
			t.Fatalf("resume a draft: %d", code)
		}
		if code, out = a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/schedule", nil); code != 200 || out["status"] != "scheduled" {
			t.Fatalf("schedule: %d %v", code, out)
		}
		// The engine starts it; pause after the first round.
		if _, err := a.eng.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if code, out = a.do(authz.RoleMarketer, a.merchantID, "PATCH", path, map[string]any{"name": "Again"}); code != 409 {
			t.Fatalf("edit while running: %d %v", code, out)
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/pause", nil); code != 200 {
			t.Fatalf("pause: %d", code)
		}
		before := len(a.received())
		a.drain(a.eng)
		if len(a.received()) != before {
			t.Fatal("sent while paused")
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/resume", nil); code != 200 {
			t.Fatalf("resume: %d", code)
		}
		a.drain(a.eng)
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", path+"/progress", nil)
		prog, _ := out["progress"].(map[string]any)
		if code != 200 || prog["planned"] != 11.0 || prog["remaining"] != 0.0 || out["campaign"].(map[string]any)["status"] != "completed" {
			t.Fatalf("progress: %d %v", code, out)
		}
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", path+"/deliveries?status=sent&limit=5", nil)
		if code != 200 || len(out["deliveries"].([]any)) != 5 || out["next_before"] == nil {
			t.Fatalf("deliveries: %d %v", code, out)
		}
		for _, q := range []string{"?status=lost", "?limit=0", "?bogus=1", "?member_id=-1"} {
			if code, _ := a.do(authz.RoleViewer, a.merchantID, "GET", path+"/deliveries"+q, nil); code != 400 {
				t.Errorf("deliveries%s: %d", q, code)
			}
		}
		// Resend: nothing failed, so nothing to resend.
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/resend", map[string]any{"statuses": []string{"failed"}}); code != 422 {
			t.Fatalf("resend with nothing failed: %d", code)
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/resend", map[string]any{"statuses": []string{"sent"}}); code != 400 {
			t.Fatalf("resend sent rows: %d", code)
		}
		// Another merchant sees none of it.
		other := dbtest.NewMerchantID()
		for _, p := range []string{"", "/progress", "/deliveries", "/report"} {
			if code, _ := a.do(authz.RoleOwner, other, "GET", path+p, nil); code != 404 {
				t.Errorf("foreign GET %s: %d", p, code)
			}
		}
		if code, _ := a.do(authz.RoleOwner, other, "POST", path+"/cancel", nil); code != 404 {
			t.Error("foreign cancel")
		}
		if code, _ := a.do(authz.RoleOwner, a.merchantID, "POST", path+"/cancel", nil); code != 409 {
			t.Error("cancel a completed campaign")
		}
		var actions []string
		gdb.Table("audit_log").Where("merchant_id = ? AND target_type = 'campaign'", a.merchantID).Order("id").Pluck("action", &actions)
		if strings.Join(actions, ",") != "campaign.create,campaign.update,campaign.schedule,campaign.pause,campaign.resume" {
			t.Fatalf("audit: %v", actions)
		}
	})
}

// Orders after a message count for the campaign; the holdout shows what
// would have happened anyway.
func TestAttributionReport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		a.seed(200, "attr"+randHex(3))
		c := a.campaign(a.segment(), func(in *campaign.Input) {
			h := 30
			in.HoldoutPct = &h
			d := 7
			in.AttributionDays = &d
		})
		a.drain(a.eng)
		var reached, held []struct {
			MemberID uint64
			SentAt   *time.Time
		}
		gdb.Table("campaign_deliveries").Select("member_id, sent_at").Where("campaign_id = ? AND status = 'sent'", c.ID).Find(&reached)
		gdb.Table("campaign_deliveries").Select("member_id, sent_at").Where("campaign_id = ? AND status = 'holdout'", c.ID).Find(&held)
		if len(held) < 30 || len(held) > 90 {
			t.Fatalf("holdout of 30%% of 200: %d", len(held))
		}
		n := 0
		order := func(memberID uint64, at time.Time, amount, refunded int64) {
			n++
			if err := gdb.Exec("INSERT INTO points_orders (merchant_id, member_id, external_id, amount_fen, refunded_fen, points, "+
				"rule_version, earn_detail, ordered_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 1, '{}', ?, ?, ?)",
				a.merchantID, memberID, fmt.Sprintf("att-%d", n), amount, refunded, at, at, at).Error; err != nil {
				t.Fatal(err)
			}
		}
		sent := *reached[0].SentAt
		// 10 reached members buy within the week (one twice, one partly
		// refunded); one buys after the window, one before the message.
		for i := range 10 {
			order(reached[i].MemberID, sent.Add(time.Duration(i+1)*time.Hour), 1000, 0)
		}
		order(reached[0].MemberID, sent.Add(48*time.Hour), 500, 200)
		order(reached[10].MemberID, sent.Add(8*24*time.Hour), 9999, 0)
		order(reached[11].MemberID, sent.Add(-time.Hour), 9999, 0)
		// 3 holdout members buy within the week of the start.
		for i := range 3 {
			order(held[i].MemberID, sent.Add(time.Duration(i+2)*time.Hour), 700, 0)
		}
		code, out := a.do(authz.RoleViewer, a.merchantID, "GET", fmt.Sprintf("/api/admin/v1/campaigns/%d/report", c.ID), nil)
		tg, _ := out["targeted"].(map[string]any)
		ho, _ := out["holdout"].(map[string]any)
		if code != 200 || tg["members"] != float64(len(reached)) || tg["converted"] != 10.0 || tg["orders"] != 11.0 ||
			tg["revenue_fen"] != 10300.0 || ho["members"] != float64(len(held)) || ho["converted"] != 3.0 || ho["revenue_fen"] != 2100.0 {
			t.Fatalf("report: %d %v", code, out)
		}
		want := (10/float64(len(reached)) - 3/float64(len(held))) * 100
		if lift, _ := out["lift"].(float64); lift < want-1e-9 || lift > want+1e-9 {
			t.Fatalf("lift %v, want %v", out["lift"], want)
		}
	})
}

// Mini-program subscribe messages need a grant per send, which the
// mini-program records; customer-service messages need the 48-hour
// window.
func TestGrantsAndWindow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		ids := a.seed(3, "mp"+randHex(3))
		for i, id := range ids {
			openid := fmt.Sprintf("mp_%s_%d", randHex(3), i)
			gdb.Exec("UPDATE members SET mp_openid = ? WHERE id = ?", openid, id)
			sim.Grant(a.creds.MPAppID, openid, "MP_TPL", 5)
		}
		sim.AddTemplateContent(a.creds.MPAppID, "MP_TPL", "积分:{{number1.DATA}}\n{{thing2.DATA}}")
		// Member 0 grants twice, member 1 once, member 2 never.
		a.member = ids[0]
		for range 2 {
			if code, out := a.do("", 0, "POST", "/api/member/v1/1/subscriptions", map[string]any{"template_ids": []string{"MP_TPL"}}); code != 200 {
				t.Fatalf("grant: %d %v", code, out)
			}
		}
		a.member = ids[1]
		a.do("", 0, "POST", "/api/member/v1/1/subscriptions", map[string]any{"template_ids": []string{"MP_TPL"}})
		if code, _ := a.do("", 0, "POST", "/api/member/v1/1/subscriptions", map[string]any{"template_ids": []string{}}); code != 400 {
			t.Fatal("empty grant accepted")
		}
		mp := a.campaign(a.segment(), func(in *campaign.Input) {
			in.Channel, in.TemplateID = ptr(campaign.ChannelMPSubscribe), strPtr("MP_TPL")
			in.Message = &campaign.Message{Fields: map[string]string{"number1": "100", "thing2": "thanks"}, Page: "pages/index"}
		})
		a.drain(a.eng)
		st := a.statuses(mp.ID)
		if st[campaign.DeliverySent] != 2 || st[campaign.DeliverySkipped] != 1 {
			t.Fatalf("subscribe sends: %v", st)
		}
		var left []int
		gdb.Table("member_subscription_grants").Where("merchant_id = ?", a.merchantID).Order("member_id").Pluck("remaining", &left)
		if len(left) != 2 || left[0] != 1 || left[1] != 0 {
			t.Fatalf("grants left %v", left)
		}
		// Customer service: only members who interacted in the last 48 h.
		gdb.Exec("UPDATE members SET last_interaction_at = ? WHERE id = ?", a.now().Add(-72*time.Hour), ids[2])
		cs := a.campaign(a.segment(), func(in *campaign.Input) {
			in.Channel, in.TemplateID = ptr(campaign.ChannelCustomerService), strPtr("")
			in.Message = &campaign.Message{Text: "Hello {{name}}, your table is ready"}
		})
		a.drain(a.eng)
		st = a.statuses(cs.ID)
		if st[campaign.DeliverySent] != 2 || st[campaign.DeliverySkipped] != 1 {
			t.Fatalf("customer-service sends: %v", st)
		}
		var texts []string
		for _, s := range sim.Sent() {
			if s.AppID == a.creds.AppID && s.Kind == "custom" {
				texts = append(texts, s.Content)
			}
		}
		if len(texts) != 2 || !strings.HasPrefix(texts[0], "Hello m") {
			t.Fatalf("texts %v", texts)
		}

		// A subscribe send WeChat did not take gives its grant back until
		// the retry spends it. (A week later: the frequency cap allows it.)
		a.clock.Add(8 * 24 * time.Hour)
		t.Cleanup(sim.ClearFaults)
		again := a.campaign(a.segment(), func(in *campaign.Input) {
			in.Channel, in.TemplateID = ptr(campaign.ChannelMPSubscribe), strPtr("MP_TPL")
			in.Message = &campaign.Message{Fields: map[string]string{"number1": "100", "thing2": "again"}, Page: "pages/index"}
		})
		sim.Script("/cgi-bin/message/subscribe/send", wechattest.Fault{HTTPStatus: 502})
		a.drain(a.eng)
		remaining := func() int {
			var n int
			gdb.Table("member_subscription_grants").Where("merchant_id = ? AND member_id = ?", a.merchantID, ids[0]).
				Pluck("remaining", &n)
			return n
		}
		if st := a.statuses(again.ID); st[campaign.DeliveryPending] != 1 || remaining() != 1 {
			t.Fatalf("after a 502: %v, %d grants left", st, remaining())
		}
		a.clock.Add(time.Minute)
		a.drain(a.eng)
		if st := a.statuses(again.ID); st[campaign.DeliverySent] != 1 || remaining() != 0 {
			t.Fatalf("after the retry: %v, %d grants left", st, remaining())
		}
	})
}

var _ = http.StatusOK

// Ids and step numbers in queries outside what the API stores are 400s
// naming the parameter (they were 500s on SQLite), and a bad cron is
// explained in the API's words, not the parser's.
func TestQueryIDsAndCronAreCheckedInPlainWords(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		c := a.campaign(a.segment())
		for path, field := range map[string]string{
			"/api/admin/v1/campaigns?before=9223372036854775808":                                      "before",
			"/api/admin/v1/campaigns?before=007":                                                      "before",
			fmt.Sprintf("/api/admin/v1/campaigns/%d/deliveries?member_id=18446744073709551615", c.ID): "member_id",
			fmt.Sprintf("/api/admin/v1/campaigns/%d/deliveries?step=4294967297", c.ID):                "step",
			fmt.Sprintf("/api/admin/v1/campaigns/%d/report?step=-1", c.ID):                            "step",
		} {
			code, out := a.do(authz.RoleViewer, a.merchantID, "GET", path, nil)
			if code != 400 || fieldsOf(out)[field] == nil {
				t.Errorf("GET %s: %d %v, want 400 naming %s", path, code, out, field)
			}
		}
		body := validBody(a.segment())
		body["schedule"] = map[string]any{"kind": "cron", "cron": "0 x * * *"}
		code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", body)
		reason, _ := fieldsOf(out)["schedule.cron"].(string)
		if code != 400 || reason == "" || strings.Contains(reason, "strconv") || strings.Contains(reason, "Atoi") {
			t.Fatalf("bad cron: %d %v", code, out)
		}
	})
}
