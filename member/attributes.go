package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/db"
)

// OrderSource is what the attributes need of orders; the points package
// satisfies it.
type OrderSource interface {
	// MemberOrders returns the counted orders (not fully refunded) of the
	// merchant's members with ids in [fromID, toID], oldest first per
	// member, read through gdb (the caller's transaction, so what it reads
	// agrees with the member rows it has locked).
	MemberOrders(ctx context.Context, gdb *gorm.DB, merchantID, fromID, toID uint64) (map[uint64]History, error)
	// RecentTotals calls fn for every member with counted orders at or
	// after since: their number, net spend and the last order's time.
	RecentTotals(ctx context.Context, merchantID uint64, since time.Time,
		fn func(memberID uint64, orders, spendFen int64, last time.Time)) error
}

// MerchantSource tells the attributes about merchants; admin.Merchants
// satisfies it.
type MerchantSource interface {
	IDs(ctx context.Context) ([]uint64, error)
	Location(ctx context.Context, merchantID uint64) (*time.Location, error)
	CRMSettings(ctx context.Context, merchantID uint64) (CRMSettings, error)
}

// crmSettingsIn is a MerchantSource that reads the settings inside the
// caller's transaction (admin.Merchants does): Refresh holds one, and
// taking a second connection while holding it lets a burst of
// transactions exhaust the pool, each waiting for a connection another
// holds.
type crmSettingsIn interface {
	CRMSettingsIn(ctx context.Context, tx *gorm.DB, merchantID uint64) (CRMSettings, error)
}

// settingsIn returns the merchant's CRM settings for a caller holding tx.
func (a *Attributes) settingsIn(ctx context.Context, tx *gorm.DB, merchantID uint64) (CRMSettings, error) {
	if in, ok := a.merchants.(crmSettingsIn); ok {
		return in.CRMSettingsIn(ctx, tx, merchantID)
	}
	return a.merchants.CRMSettings(ctx, merchantID)
}

// Attributes keeps the computed attributes of members current: lifecycle
// stage (with a stage event per change), churn risk and CLV after every
// order, refund and follow change (Refresh, in the caller's transaction),
// and everything including the merchant-relative RFM scores and pyramid
// tiers in a nightly pass (Recompute), which also catches time passing
// (a member drifting to at risk).
type Attributes struct {
	db        *gorm.DB
	orders    OrderSource
	merchants MerchantSource
	now       func() time.Time
	log       *slog.Logger
	owner     string        // names this instance in job claims
	events    event.Emitter // nil: no events (see UseEvents)
}

// emitStages emits stage.changed for stage events recorded in tx.
func (a *Attributes) emitStages(ctx context.Context, tx *gorm.DB, merchantID uint64, events []StageEvent) error {
	out := make([]event.Event, len(events))
	for i, e := range events {
		out[i] = event.Event{MerchantID: merchantID, Type: event.StageChanged,
			Data: event.Stage{MemberID: e.MemberID, FromStage: e.FromStage, ToStage: e.ToStage, Reason: e.Reason}}
	}
	return event.Emit(ctx, a.events, tx, out...)
}

// UseEvents makes stage moves emit stage.changed, in the transaction that
// records them. Set before serving.
func (a *Attributes) UseEvents(e event.Emitter) { a.events = e }

// NewAttributes returns the attribute service.
func NewAttributes(gdb *gorm.DB, orders OrderSource, merchants MerchantSource, now func() time.Time, log *slog.Logger) *Attributes {
	return &Attributes{db: gdb, orders: orders, merchants: merchants, now: now, log: log, owner: db.InstanceName()}
}

// StageEvent is a member_stage_events row.
type StageEvent struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	MemberID   uint64
	FromStage  string
	ToStage    string
	Reason     string
	OccurredAt time.Time
}

// TableName implements gorm's tabler.
func (StageEvent) TableName() string { return "member_stage_events" }

// attrRow is the stored state the attributes read and write.
type attrRow struct {
	ID             uint64
	FollowStatus   string
	LifecycleStage string
	WonBackAt      *time.Time
	TotalSpendFen  int64
	RFMR           *int    `gorm:"column:rfm_r"`
	RFMF           *int    `gorm:"column:rfm_f"`
	RFMM           *int    `gorm:"column:rfm_m"`
	PyramidTier    *string `gorm:"column:pyramid_tier"`
	CLVFen         *int64  `gorm:"column:clv_fen"`
	ChurnRisk      *int    `gorm:"column:churn_risk"`
	ChurnReason    *string `gorm:"column:churn_reason"`

	// WinBackLostAt is read only here: MarkWinBackLost (winback.go) sets it.
	WinBackLostAt *time.Time
	// The last survey answer, read only here: RecordSurvey (survey.go)
	// sets them. A recent detractor raises churn risk.
	LastNPS      *int `gorm:"column:last_nps"`
	LastSurveyAt *time.Time

	stageReason string // why the stage is what it is (for a stage event); not stored
}

const attrColumns = "id, follow_status, lifecycle_stage, won_back_at, total_spend_fen, rfm_r, rfm_f, rfm_m, " +
	"pyramid_tier, clv_fen, churn_risk, churn_reason, win_back_lost_at, last_nps, last_survey_at"

// merchantScores are the merchant-wide scales of a nightly pass; nil in an
// incremental refresh, which keeps the stored RFM and pyramid values.
type merchantScores struct {
	recency, frequency, monetary Quintiles
	pyramid                      Pyramid
	totals                       map[uint64][3]int64 // member -> orders, spend, days since last (12 months)
}

// next computes a member's attributes from its orders; referrer says
// whether they brought another member who bought (the referral trait).
func next(cur attrRow, orders History, s CRMSettings, scores *merchantScores, referrer bool, now time.Time) attrRow {
	out := cur
	last12 := orders.Since(now.Add(-365 * day))
	st := ComputeStage(StageInput{Cadence: s.Cadence, Orders: orders, Traits: TraitsOf(last12, referrer),
		Previous: cur.LifecycleStage, WonBackAt: cur.WonBackAt, WinBackLostAt: cur.WinBackLostAt, Now: now})
	out.LifecycleStage, out.WonBackAt, out.stageReason = st.Stage, st.WonBackAt, st.Reason
	risk, reason, ok := ChurnRisk(orders, s.Cadence, cur.FollowStatus == FollowUnfollowed, now)
	if ok {
		risk, reason = DetractorRisk(risk, reason, cur.LastNPS, cur.LastSurveyAt, now)
	}
	if ok {
		clv := CLV(cur.TotalSpendFen, last12.SpendFen(), risk)
		out.ChurnRisk, out.ChurnReason, out.CLVFen = &risk, &reason, &clv
	} else {
		out.ChurnRisk, out.ChurnReason, out.CLVFen = nil, nil, nil
	}
	if scores != nil {
		out.RFMR, out.RFMF, out.RFMM = nil, nil, nil
		spend := int64(0)
		if t, ok := scores.totals[cur.ID]; ok {
			r, f, m := scores.recency.Score(t[2]), scores.frequency.Score(t[0]), scores.monetary.Score(t[1])
			out.RFMR, out.RFMF, out.RFMM = &r, &f, &m
			spend = t[1]
		}
		tier := scores.pyramid.Tier(spend)
		out.PyramidTier = &tier
	}
	return out
}

// Refresh recomputes one member's stage, churn risk and CLV in tx (the
// transaction of the order, refund or follow change that moved them),
// recording a stage event when the stage changes. The member's row should
// already be locked by the caller.
func (a *Attributes) Refresh(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error {
	s, err := a.settingsIn(ctx, tx, merchantID)
	if err != nil {
		return err
	}
	var cur attrRow
	if err := tx.WithContext(ctx).Table("members").Select(attrColumns).
		Where("merchant_id = ? AND id = ?", merchantID, memberID).Take(&cur).Error; err != nil {
		return fmt.Errorf("member: attributes of %d: %w", memberID, err)
	}
	orders, err := a.orders.MemberOrders(ctx, tx, merchantID, memberID, memberID)
	if err != nil {
		return err
	}
	now := a.now()
	referrer, err := a.referrerIfItMatters(ctx, tx, merchantID, memberID, orders[memberID], s, now)
	if err != nil {
		return err
	}
	return a.write(ctx, tx, merchantID, []attrRow{cur}, []attrRow{next(cur, orders[memberID], s, nil, referrer, now)}, now)
}

// referrers returns which members with ids in [lo, hi] brought another
// member who made a paid order (a converted referral, referral/): the
// loyal customer who recommends others (推荐性购买). One read of
// idx_referrals_referrer, not locking: a conversion commits in the
// referee's order, and the next refresh of the referrer sees it.
func (a *Attributes) referrers(ctx context.Context, tx *gorm.DB, merchantID, lo, hi uint64) (map[uint64]bool, error) {
	var ids []uint64
	if err := tx.WithContext(ctx).Table("referrals").Distinct("referrer_id").
		Where("merchant_id = ? AND referrer_id BETWEEN ? AND ? AND status = ?", merchantID, lo, hi, "converted").
		Pluck("referrer_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("member: referrers: %w", err)
	}
	out := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// referrerIfItMatters is the referral trait of one member, read only when
// it could change their stage: enough orders in 12 months to be loyal and
// no other trait (most loyal members buy on purpose, so an order rarely
// needs the read).
func (a *Attributes) referrerIfItMatters(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, orders History, s CRMSettings, now time.Time) (bool, error) {
	last12 := orders.Since(now.Add(-365 * day))
	t := TraitsOf(last12, false)
	if len(last12) < presetOf(s.Cadence).loyalOrders || t.CrossCategory || t.OnPurpose {
		return false, nil
	}
	r, err := a.referrers(ctx, tx, merchantID, memberID, memberID)
	return r[memberID], err
}

// write stores the rows that changed (one UPDATE for the batch) and the
// stage events of those whose stage moved.
func (a *Attributes) write(ctx context.Context, tx *gorm.DB, merchantID uint64, before, after []attrRow, now time.Time) error {
	var changed []attrRow
	var events []StageEvent
	for i := range after {
		if attrEqual(before[i], after[i]) {
			continue
		}
		changed = append(changed, after[i])
		if after[i].LifecycleStage != before[i].LifecycleStage {
			events = append(events, StageEvent{MerchantID: merchantID, MemberID: after[i].ID,
				FromStage: before[i].LifecycleStage, ToStage: after[i].LifecycleStage,
				Reason: after[i].stageReason, OccurredAt: now})
		}
	}
	if len(changed) == 0 {
		return nil
	}
	q, args := caseUpdate(merchantID, changed, now)
	if err := tx.WithContext(ctx).Exec(q, args...).Error; err != nil {
		return fmt.Errorf("member: write attributes: %w", err)
	}
	if len(events) > 0 {
		if err := tx.WithContext(ctx).CreateInBatches(events, 500).Error; err != nil {
			return fmt.Errorf("member: stage events: %w", err)
		}
		if err := a.emitStages(ctx, tx, merchantID, events); err != nil {
			return err
		}
	}
	return nil
}

func attrEqual(a, b attrRow) bool {
	return a.LifecycleStage == b.LifecycleStage && eqTime(a.WonBackAt, b.WonBackAt) && eqp(a.RFMR, b.RFMR) &&
		eqp(a.RFMF, b.RFMF) && eqp(a.RFMM, b.RFMM) && eqp(a.PyramidTier, b.PyramidTier) && eqp(a.CLVFen, b.CLVFen) &&
		eqp(a.ChurnRisk, b.ChurnRisk) && eqp(a.ChurnReason, b.ChurnReason)
}

func eqp[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func eqTime(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }

// caseUpdate writes many members' attributes in one portable statement:
// UPDATE members SET col = CASE id WHEN ? THEN ? ... END, ... WHERE
// merchant_id = ? AND id IN (...). (MySQL and SQLite spell multi-row
// upserts differently; CASE is the same on both, and the primary key
// finds each row.)
func caseUpdate(merchantID uint64, rows []attrRow, now time.Time) (string, []any) {
	cols := []struct {
		name string
		val  func(r attrRow) any
	}{
		{"lifecycle_stage", func(r attrRow) any { return r.LifecycleStage }},
		{"won_back_at", func(r attrRow) any { return r.WonBackAt }},
		{"rfm_r", func(r attrRow) any { return r.RFMR }},
		{"rfm_f", func(r attrRow) any { return r.RFMF }},
		{"rfm_m", func(r attrRow) any { return r.RFMM }},
		{"pyramid_tier", func(r attrRow) any { return r.PyramidTier }},
		{"clv_fen", func(r attrRow) any { return r.CLVFen }},
		{"churn_risk", func(r attrRow) any { return r.ChurnRisk }},
		{"churn_reason", func(r attrRow) any { return r.ChurnReason }},
	}
	var b strings.Builder
	args := make([]any, 0, len(rows)*(2*len(cols)+1)+3)
	b.WriteString("UPDATE members SET ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.name + " = CASE id")
		for _, r := range rows {
			b.WriteString(" WHEN ? THEN ?")
			args = append(args, r.ID, c.val(r))
		}
		b.WriteString(" END")
	}
	b.WriteString(", attributes_at = ? WHERE merchant_id = ? AND id IN (")
	args = append(args, now, merchantID)
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?")
		args = append(args, r.ID)
	}
	b.WriteString(")")
	return b.String(), args
}

// RecomputeResult summarises a nightly pass.
type RecomputeResult struct {
	Members       int64         `json:"members"`
	Customers     int64         `json:"customers_12m"` // members with a counted order in 12 months
	Changed       int64         `json:"changed"`
	StageChanges  int64         `json:"stage_changes"`
	ShareTop20    float64       `json:"share_top20"` // the 2:8 figure
	Duration      time.Duration `json:"duration_ns"`
	ComputedAtUTC time.Time     `json:"computed_at"`
}

// recomputeChunk is how many members one transaction of the pass locks and
// writes. Small enough that an order for one of them waits only briefly
// for the lock, large enough that the pass is a few thousand statements
// for a million members.
const recomputeChunk = 500

// Recompute recomputes every attribute of every member of the merchant. It
// first reads the merchant's 12-month totals (for RFM quintiles and the
// pyramid), then walks the members by id in chunks: each chunk's rows are
// locked, their orders read and their changed attributes written in one
// transaction, so an order arriving meanwhile waits for the chunk and is
// never overwritten with older figures.
func (a *Attributes) Recompute(ctx context.Context, merchantID uint64) (RecomputeResult, error) {
	start := time.Now()
	now := a.now()
	s, err := a.merchants.CRMSettings(ctx, merchantID)
	if err != nil {
		return RecomputeResult{}, err
	}
	scores := &merchantScores{totals: map[uint64][3]int64{}}
	var rec, freq, mon []int64
	err = a.orders.RecentTotals(ctx, merchantID, now.Add(-365*day), func(id uint64, orders, spend int64, last time.Time) {
		days := int64(now.Sub(last) / day)
		scores.totals[id] = [3]int64{orders, spend, days}
		rec, freq, mon = append(rec, days), append(freq, orders), append(mon, spend)
	})
	if err != nil {
		return RecomputeResult{}, err
	}
	scores.recency, scores.frequency, scores.monetary = NewQuintiles(rec, false), NewQuintiles(freq, true), NewQuintiles(mon, true)
	scores.pyramid = NewPyramid(mon, s)
	res := RecomputeResult{Customers: int64(len(mon)), ShareTop20: scores.pyramid.ShareTop20, ComputedAtUTC: now}

	// Chunk bounds from one index-only pass over the merchant's ids: each
	// chunk is then a closed id range. (Asked as "id > last ORDER BY id
	// LIMIT n", MariaDB may walk idx_members_merchant from the merchant's
	// first member every time: quadratic over a million members.)
	bounds, err := a.chunkBounds(ctx, merchantID)
	if err != nil {
		return res, err
	}
	var after uint64
	for k := 0; ; k++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		last := k >= len(bounds) // open-ended: members who joined during the pass
		var rows []attrRow
		err := a.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			// FOR UPDATE holds these members while their orders are read
			// and their attributes written.
			q := tx.Table("members").Select(attrColumns).Clauses(clause.Locking{Strength: "UPDATE"})
			if last {
				q = q.Where("merchant_id = ? AND id > ?", merchantID, after).Order("id").Limit(recomputeChunk)
			} else {
				q = q.Where("merchant_id = ? AND id > ? AND id <= ?", merchantID, after, bounds[k])
			}
			if err := q.Find(&rows).Error; err != nil {
				return fmt.Errorf("member: recompute: %w", err)
			}
			if len(rows) == 0 {
				return nil
			}
			slices.SortFunc(rows, func(x, y attrRow) int { return cmpInt(int64(x.ID), int64(y.ID)) })
			orders, err := a.orders.MemberOrders(ctx, tx, merchantID, rows[0].ID, rows[len(rows)-1].ID)
			if err != nil {
				return err
			}
			referrers, err := a.referrers(ctx, tx, merchantID, rows[0].ID, rows[len(rows)-1].ID)
			if err != nil {
				return err
			}
			updated := make([]attrRow, len(rows))
			for i, r := range rows {
				updated[i] = next(r, orders[r.ID], s, scores, referrers[r.ID], now)
				if !attrEqual(r, updated[i]) {
					res.Changed++
					if r.LifecycleStage != updated[i].LifecycleStage {
						res.StageChanges++
					}
				}
			}
			return a.write(ctx, tx, merchantID, rows, updated, now)
		})
		if err != nil {
			return res, err
		}
		res.Members += int64(len(rows))
		switch {
		case !last:
			after = bounds[k] // a bounded chunk may be empty (merged members): go on
		case len(rows) == 0:
			res.Duration = time.Since(start)
			return res, nil
		default:
			after = rows[len(rows)-1].ID
		}
	}
}

// chunkBounds returns every recomputeChunk-th member id of the merchant, in
// order: the upper bounds of the pass's chunks.
func (a *Attributes) chunkBounds(ctx context.Context, merchantID uint64) ([]uint64, error) {
	rows, err := a.db.WithContext(ctx).Raw("SELECT id FROM members WHERE merchant_id = ? ORDER BY id", merchantID).Rows()
	if err != nil {
		return nil, fmt.Errorf("member: recompute bounds: %w", err)
	}
	defer rows.Close()
	var bounds []uint64
	for n := 1; rows.Next(); n++ {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("member: recompute bounds: %w", err)
		}
		if n%recomputeChunk == 0 {
			bounds = append(bounds, id)
		}
	}
	return bounds, rows.Err()
}

// NightlyHour is the local hour after which a merchant's nightly pass runs.
const NightlyHour = 3

// JobRun is a job_runs row.
type JobRun struct {
	MerchantID uint64 `gorm:"primaryKey"`
	Job        string `gorm:"primaryKey"`
	RunKey     string `gorm:"primaryKey"`
	Owner      string
	StartedAt  time.Time
	FinishedAt *time.Time
	Result     *string
}

// TableName implements gorm's tabler.
func (JobRun) TableName() string { return "job_runs" }

const jobAttributes = "attributes"

// staleClaim is how long a started run may go unfinished before another
// instance takes it over (its runner is presumed dead).
const staleClaim = time.Hour

// claim makes this instance the runner of (merchant, job, key), or reports
// that another instance has it or it is done.
func claim(ctx context.Context, gdb *gorm.DB, merchantID uint64, job, key, owner string, now time.Time) (bool, error) {
	res := gdb.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&JobRun{MerchantID: merchantID, Job: job, RunKey: key, Owner: owner, StartedAt: now})
	if res.Error != nil {
		return false, fmt.Errorf("member: claim %s: %w", job, res.Error)
	}
	if res.RowsAffected == 1 {
		return true, nil
	}
	res = gdb.WithContext(ctx).Model(&JobRun{}).
		Where("merchant_id = ? AND job = ? AND run_key = ? AND finished_at IS NULL AND started_at < ?",
			merchantID, job, key, now.Add(-staleClaim)).
		Updates(map[string]any{"owner": owner, "started_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("member: take over %s: %w", job, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RunNightly runs each merchant's pass once per local date, after
// NightlyHour, whichever instance gets there first; it returns the passes
// it ran. Call it periodically (Run does).
func (a *Attributes) RunNightly(ctx context.Context) (int, error) {
	ids, err := a.merchants.IDs(ctx)
	if err != nil {
		return 0, err
	}
	ran := 0
	var errs []error
	for _, id := range ids {
		loc, err := a.merchants.Location(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		local := a.now().In(loc)
		if local.Hour() < NightlyHour {
			continue
		}
		key := local.Format(time.DateOnly)
		won, err := claim(ctx, a.db, id, jobAttributes, key, a.owner, a.now())
		if err != nil || !won {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		res, err := a.Recompute(ctx, id)
		if err != nil {
			a.log.ErrorContext(ctx, "member: nightly attributes failed", "merchant_id", id, "error", err)
			errs = append(errs, err)
			continue
		}
		done := a.now()
		if err := a.db.WithContext(ctx).Model(&JobRun{}).
			Where("merchant_id = ? AND job = ? AND run_key = ? AND owner = ?", id, jobAttributes, key, a.owner).
			Updates(map[string]any{"finished_at": done, "result": summarize(res)}).Error; err != nil {
			errs = append(errs, err)
		}
		a.log.InfoContext(ctx, "member: nightly attributes", "merchant_id", id, "members", res.Members,
			"changed", res.Changed, "stage_changes", res.StageChanges, "duration_ms", res.Duration.Milliseconds())
		ran++
	}
	return ran, errors.Join(errs...)
}

func summarize(res RecomputeResult) string {
	raw, _ := json.Marshal(res)
	return string(raw)
}

// RecomputeNow runs the merchant's pass at once, outside the nightly
// schedule (after a bulk load such as the demo seed), and records it as
// the pass of the merchant's local date, replacing a pass that already ran
// that day. The pass's figures (the 2:8 share LastRun gives) must come from
// the latest pass, the one whose RFM scores and pyramid tiers the member
// rows hold: a day already claimed by an earlier pass (say, one that found
// no members at startup) must not keep the earlier figures, or one
// dashboard answer shows filled tiers beside an empty 2:8 figure.
// RunNightly treats the date as done, as for any finished pass.
func (a *Attributes) RecomputeNow(ctx context.Context, merchantID uint64) (RecomputeResult, error) {
	loc, err := a.merchants.Location(ctx, merchantID)
	if err != nil {
		return RecomputeResult{}, err
	}
	res, err := a.Recompute(ctx, merchantID)
	if err != nil {
		return res, err
	}
	done := a.now()
	summary := summarize(res)
	run := JobRun{MerchantID: merchantID, Job: jobAttributes, RunKey: done.In(loc).Format(time.DateOnly),
		Owner: a.owner, StartedAt: res.ComputedAtUTC, FinishedAt: &done, Result: &summary}
	err = a.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "merchant_id"}, {Name: "job"}, {Name: "run_key"}},
		DoUpdates: clause.AssignmentColumns([]string{"owner", "started_at", "finished_at", "result"}),
	}).Create(&run).Error
	if err != nil {
		return res, fmt.Errorf("member: record the attribute pass: %w", err)
	}
	return res, nil
}

// Run calls RunNightly every interval until ctx ends.
func (a *Attributes) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := a.RunNightly(ctx); err != nil && ctx.Err() == nil {
			a.log.WarnContext(ctx, "member: nightly attributes", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LastRun returns the summary of the merchant's latest finished nightly
// pass, if any.
func (a *Attributes) LastRun(ctx context.Context, merchantID uint64) (RecomputeResult, bool, error) {
	var run JobRun
	err := a.db.WithContext(ctx).Where("merchant_id = ? AND job = ? AND finished_at IS NOT NULL", merchantID, jobAttributes).
		Order("run_key DESC").Take(&run).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return RecomputeResult{}, false, nil
	}
	if err != nil {
		return RecomputeResult{}, false, fmt.Errorf("member: last attributes run: %w", err)
	}
	var res RecomputeResult
	if run.Result != nil {
		_ = json.Unmarshal([]byte(*run.Result), &res)
	}
	return res, true, nil
}
