package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/wxloyalty/loyalty/wechat"
)

// The member centre's pages get a JS-SDK configuration signed with the
// official account's jsapi_ticket, which is fetched once and then served
// from the cache like the access token; pages outside the merchant's
// member centre on the service's own origin are refused.
func TestJSSDKConfig(t *testing.T) { eachBackendName(t, testJSSDKConfig) }

func testJSSDKConfig(t *testing.T, backend string) {
	a, _, mt, _ := startWithMember(t, backend)
	path := fmt.Sprintf("/api/member/v1/%d/jssdk-config?url=", a.merchant)
	page := fmt.Sprintf("%s/m/%d/card?tab=code", a.base, a.merchant)
	appID, err := a.accounts.AppID(context.Background(), a.merchant)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var cfg wechat.JSConfig
		if st := a.call("GET", path+url.QueryEscape(page+"#top"), mt, nil, &cfg); st != 200 {
			t.Fatalf("config %d: %d", i, st)
		}
		ticket, ok := a.sandbox.Sim.JSAPITicket(appID)
		if !ok || cfg.AppID != appID || cfg.NonceStr == "" || cfg.Signature != wechat.JSSignature(ticket, cfg.NonceStr, cfg.Timestamp, page) {
			t.Fatalf("config %d: %+v does not verify with the account's ticket", i, cfg)
		}
	}
	if n := a.sandbox.Sim.CountRequests("/cgi-bin/ticket/getticket"); n != 1 {
		t.Fatalf("%d getticket calls for two configurations, want 1 (cached)", n)
	}
	for name, bad := range map[string]string{
		"another site":             fmt.Sprintf("https://evil.example/m/%d/card", a.merchant),
		"another merchant's pages": fmt.Sprintf("%s/m/%d/card", a.base, a.merchant+1),
		"not the member centre":    a.base + "/admin/",
		"no url":                   "",
	} {
		var e errorBody
		if st := a.call("GET", path+url.QueryEscape(bad), mt, nil, &e); st != 400 || e.Error.Fields["url"] == "" {
			t.Errorf("%s: %d %+v, want 400 naming url", name, st, e)
		}
	}
	if st := a.call("GET", path+url.QueryEscape(page), "", nil, nil); st != 401 {
		t.Fatalf("without a member token: %d", st)
	}
}
