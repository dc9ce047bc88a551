package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/cluster"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/metrics"
	"github.com/wxloyalty/loyalty/internal/ratelimit"
	"github.com/wxloyalty/loyalty/internal/redisx"
	"github.com/wxloyalty/loyalty/internal/secrets"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
	"github.com/wxloyalty/loyalty/referral"
	"github.com/wxloyalty/loyalty/web"
	"github.com/wxloyalty/loyalty/webhook"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/inbox"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// App is the whole service, wired by hand: every dependency is created here
// and passed down through constructors, so tests can build isolated
// instances.
type App struct {
	cfg       configs.Config
	log       *slog.Logger
	now       func() time.Time
	db        *gorm.DB
	rdb       *redis.Client
	redis     *redisx.Health     // nil without Redis
	instances *cluster.Instances // nil without Redis: only the fallbacks need the count
	metrics   *metrics.Metrics
	keys      *secrets.Keyring

	accounts   *wechat.Accounts
	writer     *inbox.Writer
	dispatcher *inbox.Dispatcher
	keywords   *wechat.Keywords
	members    *member.Service
	codes      *member.Codes
	segments   *member.Segments
	points     *points.Service
	attributes *member.Attributes
	referrals  *referral.Service
	engine     *campaign.Engine
	care       *campaign.Care
	winBack    *campaign.WinBack
	surveys    *campaign.Surveys
	surveyAPI  *campaign.SurveyHandler
	tagRules   *member.TagRules
	notices    *campaign.Notices
	receipts   *campaign.Receipts
	webhooks   *webhook.Worker
	merchants  *admin.Merchants
	staffs     *admin.Staffs
	adminAPI   *admin.API
	sandbox    *admin.Sandbox // nil unless in sandbox mode
	sandboxOff string         // outside sandbox mode, why (the sandbox routes say it)

	handler   http.Handler
	panel     *web.Panel   // the admin panel's embedded build
	opsLn     net.Listener // the metrics listener (http.metrics_addr), or nil
	bannerOut io.Writer    // where sandbox mode prints its how-to

	stopWorkers context.CancelFunc
	workers     sync.WaitGroup

	// bgCtx bounds work started by requests that outlives them (member
	// imports); stop cancels it and waits for that work.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	// crmRoutes are the CRM features' admin route groups (routes.go).
	crmRoutes []interface{ Register(gin.IRouter) }
}

// background runs fn on its own goroutine until it returns or the service
// stops.
func (a *App) background(fn func(ctx context.Context)) {
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		fn(a.bgCtx)
	}()
}

// clock returns UTC times truncated to the millisecond, the precision of
// the DATETIME(3) columns, so a value reads back exactly as written.
func clock() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// appOptions are settings only tests change; configuration cannot reach
// them.
type appOptions struct {
	// passwords tunes bcrypt: tests lower its cost, never production.
	passwords admin.PasswordOptions
}

// appOption changes an appOptions.
type appOption func(*appOptions)

// newApp opens storage, applies migrations and builds every component.
// banner receives sandbox mode's how-to text.
func newApp(ctx context.Context, cfg configs.Config, log *slog.Logger, banner io.Writer, opts ...appOption) (*App, error) {
	var o appOptions
	for _, opt := range opts {
		opt(&o)
	}
	a := &App{cfg: cfg, log: log, now: clock, metrics: metrics.New(), bannerOut: banner}
	a.bgCtx, a.bgCancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()

	var err error
	if a.panel, err = web.NewPanel(); err != nil {
		return nil, err
	}
	if cfg.HTTP.MetricsAddr != "" {
		if a.opsLn, err = net.Listen("tcp", cfg.HTTP.MetricsAddr); err != nil {
			return nil, fmt.Errorf("listen on %s (LOYALTY_METRICS_ADDR): %w", cfg.HTTP.MetricsAddr, err)
		}
	}
	if a.db, err = openDB(ctx, cfg, log); err != nil {
		return nil, err
	}
	if sqlDB, err := a.db.DB(); err == nil {
		a.metrics.WatchDB(sqlDB)
	}
	if err := db.Migrate(ctx, a.db, log); err != nil {
		return nil, err
	}
	a.metrics.WatchBacklogs(a.db, a.now, log)
	sandbox, why, err := sandboxMode(ctx, cfg, a.db)
	if err != nil {
		return nil, err
	}
	log.Info("wechat mode", "sandbox", sandbox, "reason", why)
	if a.keys, err = loadKeys(cfg, sandbox); err != nil {
		return nil, err
	}

	// WeChat: one process-wide HTTP client for the SDK, a shared token
	// cache, and one Account per merchant.
	endpoint, err := wechat.ParseEndpoint(cfg.WeChat.APIBase)
	if err != nil {
		return nil, err
	}
	var sim *wechattest.Simulator
	if sandbox {
		sim = wechattest.New(wechattest.WithPathPrefix(sandboxAPIPath))
		if endpoint, err = sandboxEndpoint(cfg.HTTP.PublicURL); err != nil {
			return nil, err
		}
		// API calls reach the simulator in process, not through a
		// listener: the mounted simulator can then close (when a real
		// merchant exists) without cutting the sandbox merchants off.
		wechat.InstallHTTPClient(&http.Client{Timeout: cfg.WeChat.Timeout, Transport: sim.RoundTripper()})
	} else {
		wechat.InstallHTTPClient(wechat.NewHTTPClient(endpoint, cfg.WeChat.Timeout))
		a.sandboxOff = why
	}
	var tokens wechat.TokenCache = wechat.NewMemoryTokenCache()
	if cfg.Redis.Addr != "" {
		// Redis is shared state the service can work without: while it does
		// not answer (at start too), each piece falls back to this
		// instance's own (redisx), sharing limits by the live instances.
		redisx.UseLogger(log)
		a.rdb = redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
		a.redis = redisx.NewHealth(a.rdb, log, 0)
		a.metrics.Registry().MustRegister(a.redis.Collectors()...)
		a.instances = cluster.New(a.db, db.InstanceName(), 0, a.now, log)
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			a.redis.Failed(ctx, fmt.Errorf("redis %s at start: %w", cfg.Redis.Addr, err))
		}
		tokens = wechat.NewFallbackTokenCache(wechat.NewRedisTokenCache(a.rdb), a.redis)
	}
	a.merchants = admin.NewMerchants(a.db, a.keys, a.now, func(id uint64) { a.accounts.Invalidate(id) })
	a.accounts = wechat.NewAccounts(a.merchants, endpoint, tokens, a.metrics, time.Minute)
	a.staffs = admin.NewStaffs(a.db, a.now, admin.NewPasswords(o.passwords))
	auditLog := audit.NewRecorder(a.db, a.now)

	// Callbacks: stored by the inbox writer, applied by the dispatcher.
	a.dispatcher = inbox.NewDispatcher(a.db, log, inbox.DispatcherOptions{Now: a.now, Observer: a.metrics})
	a.writer = inbox.NewWriter(a.db, log, inbox.WriterOptions{Now: a.now, Notify: a.dispatcher.Wake})
	a.keywords = &wechat.Keywords{}
	// Webhooks: features emit events into the outbox inside their own
	// transactions; the worker delivers them.
	endpoints := webhook.NewEndpoints(a.db, a.keys, webhook.Targets{AllowPrivate: cfg.Webhooks.AllowPrivateTargets}, a.now)
	webhookOutbox := webhook.NewOutbox(endpoints, a.now, 0)
	// Auto-tagging: events about a member (and orders, refunds, profile
	// edits below) mark the member's tag rules for evaluation in the
	// change's own transaction.
	a.segments = member.NewSegments(a.db, a.merchants, a.now)
	a.tagRules = member.NewTagRules(a.db, a.segments, a.now, log)
	outbox := tagMarkingEmitter{next: webhookOutbox, tags: a.tagRules}
	a.webhooks = webhook.NewWorker(endpoints, a.now, log, webhook.WorkerOptions{Concurrency: cfg.Webhooks.Concurrency,
		PerEndpoint: cfg.Webhooks.PerEndpoint, Timeout: cfg.Webhooks.Timeout, Claim: db.ClaimStrategy(cfg.DB.ClaimStrategy)})
	a.members = member.NewService(a.db, a.accounts, a.now, log)
	a.members.UseEvents(outbox)
	a.members.RegisterHandlers(a.dispatcher)
	a.receipts = campaign.NewReceipts(a.db, a.now)
	a.receipts.RegisterHandlers(a.dispatcher)
	a.points = points.NewService(a.db, a.members, a.merchants, a.now, log)
	a.attributes = member.NewAttributes(a.db, points.NewHistory(a.db), a.merchants, a.now, log)
	a.points.OnPurchase(a.attributes.Refresh)
	a.points.OnPurchase(a.tagRules.MarkPending) // refunds and merges
	a.members.OnProfileChange(a.tagRules.MarkPending)
	a.points.UseCampaigns(orderCampaigns{a.db})
	a.members.UseAttributes(a.attributes)
	a.members.OnMerge(a.points.MergeHook)
	a.members.OnFollow(a.points.FollowHook)
	a.members.OnMerge(func(ctx context.Context, tx *gorm.DB, merchantID, fromID, intoID uint64) error {
		return outbox.Emit(ctx, tx, event.Event{MerchantID: merchantID, Type: event.MemberMerged,
			Data: event.Merge{MemberID: intoID, MergedMemberID: fromID}})
	})
	// (The points events go to the outbox and the service notices: see
	// UseEvents below, once the notices exist.)
	// Referrals: recorded when an invited member joins, rewarded in the
	// transaction of their first paid order.
	a.referrals = referral.NewService(a.db, a.accounts, a.members, cfg.HTTP.PublicURL, a.now, log)
	a.members.OnJoin(a.referrals.Joined)
	a.members.OnMerge(a.referrals.MergeHook)
	a.points.UseOrderHook(a.referrals)
	a.attributes.UseEvents(outbox)
	a.keywords.Register(a.points.KeywordReply)
	split := campaign.RateSplit{PerSecond: cfg.Send.RatePerSecond, ServicePct: cfg.Send.ServiceSharePct}
	var limiter campaign.Limiter = campaign.NewLocalLimiter(split)
	if a.rdb != nil {
		limiter = campaign.NewFallbackLimiter(campaign.NewRedisLimiter(a.rdb, split), split, a.redis, a.instances.Live,
			a.redis.ProbeInterval())
	}
	limiter = a.metrics.InstrumentLimiter(limiter, cfg.Send.RatePerSecond, cfg.Send.DailyQuota)
	a.engine = campaign.NewEngine(a.db, campaign.EngineDeps{WeChat: a.accounts, Audiences: a.segments, Merchants: a.merchants,
		Variables: messageVariables{members: a.members, points: a.points, merchants: a.merchants},
		Gifts:     campaignGifts{points: a.points}, Followers: a.members, Limiter: limiter, Events: outbox},
		a.now, log, campaign.EngineOptions{Concurrency: cfg.Send.Concurrency, DailyQuota: cfg.Send.DailyQuota,
			Claim: campaign.ClaimStrategy(cfg.DB.ClaimStrategy)})
	// Service notices hear the points events (points, tiers, coupons) in
	// the same transaction as the webhook outbox.
	a.notices = campaign.NewNotices(a.engine)
	a.notices.UseExpiring(a.points, a.points)
	a.points.UseEvents(event.Emitters{outbox, a.notices})
	a.care = campaign.NewCare(a.engine, campaign.CareDeps{Zones: a.merchants, Expiring: a.points, Coupons: a.points}, campaign.CareOptions{})
	a.winBack = campaign.NewWinBack(a.care, a.attributes, pointValues{a.points})
	// Surveys: an answer records the member's last scores (segments, churn
	// risk, tag rules) and the survey.answered webhook event.
	a.surveys = campaign.NewSurveys(a.care, surveyFacts{a.attributes, a.tagRules}, outbox, cfg.HTTP.PublicURL)
	// New orders: facts and attributes in one UPDATE, then the tag rules'
	// mark and the win-back episode the order answers.
	a.points.UseOrderWriter(orderWriterWith(a.attributes.OrderWriter, a.tagRules, a.winBack))
	a.adminAPI = &admin.API{Staffs: a.staffs, Keys: admin.NewAPIKeys(a.db, a.now), Throttle: admin.NewThrottle(a.db, a.now),
		Merchants: a.merchants, Audit: auditLog, Check: a.accounts, Menus: a.accounts, PublicURL: cfg.HTTP.PublicURL,
		Channels: admin.NewChannels(a.db, a.accounts, channelFigures{a.members, a.points}, a.now)}

	if cfg.WeChat.Merchant.Configured() {
		if err := ensureConfiguredMerchant(ctx, a.merchants, cfg.WeChat.Merchant, log, cfg.HTTP.PublicURL); err != nil {
			return nil, err
		}
	}
	if sandbox {
		a.sandbox = admin.NewSandbox(sim, a.merchants, a.members, admin.SandboxOptions{PublicURL: cfg.HTTP.PublicURL,
			Forced: cfg.WeChat.Sandbox == configs.SandboxOn, Log: log})
		if err := a.bootstrapSandbox(ctx); err != nil {
			return nil, err
		}
	}

	codeKeys := a.keys.VerifyingKeys("member-code") // the current key's first
	a.codes = member.NewCodes(a.db, codeKeys[0], a.now, codeKeys[1:]...)
	tokenKeys := a.keys.VerifyingKeys("member-token") // the current key's first
	var loginLimiter member.LoginLimiter = ratelimit.NewLocal(a.now)
	if a.rdb != nil {
		loginLimiter = ratelimit.NewFallback(ratelimit.NewRedis(a.rdb), ratelimit.NewLocal(a.now), a.redis, a.instances.Live)
	}
	memberAPI := member.NewHandler(a.members, member.NewTokens(tokenKeys[0], a.now, tokenKeys[1:]...), member.HandlerOptions{
		Limiter: loginLimiter, Log: log, Codes: a.codes, JSSDK: a.accounts, PageOrigin: cfg.HTTP.PublicURL,
		Limits: member.LoginLimits{PerClient: cfg.MemberLogin.PerClientPerMinute, PerMerchant: cfg.MemberLogin.PerMerchantPerMinute}})
	pointsAPI := points.NewHandler(a.points)
	pointsAPI.UseMemberCodes(a.codes)
	dashboard := admin.NewDashboardHandler(member.NewDashboard(a.db, a.attributes), points.NewDashboard(a.points), a.merchants, a.now)
	dashboard.UseWinBack(a.winBack)
	a.crmRoutes = append(a.crmRoutes, campaign.NewWinBackHandler(a.winBack), member.NewTagRuleHandler(a.tagRules))
	a.surveyAPI = campaign.NewSurveyHandler(a.surveys)
	a.crmRoutes = append(a.crmRoutes, a.surveyAPI)
	a.handler = a.routes(memberAPI, pointsAPI,
		member.NewAdminHandler(a.members, member.AdminOptions{Codes: a.codes}), member.NewSegmentHandler(a.segments, a.members),
		campaign.NewHandler(campaign.NewCampaigns(a.engine), campaign.NewGrants(a.db, a.now)), campaign.NewCareHandler(a.care),
		campaign.NewNoticeHandler(a.notices),
		dashboard,
		webhook.NewHandler(endpoints, webhook.NewDeliveries(a.db, a.now, 0)),
		member.NewImportHandler(member.NewImporter(a.db, a.points, a.now), filepath.Join(cfg.DataDir, "imports"), a.background),
		referral.NewHandler(a.referrals))
	if a.sandbox != nil {
		a.sandbox.Handler = a.handler
	}
	ok = true
	return a, nil
}

func openDB(ctx context.Context, cfg configs.Config, log *slog.Logger) (*gorm.DB, error) {
	return db.Open(ctx, db.Options{Driver: cfg.DB.Driver, DSN: cfg.DB.DSN, MaxOpenConns: cfg.DB.MaxOpenConns,
		ConnMaxLifetime: cfg.DB.ConnMaxLifetime, SlowQuery: cfg.DB.SlowQuery, Logger: log})
}

// openCurrentDB opens the database for a maintenance command, which must
// find the schema up to date (it does not migrate by itself). The caller
// closes it.
func openCurrentDB(ctx context.Context, cfg configs.Config, log *slog.Logger) (*gorm.DB, error) {
	gdb, err := openDB(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	current, latest, err := db.SchemaVersion(ctx, gdb)
	if err == nil && current < latest {
		err = fmt.Errorf("the database schema is at version %d, the binary expects %d: run `loyalty migrate` first", current, latest)
	}
	if err != nil {
		_ = db.Close(gdb)
		return nil, err
	}
	return gdb, nil
}

// loadKeys returns the keyring: the current key from LOYALTY_SECRET_KEY,
// else from the key file under the data directory, which only sandbox mode
// may create; and the old keys of LOYALTY_SECRET_KEYS_OLD.
func loadKeys(cfg configs.Config, sandbox bool) (*secrets.Keyring, error) {
	key := cfg.SecretKey
	if key == "" {
		var err error
		key, err = secrets.LoadKeyFile(filepath.Join(cfg.DataDir, "secret.key"), sandbox)
		if err != nil {
			return nil, fmt.Errorf("secret_key (LOYALTY_SECRET_KEY) is required outside sandbox mode "+
				"(for example `openssl rand -hex 32`): %w", err)
		}
	}
	return secrets.New(key, cfg.SecretKeysOld...)
}

// Start launches the inbox writer (callbacks need it) and, unless the
// configuration says this is an API-only instance, the background workers.
func (a *App) Start() {
	a.writer.Start()
	ctx, cancel := context.WithCancel(context.Background())
	a.stopWorkers = cancel
	if a.instances != nil {
		a.workers.Add(1)
		go func() {
			defer a.workers.Done()
			a.instances.Run(ctx)
		}()
	}
	if a.sandbox != nil {
		// Notices a real merchant created by another process and logs that
		// sandbox mode ended, even when nobody uses the sandbox meanwhile.
		a.workers.Add(1)
		go func() {
			defer a.workers.Done()
			a.sandbox.Watch(ctx, 30*time.Second)
		}()
	}
	if !a.cfg.Workers {
		a.log.Info("background workers off (workers: false); another instance must run them")
		return
	}
	a.workers.Add(8)
	go func() {
		defer a.workers.Done()
		a.webhooks.Run(ctx)
	}()
	go func() {
		defer a.workers.Done()
		a.dispatcher.Run(ctx)
	}()
	go func() {
		defer a.workers.Done()
		a.points.Run(ctx, time.Minute)
	}()
	go func() {
		defer a.workers.Done()
		a.attributes.Run(ctx, 5*time.Minute)
	}()
	go func() {
		defer a.workers.Done()
		a.engine.Run(ctx)
	}()
	go func() {
		defer a.workers.Done()
		a.care.Run(ctx, time.Minute)
	}()
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		a.winBack.Run(ctx, 5*time.Minute)
	}()
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		a.tagRules.Run(ctx, 5*time.Second)
	}()
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		a.surveys.Run(ctx, 15*time.Second)
	}()
	go func() {
		defer a.workers.Done()
		a.notices.Run(ctx, 10*time.Minute)
	}()
	go func() {
		defer a.workers.Done()
		a.housekeeping(ctx, 10*time.Minute)
	}()
}

// housekeeping deletes what has stopped mattering: ended staff sessions,
// old failed-login counters, expired member refresh tokens, the uses of
// long-expired member codes and service notices finished longer ago than
// the notice retention (in bounded batches). Any number
// of instances may run it.
func (a *App) housekeeping(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.staffs.PurgeSessions(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("housekeeping: sessions", "error", err)
		}
		if err := a.adminAPI.Throttle.Purge(ctx, time.Hour); err != nil && ctx.Err() == nil {
			a.log.Warn("housekeeping: login throttle", "error", err)
		}
		if err := a.members.PurgeRefreshTokens(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("housekeeping: member refresh tokens", "error", err)
		}
		if err := a.codes.PurgeUses(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("housekeeping: member code uses", "error", err)
		}
		if n, err := a.notices.Prune(ctx, a.cfg.Send.NoticeRetention, 0); err != nil && ctx.Err() == nil {
			a.log.Warn("housekeeping: service notices", "error", err)
		} else if n > 0 {
			a.log.Info("housekeeping: service notices pruned", "rows", n)
		}
	}
}

// Handler is the service's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully:
// in-flight requests finish (bounded by the shutdown timeout), then the
// inbox writer flushes what it holds, then the workers stop.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	a.Start()
	stopOps := a.serveOps()
	defer stopOps()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("listening", "addr", ln.Addr().String(), "public_url", a.cfg.HTTP.PublicURL)
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
		a.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
		serveErr = srv.Shutdown(sctx)
		cancel()
		if serveErr == nil {
			serveErr = <-errc
		}
	}
	a.stop()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// stop stops the background work: first the writer (it finishes queued
// writes), then the dispatcher.
func (a *App) stop() {
	if a.bgCancel != nil {
		a.bgCancel()
		a.bg.Wait()
	}
	if a.stopWorkers == nil {
		return
	}
	a.writer.Stop()
	a.stopWorkers()
	a.workers.Wait()
	a.stopWorkers = nil
}

// Close stops the workers and releases connections.
func (a *App) Close() {
	a.stop()
	if a.opsLn != nil {
		_ = a.opsLn.Close() // already closed if Serve ran
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.adminAPI != nil {
		a.adminAPI.Keys.Wait() // last-use writes in flight
	}
	if a.db != nil {
		_ = db.Close(a.db)
	}
}

// readyz reports whether the database can serve requests: its schema is
// there and current (see db.Ready).
func (a *App) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := db.Ready(ctx, a.db); err != nil {
		a.log.WarnContext(ctx, "not ready", "error", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "database": "not ready"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
