package points

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/ttlcache"
	"github.com/wxloyalty/loyalty/member"
)

// Members is what points needs from the member package; *member.Service
// satisfies it.
type Members interface {
	FindBuyer(ctx context.Context, merchantID uint64, ref member.BuyerRef) (member.Buyer, error)
}

// Campaigns tells whether an id names one of a merchant's campaigns, so an
// order's campaign_id is checked before it is stored. The campaign package
// imports points (gifts), so points cannot import it: cmd/loyalty
// satisfies this with a small adapter.
type Campaigns interface {
	CampaignExists(ctx context.Context, merchantID, campaignID uint64) (bool, error)
}

// Zones gives a merchant's time zone; *admin.Merchants satisfies it.
type Zones interface {
	Location(ctx context.Context, merchantID uint64) (*time.Location, error)
}

// Service holds the points rules: orders and refunds, the ledger and its
// lots, earning rules, check-ins, tiers, rewards and redemptions, reports
// and the background jobs.
//
// Every business operation is one database transaction. Within it, the
// member's points_accounts row is locked first (after the members row when
// the operation writes it: the order a member merge uses too), so
// operations on one member are serialised on MySQL as on SQLite, and the
// materialised balance is updated together with the entry that explains
// it. Idempotency keys are unique indexes, so a replay or a second
// instance finds the first result instead of doing the work twice.
type Service struct {
	db      *gorm.DB
	members Members
	zones   Zones
	now     func() time.Time
	log     *slog.Logger
	mysql   bool

	zoneMu    sync.Mutex
	zoneCache map[uint64]zoneEntry
	keywords  sync.Map // merchant id → keywordEntry
	rulesets  *ttlcache.Cache[uint64, ruleTiers]

	purchaseHooks []PurchaseHook
	orderHooks    []OrderHook   // order_hooks.go
	orderWriter   OrderWriter   // nil: RecordPurchase and the purchase hooks
	campaigns     Campaigns     // nil: orders cannot name a campaign
	events        event.Emitter // nil: no events (see UseEvents)

	// JobBatch is how many lots or accounts a job takes per query.
	JobBatch int
}

type zoneEntry struct {
	loc *time.Location
	at  time.Time
}

type keywordEntry struct {
	keyword string
	at      time.Time
}

// cacheTTL bounds how long a merchant's time zone and keyword are cached;
// a change made through another instance applies within it.
const cacheTTL = time.Minute

// rulesTTL bounds how long the rules and tiers an order is computed with
// are cached (orders only: every other operation reads them afresh). A
// change saved through this instance applies to the next order; one saved
// through another instance applies within rulesTTL, as if the orders of
// those seconds had come just before the change. Balances are never
// cached.
const rulesTTL = 5 * time.Second

// ruleTiers is a merchant's current rules and tiers.
type ruleTiers struct {
	rules RuleSet
	tiers []Tier
}

// NewService returns the points service. now must return UTC times
// truncated to the millisecond.
func NewService(gdb *gorm.DB, members Members, zones Zones, now func() time.Time, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: gdb, members: members, zones: zones, now: now, log: log,
		mysql: gdb.Dialector.Name() == db.MySQL, zoneCache: map[uint64]zoneEntry{}, JobBatch: 500,
		rulesets: ttlcache.New[uint64, ruleTiers](rulesTTL)}
}

// Errors of the points rules.
var (
	errInsufficient  = apperr.New(apperr.ErrUnprocessable, "not enough points")
	errMemberUnknown = apperr.New(apperr.ErrUnprocessable, "member not found")
	errMemberErased  = apperr.New(apperr.ErrUnprocessable, "the member's data was erased; no new points can be recorded")
	errNoMember      = apperr.New(apperr.ErrNotFound, "member not found")
	errRetry         = errors.New("points: state changed under the transaction; retry")
)

// inTx runs fn in one transaction, retrying when the database gave up on it
// (a deadlock or lock wait on MySQL, a busy SQLite) or when a unique index
// stopped a concurrent duplicate: the retry then finds the winner's row and
// returns its result.
func (s *Service) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = s.db.WithContext(ctx).Transaction(fn)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 2 * time.Millisecond)
	}
	return err
}

func retryable(err error) bool {
	return db.IsDuplicate(err) || errors.Is(err, errRetry) || db.IsTransient(err)
}

// location returns the merchant's time zone.
func (s *Service) location(ctx context.Context, merchantID uint64) (*time.Location, error) {
	now := time.Now()
	s.zoneMu.Lock()
	e, ok := s.zoneCache[merchantID]
	s.zoneMu.Unlock()
	if ok && now.Sub(e.at) < cacheTTL {
		return e.loc, nil
	}
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return nil, fmt.Errorf("points: time zone of merchant %d: %w", merchantID, err)
	}
	s.zoneMu.Lock()
	s.zoneCache[merchantID] = zoneEntry{loc: loc, at: now}
	s.zoneMu.Unlock()
	return loc, nil
}

// RuleSet is one version of a merchant's rules.
type RuleSet struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Rules     Rules     `json:"rules"`
}

// rules returns the merchant's current rules (DefaultRules as version 0
// when none were saved). One probe of the primary key.
func (s *Service) rules(ctx context.Context, q *gorm.DB, merchantID uint64) (RuleSet, error) {
	var rv ruleVersion
	err := q.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("version DESC").Limit(1).Take(&rv).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return RuleSet{Rules: DefaultRules()}, nil
	}
	if err != nil {
		return RuleSet{}, fmt.Errorf("points: rules of merchant %d: %w", merchantID, err)
	}
	r, err := decodeStoredRules(rv.Body)
	if err != nil {
		return RuleSet{}, err
	}
	return RuleSet{Version: rv.Version, CreatedAt: rv.CreatedAt, CreatedBy: rv.CreatedBy, Rules: r}, nil
}

// tiers returns the merchant's tiers, lowest level first.
func (s *Service) tiers(ctx context.Context, q *gorm.DB, merchantID uint64) ([]Tier, error) {
	var out []Tier
	if err := q.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("level").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("points: tiers of merchant %d: %w", merchantID, err)
	}
	return out, nil
}

// env is what an operation needs to know about the merchant, read before
// its transaction begins.
type env struct {
	rules RuleSet
	tiers []Tier
	loc   *time.Location
}

func (s *Service) env(ctx context.Context, merchantID uint64) (env, error) {
	var e env
	var err error
	if e.loc, err = s.location(ctx, merchantID); err != nil {
		return env{}, err
	}
	if e.rules, err = s.rules(ctx, s.db, merchantID); err != nil {
		return env{}, err
	}
	if e.tiers, err = s.tiers(ctx, s.db, merchantID); err != nil {
		return env{}, err
	}
	return e, nil
}

// orderEnv is env for orders: the rules and tiers come from a cache that
// lives rulesTTL (see there), so an order costs no read of them.
func (s *Service) orderEnv(ctx context.Context, merchantID uint64) (env, error) {
	loc, err := s.location(ctx, merchantID)
	if err != nil {
		return env{}, err
	}
	rt, err := s.rulesets.Get(ctx, merchantID, func(ctx context.Context) (ruleTiers, error) {
		rules, err := s.rules(ctx, s.db, merchantID)
		if err != nil {
			return ruleTiers{}, err
		}
		tiers, err := s.tiers(ctx, s.db, merchantID)
		return ruleTiers{rules: rules, tiers: tiers}, err
	})
	if err != nil {
		return env{}, err
	}
	return env{rules: rt.rules, tiers: rt.tiers, loc: loc}, nil
}

// tiersByPoints reports whether tier qualification counts points, which
// makes any credit a possible upgrade (and the member row a write target).
func (e env) tiersByPoints() bool {
	return len(e.tiers) > 0 && e.rules.Rules.Tiers.Basis == tierBasisPoints
}

// lockAccount locks the member's account row in tx, creating it first if
// the member has none. The common case is one SELECT ... FOR UPDATE. On a
// miss the row is inserted with a no-op ON DUPLICATE KEY UPDATE rather than
// INSERT IGNORE: when a concurrent first credit inserted it meanwhile, the
// no-op update waits for and takes the row's exclusive lock directly,
// whereas INSERT IGNORE would take a shared lock that two transactions then
// both try to upgrade (a deadlock). Under READ COMMITTED the missed
// SELECT ... FOR UPDATE locks no gap. SQLite transactions hold the write
// lock from BEGIN, so there is no race there.
func (s *Service) lockAccount(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) (*account, error) {
	var a account
	q := tx.WithContext(ctx).Clauses(clause.Locking{Strength: "UPDATE"}).
		Where("merchant_id = ? AND member_id = ?", merchantID, memberID)
	err := q.Take(&a).Error
	if err == nil {
		a.locked()
		return &a, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("points: lock account %d: %w", memberID, err)
	}
	now := s.now()
	insert := "INSERT INTO points_accounts (merchant_id, member_id, created_at, updated_at) VALUES (?, ?, ?, ?) "
	if s.mysql {
		insert += "ON DUPLICATE KEY UPDATE member_id = member_id"
	} else {
		insert += "ON CONFLICT DO NOTHING"
	}
	if err := tx.WithContext(ctx).Exec(insert, merchantID, memberID, now, now).Error; err != nil {
		return nil, fmt.Errorf("points: create account %d: %w", memberID, err)
	}
	if err := tx.WithContext(ctx).Clauses(clause.Locking{Strength: "UPDATE"}).
		Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Take(&a).Error; err != nil {
		return nil, fmt.Errorf("points: lock new account %d: %w", memberID, err)
	}
	a.locked()
	return &a, nil
}

// saveAccount writes the locked account back (one UPDATE by primary key).
func (s *Service) saveAccount(ctx context.Context, tx *gorm.DB, a *account) error {
	a.UpdatedAt = s.now()
	err := tx.WithContext(ctx).Exec(`UPDATE points_accounts SET available = ?, pending = ?, debt = ?, tier_id = ?,
  tier_since = ?, tier_review_at = ?, tier_grace_until = ?, cap_day = ?, cap_earned = ?, streak_day = ?, streak = ?,
  bonus_flags = ?, updated_at = ? WHERE merchant_id = ? AND member_id = ?`,
		a.Available, a.Pending, a.Debt, a.TierID, a.TierSince, a.TierReviewAt, a.TierGraceUntil, a.CapDay,
		a.CapEarned, a.StreakDay, a.Streak, a.BonusFlags, a.UpdatedAt, a.MerchantID, a.MemberID).Error
	if err != nil {
		return fmt.Errorf("points: save account %d: %w", a.MemberID, err)
	}
	return s.emitBalance(ctx, tx, a)
}

// UseEvents makes the service emit points.changed and tier.changed, in the
// transaction of the change. Set before serving.
func (s *Service) UseEvents(e event.Emitter) { s.events = e }

// emitBalance emits points.changed when the saved account's balances
// differ from what they were when it was locked (or last saved): every
// change of a balance is saved through saveAccount, so this one place sees
// them all.
func (s *Service) emitBalance(ctx context.Context, tx *gorm.DB, a *account) error {
	if a.Available == a.was.available && a.Pending == a.was.pending {
		return nil
	}
	ev := event.Event{MerchantID: a.MerchantID, Type: event.PointsChanged, Data: event.Points{MemberID: a.MemberID,
		Available: a.Available, Pending: a.Pending, AvailableChange: a.Available - a.was.available,
		PendingChange: a.Pending - a.was.pending, Entries: a.entries}}
	a.locked()
	return event.Emit(ctx, s.events, tx, ev)
}

// entryByKey returns the entry with the idempotency key, if any.
func entryByKey(ctx context.Context, q *gorm.DB, merchantID uint64, key string) (*Entry, error) {
	var e Entry
	err := q.WithContext(ctx).Where("merchant_id = ? AND idempotency_key = ?", merchantID, key).Take(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("points: entry %q: %w", key, err)
	}
	return &e, nil
}

// creditSpec describes points given to a member.
type creditSpec struct {
	Kind, Reason, RefType, RefID, Key string
	RuleVersion                       int
	Points                            int64
	HoldUntil                         *time.Time // held (pending) until then; nil: available now
	ExpiresAt                         *time.Time
}

// credit records c for the locked account a: an entry and the lot holding
// the points. Available points first pay off any debt (points a refund took
// back after they were spent), so the lot keeps only the rest.
func (s *Service) credit(ctx context.Context, tx *gorm.DB, a *account, c creditSpec) (Entry, lot, error) {
	now := s.now()
	e := Entry{MerchantID: a.MerchantID, MemberID: a.MemberID, Kind: c.Kind, Reason: clip(c.Reason, 255),
		RefType: c.RefType, RefID: c.RefID, RuleVersion: c.RuleVersion, IdempotencyKey: c.Key,
		ExpiresAt: c.ExpiresAt, CreatedAt: now}
	l := lot{MerchantID: a.MerchantID, MemberID: a.MemberID, Points: c.Points, Remaining: c.Points,
		ExpiresAt: c.ExpiresAt, CreatedAt: now, UpdatedAt: now}
	if c.HoldUntil != nil {
		e.Pending = c.Points
		a.Pending += c.Points
		l.Status, l.AvailableAt = lotPending, c.HoldUntil
	} else {
		e.Points = c.Points
		a.Available += c.Points
		pay := min(a.Debt, c.Points)
		a.Debt -= pay
		l.Remaining -= pay
		l.Status = lotActive
		if l.Remaining == 0 {
			l.Status = lotUsed
		}
	}
	e.Balance = a.Available
	if err := tx.WithContext(ctx).Create(&e).Error; err != nil {
		return Entry{}, lot{}, fmt.Errorf("points: %s entry: %w", c.Kind, err)
	}
	a.wrote(e)
	l.LedgerID = e.ID
	if err := tx.WithContext(ctx).Create(&l).Error; err != nil {
		return Entry{}, lot{}, fmt.Errorf("points: lot: %w", err)
	}
	return e, l, nil
}

// debitSpec describes points taken from a member's available balance.
type debitSpec struct {
	Kind, Reason, RefType, RefID, Key string
	RuleVersion                       int
	Points                            int64
	PreferLot                         uint64 // take from this lot first (a refund takes its order's lot)
	AllowDebt                         bool   // a refund may take more than is left; the rest becomes debt
}

// allocation is what a debit took from one lot.
type allocation struct {
	LotID  uint64
	Points int64
}

// debit records d for the locked account a: an entry, and the points taken
// from the lots that expire first. Without AllowDebt a debit larger than
// the available balance is refused, so redemptions and adjustments never
// make a balance negative.
func (s *Service) debit(ctx context.Context, tx *gorm.DB, a *account, d debitSpec) (Entry, []allocation, error) {
	if !d.AllowDebt && a.Available < d.Points {
		return Entry{}, nil, errInsufficient
	}
	allocs, short, err := s.takeFromLots(ctx, tx, a, d.Points, d.PreferLot)
	if err != nil {
		return Entry{}, nil, err
	}
	a.Debt += short
	a.Available -= d.Points
	e := Entry{MerchantID: a.MerchantID, MemberID: a.MemberID, Kind: d.Kind, Points: -d.Points,
		Balance: a.Available, Reason: clip(d.Reason, 255), RefType: d.RefType, RefID: d.RefID,
		RuleVersion: d.RuleVersion, IdempotencyKey: d.Key, CreatedAt: s.now()}
	if err := tx.WithContext(ctx).Create(&e).Error; err != nil {
		return Entry{}, nil, fmt.Errorf("points: %s entry: %w", d.Kind, err)
	}
	a.wrote(e)
	return e, allocs, nil
}

// takeFromLots takes n points from the member's active lots: the preferred
// lot first, then the lots that expire first (never-expiring ones last),
// oldest first among equals. It returns what it took from each lot and how
// much it could not find. The caller holds the account lock, which every
// change to the member's lots takes first, so the lots need no lock of
// their own.
func (s *Service) takeFromLots(ctx context.Context, tx *gorm.DB, a *account, n int64, prefer uint64) ([]allocation, int64, error) {
	var allocs []allocation
	now := s.now()
	take := func(l lot) error {
		x := min(n, l.Remaining)
		if x <= 0 {
			return nil
		}
		status := lotActive
		if l.Remaining-x == 0 {
			status = lotUsed
		}
		err := tx.WithContext(ctx).Exec("UPDATE points_lots SET remaining = ?, status = ?, updated_at = ? WHERE id = ? AND merchant_id = ?",
			l.Remaining-x, status, now, l.ID, l.MerchantID).Error
		if err != nil {
			return fmt.Errorf("points: take from lot %d: %w", l.ID, err)
		}
		n -= x
		allocs = append(allocs, allocation{LotID: l.ID, Points: x})
		return nil
	}
	if prefer != 0 {
		var l lot
		err := tx.WithContext(ctx).Where("id = ? AND merchant_id = ? AND member_id = ? AND status = ?",
			prefer, a.MerchantID, a.MemberID, lotActive).Take(&l).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, 0, fmt.Errorf("points: lot %d: %w", prefer, err)
		}
		if err == nil {
			if err := take(l); err != nil {
				return nil, 0, err
			}
		}
	}
	for n > 0 {
		// idx_points_lots_member narrows to the member's active lots; the
		// sort (never-expiring last) is over those few rows. Taken lots
		// become 'used' and drop out, so each round starts afresh.
		var lots []lot
		err := tx.WithContext(ctx).Select("id, merchant_id, remaining").
			Where("merchant_id = ? AND member_id = ? AND status = ?", a.MerchantID, a.MemberID, lotActive).
			Order("CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id").Limit(50).Find(&lots).Error
		if err != nil {
			return nil, 0, fmt.Errorf("points: active lots: %w", err)
		}
		if len(lots) == 0 {
			break
		}
		for _, l := range lots {
			if n == 0 {
				break
			}
			if err := take(l); err != nil {
				return nil, 0, err
			}
		}
	}
	return allocs, n, nil
}

// clip cuts s to at most n runes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// randomKey returns a random idempotency suffix for operations the caller
// did not name.
func randomKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// validID reports whether s is a usable external identifier: 1 to 64
// visible ASCII characters other than / ? # % and \ (the id appears in
// URL paths).
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || strings.IndexByte(`/?#%\`, c) >= 0 {
			return false
		}
	}
	return true
}
