package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// benchApp builds the service on its own MySQL database with a configured
// merchant in plaintext mode, backed by a simulator that the app reaches
// over HTTP as it would reach WeChat (LOYALTY_WECHAT_API_BASE). No
// background workers run: BenchmarkCallbackSubscribe measures ingest
// (verify, parse, store, answer), BenchmarkApplySubscribe the processing
// that follows.
func benchApp(b *testing.B) (*App, uint64, configs.Merchant) {
	b.Helper()
	_, dsn := dbtest.OpenMySQLEmpty(b)
	m := configs.Merchant{Name: "Bench", TimeZone: "Asia/Shanghai", AppID: "wx00000000000be4c0",
		AppSecret: strings.Repeat("b", 32), Token: "benchtoken"}
	sim := wechattest.New()
	sim.AddOfficialAccount(wechattest.App{AppID: m.AppID, Secret: m.AppSecret})
	wx := httptest.NewServer(sim)
	b.Cleanup(wx.Close)
	cfg := configs.Default()
	cfg.DataDir = b.TempDir()
	cfg.DB.Driver, cfg.DB.DSN = "mysql", dsn
	cfg.WeChat.APIBase = wx.URL
	cfg.WeChat.Merchant = m
	cfg.SecretKey = strings.Repeat("s", 32)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.HTTP.PublicURL = "http://" + ln.Addr().String()
	app, err := newApp(context.Background(), cfg, slog.New(slog.DiscardHandler), &bytes.Buffer{})
	if err != nil {
		ln.Close()
		b.Fatal(err)
	}
	srv := &http.Server{Handler: app.Handler()}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		_ = srv.Close()
		app.Close()
	})
	var id uint64
	app.db.Table("merchants").Where("oa_app_id = ?", m.AppID).Pluck("id", &id)
	return app, id, m
}

// signedPath is a plaintext-mode callback URL with its own nonce: the
// service binds a signed query to the first message it carries (WeChat
// signs each push afresh), so every request needs its own.
func signedPath(merchantID uint64, token string, nonce int64) string {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	n := strconv.FormatInt(nonce, 10)
	q := url.Values{"timestamp": {ts}, "nonce": {n}, "signature": {util.Signature(token, ts, n)}}
	return fmt.Sprintf("/wechat/%d/callback?%s", merchantID, q.Encode())
}

func subscribeXML(openID string, at int64) string {
	return "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[" + openID +
		"]]></FromUserName><CreateTime>" + strconv.FormatInt(at, 10) +
		"</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>" +
		"<EventKey><![CDATA[qrscene_bench]]></EventKey><Ticket><![CDATA[gQbench]]></Ticket></xml>"
}

// BenchmarkCallbackSubscribe sends signed subscribe events, each from a new
// follower, through the real gin stack into MySQL (needs
// LOYALTY_TEST_MYSQL_DSN). "serial" is one callback at a time (latency);
// "parallel" keeps 64 callbacks in flight per CPU, as WeChat's pushes
// arrive, so the writer's group commit works as in production.
func BenchmarkCallbackSubscribe(b *testing.B) {
	app, merchantID, m := benchApp(b)
	app.writer.Start()
	handler := app.Handler()
	now := time.Now().Unix()
	var seq atomic.Int64
	one := func(b *testing.B) {
		n := seq.Add(1)
		req := httptest.NewRequest(http.MethodPost, signedPath(merchantID, m.Token, n),
			strings.NewReader(subscribeXML("o_bench_"+strconv.FormatInt(n, 10), now)))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
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
		b.SetParallelism(64)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one(b)
			}
		})
	})
}

// BenchmarkApplySubscribe measures the work after the answer: per stored
// subscribe event, a WeChat user-info call (to the simulator, over HTTP)
// and the transaction creating the member, its history and the
// processed mark.
func BenchmarkApplySubscribe(b *testing.B) {
	app, merchantID, m := benchApp(b)
	app.writer.Start()
	handler := app.Handler()
	now := time.Now().Unix()
	n := 0
	for b.Loop() {
		b.StopTimer()
		// Store a batch of events through the callback, then time draining.
		for range 256 {
			n++
			req := httptest.NewRequest(http.MethodPost, signedPath(merchantID, m.Token, int64(n)),
				strings.NewReader(subscribeXML("o_apply_"+strconv.Itoa(n), now)))
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
		}
		b.StartTimer()
		for {
			got, err := app.dispatcher.RunOnce(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if got == 0 {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
	// Every event must have made a member: a failing WeChat call is quick,
	// and timing failures would flatter the figure.
	var members int64
	app.db.Table("members").Where("merchant_id = ?", merchantID).Count(&members)
	if members != int64(n) {
		b.Fatalf("%d events applied, %d members made", n, members)
	}
}
