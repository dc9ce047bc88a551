// Command callbacksign prints signed callback queries for the load test
// (callback-load.sh): one "nonce signature" line per request, each nonce
// different. The service binds a signed query to the first message it
// carries, as WeChat signs every push afresh, so a load test cannot reuse
// one query for many bodies; wrk's Lua has no SHA-1, so the queries are
// signed here, before the clock starts.
//
//	go run ./docs/bench/callbacksign -token loadtoken -timestamp 1700000000 -n 800000
package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"flag"
	"log"
	"os"
	"slices"
	"strconv"
)

func main() {
	token := flag.String("token", "", "the merchant's callback token")
	ts := flag.String("timestamp", "", "the timestamp every query carries (unix seconds)")
	n := flag.Int("n", 800000, "how many queries")
	flag.Parse()
	if *token == "" || *ts == "" {
		log.Fatal("-token and -timestamp are required")
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := 1; i <= *n; i++ {
		nonce := strconv.Itoa(1_000_000_000 + i)
		parts := []string{*token, *ts, nonce}
		slices.Sort(parts)
		sum := sha1.Sum([]byte(parts[0] + parts[1] + parts[2]))
		out.WriteString(nonce + " " + hex.EncodeToString(sum[:]) + "\n")
	}
}
