package campaign_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// An all-members campaign needs no segment: its dry run counts every
// member of the merchant (and no other merchant's), skips by reason, and
// its send reaches every following member. all_members with a segment is
// refused, naming the field.
func TestAllMembersAudience(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		ids := a.seed(6, "all"+randHex(3))
		gdb.Exec("UPDATE members SET follow_status = 'unfollowed' WHERE id = ?", ids[0])
		other := newEnv(t, gdb)
		other.seed(3, "oth"+randHex(3))
		body := validBody(0)
		body["target"] = map[string]any{"all_members": true, "segment_id": a.segment()}
		if code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", body); code != 400 ||
			fieldsOf(out)["target.all_members"] == nil {
			t.Fatalf("all_members with a segment: %d %v", code, out)
		}
		body["target"] = map[string]any{"all_members": true}
		code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", body)
		if code != 201 || out["target"].(map[string]any)["all_members"] != true {
			t.Fatalf("create: %d %v", code, out)
		}
		path := fmt.Sprintf("/api/admin/v1/campaigns/%v", out["id"])
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", path+"/dry-run", nil)
		skipped, _ := out["skipped_by_reason"].(map[string]any)
		if code != 200 || out["targeted"] != 6.0 || out["would_get"] != 5.0 || skipped["not_following"] != 1.0 {
			t.Fatalf("dry run: %d %v", code, out)
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/schedule", nil); code != 200 {
			t.Fatalf("schedule: %d", code)
		}
		a.drain(a.eng)
		if got := len(a.received()); got != 5 {
			t.Fatalf("%d members got it, want the 5 following", got)
		}
	})
}

// Fallbacks: {{name|亲爱的会员}} renders the member's name, or the fallback
// when the name is empty, in the preview (for a real member, with the
// template's content filled) and in what WeChat receives. A malformed
// fallback is refused.
func TestMessageFallbacks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		prefix := "fb" + randHex(3)
		ids := a.seed(2, prefix)
		gdb.Exec("UPDATE members SET name = '' WHERE id = ?", ids[0])
		msg := map[string]any{"fields": map[string]string{"first": "你好，{{name|亲爱的会员}}", "keyword1": "{{ name }}!"}}
		preview := func(member uint64) map[string]any {
			t.Helper()
			code, out := a.do(authz.RoleViewer, a.merchantID, "POST", "/api/admin/v1/campaigns/preview",
				map[string]any{"channel": "template", "template_id": template, "message": msg, "member_id": member})
			if code != 200 {
				t.Fatalf("preview: %d %v", code, out)
			}
			return out
		}
		p := preview(ids[0])
		fields := p["fields"].(map[string]any)
		if fields["first"] != "你好，亲爱的会员" || fields["keyword1"] != "!" || p["member_id"] != float64(ids[0]) {
			t.Fatalf("preview of a nameless member: %v", p)
		}
		if c := p["content"].(string); !strings.HasPrefix(c, "你好，亲爱的会员\n会员：!") {
			t.Fatalf("content: %q", c)
		}
		if f := preview(ids[1])["fields"].(map[string]any); f["first"] != "你好，m1" || f["keyword1"] != "m1!" {
			t.Fatalf("preview of m1: %v", f)
		}
		if code, out := a.do(authz.RoleViewer, a.merchantID, "POST", "/api/admin/v1/campaigns/preview",
			map[string]any{"channel": "template", "template_id": template, "message": msg, "member_id": 1 << 40}); code != 400 ||
			fieldsOf(out)["member_id"] == nil {
			t.Fatalf("preview for a stranger: %d %v", code, out)
		}
		bad := validBody(a.segment())
		bad["message"] = map[string]any{"fields": map[string]string{"first": "{{name|a{b}}"}}
		if code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", bad); code != 400 ||
			fieldsOf(out)["message.fields.first"] == nil {
			t.Fatalf("malformed fallback: %d %v", code, out)
		}
		body := validBody(a.segment())
		body["message"] = msg
		code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", body)
		if code != 201 {
			t.Fatalf("create: %d %v", code, out)
		}
		path := fmt.Sprintf("/api/admin/v1/campaigns/%v", out["id"])
		if code, out := a.do(authz.RoleViewer, a.merchantID, "GET", fmt.Sprintf("%s/preview?member_id=%d", path, ids[0]), nil); code != 200 ||
			out["fields"].(map[string]any)["first"] != "你好，亲爱的会员" {
			t.Fatalf("saved campaign's preview: %d %v", code, out)
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", path+"/schedule", nil); code != 200 {
			t.Fatal("schedule")
		}
		a.drain(a.eng)
		got := map[string]string{}
		for _, s := range sim.Sent() {
			if s.AppID == a.creds.AppID && strings.HasPrefix(s.ToUser, "o_"+prefix) {
				got[s.ToUser] = s.Data["first"]
			}
		}
		if got["o_"+prefix+"_0"] != "你好，亲爱的会员" || got["o_"+prefix+"_1"] != "你好，m1" {
			t.Fatalf("WeChat received %v", got)
		}
	})
}

// The account's templates come from WeChat with their fields; a cron's
// next five runs are told in the merchant's zone with the limits that
// apply.
func TestTemplatesAndSchedulePreview(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		sim.AddTemplateTitled(a.creds.AppID, "TPL_TITLED", "会员生日提醒", "{{first.DATA}}\n生日：{{keyword1.DATA}}\n{{remark.DATA}}")
		code, out := a.do(authz.RoleViewer, a.merchantID, "GET", "/api/admin/v1/campaigns/templates", nil)
		if code != 200 {
			t.Fatalf("templates: %d %v", code, out)
		}
		var titled map[string]any
		for _, tp := range out["templates"].([]any) {
			if tp.(map[string]any)["id"] == "TPL_TITLED" {
				titled = tp.(map[string]any)
			}
		}
		if titled == nil || titled["title"] != "会员生日提醒" || fmt.Sprint(titled["fields"]) != "[first keyword1 remark]" ||
			!slices.Contains(out["variables"].([]any), any("name")) {
			t.Fatalf("templates: %v", out)
		}
		if code, out := a.do(authz.RoleViewer, a.merchantID, "GET", "/api/admin/v1/campaigns/templates?channel=sms", nil); code != 400 ||
			fieldsOf(out)["channel"] == nil {
			t.Fatalf("templates of a bad channel: %d %v", code, out)
		}
		// The clock: Monday 2026-11-23 14:00 in Shanghai.
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", "/api/admin/v1/campaigns/schedule-preview?cron=0+9+*+*+1", nil)
		want := "[2026-11-30T01:00:00Z 2026-12-07T01:00:00Z 2026-12-14T01:00:00Z 2026-12-21T01:00:00Z 2026-12-28T01:00:00Z]"
		if code != 200 || fmt.Sprint(out["next_runs"]) != want || out["time_zone"] != "Asia/Shanghai" || out["frequency_cap"] != 2.0 {
			t.Fatalf("schedule preview: %d %v", code, out)
		}
		if code, out := a.do(authz.RoleViewer, a.merchantID, "GET", "/api/admin/v1/campaigns/schedule-preview?cron=61+*+*+*+*", nil); code != 400 ||
			fieldsOf(out)["cron"] == nil {
			t.Fatalf("bad cron: %d %v", code, out)
		}
	})
}

// A birthday rule's next sends name the member whose birthday is today
// and the one in two days (before the rule is even enabled); the calendar
// shows a campaign scheduled at a time on its local day, a recurring
// campaign's runs and the enabled rule's coming days.
func TestNextSendsAndCalendar(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		ids := a.seed(3, "cal"+randHex(3))
		gdb.Exec("UPDATE members SET birthday_month = 11, birthday_day = 23, name = 'today' WHERE id = ?", ids[0])
		gdb.Exec("UPDATE members SET birthday_month = 11, birthday_day = 25 WHERE id = ?", ids[1])
		code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/care-rules", map[string]any{"kind": "birthday",
			"channel": "template", "template_id": template, "send_minute": 20 * 60,
			"message": map[string]any{"fields": map[string]string{"first": "生日快乐，{{name|亲爱的会员}}"}}})
		if code != 201 {
			t.Fatalf("care rule: %d %v", code, out)
		}
		rule := fmt.Sprintf("/api/admin/v1/care-rules/%v", out["id"])
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", rule+"/next-sends?days=7", nil)
		days, _ := out["days"].([]any)
		if code != 200 || len(days) != 2 {
			t.Fatalf("next sends: %d %v", code, out)
		}
		first, second := days[0].(map[string]any), days[1].(map[string]any)
		sample := first["sample"].([]any)
		if first["date"] != "2026-11-23" || first["send_at"] != "2026-11-23T12:00:00Z" || first["members"] != 1.0 ||
			len(sample) != 1 || sample[0].(map[string]any)["name"] != "today" || second["date"] != "2026-11-25" {
			t.Fatalf("next sends: %v", days)
		}
		if code, out := a.do(authz.RoleViewer, a.merchantID, "GET", rule+"/next-sends?days=99", nil); code != 400 || fieldsOf(out)["days"] == nil {
			t.Fatalf("99 days: %d %v", code, out)
		}
		if code, _ := a.do(authz.RoleMarketer, a.merchantID, "PATCH", rule, map[string]any{"enabled": true}); code != 200 {
			t.Fatalf("enable: %d", code)
		}
		seg := a.segment()
		at := validBody(seg)
		at["name"] = "Thursday sale"
		at["schedule"] = map[string]any{"kind": "at", "send_at": "2026-11-26T02:30:00Z"} // 10:30 on the 26th in Shanghai
		daily := validBody(seg)
		daily["name"] = "Daily digest"
		daily["schedule"] = map[string]any{"kind": "cron", "cron": "0 9 * * *"}
		for _, b := range []map[string]any{at, daily} {
			code, out := a.do(authz.RoleMarketer, a.merchantID, "POST", "/api/admin/v1/campaigns", b)
			if code != 201 {
				t.Fatalf("create: %d %v", code, out)
			}
			if code, _ := a.do(authz.RoleMarketer, a.merchantID, "POST", fmt.Sprintf("/api/admin/v1/campaigns/%v/schedule", out["id"]), nil); code != 200 {
				t.Fatal("schedule")
			}
		}
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", "/api/admin/v1/campaign-calendar?from=2026-11-23&to=2026-11-27", nil)
		if code != 200 {
			t.Fatalf("calendar: %d %v", code, out)
		}
		var got []string
		for _, e := range out["entries"].([]any) {
			e := e.(map[string]any)
			got = append(got, fmt.Sprintf("%v %v %v %v", e["date"], e["kind"], e["name"], e["status"]))
		}
		want := []string{"2026-11-23 care Birthday planned", "2026-11-24 campaign Daily digest scheduled",
			"2026-11-25 campaign Daily digest planned", "2026-11-25 care Birthday planned",
			"2026-11-26 campaign Daily digest planned", "2026-11-26 campaign Thursday sale scheduled",
			"2026-11-27 campaign Daily digest planned"}
		if !slices.Equal(got, want) {
			t.Fatalf("calendar:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if code, out := a.do(authz.RoleViewer, a.merchantID, "GET", "/api/admin/v1/campaign-calendar?from=2026-11-23&to=2027-03-01", nil); code != 400 ||
			fieldsOf(out)["to"] == nil {
			t.Fatalf("a long range: %d %v", code, out)
		}
	})
}
