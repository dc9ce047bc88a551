package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wxloyalty/loyalty/member"
)

// Audiences turns targets into member selections; member.Segments
// satisfies it.
type Audiences interface {
	// Rule returns a saved segment's rule (ErrNotFound when deleted).
	Rule(ctx context.Context, merchantID, segmentID uint64) (json.RawMessage, error)
	// CompileAt compiles a rule as of a time to a condition over members m.
	CompileAt(ctx context.Context, merchantID uint64, rule json.RawMessage, at time.Time) (member.Audience, error)
}

// allMembersRule selects every member: every member has a join time, so
// the condition is a tautology the rule language can say (and the SQL is
// m.created_at IS NOT NULL, which costs nothing on top of the merchant's
// id range).
var allMembersRule = json.RawMessage(`{"field":"days_since_join","op":"is_set","value":true}`)

// audienceRule combines a target into one rule: the segment's rule and/or
// any of the tags, minus the excluded tags.
func audienceRule(ctx context.Context, aud Audiences, merchantID uint64, t Target) (json.RawMessage, error) {
	var all []json.RawMessage
	if t.AllMembers {
		all = append(all, allMembersRule)
	}
	if t.SegmentID != 0 {
		rule, err := aud.Rule(ctx, merchantID, t.SegmentID)
		if err != nil {
			return nil, err
		}
		all = append(all, rule)
	}
	if len(t.Rule) > 0 {
		all = append(all, t.Rule)
	}
	if len(t.TagIDs) > 0 {
		raw, _ := json.Marshal(map[string]any{"field": "tags", "op": "has_any", "value": t.TagIDs})
		all = append(all, raw)
	}
	if len(t.ExcludeTagIDs) > 0 {
		raw, _ := json.Marshal(map[string]any{"not": map[string]any{"field": "tags", "op": "has_any", "value": t.ExcludeTagIDs}})
		all = append(all, raw)
	}
	if len(all) == 0 {
		return nil, errors.New("campaign: empty target")
	}
	return json.Marshal(map[string]any{"all": all})
}

// PlanChunk is how many member ids one planning statement covers: the
// statement reads that id range of the merchant's members (primary key
// range), so its cost is bounded however sparse the audience is.
const PlanChunk = 20000

// planChunk plans the next id range of a running step: INSERT ... SELECT
// of the matching members into deliveries, holdout and skip reasons
// decided in the statement. The unique (campaign, step, member) key makes
// a chunk planned twice (a crash, two instances) harmless; the cursor only
// moves forward by a conditional update. It returns whether planning is
// done.
func (e *Engine) planChunk(ctx context.Context, c Campaign) (bool, error) {
	if c.PlanDone || c.AudienceRule == nil || c.StepStartedAt == nil {
		return true, nil
	}
	from, to := c.PlanCursor, min(c.PlanCursor+PlanChunk, c.PlanMaxMember)
	if from >= c.PlanMaxMember {
		return true, e.finishPlanning(ctx, c)
	}
	aud, err := e.audiences.CompileAt(ctx, c.MerchantID, json.RawMessage(*c.AudienceRule), *c.StepStartedAt)
	if err != nil {
		return false, e.pause(ctx, c, "audience: "+err.Error())
	}
	sel, args := e.planSelect(c, aud, from, to)
	if _, err := e.rows.plan(ctx, e.db, sel, args...); err != nil {
		return false, fmt.Errorf("campaign %d: plan %d-%d: %w", c.ID, from, to, err)
	}
	res := e.db.WithContext(ctx).Model(&Campaign{}).
		Where("id = ? AND step = ? AND plan_cursor = ?", c.ID, c.Step, from).
		Updates(map[string]any{"plan_cursor": to, "updated_at": e.now()})
	if res.Error != nil {
		return false, fmt.Errorf("campaign %d: plan cursor: %w", c.ID, res.Error)
	}
	if to >= c.PlanMaxMember {
		c.PlanCursor = to
		return true, e.finishPlanning(ctx, c)
	}
	return false, nil
}

func (e *Engine) finishPlanning(ctx context.Context, c Campaign) error {
	return e.db.WithContext(ctx).Model(&Campaign{}).Where("id = ? AND step = ?", c.ID, c.Step).
		Updates(map[string]any{"plan_done": true, "updated_at": e.now()}).Error
}

// planSelect builds the SELECT of one id range's deliveries. It walks
// members by primary key within the merchant ((merchant_id, id) prefix of
// the member indexes) and applies the frozen audience; under READ
// COMMITTED it reads a snapshot and locks no member.
func (e *Engine) planSelect(c Campaign, aud member.Audience, from, to uint64) (string, []any) {
	openid, status, reason := skipExprs(c)
	now := e.now()
	q := "SELECT m.merchant_id, ?, ?, m.id, COALESCE(" + openid + ", ''), ?, " + status + ", " + reason + ", ?, ? " +
		"FROM members m WHERE " + aud.Where + " AND m.id > ? AND m.id <= ?"
	args := append([]any{c.ID, c.Step, c.Capped()}, now, now)
	args = append(args, aud.Args...)
	args = append(args, from, to)
	return q, args
}

// skipExprs returns, over members m, the openid the channel sends to and
// the CASE expressions of a planned row's status and reason: holdout
// first, then no openid, not following (official-account channels), and
// consent withdrawn for the channel. They hold only constants of the code
// and the campaign's own integers.
func skipExprs(c Campaign) (openid, status, reason string) {
	openid = "m.oa_openid"
	consent := "template"
	switch c.Channel {
	case ChannelMPSubscribe:
		openid, consent = "m.mp_openid", "subscribe"
	case ChannelCustomerService:
		consent = ""
	}
	lit := func(s string) string { return "'" + s + "'" }
	skipped := lit(string(DeliverySkipped))
	// Holdout: a fixed hash of member and campaign, so the same members
	// are held out on every run and the split is uniform.
	holdout := fmt.Sprintf("((m.id * 2654435761 + %d) %% 100) < %d", c.ID%1000003, c.HoldoutPct)
	status = "CASE WHEN " + holdout + " THEN " + lit(string(DeliveryHoldout)) + " WHEN " + openid + " IS NULL THEN " + skipped
	reason = "CASE WHEN " + holdout + " THEN '' WHEN " + openid + " IS NULL THEN " + lit(string(ReasonNoOpenID))
	if c.Channel != ChannelMPSubscribe {
		status += " WHEN m.follow_status <> 'following' THEN " + skipped
		reason += " WHEN m.follow_status <> 'following' THEN " + lit(string(ReasonNotFollowing))
	}
	if consent != "" {
		revoked := " WHEN EXISTS (SELECT 1 FROM member_consents mc WHERE mc.merchant_id = m.merchant_id AND mc.member_id = m.id" +
			" AND mc.channel = '" + consent + "' AND mc.granted = 0)"
		status += revoked + " THEN " + skipped
		reason += revoked + " THEN " + lit(string(ReasonNoConsent))
	}
	return openid, status + " ELSE " + lit(string(DeliveryPending)) + " END", reason + " ELSE '' END"
}
