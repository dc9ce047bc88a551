package wechat_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxloyalty/loyalty/wechat"
)

func randomKey(merchantID uint64) wechat.NonceKey {
	k := wechat.NonceKey{MerchantID: merchantID}
	_, _ = rand.Read(k.Signature[:])
	return k
}

func sum(b byte) wechat.MessageSum { return wechat.MessageSum{b} }

// bindSemantics checks what every NonceCache must do: a new query binds,
// the same message again is a retry (accepted), another message is refused,
// and queries of different merchants are separate.
func bindSemantics(t *testing.T, c wechat.NonceCache) {
	t.Helper()
	ctx := context.Background()
	k := randomKey(7)
	for i, step := range []struct {
		key  wechat.NonceKey
		sum  wechat.MessageSum
		want bool
	}{
		{k, sum(1), true},  // first use
		{k, sum(1), true},  // WeChat's retry
		{k, sum(2), false}, // another message
		{k, sum(1), true},  // the refusal did not rebind it
		{wechat.NonceKey{MerchantID: 8, Signature: k.Signature}, sum(2), true}, // another merchant
	} {
		got, err := c.Bind(ctx, step.key, step.sum)
		if err != nil || got != step.want {
			t.Fatalf("step %d: Bind = %v, %v; want %v", i, got, err, step.want)
		}
	}
}

func TestMemoryNonceCache(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := wechat.NewMemoryNonceCache(0, func() time.Time { return now })
	bindSemantics(t, c)

	// A binding lasts as long as its timestamp can be accepted (up to ten
	// minutes after first use, for a timestamp five minutes ahead), then
	// is forgotten. The binding made last before the cache starts a new
	// generation is the one kept the shortest.
	ctx := context.Background()
	k := randomKey(1)
	now = now.Add(5*time.Minute - time.Second)
	if ok, _ := c.Bind(ctx, k, sum(1)); !ok {
		t.Fatal("first bind refused")
	}
	now = now.Add(10*time.Minute - time.Second)
	if ok, _ := c.Bind(ctx, k, sum(2)); ok {
		t.Fatal("binding forgotten within ten minutes")
	}
	now = now.Add(6 * time.Minute)
	if ok, _ := c.Bind(ctx, k, sum(2)); !ok {
		t.Fatal("binding still held after fifteen minutes")
	}
	// After a long idle period every generation is stale.
	now = now.Add(time.Hour)
	if ok, _ := c.Bind(ctx, k, sum(3)); !ok {
		t.Fatal("binding still held after an hour")
	}
}

// A full cache refuses to bind (the callback gets 503 and WeChat retries)
// rather than accept queries unchecked, and frees up as time passes.
func TestMemoryNonceCacheFull(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := wechat.NewMemoryNonceCache(3, func() time.Time { return now })
	ctx := context.Background()
	keys := []wechat.NonceKey{randomKey(1), randomKey(1), randomKey(1)}
	for _, k := range keys {
		if ok, err := c.Bind(ctx, k, sum(1)); !ok || err != nil {
			t.Fatalf("bind: %v %v", ok, err)
		}
	}
	if _, err := c.Bind(ctx, randomKey(1), sum(1)); !errors.Is(err, wechat.ErrNonceCacheFull) {
		t.Fatalf("bind to a full cache: %v, want ErrNonceCacheFull", err)
	}
	// Known queries are still answered.
	if ok, err := c.Bind(ctx, keys[0], sum(1)); !ok || err != nil {
		t.Fatalf("retry with a full cache: %v %v", ok, err)
	}
	now = now.Add(16 * time.Minute)
	if ok, err := c.Bind(ctx, randomKey(1), sum(1)); !ok || err != nil {
		t.Fatalf("bind after the old bindings expired: %v %v", ok, err)
	}
}

func TestRedisNonceCache(t *testing.T) {
	addr := os.Getenv("LOYALTY_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("LOYALTY_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("LOYALTY_TEST_REQUIRE_REDIS=1 but LOYALTY_TEST_REDIS_ADDR is not set")
		}
		t.Skip("needs LOYALTY_TEST_REDIS_ADDR (e.g. 127.0.0.1:6379); .ci/run sets it")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis %s: %v", addr, err)
	}
	bindSemantics(t, wechat.NewRedisNonceCache(rdb))

	// Two instances share the bindings, and they expire (within the
	// window's ten minutes plus a margin, not never).
	k := randomKey(99)
	one, two := wechat.NewRedisNonceCache(rdb), wechat.NewRedisNonceCache(rdb)
	if ok, _ := one.Bind(context.Background(), k, sum(1)); !ok {
		t.Fatal("first bind refused")
	}
	if ok, _ := two.Bind(context.Background(), k, sum(2)); ok {
		t.Fatal("another instance accepted the query with another message")
	}
	keys, err := rdb.Keys(context.Background(), "loyalty:wechat:nonce:99:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	ttl := rdb.TTL(context.Background(), keys[0]).Val()
	if ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("binding TTL %v, want ten minutes", ttl)
	}
	rdb.Del(context.Background(), keys...)
}
