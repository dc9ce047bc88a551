package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// sample is one HTTP request the load made.
type sample struct {
	start time.Time
	dur   time.Duration
	ok    bool
}

// recorder keeps every request by endpoint, for throughput, latency and
// the time to recover after each fault.
type recorder struct {
	mu      sync.Mutex
	samples map[string][]sample
}

func newRecorder() *recorder { return &recorder{samples: map[string][]sample{}} }

func (r *recorder) add(endpoint string, s sample) {
	r.mu.Lock()
	r.samples[endpoint] = append(r.samples[endpoint], s)
	r.mu.Unlock()
}

func (r *recorder) snapshot() map[string][]sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]sample, len(r.samples))
	for k, v := range r.samples {
		s := append([]sample(nil), v...)
		sort.Slice(s, func(i, j int) bool { return s[i].start.Before(s[j].start) })
		out[k] = s
	}
	return out
}

// order is an order the service acknowledged, with its refund if one was
// acknowledged too.
type order struct {
	externalID string
	memberID   uint64
	amount     int64
	refundID   string
	refundFen  int64
}

// load drives the service through the proxy the way its callers do.
type load struct {
	base       string // the proxy
	merchant   uint64
	run        string // this run's id, in every openid and order id
	sim        *wechattest.Simulator
	ep         wechattest.Endpoint
	apiKey     string
	adminToken string   // the owner's session, for the campaign
	members    []uint64 // the campaign's members: orders go to them
	client     *http.Client
	rec        *recorder

	mu        sync.Mutex
	callbacks map[string]bool // openid -> acknowledged (200) by the service
	orders    []order
	logins    int
}

func (l *load) do(endpoint, method, path, token string, body []byte, header http.Header) (int, []byte) {
	req, err := http.NewRequest(method, l.base+path, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if len(body) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		l.rec.add(endpoint, sample{start: start, dur: time.Since(start)})
		return 0, nil
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ok := resp.StatusCode/100 == 2
	l.rec.add(endpoint, sample{start: start, dur: time.Since(start), ok: ok})
	return resp.StatusCode, out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// pace calls fn(i) about perSecond times a second on workers goroutines
// until ctx is done, then waits for the calls in flight. A tick that finds
// every worker busy is dropped (the load does not queue up behind a fault).
func pace(ctx context.Context, wg *sync.WaitGroup, perSecond float64, workers int, fn func(i int)) {
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				fn(i)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		t := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
		defer t.Stop()
		for i := 0; ; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case jobs <- i:
					i++
				default:
				}
			}
		}
	}()
}

// callback is one follower: a signed subscribe push, retried as WeChat
// does (the same query and body, up to 3 more times) until the service
// answers 200; then, now and then, a duplicate: the same request again, or
// the same message signed afresh.
func (l *load) callback(i int) {
	openid := fmt.Sprintf("o_cb_%s_%d", l.run, i)
	l.sim.Follow(l.ep.AppID, openid, "")
	msg := wechattest.Message{ToUserName: originalID, FromUserName: openid, CreateTime: time.Now().Unix(),
		MsgType: "event", Event: "subscribe"}
	req, err := l.ep.Request(msg)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(req.Body)
	path := req.URL.RequestURI()
	hdr := http.Header{"Content-Type": {"text/xml"}}
	acked := false
	for attempt := range 4 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * time.Second)
		}
		if code, _ := l.do("callback", "POST", path, "", body, hdr); code == http.StatusOK {
			acked = true
			break
		}
	}
	l.mu.Lock()
	l.callbacks[openid] = acked
	l.mu.Unlock()
	if !acked {
		return
	}
	switch n := rand.IntN(100); {
	case n < 10: // WeChat's retry after a lost answer
		l.do("callback_dup", "POST", path, "", body, hdr)
	case n < 15: // the same message pushed again under a new signature
		req, err := l.ep.Request(msg)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(req.Body)
		l.do("callback_dup", "POST", req.URL.RequestURI(), "", b, hdr)
	}
}

// login is a mini-program member logging in (wx.login, then the code to
// the service), from one of many client addresses behind the proxy.
func (l *load) login(i int) {
	openid := fmt.Sprintf("o_mp_%s_%d", l.run, i%2000)
	code := l.sim.LoginCode(mpAppID, openid, "")
	hdr := http.Header{"X-Forwarded-For": {fmt.Sprintf("10.%d.%d.%d", rand.IntN(250), rand.IntN(250), 1+rand.IntN(250))}}
	if st, _ := l.do("mp_login", "POST", fmt.Sprintf("/api/mp/v1/%d/login", l.merchant), "", mustJSON(map[string]string{"code": code}), hdr); st == http.StatusOK {
		l.mu.Lock()
		l.logins++
		l.mu.Unlock()
	}
}

// retry repeats an idempotent call until it is answered 200 or 201 (true),
// a 4xx other than 429 (false), or 6 tries are spent.
func (l *load) retry(endpoint, path string, body []byte) bool {
	for attempt := range 6 {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		st, _ := l.do(endpoint, "POST", path, l.apiKey, body, nil)
		switch {
		case st == http.StatusOK || st == http.StatusCreated:
			return true
		case st/100 == 4 && st != http.StatusTooManyRequests:
			return false
		}
	}
	return false
}

// shop is a POS recording an order (retried with its external id until
// acknowledged) and, for one order in four, refunding half of it.
func (l *load) shop(i int) {
	o := order{externalID: fmt.Sprintf("so-%s-%d", l.run, i), memberID: l.members[rand.IntN(len(l.members))],
		amount: int64(100 + rand.IntN(50000))}
	if !l.retry("order", "/api/admin/v1/orders", mustJSON(map[string]any{"external_id": o.externalID, "member_id": o.memberID, "amount_fen": o.amount})) {
		return
	}
	if rand.IntN(4) == 0 {
		rf := order{refundID: "rf-" + o.externalID, refundFen: max(1, o.amount/2)}
		if l.retry("refund", "/api/admin/v1/orders/"+o.externalID+"/refunds", mustJSON(map[string]any{"refund_id": rf.refundID, "amount_fen": rf.refundFen})) {
			o.refundID, o.refundFen = rf.refundID, rf.refundFen
		}
	}
	l.mu.Lock()
	l.orders = append(l.orders, o)
	l.mu.Unlock()
}
