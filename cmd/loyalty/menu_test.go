package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/wechat"
)

type menuAnswer struct {
	Buttons []wechat.MenuButton `json:"buttons"`
	Default []wechat.MenuButton `json:"default"`
}

// The sandbox merchant starts with the default menu (the member centre's
// pages); the owner replaces it through the API, WeChat's rules are
// checked first (400 naming the field, WeChat not called), a viewer may
// read but not change it, and the default comes back on request.
func TestOfficialAccountMenu(t *testing.T) { eachBackendName(t, testOfficialAccountMenu) }

func testOfficialAccountMenu(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	staff := a.login()
	appID, err := a.accounts.AppID(context.Background(), a.merchant)
	if err != nil {
		t.Fatal(err)
	}
	simMenu := func() []wechat.MenuButton {
		t.Helper()
		raw, ok := a.sandbox.Sim.MenuJSON(appID)
		if !ok {
			t.Fatal("the simulator holds no menu")
		}
		// The simulator speaks WeChat's sub_button; compare names and URLs.
		var bs []struct {
			Name, Type, URL string
			Sub             []struct{ Name, Type, URL string } `json:"sub_button"`
		}
		_ = json.Unmarshal([]byte(raw), &bs)
		out := make([]wechat.MenuButton, 0, len(bs))
		for _, b := range bs {
			mb := wechat.MenuButton{Name: b.Name, Type: b.Type, URL: b.URL}
			for _, s := range b.Sub {
				mb.SubButtons = append(mb.SubButtons, wechat.MenuButton{Name: s.Name, Type: s.Type, URL: s.URL})
			}
			out = append(out, mb)
		}
		return out
	}
	def := admin.DefaultMenu(a.base, a.merchant)
	if got := simMenu(); fmt.Sprint(got) != fmt.Sprint(def) || !strings.HasSuffix(def[0].URL, fmt.Sprintf("/m/%d/", a.merchant)) {
		t.Fatalf("sandbox merchant's menu %+v, want the default %+v", got, def)
	}
	var m menuAnswer
	if st := a.call("GET", "/api/admin/v1/settings/menu", staff, nil, &m); st != 200 || fmt.Sprint(m.Buttons) != fmt.Sprint(def) ||
		fmt.Sprint(m.Default) != fmt.Sprint(def) {
		t.Fatalf("menu: %d %+v", st, m)
	}

	mine := []wechat.MenuButton{{Type: "view", Name: "会员", URL: a.base + fmt.Sprintf("/m/%d/", a.merchant)},
		{Type: "click", Name: "积分", Key: "POINTS"}}
	if st := a.call("PUT", "/api/admin/v1/settings/menu", staff, map[string]any{"buttons": mine}, &m); st != 200 {
		t.Fatalf("put menu: %d", st)
	}
	if got := simMenu(); len(got) != 2 || got[1].Name != "积分" || got[1].Type != "click" {
		t.Fatalf("WeChat's menu after the put: %+v", got)
	}
	calls := a.sandbox.Sim.CountRequests("/cgi-bin/menu/create")
	for field, bad := range map[string][]wechat.MenuButton{
		"buttons":                        {},
		"buttons[0].name":                {{Type: "view", Name: "一个太长太长太长的名字", URL: a.base}},
		"buttons[0].url":                 {{Type: "view", Name: "x", URL: "javascript:alert(1)"}},
		"buttons[0].type":                {{Type: "scan", Name: "x"}},
		"buttons[0].key":                 {{Type: "click", Name: "x"}},
		"buttons[0].sub_buttons":         {{Name: "x", SubButtons: make([]wechat.MenuButton, 6)}},
		"buttons[0].sub_buttons[0].name": {{Name: "x", SubButtons: []wechat.MenuButton{{Type: "view", URL: a.base}}}},
	} {
		var e errorBody
		if st := a.call("PUT", "/api/admin/v1/settings/menu", staff, map[string]any{"buttons": bad}, &e); st != 400 || e.Error.Fields[field] == "" {
			t.Errorf("%s: %d %+v, want 400 naming it", field, st, e)
		}
	}
	if n := a.sandbox.Sim.CountRequests("/cgi-bin/menu/create"); n != calls {
		t.Fatalf("refused menus reached WeChat (%d calls)", n-calls)
	}
	viewer := a.staffLogin(a.merchant, "menuviewer", admin.RoleViewer)
	if st := a.call("GET", "/api/admin/v1/settings/menu", viewer, nil, &m); st != 200 || len(m.Buttons) != 2 {
		t.Fatalf("viewer reads: %d %+v", st, m)
	}
	if st := a.call("POST", "/api/admin/v1/settings/menu/default", viewer, nil, nil); st != 403 {
		t.Fatalf("viewer resets: %d", st)
	}
	if st := a.call("POST", "/api/admin/v1/settings/menu/default", staff, nil, &m); st != 200 || fmt.Sprint(simMenu()) != fmt.Sprint(def) {
		t.Fatalf("reset: %d, WeChat holds %+v", st, simMenu())
	}
}
