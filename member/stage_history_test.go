package member_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// The stage history lists a member's transitions newest first, pages by
// before, does not find another merchant's member, and refuses bad
// paging with its field.
func TestAdminStageHistory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newAdminAPI(t, gdb, member.AdminOptions{})
		m := a.add(member.Member{Name: "stages"})
		other := a.add(member.Member{MerchantID: a.otherID, Name: "theirs"})
		at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
		flow := [][3]string{{"potential", "new", "first_purchase"}, {"new", "repeat", "bought_again"}, {"repeat", "at_risk", "idle_past_at_risk"}}
		for i, f := range flow {
			if err := gdb.Create(&member.StageEvent{MerchantID: a.merchantID, MemberID: m.ID, FromStage: f[0], ToStage: f[1],
				Reason: f[2], OccurredAt: at.AddDate(0, i, 0)}).Error; err != nil {
				t.Fatal(err)
			}
		}
		gdb.Create(&member.StageEvent{MerchantID: a.otherID, MemberID: other.ID, FromStage: "potential", ToStage: "new",
			Reason: "first_purchase", OccurredAt: at})

		type page struct {
			Changes []member.StageChange `json:"stage_changes"`
			Next    *uint64              `json:"next_before"`
		}
		var p page
		a.ok("GET", fmt.Sprintf("/members/%d/stage-history?limit=2", m.ID), nil, &p)
		if len(p.Changes) != 2 || p.Changes[0].ToStage != "at_risk" || p.Changes[1].ToStage != "repeat" || p.Next == nil ||
			!p.Changes[0].OccurredAt.Equal(at.AddDate(0, 2, 0)) {
			t.Fatalf("page 1: %+v", p)
		}
		var p2 page
		a.ok("GET", fmt.Sprintf("/members/%d/stage-history?limit=2&before=%d", m.ID, *p.Next), nil, &p2)
		if len(p2.Changes) != 1 || p2.Changes[0].FromStage != "potential" || p2.Changes[0].Reason != "first_purchase" || p2.Next != nil {
			t.Fatalf("page 2: %+v", p2)
		}
		// A viewer may read it; another merchant's member has none.
		if w := a.do(a.staff(authz.RoleViewer), "GET", fmt.Sprintf("/members/%d/stage-history", m.ID), nil); w.Code != http.StatusOK {
			t.Fatalf("viewer: %d", w.Code)
		}
		fails(t, a.do(a.owner(), "GET", fmt.Sprintf("/members/%d/stage-history", other.ID), nil), http.StatusNotFound, "")
		fails(t, a.do(a.owner(), "GET", fmt.Sprintf("/members/%d/stage-history?limit=0", m.ID), nil), http.StatusBadRequest, "limit")
		fails(t, a.do(a.owner(), "GET", fmt.Sprintf("/members/%d/stage-history?before=x", m.ID), nil), http.StatusBadRequest, "before")
		fails(t, a.do(a.owner(), "GET", fmt.Sprintf("/members/%d/stage-history?bogus=1", m.ID), nil), http.StatusBadRequest, "")
		fails(t, a.do(a.owner(), "GET", "/members/abc/stage-history", nil), http.StatusNotFound, "")
		fails(t, a.do(a.apiKey(authz.OrdersWrite), "GET", fmt.Sprintf("/members/%d/stage-history", m.ID), nil), http.StatusForbidden, "")
	})
}
