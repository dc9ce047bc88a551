package main

import (
	"context"
	"fmt"
	"testing"
)

// Auto-tagging through the service: an order marks the buyer in the
// order's transaction and the pending pass gives the tag; a full refund
// takes it back; both are in the member's tag history.
func TestTagRuleFollowsOrdersAndRefunds(t *testing.T) {
	eachBackendName(t, testTagRuleFollowsOrdersAndRefunds)
}

func testTagRuleFollowsOrdersAndRefunds(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	token := a.login()
	var followed struct {
		MemberID uint64 `json:"member_id"`
	}
	if st := a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{"scene": "tags"}, &followed); st != 200 {
		t.Fatalf("follow: %d", st)
	}
	var tag struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/tags", token, map[string]any{"name": "spender"}, &tag); st != 201 {
		t.Fatalf("tag: %d", st)
	}
	var rule struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/tag-rules", token, map[string]any{"tag_id": tag.ID,
		"rule": map[string]any{"field": "total_spend_fen", "op": "gte", "value": 10000}}, &rule); st != 201 {
		t.Fatalf("rule: %d", st)
	}
	holds := func() int64 {
		return a.count("member_tags", "tag_id = ? AND member_id = ?", tag.ID, followed.MemberID)
	}
	pending := func() {
		t.Helper()
		for a.count("member_tag_pending", "member_id = ?", followed.MemberID) > 0 {
			if _, err := a.tagRules.RunPending(context.Background(), 500); err != nil {
				t.Fatal(err)
			}
		}
	}
	if holds() != 0 {
		t.Fatal("tagged before buying")
	}
	if st := a.call("POST", "/api/admin/v1/orders", token, map[string]any{"external_id": "tag-1", "member_id": followed.MemberID,
		"amount_fen": 20000}, nil); st != 201 {
		t.Fatalf("order: %d", st)
	}
	if a.count("member_tag_pending", "member_id = ?", followed.MemberID) != 1 {
		t.Fatal("the order did not mark the member")
	}
	pending()
	if holds() != 1 {
		t.Fatal("the order did not give the tag")
	}
	if st := a.call("POST", "/api/admin/v1/orders/tag-1/refunds", token, map[string]any{"refund_id": "r1", "amount_fen": 20000}, nil); st/100 != 2 {
		t.Fatalf("refund: %d", st)
	}
	pending()
	if holds() != 0 {
		t.Fatal("the refund did not take the tag")
	}
	var hist struct {
		Events []struct {
			Action string `json:"action"`
			Cause  string `json:"cause"`
		} `json:"events"`
	}
	if st := a.call("GET", fmt.Sprintf("/api/admin/v1/members/%d/tag-history", followed.MemberID), token, nil, &hist); st != 200 {
		t.Fatalf("history: %d", st)
	}
	if fmt.Sprint(hist.Events) != "[{lost change} {gained change}]" {
		t.Fatalf("history %v", hist.Events)
	}
}
