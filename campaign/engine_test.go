package campaign_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// runEngines runs engines until the campaign is completed (or the timeout),
// each in its own goroutine as separate processes would; kill, when set,
// is called once with a cancel func of the first engine.
func runEngines(t *testing.T, e *env, campaignID uint64, engines []*campaign.Engine, kill func(cancel func())) {
	t.Helper()
	ctx, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	var wg sync.WaitGroup
	for i, eng := range engines {
		ectx, cancel := context.WithCancel(ctx)
		if i == 0 && kill != nil {
			go kill(cancel)
		} else {
			defer cancel()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			eng.Run(ectx)
		}()
	}
	deadline := time.Now().Add(3 * time.Minute)
	for e.status(campaignID) != campaign.StatusCompleted {
		if time.Now().After(deadline) {
			cancelAll()
			wg.Wait()
			t.Fatalf("campaign not completed: %s %v", e.status(campaignID), e.statuses(campaignID))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancelAll()
	wg.Wait()
}

// Three engine instances on one MySQL database send a 20,000-member
// campaign: every member gets exactly one message, with either claim
// strategy.
func TestExactlyOnceAcrossInstances(t *testing.T) {
	for _, s := range campaign.ClaimStrategies {
		t.Run(string(s), func(t *testing.T) {
			runCampaign(t, newRealTimeEnv(t, dbtest.OpenMySQLIsolated(t)), 20000, false, s)
		})
	}
}

// The same with one instance killed at a random moment: what it had
// claimed is sent by the others, what it had in flight ends unknown and is
// never sent again; nobody gets two messages.
func TestExactlyOnceWhenAnInstanceDies(t *testing.T) {
	for _, s := range campaign.ClaimStrategies {
		t.Run(string(s), func(t *testing.T) {
			gdb, dsn := dbtest.OpenMySQLEmpty(t)
			if err := db.Migrate(context.Background(), gdb, quiet); err != nil {
				t.Fatal(err)
			}
			e := newRealTimeEnv(t, gdb)
			e.dsn = dsn
			runCampaign(t, e, 20000, true, s)
		})
	}
}

// claimStatements counts the claim statements of each strategy that gdb
// runs from now on: SELECTs with SKIP LOCKED, and UPDATEs with a LIMIT.
func claimStatements(t *testing.T, gdb *gorm.DB) func() (skipLocked, updateLimit int64) {
	t.Helper()
	var skip, limit atomic.Int64
	count := func(d *gorm.DB) {
		sql := d.Statement.SQL.String()
		switch {
		case strings.Contains(sql, "SKIP LOCKED"):
			skip.Add(1)
		case strings.HasPrefix(sql, "UPDATE `campaign_deliveries`") && strings.Contains(sql, " LIMIT "):
			limit.Add(1)
		}
	}
	if err := gdb.Callback().Query().After("gorm:query").Register("test:claims", count); err != nil {
		t.Fatal(err)
	}
	if err := gdb.Callback().Update().After("gorm:update").Register("test:claims", count); err != nil {
		t.Fatal(err)
	}
	return func() (int64, int64) { return skip.Load(), limit.Load() }
}

// killable is an engine with its own connection pool, so killing it (like
// kill -9) stops every write it would still make, while what it already
// sent to WeChat stays sent.
func (e *env) killable(o campaign.EngineOptions) (*campaign.Engine, func()) {
	e.t.Helper()
	pool, err := db.Open(context.Background(), db.Options{Driver: db.MySQL, DSN: e.dsn, MaxOpenConns: 16})
	if err != nil {
		e.t.Fatal(err)
	}
	own := *e
	own.db = pool
	eng := own.engine(o, nil)
	return eng, func() {
		if p, err := pool.DB(); err == nil {
			_ = p.Close()
		}
	}
}

func runCampaign(t *testing.T, e *env, n int, kill bool, strategy campaign.ClaimStrategy) {
	claims := claimStatements(t, e.db)
	e.seed(n, "x"+randHex(3))
	c := e.campaign(e.segment())
	// A lease long enough that live instances keep theirs on a loaded
	// machine; when one is killed, short, so the others sweep its rows
	// within the test.
	o := campaign.EngineOptions{Batch: 200, Concurrency: 32, Lease: 10 * time.Second, Claim: strategy}
	if kill {
		o.Lease = 2 * time.Second
	}
	engines := []*campaign.Engine{e.engine(o, nil), e.engine(o, nil), e.engine(o, nil)}
	var killFn func(cancel func())
	if kill {
		victim, closePool := e.killable(o)
		engines[0] = victim
		// Slow WeChat down so the victim has sends in flight when it dies.
		sim.SetLatency("/cgi-bin/message/template/send", 3*time.Millisecond)
		defer sim.SetLatency("/cgi-bin/message/template/send", 0)
		at := 1000 + rand.IntN(n/2)
		killFn = func(cancel func()) {
			// Once sending is under way, at a random moment.
			for e.statuses(c.ID)[campaign.DeliverySent] < at {
				time.Sleep(10 * time.Millisecond)
			}
			closePool()
			cancel()
		}
	}
	runEngines(t, e, c.ID, engines, killFn)
	// The strategy asked for is the one that claimed the rows.
	switch skip, limit := claims(); {
	case strategy == campaign.ClaimSkipLocked && (skip == 0 || limit != 0),
		strategy == campaign.ClaimUpdateLimit && (skip != 0 || limit == 0):
		t.Fatalf("%s: %d SKIP LOCKED claims, %d UPDATE ... LIMIT claims", strategy, skip, limit)
	}
	st := e.statuses(c.ID)
	got := e.received()
	for openid, k := range got {
		if k > 1 {
			t.Fatalf("%s got %d messages", openid, k)
		}
	}
	if st[campaign.DeliveryPending]+st[campaign.DeliveryClaimed]+st[campaign.DeliverySending] != 0 {
		t.Fatalf("rows left: %v", st)
	}
	if !kill {
		if st[campaign.DeliverySent] != n || len(got) != n {
			t.Fatalf("statuses %v, %d received, want all %d sent once", st, len(got), n)
		}
		return
	}
	// Every member not left unknown got exactly one message; the unknown
	// ones got at most one (the dead instance may or may not have reached
	// WeChat) and were not sent again.
	if st[campaign.DeliverySent]+st[campaign.DeliveryUnknown] != n {
		t.Fatalf("statuses %v", st)
	}
	var sentTo []string
	e.db.Table("campaign_deliveries").Where("campaign_id = ? AND status = ?", c.ID, campaign.DeliverySent).Pluck("openid", &sentTo)
	for _, o := range sentTo {
		if got[o] != 1 {
			t.Fatalf("%s is sent but received %d", o, got[o])
		}
	}
	// The dead instance can have left unrecorded only the rows it had in
	// flight (a row is marked only once it holds its rate permit, just
	// before its call) and the results waiting for the recorder; those
	// rows are unknown, whether WeChat got them or not.
	if st[campaign.DeliveryUnknown] > o.Concurrency+2*campaign.RecordChunk {
		t.Fatalf("%d unknown rows: more than the dead instance could have had marked", st[campaign.DeliveryUnknown])
	}
	var unknown []string
	e.db.Table("campaign_deliveries").Where("campaign_id = ? AND status = ?", c.ID, campaign.DeliveryUnknown).Pluck("openid", &unknown)
	for _, o := range unknown {
		if got[o] > 1 {
			t.Fatalf("unknown %s received %d messages", o, got[o])
		}
	}
	t.Logf("killed one instance: %v, %d received", st, len(got))
}
