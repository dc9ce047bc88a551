// Package ttlcache keeps values read from the database for a short time,
// per key, for reads on a hot path (a merchant's settings, its points rules
// and tiers read by every order).
//
// What it guarantees: a value is at most TTL old when it is served; a
// change made through this process and followed by Invalidate is seen by
// the next Get, even when a load that started before the change finishes
// after it (a per-key generation makes that load's value not cached). A
// change made through another instance is seen within TTL. Callers document
// that bound where it matters.
package ttlcache

import (
	"context"
	"sync"
	"time"
)

// Cache holds values by key for TTL.
type Cache[K comparable, V any] struct {
	ttl  time.Duration
	now  func() time.Time
	mu   sync.Mutex
	m    map[K]entry[V]
	gens map[K]uint64
}

type entry[V any] struct {
	v   V
	at  time.Time
	gen uint64
}

// New returns a cache whose values live for ttl.
func New[K comparable, V any](ttl time.Duration) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, now: time.Now, m: map[K]entry[V]{}, gens: map[K]uint64{}}
}

// Get returns the cached value of k, or loads, caches and returns it. Two
// callers missing at once may both load; the value of a load that began
// before an Invalidate of k is returned to its caller but not kept.
func (c *Cache[K, V]) Get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[k]
	gen := c.gens[k]
	c.mu.Unlock()
	if ok && e.gen == gen && now.Sub(e.at) < c.ttl {
		return e.v, nil
	}
	v, err := load(ctx)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.gens[k] == gen {
		c.m[k] = entry[V]{v: v, at: now, gen: gen}
	}
	c.mu.Unlock()
	return v, nil
}

// Invalidate drops k's value: the next Get loads it again. Call it after
// the change is committed.
func (c *Cache[K, V]) Invalidate(k K) {
	c.mu.Lock()
	c.gens[k]++
	delete(c.m, k)
	c.mu.Unlock()
}
