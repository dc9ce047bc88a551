package campaign

// The care scheduler: in each merchant's local time it finds the members a
// care rule is due for and hands them to the delivery engine as rows of
// the rule's campaign of the day. The engine sends them like any capped
// campaign: quiet hours, the frequency cap, the quota, retries, receipts
// and gifts are its business.
//
// Exactly once per member and occurrence (a birthday per year, a stage
// event, a points expiry date...) is a constraint, not a hope: care_sends
// holds one row per (merchant, rule, member, occurrence) under a unique
// key, written in the transaction that plans the deliveries, and
// deliveries are planned only for the care_sends rows that transaction
// inserted itself. Two schedulers, or one running twice, cannot both win.
// The day's campaign is keyed likewise (care_runs), so concurrent
// schedulers share it.

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/db"
)

// Run calls RunOnce every interval until ctx ends. Any number of
// instances may run it.
func (s *Care) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "care: scheduler round failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs every enabled rule of every merchant once, in the
// merchant's local time.
func (s *Care) RunOnce(ctx context.Context) error {
	var ids []uint64
	// idx_care_rules_enabled (enabled, merchant_id): the merchants with work.
	if err := s.db.WithContext(ctx).Model(&CareRule{}).Where("enabled = ? AND deleted_at IS NULL", true).
		Distinct("merchant_id").Order("merchant_id").Pluck("merchant_id", &ids).Error; err != nil {
		return fmt.Errorf("care: merchants: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.RunMerchant(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("merchant %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// RunMerchant runs the merchant's enabled rules once.
func (s *Care) RunMerchant(ctx context.Context, merchantID uint64) error {
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return fmt.Errorf("care: zone: %w", err)
	}
	var rules []CareRule
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND enabled = ? AND deleted_at IS NULL", merchantID, true).
		Order("id").Find(&rules).Error; err != nil {
		return fmt.Errorf("care: rules: %w", err)
	}
	now := s.now()
	var errs []error
	for _, r := range rules {
		if err := s.runRule(ctx, r, loc, now); err != nil {
			s.log.WarnContext(ctx, "care: rule failed", "merchant_id", merchantID, "care_rule_id", r.ID, "error", err)
			errs = append(errs, fmt.Errorf("rule %d: %w", r.ID, err))
		}
	}
	if err := s.revive(ctx, merchantID, civil(now.In(loc))); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// civil is the calendar date of t (in t's zone) as midnight UTC, so date
// arithmetic never meets a DST change.
func civil(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// localMidnight is the instant a civil date starts in loc.
func localMidnight(day time.Time, loc *time.Location) time.Time {
	y, m, d := day.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// firingDays are the days of target's month whose yearly dates are
// celebrated on target: the day itself, and on 28 February of a common
// year also the 29th (DOMAIN: Feb 29 → Feb 28 in non-leap years).
func firingDays(target time.Time) []int {
	if target.Month() == time.February && target.Day() == 28 && !isLeap(target.Year()) {
		return []int{28, 29}
	}
	return []int{target.Day()}
}

func (s *Care) runRule(ctx context.Context, r CareRule, loc *time.Location, now time.Time) error {
	spec := careSpecs[r.Kind]
	local := now.In(loc)
	if spec.sendTime && local.Hour()*60+local.Minute() < r.SendMinute {
		return nil // today's turn comes at the send time
	}
	if spec.daily {
		return s.runDaily(ctx, r, loc, civil(local))
	}
	return s.runEvents(ctx, r, loc, now)
}

// runDaily looks up the members due on today's local date (and on missed
// days whose dates are still ahead), once per day.
func (s *Care) runDaily(ctx context.Context, r CareRule, loc *time.Location, today time.Time) error {
	first := today
	if r.ScannedThrough != nil {
		last, err := time.Parse(time.DateOnly, *r.ScannedThrough)
		if err == nil && !last.Before(today) {
			return nil
		}
		// Days this scheduler missed (every instance down) are looked up
		// late only while what they announce is still ahead: a birthday
		// three days away can be announced two days away, but a greeting
		// for a day that has passed is not sent.
		back := 0
		if r.Kind != CarePointsExpiring && r.Kind != CareCouponExpiring {
			back = min(s.o.CatchUpDays, r.Days)
		}
		first = today.AddDate(0, 0, -back)
		if err == nil && last.AddDate(0, 0, 1).After(first) {
			first = last.AddDate(0, 0, 1)
		}
	}
	date := today.Format(time.DateOnly)
	for d := first; !d.After(today); d = d.AddDate(0, 0, 1) {
		items, err := s.dueOn(ctx, r, loc, d)
		if err != nil {
			return err
		}
		if err := s.deliver(ctx, r, date, items); err != nil {
			return err
		}
	}
	// Conditional and monotonic: a slower instance never moves it back.
	if err := s.db.WithContext(ctx).Model(&CareRule{}).
		Where("id = ? AND (scanned_through IS NULL OR scanned_through < ?)", r.ID, date).
		UpdateColumn("scanned_through", date).Error; err != nil { // UpdateColumn: not an edit, updated_at stays
		return fmt.Errorf("care: rule %d: scanned: %w", r.ID, err)
	}
	return nil
}

// careItem is a member a rule is due for, and for what.
type careItem struct {
	memberID   uint64
	occurrence string
}

// dueOn returns the members a date rule is due for on local date d.
func (s *Care) dueOn(ctx context.Context, r CareRule, loc *time.Location, d time.Time) ([]careItem, error) {
	target := d.AddDate(0, 0, r.Days) // the date being announced
	year := strconv.Itoa(target.Year())
	gdb := s.db.WithContext(ctx)
	var items []careItem
	switch r.Kind {
	case CareBirthday:
		var ids []uint64
		// idx_members_birthday (merchant_id, birthday_month, id, ...): the
		// month's members; the day is checked on the row (a month is 1/12
		// of the members, read once a day).
		if err := gdb.Table("members").Where("merchant_id = ? AND birthday_month = ? AND birthday_day IN ? AND erased_at IS NULL"+
			" AND (birthday_year IS NULL OR birthday_year < ?)", r.MerchantID, int(target.Month()), firingDays(target), target.Year()).
			Order("id").Pluck("id", &ids).Error; err != nil {
			return nil, fmt.Errorf("care: birthdays: %w", err)
		}
		for _, id := range ids {
			items = append(items, careItem{id, year})
		}
	case CareAnniversary:
		ids, err := s.anniversaries(ctx, r.MerchantID, loc, target)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			items = append(items, careItem{id, year})
		}
	case CareDateRule:
		var rows []struct {
			ID       uint64
			MemberID uint64
		}
		// idx_care_dates_day (merchant_id, month, day).
		q := gdb.Table("member_care_dates cd").Select("cd.id, cd.member_id").
			Joins("JOIN members m ON m.id = cd.member_id AND m.merchant_id = cd.merchant_id").
			Where("cd.merchant_id = ? AND cd.month = ? AND cd.day IN ? AND cd.kind = ? AND (cd.year IS NULL OR cd.year < ?)"+
				" AND m.erased_at IS NULL", r.MerchantID, int(target.Month()), firingDays(target), r.CareDateKind, target.Year())
		if r.Label != "" {
			q = q.Where("LOWER(cd.label) = LOWER(?)", r.Label)
		}
		if err := q.Order("cd.member_id, cd.id").Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("care: care dates: %w", err)
		}
		for _, row := range rows {
			items = append(items, careItem{row.MemberID, fmt.Sprintf("%d:%d", row.ID, target.Year())})
		}
	case CareCouponExpiring:
		return s.couponsDue(ctx, r, loc) // care_coupons.go
	case CarePointsExpiring:
		if s.expiring == nil {
			return nil, nil
		}
		within := time.Duration(r.Days) * 24 * time.Hour
		var after uint64
		for {
			page, err := s.expiring.ExpiringSoon(ctx, r.MerchantID, within, after, 1000)
			if err != nil {
				return nil, fmt.Errorf("care: expiring points: %w", err)
			}
			for _, x := range page {
				// One reminder per expiry date: the next lot's date is a
				// new occurrence.
				items = append(items, careItem{x.MemberID, x.FirstExpiresAt.In(loc).Format(time.DateOnly)})
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].MemberID
		}
	}
	return items, nil
}

// anniversaries returns the members who joined (local date of created_at)
// a whole number of years before target, Feb 29 joiners counting on Feb 28
// in common years. Each year is one created_at range of
// idx_members_created (merchant_id, created_at, ...).
func (s *Care) anniversaries(ctx context.Context, merchantID uint64, loc *time.Location, target time.Time) ([]uint64, error) {
	var first []time.Time
	if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ?", merchantID).Order("created_at").Limit(1).
		Pluck("created_at", &first).Error; err != nil {
		return nil, fmt.Errorf("care: first member: %w", err)
	}
	if len(first) == 0 {
		return nil, nil
	}
	var conds []string
	var args []any
	for y := max(first[0].In(loc).Year(), target.Year()-100); y < target.Year(); y++ {
		for _, day := range firingDays(target) {
			d := time.Date(y, target.Month(), day, 0, 0, 0, 0, time.UTC)
			if d.Month() != target.Month() {
				continue // 29 February of a common year
			}
			from := localMidnight(d, loc)
			conds = append(conds, "(created_at >= ? AND created_at < ?)")
			args = append(args, from.UTC(), localMidnight(d.AddDate(0, 0, 1), loc).UTC())
		}
	}
	if len(conds) == 0 {
		return nil, nil
	}
	var ids []uint64
	if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ? AND erased_at IS NULL", merchantID).
		Where("("+strings.Join(conds, " OR ")+")", args...).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("care: anniversaries: %w", err)
	}
	return ids, nil
}

// eventPage is how many events one query reads; eventPages bounds a run.
const (
	eventPage  = 1000
	eventPages = 50
)

// runEvents reads the events a welcome or stage rule follows since the
// last run (re-reading EventLag back for events written late; care_sends
// makes the overlap harmless) and plans their messages. A stage rule with
// days_after N fires on the local date N days after the change, at the
// send time.
func (s *Care) runEvents(ctx context.Context, r CareRule, loc *time.Location, now time.Time) error {
	upper, floor := now, r.ActiveSince
	if r.Kind != CareWelcome && r.Kind != CareSurveyDetractor {
		today := civil(now.In(loc))
		if end := localMidnight(today.AddDate(0, 0, 1-r.Days), loc); end.Before(upper) {
			upper = end
		}
		floor = localMidnight(civil(r.ActiveSince.In(loc)).AddDate(0, 0, -r.Days), loc)
	}
	lower := upper.Add(-s.o.StaleAfter)
	if floor.After(lower) {
		lower = floor
	}
	if r.Watermark != nil {
		if w := r.Watermark.Add(-s.o.EventLag); w.After(lower) {
			lower = w
		}
	}
	if !upper.After(lower) {
		return nil
	}
	date := civil(now.In(loc)).Format(time.DateOnly)
	mark := upper
	var cursor *struct {
		at time.Time
		id uint64
	}
	for page := 0; ; page++ {
		if page == eventPages {
			mark = cursor.at // the rest next run
			break
		}
		var rows []struct {
			ID         uint64
			MemberID   uint64
			OccurredAt time.Time
		}
		var q *gorm.DB
		switch r.Kind {
		case CareSurveyDetractor:
			// idx_survey_answers_time (merchant_id, answered_at): the
			// detractors' answers (NPS 0–6, DetractorMax).
			q = s.db.WithContext(ctx).Table("survey_answers e").Select("e.id, e.member_id, e.answered_at AS occurred_at").
				Joins("JOIN members m ON m.id = e.member_id AND m.merchant_id = e.merchant_id").
				Where("e.merchant_id = ? AND e.nps <= ? AND e.answered_at > ? AND e.answered_at <= ? AND m.erased_at IS NULL",
					r.MerchantID, DetractorMax, lower.UTC(), upper.UTC())
		case CareWelcome:
			// idx_follow_events_time (merchant_id, kind, occurred_at, ...).
			q = s.db.WithContext(ctx).Table("member_follow_events e").Select("e.id, e.member_id, e.occurred_at").
				Where("e.merchant_id = ? AND e.kind = ? AND e.occurred_at > ? AND e.occurred_at <= ?", r.MerchantID, followKind,
					lower.UTC(), upper.UTC())
		default:
			// idx_stage_events_time (merchant_id, to_stage, occurred_at); the
			// member's present stage decides whether the message still fits.
			q = s.db.WithContext(ctx).Table("member_stage_events e").Select("e.id, e.member_id, e.occurred_at").
				Joins("JOIN members m ON m.id = e.member_id AND m.merchant_id = e.merchant_id").
				Where("e.merchant_id = ? AND e.to_stage = ? AND e.occurred_at > ? AND e.occurred_at <= ? AND m.erased_at IS NULL",
					r.MerchantID, stageOf[r.Kind], lower.UTC(), upper.UTC())
			switch r.Kind {
			case CareSecondPurchase:
				q = q.Where("m.lifecycle_stage = ?", stageNew) // bought again already: no nudge
			case CareWinBack:
				q = q.Where("m.lifecycle_stage = ?", stageAtRisk)
				if !r.IncludeLeadTier {
					// DOMAIN: lead-tier members get no paid win-back offers
					// unless the merchant says so.
					q = q.Where("(m.pyramid_tier IS NULL OR m.pyramid_tier <> ?)", pyramidLead)
				}
			}
		}
		at := "e.occurred_at"
		if r.Kind == CareSurveyDetractor {
			at = "e.answered_at"
		}
		if cursor != nil {
			q = q.Where("("+at+" > ? OR ("+at+" = ? AND e.id > ?))", cursor.at.UTC(), cursor.at.UTC(), cursor.id)
		}
		if err := q.Order(at + ", e.id").Limit(eventPage).Find(&rows).Error; err != nil {
			return fmt.Errorf("care: events: %w", err)
		}
		items := make([]careItem, len(rows))
		for i, e := range rows {
			occ := "follow" // welcome: once per member, ever
			if r.Kind != CareWelcome {
				occ = strconv.FormatUint(e.ID, 10)
			}
			items[i] = careItem{e.MemberID, occ}
		}
		if err := s.deliver(ctx, r, date, items); err != nil {
			return err
		}
		if len(rows) < eventPage {
			break
		}
		last := rows[len(rows)-1]
		cursor = &struct {
			at time.Time
			id uint64
		}{last.OccurredAt, last.ID}
	}
	if err := s.db.WithContext(ctx).Model(&CareRule{}).Where("id = ? AND (watermark IS NULL OR watermark < ?)", r.ID, mark.UTC()).
		UpdateColumn("watermark", mark.UTC()).Error; err != nil {
		return fmt.Errorf("care: rule %d: watermark: %w", r.ID, err)
	}
	return nil
}

// deliver plans the rule's messages for items in its campaign of the local
// date: members already served for the occurrence, gone or erased are
// dropped, the rest are written a chunk per transaction.
func (s *Care) deliver(ctx context.Context, r CareRule, localDate string, items []careItem) error {
	if len(items) == 0 {
		return nil
	}
	seen := make(map[careItem]bool, len(items))
	uniq := items[:0:0]
	for _, it := range items {
		if !seen[it] {
			seen[it] = true
			uniq = append(uniq, it)
		}
	}
	items, err := s.unserved(ctx, r, uniq)
	if err != nil || len(items) == 0 {
		return err
	}
	sort.Slice(items, func(i, j int) bool { // one lock order for every instance
		if items[i].memberID != items[j].memberID {
			return items[i].memberID < items[j].memberID
		}
		return items[i].occurrence < items[j].occurrence
	})
	campaignID, err := s.campaignFor(ctx, r, localDate)
	if err != nil {
		return err
	}
	planned := 0
	for start := 0; start < len(items); start += s.o.Chunk {
		n, err := s.plan(ctx, r, campaignID, localDate, items[start:min(start+s.o.Chunk, len(items))])
		if errors.Is(err, errCareCancelled) {
			s.log.InfoContext(ctx, "care: the day's campaign was cancelled; nothing more planned today", "merchant_id",
				r.MerchantID, "care_rule_id", r.ID, "campaign_id", campaignID)
			return nil
		}
		if err != nil {
			return err
		}
		planned += n
	}
	if planned > 0 {
		s.log.InfoContext(ctx, "care: planned", "merchant_id", r.MerchantID, "care_rule_id", r.ID, "campaign_id", campaignID,
			"deliveries", planned, "owner", s.o.Owner)
	}
	return nil
}

// unserved drops the items the rule already served and the members that
// are gone or erased. (An optimisation and a courtesy: the unique key is
// what guarantees once.)
func (s *Care) unserved(ctx context.Context, r CareRule, items []careItem) ([]careItem, error) {
	var out []careItem
	for start := 0; start < len(items); start += 500 {
		part := items[start:min(start+500, len(items))]
		ids := make([]uint64, 0, len(part))
		for _, it := range part {
			ids = append(ids, it.memberID)
		}
		var served []struct {
			MemberID   uint64
			Occurrence string
		}
		// uk_care_sends (merchant_id, rule_id, member_id, ...).
		if err := s.db.WithContext(ctx).Model(&CareSend{}).Select("member_id, occurrence").
			Where("merchant_id = ? AND rule_id = ? AND member_id IN ?", r.MerchantID, r.ID, ids).Find(&served).Error; err != nil {
			return nil, fmt.Errorf("care: served: %w", err)
		}
		done := make(map[careItem]bool, len(served))
		for _, sv := range served {
			done[careItem{sv.MemberID, sv.Occurrence}] = true
		}
		var living []uint64
		if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ? AND id IN ? AND erased_at IS NULL", r.MerchantID, ids).
			Pluck("id", &living).Error; err != nil {
			return nil, fmt.Errorf("care: members: %w", err)
		}
		alive := make(map[uint64]bool, len(living))
		for _, id := range living {
			alive[id] = true
		}
		for _, it := range part {
			if !done[it] && alive[it.memberID] {
				out = append(out, it)
			}
		}
	}
	return out, nil
}

// campaignFor returns the rule's campaign of the local date, creating it
// (running, planned: the scheduler adds its rows) the first time. Two
// schedulers creating it at once both insert a campaign and its care_runs
// row in one transaction; the second gets a duplicate key, rolls back its
// campaign and uses the first one's.
func (s *Care) campaignFor(ctx context.Context, r CareRule, localDate string) (uint64, error) {
	find := func() (uint64, bool, error) {
		var run careRun
		err := s.db.WithContext(ctx).Where("merchant_id = ? AND rule_id = ? AND local_date = ?", r.MerchantID, r.ID, localDate).
			Take(&run).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("care: run %s: %w", localDate, err)
		}
		return run.CampaignID, true, nil
	}
	if id, ok, err := find(); ok || err != nil {
		return id, err
	}
	now := s.now()
	err := retryTx(ctx, s.db, func(tx *gorm.DB) error {
		c := Campaign{MerchantID: r.MerchantID, Name: careCampaignName(r, localDate), Kind: KindCare, Status: StatusRunning,
			Channel: r.Channel, TemplateID: r.TemplateID, Message: r.Message, Gift: r.Gift,
			ScheduleKind: ScheduleNow, AttributionDays: 7, Step: 1, StepStartedAt: &now, PlanDone: true,
			CreatedBy: r.CreatedBy, CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&c).Error; err != nil {
			return fmt.Errorf("care: create campaign: %w", err)
		}
		return tx.Create(&careRun{MerchantID: r.MerchantID, RuleID: r.ID, LocalDate: localDate, CampaignID: c.ID, CreatedAt: now}).Error
	})
	if err != nil && !db.IsDuplicate(err) {
		return 0, fmt.Errorf("care: run %s: %w", localDate, err)
	}
	id, ok, err := find()
	if err == nil && !ok {
		err = fmt.Errorf("care: run %s of rule %d vanished", localDate, r.ID)
	}
	return id, err
}

var errCareCancelled = errors.New("care: campaign cancelled")

// plan writes one chunk in one transaction: the care_sends rows first
// (duplicates of the unique key are ignored), then a delivery for each
// member whose care_sends row this transaction inserted (found by the
// transaction's own batch id), with the planner's openid and skip rules.
// It returns how many deliveries it planned. The campaign row is locked
// first so a resend (a new step) or a status change waits; a campaign
// the engine completed meanwhile runs again.
func (s *Care) plan(ctx context.Context, r CareRule, campaignID uint64, localDate string, items []careItem) (int, error) {
	var planned int
	err := retryTx(ctx, s.db, func(tx *gorm.DB) error {
		planned = 0
		var c Campaign
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", campaignID).Take(&c).Error; err != nil {
			return fmt.Errorf("care: campaign %d: %w", campaignID, err)
		}
		if c.Status == StatusCancelled {
			return errCareCancelled
		}
		now := s.now()
		batch := newBatchID()
		var b strings.Builder
		args := make([]any, 0, 8*len(items))
		b.WriteString("INSERT INTO care_sends (merchant_id, rule_id, member_id, occurrence, local_date, campaign_id, batch, created_at) VALUES ")
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, r.MerchantID, r.ID, it.memberID, it.occurrence, localDate, campaignID, batch, now)
		}
		if s.mysql {
			b.WriteString(" ON DUPLICATE KEY UPDATE id = id")
		} else {
			b.WriteString(" ON CONFLICT (merchant_id, rule_id, member_id, occurrence) DO NOTHING")
		}
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			return fmt.Errorf("care: sends: %w", err)
		}
		// The members of this batch: idx_care_sends_batch, then members by
		// primary key. A member with two occurrences the same day (two
		// children born on one date) gets one message.
		openid, status, reason := skipExprs(c)
		n, err := s.rows.plan(ctx, tx, "SELECT m.merchant_id, ?, ?, m.id, COALESCE("+openid+", ''), ?, "+status+", "+reason+", ?, ? "+
			"FROM members m WHERE m.merchant_id = ? AND m.id IN (SELECT cs.member_id FROM care_sends cs WHERE cs.merchant_id = ? AND cs.batch = ?)",
			c.ID, c.Step, c.Capped(), now, now, r.MerchantID, r.MerchantID, batch)
		if err != nil {
			return fmt.Errorf("care: %w", err)
		}
		planned = int(n)
		if planned > 0 && c.Status == StatusCompleted {
			return reopen(ctx, tx, c.ID, now)
		}
		return nil
	})
	return planned, err
}

// revive runs again the merchant's recent care campaigns that hold pending
// rows but were completed: the engine's completion check (no open rows,
// then complete) can interleave with a scheduler adding rows to the day's
// campaign, and the rows would otherwise wait forever.
func (s *Care) revive(ctx context.Context, merchantID uint64, today time.Time) error {
	var ids []uint64
	// idx_care_runs_date (merchant_id, local_date).
	if err := s.db.WithContext(ctx).Model(&careRun{}).
		Where("merchant_id = ? AND local_date >= ?", merchantID, today.AddDate(0, 0, -s.o.CatchUpDays-1).Format(time.DateOnly)).
		Pluck("campaign_id", &ids).Error; err != nil {
		return fmt.Errorf("care: recent runs: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	n, err := revivePending(ctx, s.db, ids, s.now())
	if err != nil {
		return fmt.Errorf("care: %w", err)
	}
	if n > 0 {
		s.log.InfoContext(ctx, "care: campaigns completed under new rows run again", "merchant_id", merchantID, "campaigns", n)
	}
	return nil
}

func newBatchID() string {
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
