package cluster_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/cluster"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
)

func TestLiveInstances(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		clock := fakeclock.New(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC))
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		a := cluster.New(gdb, "a-"+t.Name(), 5*time.Second, clock.Now, quiet)
		b := cluster.New(gdb, "b-"+t.Name(), 5*time.Second, clock.Now, quiet)
		for _, i := range []*cluster.Instances{a, b} {
			if err := i.Beat(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := a.Live(ctx); n != 2 {
			t.Fatalf("live %d, want 2", n)
		}
		// b stops beating: after three beats it is not counted. The count
		// is read once a beat.
		for range 4 {
			clock.Add(5 * time.Second)
			if err := a.Beat(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := a.Live(ctx); n != 1 {
			t.Fatalf("live %d after b went silent, want 1", n)
		}
		// b is back (a beat updates its row, the first one inserted it).
		if err := b.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if n := a.Live(ctx); n != 1 {
			t.Fatalf("live %d within the same beat, want the cached 1", n)
		}
		clock.Add(5 * time.Second)
		if n := a.Live(ctx); n != 2 {
			t.Fatalf("live %d, want 2 again", n)
		}
		// An instance that stops removes its row at once.
		stop, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { b.Run(stop); close(done) }()
		cancel()
		<-done
		clock.Add(5 * time.Second)
		if n := a.Live(ctx); n != 1 {
			t.Fatalf("live %d after b stopped, want 1", n)
		}
	})
}
