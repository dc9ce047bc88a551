package wechat

import (
	"net/url"
	"testing"
)

// parseCallbackQuery reads a push's parameters exactly as url.Values.Get
// would, on plain queries (split in place) and on ones that need decoding.
func FuzzParseCallbackQuery(f *testing.F) {
	for _, seed := range []string{
		"signature=ab12&timestamp=1700000000&nonce=42",
		"signature=a&signature=b&timestamp=1&nonce=2&encrypt_type=aes&msg_signature=cd",
		"echostr=hello%20world&signature=x",
		"nonce=1+2&timestamp=%zz&signature=s",
		"timestamp=1;nonce=2&signature=s",
		"&&=&signature&nonce=&timestamp==1",
		"sig%6Eature=x&non%63e=y",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := parseCallbackQuery(raw)
		v, _ := url.ParseQuery(raw)
		want := callbackQuery{signature: v.Get("signature"), timestamp: v.Get("timestamp"), nonce: v.Get("nonce"),
			echostr: v.Get("echostr"), encryptType: v.Get("encrypt_type"), msgSignature: v.Get("msg_signature")}
		if got != want {
			t.Fatalf("%q: got %+v, url.ParseQuery gives %+v", raw, got, want)
		}
	})
}
