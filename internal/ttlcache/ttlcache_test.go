package ttlcache

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCacheServesWithinTTLAndReloadsAfter(t *testing.T) {
	ctx := context.Background()
	c := New[int, string](time.Minute)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return at }
	loads := 0
	load := func(v string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { loads++; return v, nil }
	}
	if v, _ := c.Get(ctx, 1, load("a")); v != "a" || loads != 1 {
		t.Fatalf("first get: %q after %d loads", v, loads)
	}
	at = at.Add(59 * time.Second)
	if v, _ := c.Get(ctx, 1, load("b")); v != "a" || loads != 1 {
		t.Fatalf("within the TTL: %q after %d loads, want the cached a", v, loads)
	}
	if v, _ := c.Get(ctx, 2, load("other")); v != "other" || loads != 2 {
		t.Fatalf("another key: %q after %d loads", v, loads)
	}
	at = at.Add(time.Second)
	if v, _ := c.Get(ctx, 1, load("b")); v != "b" || loads != 3 {
		t.Fatalf("after the TTL: %q after %d loads, want b loaded", v, loads)
	}
}

func TestCacheInvalidateWinsOverALoadInFlight(t *testing.T) {
	ctx := context.Background()
	c := New[int, string](time.Hour)
	// A load that read the old value, and the change plus its Invalidate
	// happening before the load stores it.
	v, err := c.Get(ctx, 1, func(context.Context) (string, error) {
		c.Invalidate(1)
		return "old", nil
	})
	if err != nil || v != "old" {
		t.Fatalf("the load's caller gets its value: %q, %v", v, err)
	}
	got, _ := c.Get(ctx, 1, func(context.Context) (string, error) { return "new", nil })
	if got != "new" {
		t.Fatalf("after an invalidate during a load: %q, want new (the old value must not be kept)", got)
	}
	got, _ = c.Get(ctx, 1, func(context.Context) (string, error) { return "newer", nil })
	if got != "new" {
		t.Fatalf("the value loaded after the invalidate is cached: got %q", got)
	}
}

func TestCacheDoesNotKeepErrors(t *testing.T) {
	ctx := context.Background()
	c := New[int, string](time.Hour)
	boom := errors.New("boom")
	if _, err := c.Get(ctx, 1, func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("error not returned: %v", err)
	}
	if v, _ := c.Get(ctx, 1, func(context.Context) (string, error) { return "ok", nil }); v != "ok" {
		t.Fatalf("after an error the next get loads: %q", v)
	}
}
