package campaign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// WeChat is what the engine needs of WeChat; *wechat.Accounts satisfies it.
type WeChat interface {
	SendTemplate(ctx context.Context, merchantID uint64, m wechat.TemplateMessage) (int64, error)
	SendMPSubscribe(ctx context.Context, merchantID uint64, m wechat.SubscribeMessage) (int64, error)
	SendCustomerText(ctx context.Context, merchantID uint64, openID, text string) error
	Templates(ctx context.Context, merchantID uint64) ([]wechat.Template, error)
	MPTemplates(ctx context.Context, merchantID uint64) ([]wechat.Template, error)
	AppID(ctx context.Context, merchantID uint64) (string, error)
}

// Merchants tells the engine a merchant's clock; admin.Merchants satisfies
// it.
type Merchants interface {
	Location(ctx context.Context, merchantID uint64) (*time.Location, error)
	QuietHours(ctx context.Context, merchantID uint64) (start, end int, err error)
	// FrequencyCap is the merchant's marketing frequency cap: messages per
	// member in windowDays days; 0 for either takes the engine's option.
	FrequencyCap(ctx context.Context, merchantID uint64) (messages, windowDays int, err error)
}

// Variables fills member variables of messages; cmd/loyalty wires member
// and points behind it.
type Variables interface {
	// Values returns, per member, the value of each of names (name,
	// points, tier, expiring_points...).
	Values(ctx context.Context, merchantID uint64, memberIDs []uint64, names []string) (map[uint64]map[string]string, error)
}

// Gifts grants a campaign's gift; cmd/loyalty wires points behind it.
type Gifts interface {
	// Grant gives the member the gift; a repeat with the same key has no
	// further effect. An error of kind apperr.ErrNotFound (the reward or
	// the member is gone) will not go away by trying again.
	Grant(ctx context.Context, merchantID, memberID uint64, g Gift, key, reason string) error
	// Check reports whether the merchant can give the gift: its reward
	// must be one of the merchant's (apperr.ErrNotFound otherwise).
	Check(ctx context.Context, merchantID uint64, g Gift) error
}

// Followers learns from WeChat that a member does not follow any more
// (43004); member.Service satisfies it.
type Followers interface {
	MarkUnfollowed(ctx context.Context, merchantID, memberID uint64) error
}

// EngineOptions tune the engine. Zero values pick the defaults.
type EngineOptions struct {
	Batch         int           // deliveries claimed at a time (default 100)
	Concurrency   int           // sends in flight per instance (default 64)
	Lease         time.Duration // how long a claim keeps other instances away (default 2m)
	Poll          time.Duration // idle wait (default 500ms)
	DailyQuota    int64         // messages per account per local day (default 100,000)
	ServiceQuota  int64         // of which kept for service messages (default 1%)
	MaxAttempts   int           // sends of a row before it fails (default 5)
	FrequencyCap  int           // capped messages per member per window (default 2)
	CapWindow     time.Duration // (default 7 days)
	AutoPauseMin  int           // attempts before the failure share can pause a campaign (default 50)
	AutoPausePct  int           // failure share that pauses it (default 50)
	SendTimeout   time.Duration // one WeChat call (default 10s)
	RetryBase     time.Duration // first retry delay (default 5s; doubled, with jitter)
	PlanChunks    int           // planning statements per round (default 5)
	SliceTime     time.Duration // how long a round sends one campaign before the others get a turn (default 10s)
	StatusEvery   time.Duration // how often a sending slice reads its campaign's status: a pause or cancel stops it within this (default 1s)
	Owner         string        // names this instance in leases (default host:pid:random)
	MerchantCache time.Duration // how long merchant clocks are trusted (default 1 minute)
	GiftRetryBase time.Duration // first wait after a gift could not be granted (default 1m; doubled up to 6h)
	GiftAttempts  int           // attempts at a gift before giving up (default 12: about a day)
	GiftBatch     int           // due gifts retried per round, shared fairly by merchants (default 100)
	Claim         ClaimStrategy // how MySQL instances claim rows apart (default ClaimSkipLocked)
}

func (o *EngineOptions) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Batch, 100)
	def(&o.Concurrency, 64)
	def(&o.MaxAttempts, 5)
	def(&o.FrequencyCap, 2)
	def(&o.AutoPauseMin, 50)
	def(&o.AutoPausePct, 50)
	def(&o.PlanChunks, 5)
	def(&o.GiftAttempts, 12)
	def(&o.GiftBatch, 100)
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&o.Lease, 2*time.Minute)
	dur(&o.Poll, 500*time.Millisecond)
	dur(&o.CapWindow, 7*24*time.Hour)
	dur(&o.SendTimeout, 10*time.Second)
	dur(&o.RetryBase, 5*time.Second)
	dur(&o.MerchantCache, time.Minute)
	dur(&o.SliceTime, 10*time.Second)
	dur(&o.StatusEvery, time.Second)
	dur(&o.GiftRetryBase, time.Minute)
	if o.DailyQuota <= 0 {
		o.DailyQuota = 100000
	}
	if o.Claim == "" {
		o.Claim = ClaimSkipLocked
	}
	if o.ServiceQuota <= 0 {
		o.ServiceQuota = max(10, o.DailyQuota/100)
	}
	if o.Owner == "" {
		o.Owner = db.InstanceName()
	}
}

// Engine plans and sends campaigns. Any number of instances may run it
// against one database: planning is idempotent, claims are leases, every
// state change is conditional on the lease owner.
type Engine struct {
	db        *gorm.DB
	mysql     bool
	rows      deliveryRows
	wx        WeChat
	audiences Audiences
	merchants Merchants
	vars      Variables
	gifts     Gifts
	followers Followers
	limiter   Limiter
	events    event.Emitter
	now       func() time.Time
	log       *slog.Logger
	o         EngineOptions
	sem       chan struct{}

	mu    sync.Mutex
	clock map[uint64]merchantClock
	tally map[[2]uint64][2]int // (campaign, step) -> sends attempted and failed here
	// quotaRows are the (merchant/day) quota rows known to exist.
	quotaRows map[string]bool

	hooks testHooks
}

// testHooks are seams where a test stops the engine to force an
// interleaving (a stall at the worst moment); all nil in production.
type testHooks struct {
	beforeMark func(ids []uint64)         // a send group is about to be marked sending
	beforeCall func(id uint64)            // a row is about to be sent, its rate permit taken
	renewed    func(taken int, err error) // a lease renewal ended
	record     func() error               // results are about to be written; an error fails the write
}

type merchantClock struct {
	loc        *time.Location
	quietStart int
	quietEnd   int
	capN       int           // the frequency cap: capped messages per member
	capWindow  time.Duration // in this window
	appID      string
	read       time.Time
}

// EngineDeps are the engine's collaborators.
type EngineDeps struct {
	WeChat    WeChat
	Audiences Audiences
	Merchants Merchants
	Variables Variables
	Gifts     Gifts
	Followers Followers
	Limiter   Limiter
	Events    event.Emitter // nil: no events; else campaign.completed is emitted
}

// NewEngine returns an engine.
func NewEngine(gdb *gorm.DB, d EngineDeps, now func() time.Time, log *slog.Logger, o EngineOptions) *Engine {
	o.defaults()
	mysql := gdb.Dialector.Name() == db.MySQL
	return &Engine{db: gdb, mysql: mysql, rows: deliveryRows{db: gdb, mysql: mysql, strategy: o.Claim}, wx: d.WeChat, audiences: d.Audiences,
		merchants: d.Merchants, vars: d.Variables, gifts: d.Gifts, followers: d.Followers, limiter: d.Limiter, events: d.Events,
		now: now, log: log, o: o, sem: make(chan struct{}, o.Concurrency), clock: map[uint64]merchantClock{},
		tally: map[[2]uint64][2]int{}, quotaRows: map[string]bool{}}
}

// Run works until ctx ends: starting due campaigns, planning, sweeping
// expired leases, sending and completing.
func (e *Engine) Run(ctx context.Context) {
	for {
		worked, err := e.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "campaign: engine round failed", "error", err)
		}
		if ctx.Err() != nil {
			return
		}
		if worked == 0 {
			t := time.NewTimer(e.o.Poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// RunOnce does one round and returns how many deliveries it finished.
func (e *Engine) RunOnce(ctx context.Context) (int, error) {
	var errs []error
	if err := e.startDue(ctx); err != nil {
		errs = append(errs, err)
	}
	running, err := e.runningCampaigns(ctx)
	if err != nil {
		return 0, err
	}
	for _, c := range running {
		for range e.o.PlanChunks {
			done, err := e.planChunk(ctx, c)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if done {
				break
			}
			if c, err = e.reload(ctx, c.ID); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	if err := e.sweep(ctx); err != nil {
		errs = append(errs, err)
	}
	if running, err = e.runningCampaigns(ctx); err != nil {
		return 0, err
	}
	// Service campaigns first: their lane is reserved, and they are small.
	sort.SliceStable(running, func(i, j int) bool {
		return running[i].Kind == KindService && running[j].Kind != KindService
	})
	total := 0
	for _, c := range running {
		n, err := e.sendSlice(ctx, c)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
		if err := e.maybeComplete(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.grantDueGifts(ctx); err != nil {
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

func (e *Engine) reload(ctx context.Context, id uint64) (Campaign, error) {
	var c Campaign
	if err := e.db.WithContext(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		return Campaign{}, fmt.Errorf("campaign %d: %w", id, err)
	}
	return c, nil
}

// runningCampaigns lists campaigns being sent (idx_campaigns_due). A
// notice kind's campaign is always running, so it is listed only while it
// has a pending row (an existence probe on idx_deliveries_claim per notice
// campaign): thousands of merchants' idle notice kinds must not fill the
// list and push real campaigns out of it.
func (e *Engine) runningCampaigns(ctx context.Context) ([]Campaign, error) {
	var out []Campaign
	if err := e.db.WithContext(ctx).Where("status = ? AND notice_kind IS NULL", StatusRunning).Order("id").Limit(1000).
		Find(&out).Error; err != nil {
		return nil, fmt.Errorf("campaign: running campaigns: %w", err)
	}
	var notices []Campaign
	if err := e.db.WithContext(ctx).Where("status = ? AND notice_kind IS NOT NULL", StatusRunning).
		Where("EXISTS (SELECT 1 FROM campaign_deliveries d WHERE d.campaign_id = campaigns.id AND d.status = ?)", DeliveryPending).
		Order("id").Limit(1000).Find(&notices).Error; err != nil {
		return nil, fmt.Errorf("campaign: notices to send: %w", err)
	}
	return append(notices, out...), nil
}

// startDue starts scheduled campaigns whose time has come.
func (e *Engine) startDue(ctx context.Context) error {
	var due []Campaign
	if err := e.db.WithContext(ctx).Where("status = ? AND next_run_at <= ?", StatusScheduled, e.now()).
		Order("next_run_at").Limit(100).Find(&due).Error; err != nil {
		return fmt.Errorf("campaign: due campaigns: %w", err)
	}
	var errs []error
	for _, c := range due {
		if err := e.startStep(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// merchantClock returns the merchant's zone, quiet hours, frequency cap and account,
// cached for a minute.
func (e *Engine) merchantClock(ctx context.Context, merchantID uint64) (merchantClock, error) {
	e.mu.Lock()
	mc, ok := e.clock[merchantID]
	e.mu.Unlock()
	if ok && time.Since(mc.read) < e.o.MerchantCache {
		return mc, nil
	}
	loc, err := e.merchants.Location(ctx, merchantID)
	if err != nil {
		return merchantClock{}, err
	}
	start, end, err := e.merchants.QuietHours(ctx, merchantID)
	if err != nil {
		return merchantClock{}, err
	}
	capN, capDays, err := e.merchants.FrequencyCap(ctx, merchantID)
	if err != nil {
		return merchantClock{}, err
	}
	appID, err := e.wx.AppID(ctx, merchantID)
	if err != nil {
		return merchantClock{}, err
	}
	mc = merchantClock{loc: loc, quietStart: start, quietEnd: end, capN: e.o.FrequencyCap, capWindow: e.o.CapWindow,
		appID: appID, read: time.Now()}
	if capN > 0 {
		mc.capN = capN
	}
	if capDays > 0 {
		mc.capWindow = time.Duration(capDays) * 24 * time.Hour
	}
	e.mu.Lock()
	e.clock[merchantID] = mc
	e.mu.Unlock()
	return mc, nil
}

// frequencyCap returns the merchant's frequency cap (its own, or the
// engine's option where it has none), read now: for previews, which must
// not depend on the merchant's WeChat account being reachable.
func (e *Engine) frequencyCap(ctx context.Context, merchantID uint64) (int, time.Duration, error) {
	n, days, err := e.merchants.FrequencyCap(ctx, merchantID)
	if err != nil {
		return 0, 0, err
	}
	window := e.o.CapWindow
	if n <= 0 {
		n = e.o.FrequencyCap
	}
	if days > 0 {
		window = time.Duration(days) * 24 * time.Hour
	}
	return n, window, nil
}

// InQuietHours reports whether local minute-of-day t falls in the quiet
// window [start, end), which may wrap past midnight; start == end is none.
func InQuietHours(t time.Time, start, end int) bool {
	m := t.Hour()*60 + t.Minute()
	switch {
	case start == end:
		return false
	case start < end:
		return m >= start && m < end
	}
	return m >= start || m < end
}

// quietUntil returns when the quiet window that holds t ends.
func quietUntil(t time.Time, end int) time.Time {
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	until := day.Add(time.Duration(end) * time.Minute)
	if !until.After(t) {
		until = until.AddDate(0, 0, 1)
	}
	return until
}

// sweep settles expired leases (deliveryRows.sweep).
func (e *Engine) sweep(ctx context.Context) error {
	released, lost, err := e.rows.sweep(ctx, e.now())
	if lost > 0 {
		e.log.WarnContext(ctx, "campaign: sends of a lost worker left unknown (never resent on their own)", "rows", lost)
	}
	if released > 0 {
		e.log.InfoContext(ctx, "campaign: claims of a lost worker back in the queue", "rows", released)
	}
	return err
}

// quotaLeft returns how many more messages the account may send today on
// the lane, and whether WeChat has declared the quota exhausted.
func (e *Engine) quotaLeft(ctx context.Context, merchantID uint64, day string, lane Lane) (int64, error) {
	var q struct {
		Used           int64
		ExhaustedUntil *time.Time
	}
	err := e.db.WithContext(ctx).Table("wechat_send_quota").Select("used, exhausted_until").
		Where("merchant_id = ? AND day = ?", merchantID, day).Take(&q).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, fmt.Errorf("campaign: quota: %w", err)
	}
	if q.ExhaustedUntil != nil && q.ExhaustedUntil.After(e.now()) {
		return 0, nil
	}
	limit := e.o.DailyQuota
	if lane == LaneMarketing {
		limit -= e.o.ServiceQuota
	}
	return max(0, limit-q.Used), nil
}

// exhausted reports whether WeChat declared the account's quota spent
// (45009) for the local day.
func (e *Engine) exhausted(ctx context.Context, merchantID uint64, day string) (bool, error) {
	var n int64
	err := e.db.WithContext(ctx).Table("wechat_send_quota").
		Where("merchant_id = ? AND day = ? AND exhausted_until > ?", merchantID, day, e.now()).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("campaign: quota: %w", err)
	}
	return n > 0, nil
}
