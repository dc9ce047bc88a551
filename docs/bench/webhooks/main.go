// Command webhooks measures webhook fan-out on MySQL/MariaDB: 100
// merchants with one endpoint each receive -events events apiece from one
// delivery worker; with -slow, one endpoint answers every request after
// 10 s. It reports the time until the 99 (or 100) prompt endpoints have all
// their events, their throughput, how many the slow one got meanwhile, and
// the process's peak RSS. The receivers are httptest servers in this
// process (their CPU is counted here too).
//
//	go run ./docs/bench/webhooks                 # 100 endpoints, one answering in 10 s
//	go run ./docs/bench/webhooks -slow=false     # the floor: all 100 prompt
//
// It creates (and drops, unless -keep) the database loyalty_bench_webhooks.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/docs/bench/benchdb"
	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/secrets"
	"github.com/wxloyalty/loyalty/webhook"
)

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MySQL server DSN (no database)")
	endpoints := flag.Int("endpoints", 100, "endpoints (one merchant each)")
	events := flag.Int("events", 200, "events per endpoint")
	slow := flag.Bool("slow", true, "one endpoint answers after -delay")
	delay := flag.Duration("delay", 10*time.Second, "the slow endpoint's answer time")
	concurrency := flag.Int("concurrency", 32, "deliveries in flight (webhooks.concurrency)")
	perEndpoint := flag.Int("per-endpoint", 2, "in flight per endpoint (webhooks.per_endpoint)")
	keep := flag.Bool("keep", false, "keep the database")
	flag.Parse()
	ctx := context.Background()
	log.SetFlags(0)

	gdb, drop, err := benchdb.Fresh(ctx, *dsn, "loyalty_bench_webhooks", 50, *keep)
	if err != nil {
		log.Fatal(err)
	}
	defer drop()
	keys, err := secrets.New(strings.Repeat("b", 32))
	if err != nil {
		log.Fatal(err)
	}
	eps := webhook.NewEndpoints(gdb, keys, webhook.Targets{AllowPrivate: true}, clock)
	outbox := webhook.NewOutbox(eps, clock, 0)

	var prompt, late atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { prompt.Add(1) }))
	defer fast.Close()
	slowSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(*delay):
			late.Add(1)
		case <-r.Context().Done():
		}
	}))
	defer slowSrv.Close()

	// Setup: endpoints, then the events (in transactions of 200, as many
	// changes would emit them).
	for m := 1; m <= *endpoints; m++ {
		url := fmt.Sprintf("%s/m%d", fast.URL, m)
		if *slow && m == 1 {
			url = slowSrv.URL + "/slow"
		}
		if _, _, err := eps.Create(ctx, uint64(m), webhook.EndpointInput{URL: &url, Events: []event.Type{event.PointsChanged}}); err != nil {
			log.Fatal(err)
		}
	}
	t0 := time.Now()
	for i := 0; i < *events; i++ {
		err := gdb.Transaction(func(tx *gorm.DB) error {
			for m := 1; m <= *endpoints; m++ {
				if err := outbox.Emit(ctx, tx, event.Event{MerchantID: uint64(m), Type: event.PointsChanged,
					Data: event.Points{MemberID: uint64(i + 1), Available: 100, AvailableChange: 10}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	emitted := time.Since(t0)
	total := int64(*events) * int64(*endpoints)
	log.Printf("emitted %d events (%d deliveries) in %s: %.0f/s", total, total, emitted.Round(time.Millisecond),
		float64(total)/emitted.Seconds())

	w := webhook.NewWorker(eps, clock, slog.New(slog.DiscardHandler), webhook.WorkerOptions{Concurrency: *concurrency,
		PerEndpoint: *perEndpoint, Timeout: *delay + 5*time.Second, Poll: 100 * time.Millisecond})
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); w.Run(wctx) }()
	want := total
	if *slow {
		want = total - int64(*events)
	}
	for prompt.Load() < want {
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	log.Printf("prompt endpoints: %d deliveries in %s: %.0f deliveries/s; slow endpoint meanwhile: %d answered; peak RSS %d MB",
		want, elapsed.Round(time.Millisecond), float64(want)/elapsed.Seconds(), late.Load(), ru.Maxrss/1024)
}

func clock() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
