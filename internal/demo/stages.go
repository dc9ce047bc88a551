package demo

import (
	"slices"
	"time"

	"github.com/wxloyalty/loyalty/member"
)

// nightlyAt is when the nightly attribute pass reaches a merchant: the
// first run after member.NightlyHour, local time (the workers tick every
// few minutes).
const nightlyAt = time.Duration(member.NightlyHour)*time.Hour + time.Minute

// stages replays the member's lifecycle as the service would have
// recorded it: member.ComputeStage after every counted order (the order's
// refresh) and at the nightly pass after each moment the stage can change
// with time alone (the at-risk, churn and lost thresholds after an order,
// and each order leaving the 12-month window), writing a stage event per
// change. The member's stage and won-back mark end as the last pass left
// them; the real nightly pass the seed runs last goes on from there.
//
// One simplification: a fully refunded order is left out from the start,
// where the service would have counted it until the refund (at most two
// weeks).
func (e *env) stages(c *chunk, m *memberRec, orders []rawOrder) {
	m.stage = member.StagePotential
	var hist member.History
	for _, o := range orders {
		var refunded int64
		for _, rf := range o.refunds {
			refunded += rf.amount
		}
		if refunded >= o.amount {
			continue
		}
		cats := make([]string, len(o.items))
		for i, it := range o.items {
			cats[i] = it.Category
		}
		hist = append(hist, member.Order{At: o.at, NetFen: o.amount - refunded, Categories: cats})
	}
	eval := func(upTo int, at time.Time) {
		h := hist[:upTo]
		st := member.ComputeStage(member.StageInput{Cadence: e.cadence, Orders: h,
			Traits: member.TraitsOf(h.Since(at.Add(-365*day)), false), Previous: m.stage, WonBackAt: m.wonBackAt, Now: at})
		if st.Stage != m.stage {
			c.stages = append(c.stages, stageRec{member: m.id, from: m.stage, to: st.Stage, reason: st.Reason, at: ms(at)})
		}
		m.stage, m.wonBackAt = st.Stage, st.WonBackAt
	}
	for k := range hist {
		eval(k+1, hist[k].At)
		next := e.now
		if k+1 < len(hist) {
			next = hist[k+1].At
		}
		// The moments the stage may change before the next order.
		th := member.ThresholdsFor(e.cadence, hist[:k+1].MedianGap())
		last := hist[k].At
		cands := []time.Time{last.Add(th.AtRisk), last.Add(th.Churn), last.Add(th.Lost())}
		for _, o := range hist[:k+1] {
			if t := o.At.Add(365 * day); t.After(last) {
				cands = append(cands, t)
			}
		}
		var passes []time.Time
		for _, t := range cands {
			p := e.nextPass(t)
			if p.Before(next) && !p.After(e.now) && !slices.ContainsFunc(passes, p.Equal) {
				passes = append(passes, p)
			}
		}
		slices.SortFunc(passes, func(a, b time.Time) int { return a.Compare(b) })
		for _, p := range passes {
			eval(k+1, p)
		}
	}
}

// nextPass is the first nightly pass strictly after t.
func (e *env) nextPass(t time.Time) time.Time {
	l := t.In(e.loc)
	p := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, e.loc).Add(nightlyAt)
	if !p.After(t) {
		d := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, e.loc)
		p = d.Add(nightlyAt)
	}
	return p.UTC()
}
