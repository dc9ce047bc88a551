// Command callbacksign prints signed, encrypted (safe-mode) subscribe
// callbacks for the load test (callback-load.sh), as WeChat would push
// them: one line per request, "nonce signature msg_signature encrypt",
// each with its own nonce and its own new follower (FromUserName
// <prefix><line number>). The service binds a signed query to the first
// message it carries, as WeChat signs every push afresh, so a load test
// cannot reuse one query for many bodies; and wrk's Lua has neither SHA-1
// nor AES, so the requests are made here, before the clock starts. A
// WeChat retry is the same line sent again.
//
//	go run ./docs/bench/callbacksign -token loadtoken -timestamp 1700000000 \
//	  -app-id wx00000000000a11ad -aes-key <43 chars> -to gh_0000000a11ad -n 900000
package main

import (
	"bufio"
	"crypto/rand"
	"flag"
	"log"
	"os"
	"strconv"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

func main() {
	token := flag.String("token", "", "the merchant's callback token")
	ts := flag.String("timestamp", "", "the timestamp every query and CreateTime carries (unix seconds)")
	appID := flag.String("app-id", "", "the official account's AppID (ends every encrypted message)")
	aesKey := flag.String("aes-key", "", "the account's 43-character EncodingAESKey")
	to := flag.String("to", "", "ToUserName, the account's original id (gh_...)")
	prefix := flag.String("openid-prefix", "o_load_", "FromUserName is this followed by the line number")
	n := flag.Int("n", 900000, "how many requests")
	flag.Parse()
	if *token == "" || *ts == "" || *appID == "" || len(*aesKey) != 43 || *to == "" {
		log.Fatal("-token, -timestamp, -app-id, -aes-key (43 characters) and -to are required")
	}
	created, err := strconv.ParseInt(*ts, 10, 64)
	if err != nil {
		log.Fatalf("-timestamp: %v", err)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	random := make([]byte, 16)
	for i := 1; i <= *n; i++ {
		nonce := strconv.Itoa(1_000_000_000 + i)
		m := wechattest.SubscribeEvent(*to, *prefix+strconv.Itoa(i), "")
		m.EventKey, m.CreateTime = "qrscene_load", created
		_, _ = rand.Read(random)
		enc, err := util.EncryptMsg(random, m.XML(), *appID, *aesKey)
		if err != nil {
			log.Fatalf("encrypt: %v", err)
		}
		out.WriteString(nonce + " " + util.Signature(*token, *ts, nonce) + " " +
			util.Signature(*token, *ts, nonce, string(enc)) + " " + string(enc) + "\n")
	}
	if err := out.Flush(); err != nil {
		log.Fatal(err)
	}
}
