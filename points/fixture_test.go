package points

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/member"
)

// clock is the tests' settable clock.
type clock = fakeclock.Clock

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var quiet = slog.New(slog.DiscardHandler)

// zones maps merchants to time zones (Asia/Shanghai unless set).
type zones struct {
	mu sync.Mutex
	m  map[uint64]*time.Location
}

func (z *zones) Location(_ context.Context, merchantID uint64) (*time.Location, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if loc, ok := z.m[merchantID]; ok {
		return loc, nil
	}
	return mustZone("Asia/Shanghai"), nil
}

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// fixture is one merchant with a points service over a real database.
type fixture struct {
	t          *testing.T
	db         *gorm.DB
	merchantID uint64
	clock      *clock
	zones      *zones
	members    *member.Service
	svc        *Service
	seq        atomic.Int64
}

func newFixture(t *testing.T, gdb *gorm.DB) *fixture {
	t.Helper()
	f := &fixture{t: t, db: gdb, merchantID: dbtest.NewMerchantID(), clock: &clock{},
		zones: &zones{m: map[uint64]*time.Location{}}}
	f.clock.Set(time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC))
	f.members = member.NewService(gdb, nil, f.clock.Now, quiet)
	f.svc = NewService(gdb, f.members, f.zones, f.clock.Now, quiet)
	return f
}

// ctx returns a background context.
func (f *fixture) ctx() context.Context { return context.Background() }

// memberOpts describe a member to create.
type memberOpts struct {
	openID        string
	mpOpenID      string
	phone         string
	name          string
	birthdayMonth int
	following     bool
}

// newMember inserts a member row directly and returns its id.
func (f *fixture) newMember(o memberOpts) uint64 {
	f.t.Helper()
	now := f.clock.Now()
	m := member.Member{MerchantID: f.merchantID, Name: o.name, Source: member.SourceMPLogin,
		FollowStatus: member.FollowNone, LifecycleStage: member.StagePotential, CreatedAt: now, UpdatedAt: now}
	if o.openID != "" {
		m.OAOpenID = &o.openID
	}
	if o.mpOpenID != "" {
		m.MPOpenID = &o.mpOpenID
	}
	if o.phone != "" {
		m.Phone = &o.phone
	}
	if o.birthdayMonth != 0 {
		d := 1
		m.BirthdayMonth, m.BirthdayDay = &o.birthdayMonth, &d
	}
	if o.following {
		m.FollowStatus, m.FollowedAt = member.FollowFollowing, &now
	}
	if err := f.db.Create(&m).Error; err != nil {
		f.t.Fatal(err)
	}
	return m.ID
}

func (f *fixture) member() uint64 { return f.newMember(memberOpts{}) }

func (f *fixture) ext() string { return fmt.Sprintf("o-%d-%d", f.merchantID, f.seq.Add(1)) }

// order records an order and fails the test on error.
func (f *fixture) order(memberID uint64, amount int64) OrderResult {
	f.t.Helper()
	res, _, err := f.svc.RecordOrder(f.ctx(), f.merchantID, OrderInput{ExternalID: f.ext(),
		Member: member.BuyerRef{ID: memberID}, AmountFen: amount})
	if err != nil {
		f.t.Fatalf("order: %v", err)
	}
	return res
}

func (f *fixture) setRules(mut func(r *Rules)) {
	f.t.Helper()
	r := DefaultRules()
	mut(&r)
	if _, err := f.svc.SetRules(f.ctx(), f.merchantID, r); err != nil {
		f.t.Fatalf("set rules: %v", err)
	}
}

func (f *fixture) account(memberID uint64) account {
	f.t.Helper()
	var a account
	if err := f.db.Where("merchant_id = ? AND member_id = ?", f.merchantID, memberID).Limit(1).Find(&a).Error; err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) balance(memberID uint64) (available, pending int64) {
	a := f.account(memberID)
	return a.Available, a.Pending
}

func (f *fixture) wantBalance(memberID uint64, available, pending int64) {
	f.t.Helper()
	a, p := f.balance(memberID)
	if a != available || p != pending {
		f.t.Fatalf("balance: available %d pending %d, want %d and %d", a, p, available, pending)
	}
}

// reconcile runs Reconcile on the fixture's merchant and fails on any
// mismatch.
func (f *fixture) reconcile() ReconcileReport {
	f.t.Helper()
	rep, err := Reconcile(f.ctx(), f.db, ReconcileOptions{MerchantID: f.merchantID, Facts: true, Chunk: 3})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, m := range rep.Mismatches {
		f.t.Errorf("mismatch: %s", m)
	}
	if rep.MismatchCount > 0 {
		f.t.FailNow()
	}
	return rep
}

func (f *fixture) facts(memberID uint64) member.PurchaseFacts {
	f.t.Helper()
	pf, err := member.GetPurchaseFacts(f.ctx(), f.db, f.merchantID, memberID)
	if err != nil {
		f.t.Fatal(err)
	}
	return pf
}

func (f *fixture) entries(memberID uint64) []Entry {
	f.t.Helper()
	var out []Entry
	if err := f.db.Where("merchant_id = ? AND member_id = ?", f.merchantID, memberID).Order("id").Find(&out).Error; err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) runJobs() JobStats {
	f.t.Helper()
	st, err := f.svc.RunJobs(f.ctx())
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// wantKind fails unless err is of the apperr kind.
func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want kind %v", err, kind)
	}
}

// reward creates a reward costing cost points (stock nil: unlimited).
func (f *fixture) reward(cost int64, stock *int64) Reward {
	f.t.Helper()
	name, kind := fmt.Sprintf("reward %d", f.seq.Add(1)), RewardGift
	in := RewardInput{Name: &name, Kind: &kind, PointsCost: &cost}
	if stock != nil {
		in.Stock = Opt[int64]{Set: true, V: *stock}
	}
	r, err := f.svc.SaveReward(f.ctx(), f.merchantID, 0, in)
	if err != nil {
		f.t.Fatalf("reward: %v", err)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

var _ = apperr.ErrNotFound

func u64(v uint64) string { return strconv.FormatUint(v, 10) }
