package campaign_test

import (
	"fmt"
	"testing"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// A member's messages are the deliveries that reached them, newest first:
// a campaign the member was capped out of is not among them; paging by
// before; to another merchant the member is not found; bad paging names its field.
func TestMemberMessages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAPI(t, gdb)
		merchants.mu.Lock()
		merchants.caps[a.merchantID] = [2]int{2, 7}
		merchants.mu.Unlock()
		ids := a.seed(3, "msgs"+randHex(3))
		seg := a.segment()
		var camps []campaign.Campaign
		for i := range 3 {
			camps = append(camps, a.campaign(seg, func(in *campaign.Input) { in.Name = strPtr(fmt.Sprintf("Sale %d", i+1)) }))
			a.drain(a.eng)
		}
		if st := a.statuses(camps[2].ID); st[campaign.DeliverySkipped] != 3 {
			t.Fatalf("the third campaign should be capped: %v", st)
		}
		path := fmt.Sprintf("/api/admin/v1/members/%d/messages", ids[0])
		code, out := a.do(authz.RoleViewer, a.merchantID, "GET", path+"?limit=1", nil)
		list, _ := out["messages"].([]any)
		if code != 200 || len(list) != 1 || out["next_before"] == nil {
			t.Fatalf("page 1: %d %v", code, out)
		}
		first := list[0].(map[string]any)
		if first["campaign_name"] != "Sale 2" || first["kind"] != "marketing" || first["channel"] != "template" ||
			first["status"] != "sent" || first["sent_at"] == nil || first["delivered_at"] != nil || first["care_rule_name"] != nil {
			t.Fatalf("newest message: %v", first)
		}
		code, out = a.do(authz.RoleViewer, a.merchantID, "GET", fmt.Sprintf("%s?before=%d", path, uint64(out["next_before"].(float64))), nil)
		list, _ = out["messages"].([]any)
		if code != 200 || len(list) != 1 || list[0].(map[string]any)["campaign_name"] != "Sale 1" || out["next_before"] != nil {
			t.Fatalf("page 2: %d %v", code, out)
		}
		// To another merchant's staff the member does not exist.
		if code, out = a.do(authz.RoleOwner, dbtest.NewMerchantID(), "GET", path, nil); code != 404 {
			t.Fatalf("foreign: %d %v", code, out)
		}
		for q, field := range map[string]string{"?limit=0": "limit", "?before=x": "before"} {
			code, out = a.do(authz.RoleViewer, a.merchantID, "GET", path+q, nil)
			if code != 400 || fieldsOf(out)[field] == nil {
				t.Errorf("%s: %d %v", q, code, out)
			}
		}
		if code, _ := a.do(authz.RoleViewer, a.merchantID, "GET", path+"?bogus=1", nil); code != 400 {
			t.Errorf("unknown parameter: %d", code)
		}
		if code, _ := a.do(authz.RoleViewer, a.merchantID, "GET", "/api/admin/v1/members/abc/messages", nil); code != 404 {
			t.Errorf("non-numeric id: %d", code)
		}
	})
}
