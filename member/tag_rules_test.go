package member_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

type tagRuleAPI struct {
	*adminAPI
	rules *member.TagRules
}

func newTagRuleAPI(t *testing.T, gdb *gorm.DB) *tagRuleAPI {
	a := newAdminAPI(t, gdb, member.AdminOptions{})
	segs := member.NewSegments(gdb, fixedZone{shanghai}, a.clock.Now)
	tr := member.NewTagRules(gdb, segs, a.clock.Now, quiet)
	a.svc.OnProfileChange(tr.MarkPending)
	member.NewTagRuleHandler(tr).Register(a.engine.Group(adminPrefix, audit.NewRecorder(gdb, a.clock.Now).Track()))
	// The MySQL database is shared: later tests' passes must not evaluate
	// this merchant's rules.
	t.Cleanup(func() { gdb.Exec("UPDATE tag_rules SET enabled = 0 WHERE merchant_id = ?", a.merchantID) })
	return &tagRuleAPI{adminAPI: a, rules: tr}
}

// holders returns the members holding the tag.
func (a *tagRuleAPI) holders(tagID uint64) string {
	var ids []uint64
	a.db.Table("member_tags").Where("merchant_id = ? AND tag_id = ?", a.merchantID, tagID).Order("member_id").Pluck("member_id", &ids)
	return fmt.Sprint(ids)
}

func (a *tagRuleAPI) pending() {
	a.t.Helper()
	if _, err := a.rules.RunPending(context.Background(), 500); err != nil {
		a.t.Fatalf("pending tag rules: %v", err)
	}
}

// history returns the member's tag events, oldest first, as
// "action:tag:cause".
func (a *tagRuleAPI) history(memberID uint64) []string {
	a.t.Helper()
	var out struct{ Events []member.TagEvent }
	a.ok("GET", fmt.Sprintf("/members/%d/tag-history", memberID), nil, &out)
	var h []string
	for i := len(out.Events) - 1; i >= 0; i-- {
		e := out.Events[i]
		h = append(h, fmt.Sprintf("%s:%d:%s", e.Action, e.TagID, e.Cause))
	}
	return h
}

// A tag rule keeps its tag on exactly the members it matches: applied when
// saved; on a profile edit (the change marks the member, the pending pass
// evaluates); by the nightly pass after the attributes (a change no event
// announced); each gain and loss in the member's tag history, once.
func TestTagRulesGainAndLose(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newTagRuleAPI(t, gdb)
		a.clock.Set(time.Date(2026, 11, 23, 14, 0, 0, 0, shanghai))
		m1 := a.add(member.Member{Name: "Li", Gender: member.GenderFemale, OAOpenID: ptr("o_tr1_" + randHex(4))})
		m2 := a.add(member.Member{Name: "Wang", Gender: member.GenderMale, OAOpenID: ptr("o_tr2_" + randHex(4))})
		m3 := a.add(member.Member{Name: "Zhao", Gender: member.GenderMale, OAOpenID: ptr("o_tr3_" + randHex(4))})
		gdb.Exec("UPDATE members SET total_spend_fen = 200000 WHERE id = ?", m3.ID)
		ladies, big := a.tag("ladies"), a.tag("big spender")
		a.assign(ladies, m3.ID) // by hand: the rule takes it back

		// Bad input names its field and saves nothing.
		fails(t, a.do(a.owner(), "POST", "/tag-rules", map[string]any{"tag_id": ladies,
			"rule": map[string]any{"field": "tags", "op": "has_any", "value": []uint64{ladies}}}), 400, "rule")
		fails(t, a.do(a.owner(), "POST", "/tag-rules", map[string]any{"tag_id": ladies + 1000,
			"rule": map[string]any{"field": "gender", "op": "eq", "value": "female"}}), 400, "tag_id")
		fails(t, a.do(a.owner(), "POST", "/tag-rules", map[string]any{"tag_id": ladies,
			"rule": map[string]any{"field": "gender", "op": "eq", "value": "robot"}}), 400, "")
		if a.holders(ladies) != fmt.Sprint([]uint64{m3.ID}) {
			t.Fatalf("a refused rule changed the tag: %s", a.holders(ladies))
		}

		var pv member.TagRulePreview
		a.ok("POST", "/tag-rules/preview", map[string]any{"tag_id": ladies,
			"rule": map[string]any{"field": "gender", "op": "eq", "value": "female"}}, &pv)
		if pv.Count != 1 || pv.WouldGain != 1 || pv.WouldLose != 1 {
			t.Fatalf("preview %+v", pv)
		}
		var rule member.TagRuleView
		a.ok("POST", "/tag-rules", map[string]any{"tag_id": ladies,
			"rule": map[string]any{"field": "gender", "op": "eq", "value": "female"}}, &rule)
		if got := a.holders(ladies); got != fmt.Sprint([]uint64{m1.ID}) {
			t.Fatalf("after saving the rule: %s", got)
		}
		fails(t, a.do(a.owner(), "POST", "/tag-rules", map[string]any{"tag_id": ladies,
			"rule": map[string]any{"field": "gender", "op": "eq", "value": "male"}}), 409, "")

		// On an event: profile edits.
		a.ok("PATCH", fmt.Sprintf("/members/%d", m2.ID), map[string]any{"gender": "female"}, nil)
		a.ok("PATCH", fmt.Sprintf("/members/%d", m1.ID), map[string]any{"gender": "male"}, nil)
		if got := a.holders(ladies); got != fmt.Sprint([]uint64{m1.ID}) {
			t.Fatalf("before the pending pass: %s", got)
		}
		a.pending()
		a.pending() // nothing left: nothing twice
		if got := a.holders(ladies); got != fmt.Sprint([]uint64{m2.ID}) {
			t.Fatalf("after the profile edits: %s", got)
		}

		// On the nightly pass: spend moved without an event.
		a.ok("POST", "/tag-rules", map[string]any{"tag_id": big,
			"rule": map[string]any{"field": "total_spend_fen", "op": "gte", "value": 100000}}, nil)
		if got := a.holders(big); got != fmt.Sprint([]uint64{m3.ID}) {
			t.Fatalf("big spenders: %s", got)
		}
		gdb.Exec("UPDATE members SET total_spend_fen = 0 WHERE id = ?", m3.ID)
		gdb.Exec("UPDATE members SET total_spend_fen = 500000 WHERE id = ?", m2.ID)
		a.clock.Set(time.Date(2026, 11, 24, 3, 30, 0, 0, shanghai))
		if n, err := a.rules.RunNightly(context.Background()); err != nil || n != 0 {
			t.Fatalf("nightly before the attributes: %d %v", n, err)
		}
		done := a.clock.Now()
		gdb.Create(&member.JobRun{MerchantID: a.merchantID, Job: "attributes", RunKey: "2026-11-24", Owner: "t",
			StartedAt: done, FinishedAt: &done})
		for i := range 2 {
			n, err := a.rules.RunNightly(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				if n != 0 {
					t.Fatalf("the nightly pass ran twice for one date")
				}
				continue
			}
			if n < 1 {
				t.Fatal("the nightly pass did not run")
			}
		}
		if got := a.holders(big); got != fmt.Sprint([]uint64{m2.ID}) {
			t.Fatalf("big spenders after the nightly pass: %s", got)
		}

		want := map[uint64][]string{
			m1.ID: {fmt.Sprintf("gained:%d:rule_saved", ladies), fmt.Sprintf("lost:%d:change", ladies)},
			m2.ID: {fmt.Sprintf("gained:%d:change", ladies), fmt.Sprintf("gained:%d:nightly", big)},
			m3.ID: {fmt.Sprintf("lost:%d:rule_saved", ladies), fmt.Sprintf("gained:%d:rule_saved", big), fmt.Sprintf("lost:%d:nightly", big)},
		}
		for id, w := range want {
			if got := a.history(id); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("history of %d: %v, want %v", id, got, w)
			}
		}

		// Disabled, the rule leaves the tag alone; deleted, the tag stays.
		a.ok("PATCH", fmt.Sprintf("/tag-rules/%d", rule.ID), map[string]any{"enabled": false}, nil)
		a.ok("PATCH", fmt.Sprintf("/members/%d", m1.ID), map[string]any{"gender": "female"}, nil)
		a.pending()
		if got := a.holders(ladies); got != fmt.Sprint([]uint64{m2.ID}) {
			t.Fatalf("a disabled rule moved the tag: %s", got)
		}
		if w := a.do(a.owner(), "DELETE", fmt.Sprintf("/tag-rules/%d", rule.ID), nil); w.Code != http.StatusNoContent {
			t.Fatalf("delete: %d", w.Code)
		}
		fails(t, a.do(a.owner(), "GET", fmt.Sprintf("/tag-rules/%d", rule.ID), nil), 404, "")
		var list struct {
			TagRules []member.TagRuleView `json:"tag_rules"`
		}
		a.ok("GET", "/tag-rules", nil, &list)
		if len(list.TagRules) != 1 || list.TagRules[0].TagID != big || list.TagRules[0].TagName != "big spender" {
			t.Fatalf("rules %+v", list.TagRules)
		}
	})
}

// An order tells several hooks (facts, points, stage): the member is marked
// once per transaction, and a mark of a rolled-back transaction is gone
// with it. The pending pass clears marks in bulk, however many.
func TestTagMarksOncePerTransactionClearedInBulk(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newTagRuleAPI(t, gdb)
		m := a.add(member.Member{Name: "Li", OAOpenID: ptr("o_tm_" + randHex(4))})
		ctx := context.Background()
		mark := func(rollback bool) {
			err := gdb.Transaction(func(tx *gorm.DB) error {
				for range 3 {
					if err := a.rules.MarkPending(ctx, tx, a.merchantID, m.ID); err != nil {
						return err
					}
				}
				if rollback {
					return errRolledBack
				}
				return nil
			})
			if err != nil && !rollback {
				t.Fatal(err)
			}
		}
		version := func() (v int64) {
			gdb.Raw("SELECT COALESCE(MAX(version), 0) FROM member_tag_pending WHERE merchant_id = ? AND member_id = ?", a.merchantID, m.ID).Scan(&v)
			return v
		}
		mark(true)
		if v := version(); v != 0 {
			t.Fatalf("a rolled-back transaction left a mark (version %d)", v)
		}
		mark(false)
		if v := version(); v != 1 {
			t.Fatalf("three marks in one transaction: version %d, want 1", v)
		}
		mark(false)
		if v := version(); v != 2 {
			t.Fatalf("a second transaction: version %d, want 2", v)
		}

		const extra = 600 // more than one DELETE clears
		for i := range extra {
			gdb.Exec("INSERT INTO member_tag_pending (merchant_id, member_id, marked_at, version) VALUES (?, ?, ?, 1)",
				a.merchantID, 1_000_000_000+uint64(i), a.clock.Now())
		}
		count := func() (n int64) {
			gdb.Raw("SELECT COUNT(*) FROM member_tag_pending WHERE merchant_id = ?", a.merchantID).Scan(&n)
			return n
		}
		if n := count(); n != extra+1 {
			t.Fatalf("%d marks, want %d", n, extra+1)
		}
		for range 50 {
			if count() == 0 {
				break
			}
			if _, err := a.rules.RunPending(ctx, 500); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(); n != 0 {
			t.Fatalf("%d marks left after the pending passes", n)
		}
	})
}

var errRolledBack = errors.New("rolled back")
