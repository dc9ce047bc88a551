package wechat_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wxloyalty/loyalty/wechat"
)

// discardSink accepts every event at once, so the benchmark measures the
// handler alone (the inbox is benchmarked end to end in cmd/loyalty).
type discardSink struct{ n atomic.Int64 }

func (s *discardSink) Accept(context.Context, wechat.Event) error {
	s.n.Add(1)
	return nil
}

// BenchmarkCallbackSubscribe sends plaintext-mode subscribe events through
// the handler: verification, parse, hand-over and answer. Each request is
// signed with its own nonce and comes from a new follower, as WeChat's do;
// building the request (signature, httptest) is part of the measured loop
// and the same before and after any handler change.
func BenchmarkCallbackSubscribe(b *testing.B) {
	creds := wechat.Credentials{AppID: "wx00000000000be4c0", AppSecret: strings.Repeat("b", 32), Token: "benchtoken"}
	reg := wechat.NewAccounts(credMap{merchant: creds}, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	sink := &discardSink{}
	h := wechat.NewCallbackHandler(wechat.CallbackDeps{Accounts: reg, Sink: sink, Log: slog.New(slog.DiscardHandler)})
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	var seq atomic.Int64
	one := func(b *testing.B) {
		n := strconv.FormatInt(seq.Add(1), 10)
		path := "/wechat/42/callback?signature=" + util.Signature(creds.Token, ts, n) + "&timestamp=" + ts + "&nonce=" + n
		body := "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[o_bench_" + n +
			"]]></FromUserName><CreateTime>" + ts + "</CreateTime><MsgType><![CDATA[event]]></MsgType>" +
			"<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_bench]]></EventKey></xml>"
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.Serve(rec, req, merchant)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			one(b)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one(b)
			}
		})
	})
	if sink.n.Load() == 0 {
		b.Fatal("no event reached the sink")
	}
}
