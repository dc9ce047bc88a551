// Package demo generates realistic demo data for an existing merchant, so
// the dashboard, segments and benchmarks have something real to show:
// members (names, genders, phones, birthdays including some 29 Februarys,
// cities, acquisition channels with a long tail, follow and unfollow
// history), care dates, consents, tags, two years of orders with items and
// categories (repeat buyers, a heavy tail of big spenders, busier seasons),
// partial and full refunds, and the points those orders earned under the
// merchant's rules: ledger entries, lots and accounts exactly as the
// points program would have written them (`loyalty points reconcile`
// finds nothing to report), the members' purchase facts, and the lifecycle
// stage events the service would have recorded. It ends with the nightly
// attribute pass (member.Attributes.RecomputeNow, recorded as the day's
// pass even when the service already ran one), so stages, RFM scores,
// pyramid tiers and CLV are real.
//
// The seed only fills a merchant without members, once: a second run is
// refused (a job_runs claim makes that hold for concurrent runs too). The
// same seed gives the same members, orders and amounts.
//
// Writing is fast because nothing goes through the services: rows are
// computed in memory, chunk by chunk, and written with multi-row INSERTs,
// one transaction per chunk, by a few concurrent writers. The generator
// assigns the ids itself (see allocator): run it while the service is not
// writing, as with any bulk load.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

// Options say what to generate.
type Options struct {
	MerchantID uint64
	Members    int    // how many members (1 to MaxMembers)
	Seed       uint64 // the same seed gives the same data
	// Workers is how many chunks are generated and written at once
	// (default 2 on MySQL, 1 on SQLite, which has one writer anyway).
	Workers int
	// ChunkSize is how many members one transaction writes (default 2000).
	ChunkSize int
	// Now is the clock (UTC, millisecond precision); the data ends at its
	// time when the seed starts. Default: the wall clock.
	Now func() time.Time
	// Progress, when set, is called after each chunk with the members
	// written so far (one call at a time).
	Progress func(done, total int)
	Log      *slog.Logger
}

// MaxMembers bounds one seed.
const MaxMembers = 10_000_000

// Result counts what was written.
type Result struct {
	Members        int64                  `json:"members"`
	FollowEvents   int64                  `json:"follow_events"`
	CareDates      int64                  `json:"care_dates"`
	Consents       int64                  `json:"consents"`
	Tags           int                    `json:"tags"`
	TagAssignments int64                  `json:"tag_assignments"`
	Orders         int64                  `json:"orders"`
	Refunds        int64                  `json:"refunds"`
	LedgerEntries  int64                  `json:"ledger_entries"`
	Lots           int64                  `json:"lots"`
	Accounts       int64                  `json:"accounts"`
	StageEvents    int64                  `json:"stage_events"`
	WriteDuration  time.Duration          `json:"write_ns"`    // generating and writing the rows
	Recompute      member.RecomputeResult `json:"recompute"`   // the attribute pass at the end
	Duration       time.Duration          `json:"duration_ns"` // everything
}

// Errors a seed is refused with.
var (
	ErrNotEmpty         = apperr.New(apperr.ErrConflict, "the merchant already has members: demo seed only fills an empty merchant")
	ErrAlreadyRun       = apperr.New(apperr.ErrConflict, "a demo seed already ran (or is running) for this merchant")
	ErrMerchantHasTiers = apperr.New(apperr.ErrUnprocessable,
		"the merchant has points tiers: demo seed generates points for merchants without tiers (create them afterwards)")
)

// jobSeed names the seed's own claim in job_runs.
const jobSeed = "demo_seed"

// Seed generates the merchant's demo data. merchants gives the merchant's
// time zone and CRM settings (admin.Merchants satisfies it).
func Seed(ctx context.Context, gdb *gorm.DB, merchants member.MerchantSource, o Options) (Result, error) {
	start := time.Now()
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	mysql := gdb.Dialector.Name() == db.MySQL
	if o.Workers <= 0 {
		o.Workers = 1
		if mysql {
			o.Workers = 2
		}
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = 2000
	}
	v := &apperr.Validation{}
	if o.MerchantID == 0 {
		v.Add("merchant", "is required")
	}
	if o.Members < 1 || o.Members > MaxMembers {
		v.Add("members", fmt.Sprintf("must be 1 to %d", MaxMembers))
	}
	if err := v.Err(); err != nil {
		return Result{}, err
	}
	loc, err := merchants.Location(ctx, o.MerchantID)
	if err != nil {
		return Result{}, fmt.Errorf("demo: merchant %d: %w", o.MerchantID, err)
	}
	crm, err := merchants.CRMSettings(ctx, o.MerchantID)
	if err != nil {
		return Result{}, err
	}
	psvc := points.NewService(gdb, nil, fixedZone{loc}, o.Now, o.Log)
	rules, err := psvc.Rules(ctx, o.MerchantID)
	if err != nil {
		return Result{}, err
	}
	if tiers, err := psvc.Tiers(ctx, o.MerchantID); err != nil {
		return Result{}, err
	} else if len(tiers) > 0 {
		return Result{}, ErrMerchantHasTiers
	}
	var nonEmpty int64
	if err := gdb.WithContext(ctx).Raw("SELECT COUNT(*) FROM (SELECT 1 FROM members WHERE merchant_id = ? LIMIT 1) x",
		o.MerchantID).Scan(&nonEmpty).Error; err != nil {
		return Result{}, fmt.Errorf("demo: members of %d: %w", o.MerchantID, err)
	}
	if nonEmpty > 0 {
		return Result{}, ErrNotEmpty
	}
	now := o.Now()
	tagIDs, err := ensureTags(ctx, gdb, o.MerchantID, now)
	if err != nil {
		return Result{}, err
	}
	claim := member.JobRun{MerchantID: o.MerchantID, Job: jobSeed, RunKey: "seed", Owner: db.InstanceName(), StartedAt: now}
	res := gdb.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&claim)
	if res.Error != nil {
		return Result{}, fmt.Errorf("demo: claim: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return Result{}, ErrAlreadyRun
	}

	e := &env{merchantID: o.MerchantID, seed: o.Seed, total: o.Members, now: now, loc: loc, rules: rules.Rules,
		ruleVersion: rules.Version, rateText: rules.Rules.RateText(), cadence: crm.Cadence, tagIDs: tagIDs}
	sqlDB, err := gdb.DB()
	if err != nil {
		return Result{}, err
	}
	alloc, err := newAllocator(ctx, sqlDB, mysql, append([]string{"members"}, idTables...))
	if err != nil {
		return Result{}, err
	}
	e.memberBase = alloc.take("members", o.Members)
	w := &writer{db: sqlDB, env: e, alloc: alloc, now: now}

	out := Result{Tags: len(e.tagIDs)}
	var (
		mu       sync.Mutex
		done     atomic.Int64
		firstErr error
	)
	chunks := (o.Members + o.ChunkSize - 1) / o.ChunkSize
	next := make(chan int)
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				first := k * o.ChunkSize
				c := e.generate(k, first, min(o.ChunkSize, o.Members-first))
				if err := w.write(wctx, c); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				mu.Lock()
				out.add(c)
				n := done.Add(int64(len(c.members)))
				if o.Progress != nil {
					o.Progress(int(n), o.Members)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for k := range chunks {
		select {
		case next <- k:
		case <-wctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return out, fmt.Errorf("demo: stopped after %d of %d members (whole chunks, each consistent; "+
			"the merchant is not seeded again automatically): %w", done.Load(), o.Members, firstErr)
	}
	out.WriteDuration = time.Since(start)
	o.Log.InfoContext(ctx, "demo: rows written", "merchant_id", o.MerchantID, "members", out.Members,
		"orders", out.Orders, "duration_ms", out.WriteDuration.Milliseconds())

	// The pass is recorded as today's, replacing one that already ran
	// today (the service's pass at startup, before the merchant had
	// members): the dashboard's 2:8 figure then comes from this pass, like
	// the tiers and scores it wrote.
	attrs := member.NewAttributes(gdb, points.NewHistory(gdb), merchants, o.Now, o.Log)
	if out.Recompute, err = attrs.RecomputeNow(ctx, o.MerchantID); err != nil {
		return out, fmt.Errorf("demo: attributes: %w", err)
	}
	finished := o.Now()
	out.Duration = time.Since(start)
	seedSummary, _ := json.Marshal(out)
	seedText := string(seedSummary)
	if err := gdb.WithContext(ctx).Model(&member.JobRun{}).
		Where("merchant_id = ? AND job = ? AND run_key = ?", o.MerchantID, jobSeed, "seed").
		Updates(map[string]any{"finished_at": finished, "result": seedText}).Error; err != nil {
		return out, fmt.Errorf("demo: finish: %w", err)
	}
	return out, nil
}

func (r *Result) add(c *chunk) {
	r.Members += int64(len(c.members))
	r.FollowEvents += int64(len(c.follows))
	r.CareDates += int64(len(c.care))
	r.Consents += int64(len(c.consents))
	r.TagAssignments += int64(len(c.tags))
	r.Orders += int64(len(c.orders))
	r.Refunds += int64(len(c.refunds))
	r.LedgerEntries += int64(len(c.entries))
	r.Lots += int64(len(c.lots))
	r.Accounts += int64(len(c.accounts))
	r.StageEvents += int64(len(c.stages))
}

type fixedZone struct{ loc *time.Location }

func (z fixedZone) Location(context.Context, uint64) (*time.Location, error) { return z.loc, nil }

// tagRow is a tags row.
type tagRow struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	Name       string
	Color      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func (tagRow) TableName() string { return "tags" }

// ensureTags creates the demo tags the merchant lacks and returns the ids
// of all of them, in tagDefs order. A tag the merchant already has (same
// name) is reused.
func ensureTags(ctx context.Context, gdb *gorm.DB, merchantID uint64, now time.Time) ([]uint64, error) {
	names := make([]string, len(tagDefs))
	for i, t := range tagDefs {
		names[i] = t.name
	}
	var have []tagRow
	if err := gdb.WithContext(ctx).Where("merchant_id = ? AND name IN ?", merchantID, names).Find(&have).Error; err != nil {
		return nil, fmt.Errorf("demo: tags: %w", err)
	}
	byName := map[string]uint64{}
	for _, t := range have {
		byName[t.Name] = t.ID
	}
	ids := make([]uint64, len(tagDefs))
	for i, t := range tagDefs {
		if id, ok := byName[t.name]; ok {
			ids[i] = id
			continue
		}
		row := tagRow{MerchantID: merchantID, Name: t.name, Color: t.color, CreatedAt: now, UpdatedAt: now}
		if err := gdb.WithContext(ctx).Create(&row).Error; err != nil {
			if db.IsDuplicate(err) {
				return nil, errors.New("demo: a tag was created meanwhile; run the seed again")
			}
			return nil, fmt.Errorf("demo: create tag %q: %w", t.name, err)
		}
		ids[i] = row.ID
	}
	return ids, nil
}
