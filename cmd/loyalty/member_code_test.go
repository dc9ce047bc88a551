package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/member"
)

// startWithMember starts the service on backend and signs in its owner
// and a new mini-program member: the staff token, the member's token and
// the member's profile id.
func startWithMember(t *testing.T, backend string) (a *testApp, staff, memberToken string, me struct{ ID uint64 }) {
	t.Helper()
	a = startAppOn(t, onBackend(t, backend))
	staff = a.login()
	memberToken = a.memberToken(staff)
	if st := a.call("GET", fmt.Sprintf("/api/member/v1/%d/profile", a.merchant), memberToken, nil, &me); st != 200 || me.ID == 0 {
		t.Fatalf("profile: %d", st)
	}
	return a, staff, memberToken, me
}

// codeIssuedAgo returns a member code of the app's key for the member of
// the merchant, issued ago.
func (a *testApp) codeIssuedAgo(merchantID, memberID uint64, ago time.Duration) string {
	a.t.Helper()
	c, err := member.NewCodes(a.db, a.keys.SigningKey("member-code"), func() time.Time { return time.Now().Add(-ago) }).
		Issue(merchantID, memberID)
	if err != nil {
		a.t.Fatal(err)
	}
	return c.Code
}

// The member code at the till: the member's app fetches a fresh code,
// staff resolve it to the member, and a POS names the buyer of an order by
// it, once: the same order may be posted again, another order may not use
// it. An expired code, a forged one and another merchant's are refused
// with 400 naming member_code, and nothing is stored.
func TestMemberCodeAtTheTill(t *testing.T) { eachBackendName(t, testMemberCodeAtTheTill) }

func testMemberCodeAtTheTill(t *testing.T, backend string) {
	a, staff, mt, me := startWithMember(t, backend)
	base := fmt.Sprintf("/api/member/v1/%d", a.merchant)
	var code struct {
		Code         string    `json:"code"`
		ExpiresAt    time.Time `json:"expires_at"`
		RefreshAfter time.Time `json:"refresh_after"`
	}
	if st := a.call("GET", base+"/member-code", mt, nil, &code); st != 200 || !strings.HasPrefix(code.Code, "M") ||
		!code.RefreshAfter.Before(code.ExpiresAt) || time.Until(code.ExpiresAt) > member.MemberCodeTTL {
		t.Fatalf("member code: %d %+v", st, code)
	}
	if st := a.call("GET", base+"/member-code", "", nil, nil); st != 401 {
		t.Fatalf("member code without a token: %d", st)
	}

	// Staff resolve it (lower case, as some scanners type it) without
	// spending it.
	var resolved struct {
		Member        struct{ ID uint64 }
		CodeExpiresAt time.Time `json:"code_expires_at"`
	}
	for range 2 {
		if st := a.call("POST", "/api/admin/v1/member-codes/resolve", staff, map[string]string{"member_code": strings.ToLower(code.Code)},
			&resolved); st != 200 || resolved.Member.ID != me.ID || !resolved.CodeExpiresAt.Equal(code.ExpiresAt) {
			t.Fatalf("resolve: %d %+v, want member %d", st, resolved, me.ID)
		}
	}

	var order struct {
		Order struct {
			MemberID uint64 `json:"member_id"`
		}
		Replayed bool
	}
	post := func(externalID, code string, out any) int {
		t.Helper()
		return a.call("POST", "/api/admin/v1/orders", staff, map[string]any{"external_id": externalID, "member_code": code,
			"amount_fen": 8800}, out)
	}
	if st := post("till-1", code.Code, &order); st != 201 || order.Order.MemberID != me.ID {
		t.Fatalf("order by member code: %d %+v", st, order)
	}
	if st := post("till-1", code.Code, &order); st != 200 || !order.Replayed || order.Order.MemberID != me.ID {
		t.Fatalf("the same order again: %d %+v", st, order)
	}
	var e errorBody
	if st := post("till-2", code.Code, &e); st != 409 || e.Error.Code != "conflict" {
		t.Fatalf("a second order with the same code: %d %+v, want 409", st, e)
	}
	if n := a.count("points_orders", "external_id = ?", "till-2"); n != 0 {
		t.Fatal("the replayed code made an order")
	}

	// Refused codes: 400 naming member_code, for orders and for staff.
	other, err := a.merchants.Create(context.Background(), adminSandboxInput("Other shop"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := a.codeIssuedAgo(a.merchant, me.ID, 0)
	for name, c := range map[string]string{
		"expired":          a.codeIssuedAgo(a.merchant, me.ID, member.MemberCodeTTL+time.Second),
		"another merchant": a.codeIssuedAgo(other.ID, me.ID, 0),
		"forged":           fresh[:len(fresh)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(fresh, "AA")],
		"not a code":       "13800000000",
	} {
		e = errorBody{}
		if st := post("till-"+strings.ReplaceAll(name, " ", "-"), c, &e); st != 400 || e.Error.Fields["member_code"] == "" {
			t.Errorf("%s code on an order: %d %+v, want 400 naming member_code", name, st, e)
		}
		e = errorBody{}
		if st := a.call("POST", "/api/admin/v1/member-codes/resolve", staff, map[string]string{"member_code": c}, &e); st != 400 ||
			e.Error.Fields["member_code"] == "" {
			t.Errorf("%s code resolved: %d %+v, want 400 naming member_code", name, st, e)
		}
	}
	if n := a.count("points_orders", "merchant_id = ? AND external_id <> ?", a.merchant, "till-1"); n != 0 {
		t.Fatalf("%d orders made with refused codes", n)
	}
	// A code is the order's only member reference.
	e = errorBody{}
	if st := a.call("POST", "/api/admin/v1/orders", staff, map[string]any{"external_id": "till-3", "member_code": fresh,
		"member_id": me.ID, "amount_fen": 100}, &e); st != 400 || e.Error.Fields["member_code"] == "" {
		t.Fatalf("member_code and member_id: %d %+v", st, e)
	}
	if st := a.call("POST", "/api/admin/v1/member-codes/resolve", staff, map[string]string{}, &e); st != 400 || e.Error.Fields["member_code"] == "" {
		t.Fatalf("resolve without a code: %d %+v", st, e)
	}
}
