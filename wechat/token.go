package wechat

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
	"golang.org/x/sync/singleflight"
)

// TokenCache stores access tokens. With several service instances it must
// be shared (Redis) so they use one token and save token calls.
type TokenCache interface {
	// Get returns the token or "" when there is none.
	Get(ctx context.Context, key string) (string, error)
	Set(ctx context.Context, key, token string, ttl time.Duration) error
	Delete(ctx context.Context, key string) error
}

// MemoryTokenCache is a TokenCache for a single instance.
type MemoryTokenCache struct {
	mu sync.Mutex
	m  map[string]memoryToken
}

type memoryToken struct {
	token   string
	expires time.Time
}

// NewMemoryTokenCache returns an empty in-process cache.
func NewMemoryTokenCache() *MemoryTokenCache {
	return &MemoryTokenCache{m: map[string]memoryToken{}}
}

// Get implements TokenCache.
func (c *MemoryTokenCache) Get(_ context.Context, key string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[key]
	if !ok || time.Now().After(t.expires) {
		return "", nil
	}
	return t.token, nil
}

// Set implements TokenCache.
func (c *MemoryTokenCache) Set(_ context.Context, key, token string, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = memoryToken{token: token, expires: time.Now().Add(ttl)}
	return nil
}

// Delete implements TokenCache.
func (c *MemoryTokenCache) Delete(_ context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	return nil
}

// RedisTokenCache is a TokenCache shared by every instance through Redis.
type RedisTokenCache struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisTokenCache stores tokens under "loyalty:wechat:token:<key>".
func NewRedisTokenCache(rdb redis.UniversalClient) *RedisTokenCache {
	return &RedisTokenCache{rdb: rdb, prefix: "loyalty:wechat:token:"}
}

// Get implements TokenCache.
func (c *RedisTokenCache) Get(ctx context.Context, key string) (string, error) {
	v, err := c.rdb.Get(ctx, c.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// Set implements TokenCache.
func (c *RedisTokenCache) Set(ctx context.Context, key, token string, ttl time.Duration) error {
	return c.rdb.Set(ctx, c.prefix+key, token, ttl).Err()
}

// Delete implements TokenCache.
func (c *RedisTokenCache) Delete(ctx context.Context, key string) error {
	return c.rdb.Del(ctx, c.prefix+key).Err()
}

// tokenSource hands the SDK a stable access token (one token shared by all
// callers, unlike /cgi-bin/token which supersedes the previous token on
// every fetch) from the TokenCache, fetching it at most once at a time per
// process. It implements credential.AccessTokenContextHandle.
type tokenSource struct {
	api    string // "oa" or "mp", for errors and metrics
	key    string
	cache  TokenCache
	stable *credential.StableAccessToken
	group  singleflight.Group
	obs    Observer
}

func newTokenSource(api, appID, secret string, tc TokenCache, obs Observer) *tokenSource {
	// The SDK handle is used only for its HTTP fetch (GetAccessTokenDirectly);
	// its own cache is a throwaway because caching is done here.
	h := credential.NewStableAccessToken(appID, secret, "", cache.NewMemory()).(*credential.StableAccessToken)
	return &tokenSource{api: api, key: api + ":" + appID, cache: tc, stable: h, obs: obs}
}

// GetAccessToken implements credential.AccessTokenHandle.
func (t *tokenSource) GetAccessToken() (string, error) {
	return t.GetAccessTokenContext(context.Background())
}

// GetAccessTokenContext implements credential.AccessTokenContextHandle.
func (t *tokenSource) GetAccessTokenContext(ctx context.Context) (string, error) {
	if tok, err := t.cache.Get(ctx, t.key); err == nil && tok != "" {
		return tok, nil
	}
	// A cache failure (Redis down) is not fatal: the stable token endpoint
	// returns the same token to every caller, so fetching is correct, only
	// slower. singleflight keeps it to one fetch at a time per process.
	v, err, _ := t.group.Do("fetch", func() (any, error) {
		if tok, err := t.cache.Get(ctx, t.key); err == nil && tok != "" {
			return tok, nil
		}
		// Detach from the caller: other callers share this fetch. The HTTP
		// client's timeout bounds it.
		fetchCtx := context.WithoutCancel(ctx)
		start := time.Now()
		res, err := t.stable.GetAccessTokenDirectly(fetchCtx, false)
		apiErr := classify(t.api+".token", err)
		t.obs.ObserveCall(t.api+".token", errOrNil(apiErr), time.Since(start))
		if apiErr != nil {
			return "", apiErr
		}
		// WeChat re-issues a stable token in its last 5 minutes; refresh
		// before that. A short or odd expires_in still gets a sane TTL.
		ttl := time.Duration(res.ExpiresIn-300) * time.Second
		if ttl < time.Minute {
			ttl = time.Minute
		}
		_ = t.cache.Set(fetchCtx, t.key, res.AccessToken, ttl)
		return res.AccessToken, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// invalidate drops the cached token so the next call fetches a fresh one.
func (t *tokenSource) invalidate(ctx context.Context) {
	_ = t.cache.Delete(context.WithoutCancel(ctx), t.key)
}

// Health says whether a shared (Redis) store is to be used, and hears of
// its failures (internal/redisx.Health).
type Health interface {
	Up() bool
	Failed(ctx context.Context, err error)
}

// FallbackTokenCache uses the shared cache while health says it is up and
// this instance's own memory while it is not, so a Redis outage does not
// stop WeChat calls. Tokens are stable tokens: one fetched by an instance
// alone does not invalidate the shared one.
type FallbackTokenCache struct {
	shared TokenCache
	local  *MemoryTokenCache
	health Health
}

// NewFallbackTokenCache returns shared with a memory fallback.
func NewFallbackTokenCache(shared TokenCache, health Health) *FallbackTokenCache {
	return &FallbackTokenCache{shared: shared, local: NewMemoryTokenCache(), health: health}
}

// Get implements TokenCache.
func (c *FallbackTokenCache) Get(ctx context.Context, key string) (string, error) {
	if c.health.Up() {
		v, err := c.shared.Get(ctx, key)
		if err == nil {
			return v, nil
		}
		c.health.Failed(ctx, err)
	}
	return c.local.Get(ctx, key)
}

// Set implements TokenCache: the token is kept locally too, for the time
// the shared cache may be away.
func (c *FallbackTokenCache) Set(ctx context.Context, key, token string, ttl time.Duration) error {
	_ = c.local.Set(ctx, key, token, ttl)
	if c.health.Up() {
		if err := c.shared.Set(ctx, key, token, ttl); err != nil {
			c.health.Failed(ctx, err)
		}
	}
	return nil
}

// Delete implements TokenCache.
func (c *FallbackTokenCache) Delete(ctx context.Context, key string) error {
	_ = c.local.Delete(ctx, key)
	if c.health.Up() {
		if err := c.shared.Delete(ctx, key); err != nil {
			c.health.Failed(ctx, err)
		}
	}
	return nil
}
