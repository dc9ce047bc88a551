package member

// Auto-tagging: a tag rule keeps a tag on exactly the members its rule
// (the segment rule language) matches. Members gain the tag when they
// match and lose it when they stop matching, each gain and loss recorded
// in member_tag_events (the member's tag history). Rules are evaluated
//
//   - for every member when a rule is saved and by the nightly pass (after
//     the nightly attributes, which move stages, RFM and tiers), and
//   - for the members whose fields changed: an order, a refund, points, a
//     stage or tier change, a profile edit marks the member in
//     member_tag_pending inside the change's transaction (MarkPending), and
//     RunPending works the marks off within seconds.
//
// Every evaluation of a rule holds its tag's row lock (as staff
// assignments do), so two evaluators never both record one gain.

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

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
)

// TagRule is a tag_rules row.
type TagRule struct {
	ID         uint64     `gorm:"primaryKey" json:"id"`
	MerchantID uint64     `json:"-"`
	TagID      uint64     `json:"tag_id"`
	Rule       string     `json:"-"` // JSON, the segment rule language
	Enabled    bool       `json:"enabled"`
	CreatedBy  uint64     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	DeletedAt  *time.Time `json:"-"`
}

// TableName implements gorm's tabler.
func (TagRule) TableName() string { return "tag_rules" }

// TagEvent is a member_tag_events row: a rule gave or took a tag.
type TagEvent struct {
	ID         uint64    `gorm:"primaryKey" json:"id"`
	MerchantID uint64    `json:"-"`
	MemberID   uint64    `json:"member_id"`
	TagID      uint64    `json:"tag_id"`
	RuleID     uint64    `json:"rule_id"`
	Action     string    `json:"action"` // gained or lost
	Cause      string    `json:"cause"`  // rule_saved, nightly or change
	OccurredAt time.Time `json:"occurred_at"`
}

// TableName implements gorm's tabler.
func (TagEvent) TableName() string { return "member_tag_events" }

// Tag event actions and causes.
const (
	TagGained = "gained"
	TagLost   = "lost"

	CauseRuleSaved = "rule_saved"
	CauseNightly   = "nightly"
	CauseChange    = "change"
)

// MaxTagRules bounds a merchant's rules.
const MaxTagRules = 100

// tagRuleChunk is how many members one evaluation transaction covers.
const tagRuleChunk = 1000

const jobTagRules = "tag_rules"

var errTagRuleNotFound = apperr.New(apperr.ErrNotFound, "tag rule not found")

// TagRules is the auto-tagging service.
type TagRules struct {
	db    *gorm.DB
	mysql bool
	segs  *Segments
	now   func() time.Time
	log   *slog.Logger
	owner string
	marks db.TxMemo // one mark per member and transaction
}

// NewTagRules returns the auto-tagging service; rules compile through
// segs (its zones and clock).
func NewTagRules(gdb *gorm.DB, segs *Segments, now func() time.Time, log *slog.Logger) *TagRules {
	return &TagRules{db: gdb, mysql: gdb.Dialector.Name() == db.MySQL, segs: segs, now: now, log: log, owner: db.InstanceName()}
}

// TagRuleInput creates or edits a rule; absent fields stay (edit).
type TagRuleInput struct {
	TagID   *uint64         `json:"tag_id"`
	Rule    json.RawMessage `json:"rule"`
	Enabled *bool           `json:"enabled"`
}

// TagRuleView is a rule as the API shows it.
type TagRuleView struct {
	TagRule
	Rule    json.RawMessage `json:"rule"`
	TagName string          `json:"tag_name"`
}

func (t *TagRules) view(ctx context.Context, r TagRule) (TagRuleView, error) {
	v := TagRuleView{TagRule: r, Rule: json.RawMessage(r.Rule)}
	var names []string
	if err := t.db.WithContext(ctx).Model(&Tag{}).Where("merchant_id = ? AND id = ?", r.MerchantID, r.TagID).
		Pluck("name", &names).Error; err != nil {
		return v, fmt.Errorf("member: tag of rule %d: %w", r.ID, err)
	}
	if len(names) == 1 {
		v.TagName = names[0]
	}
	return v, nil
}

// checkRule validates a rule for a tag: it must compile, and must not read
// its own tag (the rule would flip the tag on every evaluation).
func (t *TagRules) checkRule(ctx context.Context, merchantID, tagID uint64, rule json.RawMessage) error {
	if len(rule) == 0 || string(rule) == "null" {
		return apperr.Invalid("rule", "is required: a segment rule")
	}
	if _, err := t.segs.Compile(ctx, merchantID, rule); err != nil {
		return err
	}
	if readsTag(rule, tagID) {
		return apperr.Invalid("rule", "must not test the tag it sets")
	}
	return nil
}

// readsTag reports whether a rule has a tags condition naming tagID.
func readsTag(raw json.RawMessage, tagID uint64) bool {
	var n struct {
		All   []json.RawMessage `json:"all"`
		Any   []json.RawMessage `json:"any"`
		Not   json.RawMessage   `json:"not"`
		Field string            `json:"field"`
		Value json.RawMessage   `json:"value"`
	}
	if json.Unmarshal(raw, &n) != nil {
		return false
	}
	for _, c := range append(n.All, n.Any...) {
		if readsTag(c, tagID) {
			return true
		}
	}
	if len(n.Not) > 0 && readsTag(n.Not, tagID) {
		return true
	}
	if n.Field != "tags" {
		return false
	}
	var ids []uint64
	_ = json.Unmarshal(n.Value, &ids)
	return slices.Contains(ids, tagID)
}

func tagRuleSummary(r TagRule) map[string]any {
	return map[string]any{"tag_id": r.TagID, "rule": json.RawMessage(r.Rule), "enabled": r.Enabled}
}

// Create saves a rule for a tag without one, then applies it to every
// member.
func (t *TagRules) Create(ctx context.Context, merchantID, staffID uint64, in TagRuleInput) (TagRuleView, error) {
	if in.TagID == nil || *in.TagID == 0 {
		return TagRuleView{}, apperr.Invalid("tag_id", "is required: the tag the rule keeps")
	}
	if err := t.checkRule(ctx, merchantID, *in.TagID, in.Rule); err != nil {
		return TagRuleView{}, err
	}
	now := t.now()
	r := TagRule{MerchantID: merchantID, TagID: *in.TagID, Rule: compactJSON(in.Rule), Enabled: in.Enabled == nil || *in.Enabled,
		CreatedBy: staffID, CreatedAt: now, UpdatedAt: now}
	err := t.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := (store{tx}).tag(ctx, merchantID, r.TagID, true); err != nil {
			if errors.Is(err, errTagNotFound) {
				return apperr.Invalid("tag_id", "is not one of this merchant's tags")
			}
			return err
		}
		var n, same int64
		if err := tx.Model(&TagRule{}).Where("merchant_id = ? AND deleted_at IS NULL", merchantID).Count(&n).Error; err != nil {
			return fmt.Errorf("member: count tag rules: %w", err)
		}
		if n >= MaxTagRules {
			return apperr.New(apperr.ErrConflict, "a merchant may have at most %d tag rules: delete one first", MaxTagRules)
		}
		if err := tx.Model(&TagRule{}).Where("merchant_id = ? AND tag_id = ? AND deleted_at IS NULL", merchantID, r.TagID).
			Count(&same).Error; err != nil {
			return fmt.Errorf("member: tag rules of tag %d: %w", r.TagID, err)
		}
		if same > 0 {
			return apperr.New(apperr.ErrConflict, "tag %d already has a rule: edit that one", r.TagID)
		}
		if err := tx.Create(&r).Error; err != nil {
			return fmt.Errorf("member: create tag rule: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "tag_rule.create", TargetType: "tag_rule",
			TargetIDs: []uint64{r.ID}, After: tagRuleSummary(r)}, now)
	})
	if err != nil {
		return TagRuleView{}, err
	}
	if r.Enabled {
		if _, _, err := t.applyAll(ctx, r, CauseRuleSaved); err != nil {
			return TagRuleView{}, err
		}
	}
	return t.view(ctx, r)
}

func (t *TagRules) get(ctx context.Context, tx *gorm.DB, merchantID, id uint64, lock bool) (TagRule, error) {
	q := tx.WithContext(ctx)
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return db.TakeOne[TagRule](q.Where("merchant_id = ? AND id = ? AND deleted_at IS NULL", merchantID, id),
		errTagRuleNotFound, "member: tag rule %d", id)
}

// Get returns a rule of the merchant.
func (t *TagRules) Get(ctx context.Context, merchantID, id uint64) (TagRuleView, error) {
	r, err := t.get(ctx, t.db, merchantID, id, false)
	if err != nil {
		return TagRuleView{}, err
	}
	return t.view(ctx, r)
}

// List returns the merchant's rules, oldest first.
func (t *TagRules) List(ctx context.Context, merchantID uint64) ([]TagRuleView, error) {
	var rules []TagRule
	// idx_tag_rules_merchant (merchant_id, id).
	if err := t.db.WithContext(ctx).Where("merchant_id = ? AND deleted_at IS NULL", merchantID).Order("id").
		Limit(MaxTagRules * 2).Find(&rules).Error; err != nil {
		return nil, fmt.Errorf("member: tag rules: %w", err)
	}
	out := make([]TagRuleView, 0, len(rules))
	for _, r := range rules {
		v, err := t.view(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Update edits a rule's rule or enabled flag (the tag cannot change), then
// applies it to every member when it is enabled.
func (t *TagRules) Update(ctx context.Context, merchantID, id uint64, in TagRuleInput) (TagRuleView, error) {
	old, err := t.get(ctx, t.db, merchantID, id, false)
	if err != nil {
		return TagRuleView{}, err
	}
	if in.TagID != nil && *in.TagID != old.TagID {
		return TagRuleView{}, apperr.Invalid("tag_id", "cannot change: create a rule for the other tag")
	}
	r := old
	if in.Rule != nil {
		if err := t.checkRule(ctx, merchantID, r.TagID, in.Rule); err != nil {
			return TagRuleView{}, err
		}
		r.Rule = compactJSON(in.Rule)
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	now := t.now()
	r.UpdatedAt = now
	err = t.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		cur, err := t.get(ctx, tx, merchantID, id, true)
		if err != nil {
			return err
		}
		if !cur.UpdatedAt.Equal(old.UpdatedAt) {
			return apperr.New(apperr.ErrConflict, "the rule was changed by someone else meanwhile: reload it and try again")
		}
		if err := tx.Model(&TagRule{}).Where("id = ?", id).
			Updates(map[string]any{"rule": r.Rule, "enabled": r.Enabled, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("member: update tag rule %d: %w", id, err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "tag_rule.update", TargetType: "tag_rule",
			TargetIDs: []uint64{id}, Before: tagRuleSummary(old), After: tagRuleSummary(r)}, now)
	})
	if err != nil {
		return TagRuleView{}, err
	}
	if r.Enabled {
		if _, _, err := t.applyAll(ctx, r, CauseRuleSaved); err != nil {
			return TagRuleView{}, err
		}
	}
	return t.view(ctx, r)
}

// Delete removes a rule. The tag stays on the members holding it, as a
// plain tag staff can change.
func (t *TagRules) Delete(ctx context.Context, merchantID, id uint64) error {
	return t.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := t.get(ctx, tx, merchantID, id, true)
		if err != nil {
			return err
		}
		now := t.now()
		if err := tx.Model(&TagRule{}).Where("id = ?", id).
			Updates(map[string]any{"enabled": false, "deleted_at": now, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("member: delete tag rule %d: %w", id, err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "tag_rule.delete", TargetType: "tag_rule",
			TargetIDs: []uint64{id}, Before: tagRuleSummary(r)}, now)
	})
}

// TagRulePreview is how many members a rule matches now, and how many of
// them already hold the tag.
type TagRulePreview struct {
	Count      int64 `json:"count"`
	HoldingTag int64 `json:"holding_tag"`
	WouldGain  int64 `json:"would_gain"`
	WouldLose  int64 `json:"would_lose"`
	TagHolders int64 `json:"tag_holders"`
}

// Preview counts the members a rule matches now and, for a tag, what
// applying it would change.
func (t *TagRules) Preview(ctx context.Context, merchantID uint64, tagID uint64, rule json.RawMessage) (TagRulePreview, error) {
	if err := t.checkRule(ctx, merchantID, tagID, rule); err != nil {
		return TagRulePreview{}, err
	}
	a, err := t.segs.Compile(ctx, merchantID, rule)
	if err != nil {
		return TagRulePreview{}, err
	}
	var p TagRulePreview
	if p.Count, err = t.segs.Count(ctx, a); err != nil {
		return p, err
	}
	if tagID == 0 {
		return p, nil
	}
	if _, err := (store{t.db}).tag(ctx, merchantID, tagID, false); err != nil {
		if errors.Is(err, errTagNotFound) {
			return p, apperr.Invalid("tag_id", "is not one of this merchant's tags")
		}
		return p, err
	}
	gdb := t.db.WithContext(ctx)
	if err := gdb.Raw("SELECT COUNT(*) FROM members m WHERE "+a.Where+" AND EXISTS (SELECT 1 FROM member_tags s "+
		"WHERE s.merchant_id = m.merchant_id AND s.member_id = m.id AND s.tag_id = ?)", append(a.Args, tagID)...).
		Scan(&p.HoldingTag).Error; err != nil {
		return p, fmt.Errorf("member: preview tag rule: %w", err)
	}
	if err := gdb.Model(&memberTag{}).Where("merchant_id = ? AND tag_id = ?", merchantID, tagID).Count(&p.TagHolders).Error; err != nil {
		return p, fmt.Errorf("member: preview tag rule: %w", err)
	}
	p.WouldGain, p.WouldLose = p.Count-p.HoldingTag, p.TagHolders-p.HoldingTag
	return p, nil
}

// History returns a member's tag gains and losses by rules, newest first.
func (t *TagRules) History(ctx context.Context, merchantID, memberID uint64, before uint64, limit int) ([]TagEvent, error) {
	if _, err := (store{t.db}).get(ctx, merchantID, memberID, false); err != nil {
		return nil, err
	}
	q := t.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID)
	if before != 0 {
		q = q.Where("id < ?", before)
	}
	out := []TagEvent{}
	// idx_member_tag_events_member (merchant_id, member_id, id), backwards.
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("member: tag history: %w", err)
	}
	return out, nil
}

// applyAll evaluates a rule for every member of the merchant, a chunk of
// member ids per transaction.
func (t *TagRules) applyAll(ctx context.Context, r TagRule, cause string) (gained, lost int, err error) {
	var after uint64
	for {
		var ids []uint64
		// idx_members_merchant: the next chunk of the merchant's ids.
		if err := t.db.WithContext(ctx).Table("members").Where("merchant_id = ? AND id > ?", r.MerchantID, after).
			Order("id").Limit(tagRuleChunk).Pluck("id", &ids).Error; err != nil {
			return gained, lost, fmt.Errorf("member: tag rule %d: members: %w", r.ID, err)
		}
		if len(ids) == 0 {
			return gained, lost, nil
		}
		g, l, err := t.apply(ctx, r, ids, cause)
		gained, lost = gained+g, lost+l
		if err != nil {
			return gained, lost, err
		}
		after = ids[len(ids)-1]
		if len(ids) < tagRuleChunk {
			return gained, lost, nil
		}
	}
}

// errRuleGone stops the evaluation of a rule whose tag was deleted.
var errRuleGone = errors.New("tag rule gone")

// apply evaluates a rule for some members in one transaction under the
// tag's row lock: members who match and lack the tag gain it, members who
// hold it and do not match lose it, each with a history row. A rule whose
// tag was deleted is deleted with it.
func (t *TagRules) apply(ctx context.Context, r TagRule, ids []uint64, cause string) (gained, lost int, err error) {
	a, err := t.segs.Compile(ctx, r.MerchantID, json.RawMessage(r.Rule))
	if err != nil {
		return 0, 0, fmt.Errorf("member: tag rule %d: %w", r.ID, err)
	}
	err = t.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		gained, lost = 0, 0
		if _, err := (store{tx}).tag(ctx, r.MerchantID, r.TagID, true); err != nil {
			if errors.Is(err, errTagNotFound) {
				now := t.now()
				if err := tx.Model(&TagRule{}).Where("id = ?", r.ID).
					Updates(map[string]any{"enabled": false, "deleted_at": now, "updated_at": now}).Error; err != nil {
					return err
				}
				return errRuleGone
			}
			return err
		}
		var match, hold []uint64
		if err := tx.Raw("SELECT m.id FROM members m WHERE "+a.Where+" AND m.id IN ?", append(a.Args, ids)...).
			Scan(&match).Error; err != nil {
			return fmt.Errorf("member: tag rule %d: match: %w", r.ID, err)
		}
		// Primary key (merchant_id, tag_id, member_id).
		if err := tx.Model(&memberTag{}).Where("merchant_id = ? AND tag_id = ? AND member_id IN ?", r.MerchantID, r.TagID, ids).
			Pluck("member_id", &hold).Error; err != nil {
			return fmt.Errorf("member: tag rule %d: holders: %w", r.ID, err)
		}
		slices.Sort(match)
		slices.Sort(hold)
		now := t.now()
		var rows []memberTag
		var events []TagEvent
		var lose []uint64
		for _, id := range match {
			if _, ok := slices.BinarySearch(hold, id); !ok {
				rows = append(rows, memberTag{MerchantID: r.MerchantID, TagID: r.TagID, MemberID: id, CreatedAt: now})
				events = append(events, TagEvent{MerchantID: r.MerchantID, MemberID: id, TagID: r.TagID, RuleID: r.ID,
					Action: TagGained, Cause: cause, OccurredAt: now})
			}
		}
		for _, id := range hold {
			if _, ok := slices.BinarySearch(match, id); !ok {
				lose = append(lose, id)
				events = append(events, TagEvent{MerchantID: r.MerchantID, MemberID: id, TagID: r.TagID, RuleID: r.ID,
					Action: TagLost, Cause: cause, OccurredAt: now})
			}
		}
		if len(rows) > 0 {
			if err := tx.CreateInBatches(rows, 500).Error; err != nil {
				return fmt.Errorf("member: tag rule %d: gain: %w", r.ID, err)
			}
		}
		if len(lose) > 0 {
			if err := tx.Where("merchant_id = ? AND tag_id = ? AND member_id IN ?", r.MerchantID, r.TagID, lose).
				Delete(&memberTag{}).Error; err != nil {
				return fmt.Errorf("member: tag rule %d: lose: %w", r.ID, err)
			}
		}
		if len(events) > 0 {
			if err := tx.CreateInBatches(events, 500).Error; err != nil {
				return fmt.Errorf("member: tag rule %d: history: %w", r.ID, err)
			}
		}
		gained, lost = len(rows), len(lose)
		return nil
	})
	if errors.Is(err, errRuleGone) {
		t.log.InfoContext(ctx, "member: tag rule deleted with its tag", "merchant_id", r.MerchantID, "tag_rule_id", r.ID)
		return 0, 0, nil
	}
	return gained, lost, err
}

// MarkPending records, in the transaction of a change to the member's
// fields, that the member's tag rules are to be evaluated again. It has
// the shape of the points purchase hooks and member profile hooks. One
// change often asks several times (an order moves the purchase facts, the
// points and the stage, each telling its hooks): the member is marked once
// per transaction.
func (t *TagRules) MarkPending(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error {
	if !t.marks.First(tx, [2]uint64{merchantID, memberID}) {
		return nil
	}
	q := "INSERT INTO member_tag_pending (merchant_id, member_id, marked_at, version) VALUES (?, ?, ?, 1)"
	if t.mysql {
		q += " ON DUPLICATE KEY UPDATE version = version + 1, marked_at = VALUES(marked_at)"
	} else {
		q += " ON CONFLICT (merchant_id, member_id) DO UPDATE SET version = member_tag_pending.version + 1, marked_at = excluded.marked_at"
	}
	if err := tx.WithContext(ctx).Exec(q, merchantID, memberID, t.now()).Error; err != nil {
		return fmt.Errorf("member: mark tags pending: %w", err)
	}
	return nil
}

// enabledRules returns the merchant's enabled rules.
func (t *TagRules) enabledRules(ctx context.Context, merchantID uint64) ([]TagRule, error) {
	var rules []TagRule
	if err := t.db.WithContext(ctx).Where("merchant_id = ? AND enabled = ? AND deleted_at IS NULL", merchantID, true).
		Order("id").Find(&rules).Error; err != nil {
		return nil, fmt.Errorf("member: tag rules: %w", err)
	}
	return rules, nil
}

// clearChunk is how many marks one DELETE clears.
const clearChunk = 250

// RunPending evaluates the rules of up to limit marked members and clears
// the marks no change renewed meanwhile; it returns how many it cleared.
func (t *TagRules) RunPending(ctx context.Context, limit int) (int, error) {
	var marks []struct {
		MerchantID uint64
		MemberID   uint64
		Version    uint64
	}
	if err := t.db.WithContext(ctx).Table("member_tag_pending").Select("merchant_id, member_id, version").
		Order("merchant_id, member_id").Limit(limit).Find(&marks).Error; err != nil {
		return 0, fmt.Errorf("member: pending tags: %w", err)
	}
	byMerchant := map[uint64][]uint64{}
	var order []uint64
	for _, m := range marks {
		if _, ok := byMerchant[m.MerchantID]; !ok {
			order = append(order, m.MerchantID)
		}
		byMerchant[m.MerchantID] = append(byMerchant[m.MerchantID], m.MemberID)
	}
	failed := map[uint64]bool{}
	var errs []error
	for _, mid := range order {
		rules, err := t.enabledRules(ctx, mid)
		if err == nil {
			for _, r := range rules {
				if _, _, err = t.apply(ctx, r, byMerchant[mid], CauseChange); err != nil {
					break
				}
			}
		}
		if err != nil {
			failed[mid] = true
			errs = append(errs, fmt.Errorf("merchant %d: %w", mid, err))
		}
	}
	// The marks no change renewed meanwhile (same version) are cleared in
	// one statement per merchant and chunk.
	cleared := 0
	for _, mid := range order {
		if failed[mid] {
			continue // tried again next round
		}
		var done []any
		for _, m := range marks {
			if m.MerchantID == mid {
				done = append(done, m.MemberID, m.Version)
			}
		}
		for len(done) > 0 {
			chunk := done[:min(len(done), 2*clearChunk)]
			done = done[len(chunk):]
			cond := strings.Repeat(" OR (member_id = ? AND version = ?)", len(chunk)/2)[4:]
			res := t.db.WithContext(ctx).Exec("DELETE FROM member_tag_pending WHERE merchant_id = ? AND ("+cond+")",
				append([]any{mid}, chunk...)...)
			if res.Error != nil {
				errs = append(errs, fmt.Errorf("member: clear pending tags: %w", res.Error))
				break
			}
			cleared += int(res.RowsAffected)
		}
	}
	return cleared, errors.Join(errs...)
}

// RunNightly applies every enabled rule to every member once per local
// date of each merchant with rules, after that date's nightly attributes
// pass has finished (the stages, RFM scores and tiers it moves are what
// rules read); whichever instance gets there first runs it. It returns
// the passes it ran.
func (t *TagRules) RunNightly(ctx context.Context) (int, error) {
	var ids []uint64
	if err := t.db.WithContext(ctx).Model(&TagRule{}).Where("enabled = ? AND deleted_at IS NULL", true).
		Distinct("merchant_id").Order("merchant_id").Pluck("merchant_id", &ids).Error; err != nil {
		return 0, fmt.Errorf("member: tag rule merchants: %w", err)
	}
	ran := 0
	var errs []error
	for _, id := range ids {
		loc, err := t.segs.zones.Location(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		local := t.now().In(loc)
		if local.Hour() < NightlyHour {
			continue
		}
		key := local.Format(time.DateOnly)
		var done int64
		if err := t.db.WithContext(ctx).Model(&JobRun{}).Where("merchant_id = ? AND job = ? AND run_key = ? AND finished_at IS NOT NULL",
			id, jobAttributes, key).Count(&done).Error; err != nil {
			errs = append(errs, err)
			continue
		}
		if done == 0 {
			continue // after the attributes
		}
		won, err := claim(ctx, t.db, id, jobTagRules, key, t.owner, t.now())
		if err != nil || !won {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		gained, lost, err := t.ApplyAll(ctx, id, CauseNightly)
		if err != nil {
			t.log.ErrorContext(ctx, "member: nightly tag rules failed", "merchant_id", id, "error", err)
			errs = append(errs, err)
			continue
		}
		result := fmt.Sprintf(`{"gained":%d,"lost":%d}`, gained, lost)
		if err := t.db.WithContext(ctx).Model(&JobRun{}).
			Where("merchant_id = ? AND job = ? AND run_key = ? AND owner = ?", id, jobTagRules, key, t.owner).
			Updates(map[string]any{"finished_at": t.now(), "result": result}).Error; err != nil {
			errs = append(errs, err)
		}
		t.log.InfoContext(ctx, "member: nightly tag rules", "merchant_id", id, "gained", gained, "lost", lost)
		ran++
	}
	return ran, errors.Join(errs...)
}

// ApplyAll applies every enabled rule of the merchant to every member.
func (t *TagRules) ApplyAll(ctx context.Context, merchantID uint64, cause string) (gained, lost int, err error) {
	rules, err := t.enabledRules(ctx, merchantID)
	if err != nil {
		return 0, 0, err
	}
	var errs []string
	for _, r := range rules {
		g, l, err := t.applyAll(ctx, r, cause)
		gained, lost = gained+g, lost+l
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return gained, lost, errors.New(strings.Join(errs, "; "))
	}
	return gained, lost, nil
}

// Run works off pending marks every interval and runs the nightly pass
// when due, until ctx ends.
func (t *TagRules) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastNightly := time.Time{}
	for {
		for {
			n, err := t.RunPending(ctx, 500)
			if err != nil && ctx.Err() == nil {
				t.log.WarnContext(ctx, "member: pending tag rules", "error", err)
			}
			if err != nil || n < 500 {
				break
			}
		}
		if time.Since(lastNightly) > 5*time.Minute {
			lastNightly = time.Now()
			if _, err := t.RunNightly(ctx); err != nil && ctx.Err() == nil {
				t.log.WarnContext(ctx, "member: nightly tag rules", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
