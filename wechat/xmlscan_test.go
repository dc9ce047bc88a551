package wechat

import (
	"encoding/xml"
	"testing"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

func xmlSeeds() []string {
	msgs := []wechattest.Message{
		wechattest.SubscribeEvent("gh_1", "o_user", "spring"),
		wechattest.UnsubscribeEvent("gh_1", "o_user"),
		wechattest.ScanEvent("gh_1", "o_user", "store-9"),
		wechattest.ClickEvent("gh_1", "o_user", "MENU_POINTS"),
		wechattest.TextMessage("gh_1", "o_user", "积分 ]]> & <tag>", 6201),
		wechattest.TemplateFinishEvent("gh_1", "o_user", 1001, "failed:user block"),
	}
	out := []string{
		"<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>",
		"<xml><Content>a &amp; b</Content><FromUserName>o</FromUserName><MsgType>text</MsgType></xml>",
		"<xml><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo><FromUserName>o</FromUserName></xml>",
		"<?xml version=\"1.0\" encoding=\"GBK\"?><xml><FromUserName>o</FromUserName></xml>",
		"<xml><CreateTime> 12 </CreateTime></xml>",
		"<xml><CreateTime></CreateTime><MsgId>99999999999999999999</MsgId></xml>",
		"<xml><MsgType>a</MsgType><MsgType>b</MsgType></xml>",
		"<xml><Content>\r\nline</Content></xml>",
		"<xml><Content><![CDATA[a\x00b]]></Content></xml>",
		"<xml><Content/></xml>",
		"<a:xml><FromUserName>o</FromUserName></a:xml>",
		"<xml><FromUserName attr=\"1\">o</FromUserName></xml>",
		"<xml><!-- c --><FromUserName>o</FromUserName></xml>",
		"<xml><FromUserName>o</FromUserName></xml>trailing",
		"<xml><FromUserName>o</Other></xml>",
		"",
		"<xml>",
	}
	for _, m := range msgs {
		out = append(out, string(m.XML()))
	}
	return out
}

// The fast path must agree with encoding/xml whenever it accepts an input,
// and the whole parse must never panic.
func FuzzParseInbound(f *testing.F) {
	for _, s := range xmlSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := scanFlat(b)
		_, _ = parseInbound(b)
		if !ok {
			return
		}
		var want inbound
		if err := xml.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path accepted %q, encoding/xml refused it: %v", b, err)
		}
		if fast != want {
			t.Fatalf("%q:\n fast %+v\n xml  %+v", b, fast, want)
		}
	})
}

func TestParseInboundSeeds(t *testing.T) {
	fastHits := 0
	for _, s := range xmlSeeds() {
		b := []byte(s)
		got, err := parseInbound(b)
		var want inbound
		wantErr := xml.Unmarshal(b, &want)
		if (err == nil) != (wantErr == nil) || got != want {
			t.Errorf("%q: got %+v (%v), want %+v (%v)", s, got, err, want, wantErr)
		}
		if _, ok := scanFlat(b); ok {
			fastHits++
		}
	}
	// The messages WeChat really sends take the fast path.
	if fastHits < 7 {
		t.Fatalf("only %d seeds took the fast path", fastHits)
	}
}

func BenchmarkParseInbound(b *testing.B) {
	msg := wechattest.SubscribeEvent("gh_1", "oLVPpjqs9BhvzwPj5A-vTYAX3GLc", "spring-poster").XML()
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseInbound(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-xml", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in inbound
			if err := xml.Unmarshal(msg, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
