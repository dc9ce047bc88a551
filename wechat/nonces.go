package wechat

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// NonceKey identifies one signed callback query: the merchant and the
// signature WeChat computed over the token, the timestamp and the nonce
// (verified before the key is built, so it is never attacker-chosen).
type NonceKey struct {
	MerchantID uint64
	Signature  [sha1.Size]byte
}

// MessageSum is the digest of a callback's message (the first half of its
// SHA-256): what a signed query is bound to.
type MessageSum [16]byte

// NonceCache binds each signed callback query to the one message it
// carried, for as long as its timestamp is accepted.
//
// Why: in plaintext mode WeChat's signature covers the token, timestamp and
// nonce but not the body, so a query seen once (a log line, a proxy) could
// otherwise carry any message until its timestamp goes stale. WeChat
// retries a push it got no answer to with the same query and body, so the
// same query with the same message must still be accepted (the inbox
// dedupes the event and the retry gets "success"); only a different
// message is refused.
type NonceCache interface {
	// Bind records sum as the message of key, and reports whether key is
	// new or was bound to this same sum before (a retry). It reports
	// false when key carried a different message.
	Bind(ctx context.Context, key NonceKey, sum MessageSum) (bool, error)
}

// nonceTTL is how long a binding must last: a timestamp is accepted while
// it is within maxClockSkew of our clock, so a query first seen at t with a
// timestamp up to maxClockSkew ahead stays acceptable until t+2*maxClockSkew.
const nonceTTL = 2 * maxClockSkew

// ErrNonceCacheFull is returned by MemoryNonceCache.Bind when it holds its
// maximum number of bindings: the callback is answered 503 (WeChat retries)
// rather than accepted unchecked.
var ErrNonceCacheFull = errors.New("wechat: callback nonce cache full (configure Redis for this volume)")

// MemoryNonceCache is a NonceCache for a single instance.
//
// Bindings are kept in generations of maxClockSkew each; the three newest
// are searched and older ones dropped whole, so a binding lives between
// 2*maxClockSkew (nonceTTL) and 3*maxClockSkew without any per-entry
// sweeping. An entry costs about 80 bytes (measured with a million);
// NewMemoryNonceCache's maxEntries bounds the memory.
type MemoryNonceCache struct {
	now func() time.Time
	max int

	mu    sync.Mutex
	start time.Time                     // when gens[0] began
	gens  [3]map[nonceMemKey]MessageSum // gens[0] is the newest
	sizes [3]int
}

// nonceMemKey keeps 8 bytes of the signature: collisions between genuine
// queries of one merchant are negligible, and nobody without the token can
// choose a signature.
type nonceMemKey struct{ merchant, sig uint64 }

// DefaultNonceEntries bounds a MemoryNonceCache: about 80 MB, enough for
// some 1,000 callbacks a second sustained (bindings live 10 to 15 minutes).
// More than that on one instance wants Redis (RedisNonceCache), as does
// more than one instance.
const DefaultNonceEntries = 1 << 20

// NewMemoryNonceCache returns an empty cache holding at most maxEntries
// bindings (DefaultNonceEntries when 0). now may be nil (time.Now).
func NewMemoryNonceCache(maxEntries int, now func() time.Time) *MemoryNonceCache {
	if maxEntries <= 0 {
		maxEntries = DefaultNonceEntries
	}
	if now == nil {
		now = time.Now
	}
	c := &MemoryNonceCache{now: now, max: maxEntries}
	for i := range c.gens {
		c.gens[i] = map[nonceMemKey]MessageSum{}
	}
	return c
}

// Bind implements NonceCache.
func (c *MemoryNonceCache) Bind(_ context.Context, key NonceKey, sum MessageSum) (bool, error) {
	k := nonceMemKey{merchant: key.MerchantID, sig: uint64FromBytes(key.Signature[:8])}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(now)
	for _, g := range c.gens {
		if got, ok := g[k]; ok {
			return got == sum, nil
		}
	}
	if c.sizes[0]+c.sizes[1]+c.sizes[2] >= c.max {
		return false, ErrNonceCacheFull
	}
	c.gens[0][k] = sum
	c.sizes[0]++
	return true, nil
}

// rotate starts new generations as time passes, dropping the oldest.
func (c *MemoryNonceCache) rotate(now time.Time) {
	if c.start.IsZero() {
		c.start = now
	}
	for n := 0; now.Sub(c.start) >= maxClockSkew; n++ {
		if n == len(c.gens) {
			// Idle for longer than every generation: all are stale.
			c.start = now
			return
		}
		c.gens[2], c.gens[1] = c.gens[1], c.gens[0]
		c.sizes[2], c.sizes[1] = c.sizes[1], c.sizes[0]
		c.gens[0], c.sizes[0] = map[nonceMemKey]MessageSum{}, 0
		c.start = c.start.Add(maxClockSkew)
	}
}

func uint64FromBytes(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// RedisNonceCache is a NonceCache shared by every instance through Redis,
// so a query bound on one instance is refused with another message on all.
type RedisNonceCache struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisNonceCache stores bindings under
// "loyalty:wechat:nonce:<merchant>:<signature>".
func NewRedisNonceCache(rdb redis.UniversalClient) *RedisNonceCache {
	return &RedisNonceCache{rdb: rdb, prefix: "loyalty:wechat:nonce:"}
}

// Bind implements NonceCache with SET NX, and a GET only when the key
// exists (a retry or a replay, both rare). The two steps need no script: a
// binding is never overwritten, only expires.
func (c *RedisNonceCache) Bind(ctx context.Context, key NonceKey, sum MessageSum) (bool, error) {
	var buf [64]byte
	k := strconv.AppendUint(append(buf[:0], c.prefix...), key.MerchantID, 10)
	k = hex.AppendEncode(append(k, ':'), key.Signature[:])
	for range 2 {
		set, err := c.rdb.SetNX(ctx, string(k), sum[:], nonceTTL).Result()
		if err != nil {
			return false, fmt.Errorf("wechat: bind callback nonce: %w", err)
		}
		if set {
			return true, nil
		}
		got, err := c.rdb.Get(ctx, string(k)).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // expired between the two calls: bind again
		}
		if err != nil {
			return false, fmt.Errorf("wechat: read callback nonce: %w", err)
		}
		return bytes.Equal(got, sum[:]), nil
	}
	return false, errors.New("wechat: bind callback nonce: key kept expiring")
}

// FallbackNonceCache binds nonces in the shared cache while health says it
// is up, and in this instance's memory while it is not: during a Redis
// outage a replay is refused by the instance that saw the query first
// (WeChat's own retries are accepted by any).
type FallbackNonceCache struct {
	shared NonceCache
	local  *MemoryNonceCache
	health Health
}

// NewFallbackNonceCache returns shared with local as its fallback.
func NewFallbackNonceCache(shared NonceCache, local *MemoryNonceCache, health Health) *FallbackNonceCache {
	return &FallbackNonceCache{shared: shared, local: local, health: health}
}

// Bind implements NonceCache.
func (c *FallbackNonceCache) Bind(ctx context.Context, key NonceKey, sum MessageSum) (bool, error) {
	if c.health.Up() {
		ok, err := c.shared.Bind(ctx, key, sum)
		if err == nil {
			return ok, nil
		}
		c.health.Failed(ctx, err)
	}
	return c.local.Bind(ctx, key, sum)
}
