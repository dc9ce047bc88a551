package demo

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/wxloyalty/loyalty/points"
)

// Lot statuses and entry kinds as the points package stores them.
const (
	lotPending   = "pending"
	lotActive    = "active"
	lotUsed      = "used"
	lotExpired   = "expired"
	lotCancelled = "cancelled"
)

// pointsEvent is something that happened to a member's points: an order
// posted, a refund, a held lot's release or a lot's expiry (the last two
// done by the points jobs, which run every minute).
type pointsEvent struct {
	at    time.Time
	rank  int // orders events at the same time: earn, refund, release, expire
	order int // index into the member's orders
	ref   int // refund index (refunds)
}

const (
	evEarn = iota
	evRefund
	evRelease
	evExpire
)

// points replays the points program over the member's orders as if each
// had been posted when it was placed: what points.Service.RecordOrder,
// Refund and the release and expiry jobs would have written, with the same
// rules (the merchant's current ones; no tiers), in time order per member,
// so ledger ids grow with time and every entry's balance is the running
// available balance. Only events up to now happen: held points whose hold
// has not ended stay pending, lots not yet due stay active. It also sets
// the member's purchase facts.
func (e *env) points(c *chunk, m *memberRec, orders []rawOrder) {
	if len(orders) == 0 {
		return
	}
	r := e.rules
	acct := accountRec{member: m.id, createdAt: orders[0].at}
	firstOrder := len(c.orders)
	var events []pointsEvent
	for k, o := range orders {
		events = append(events, pointsEvent{at: o.at, rank: evEarn, order: k})
		for j, rf := range o.refunds {
			events = append(events, pointsEvent{at: rf.at, rank: evRefund, order: k, ref: j})
		}
	}
	slices.SortStableFunc(events, func(a, b pointsEvent) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.rank, b.rank)) })
	memberLots := []int{} // chunk indexes of the member's lots, oldest first
	entry := func(x entryRec) int {
		x.member = m.id
		x.balance = acct.available
		c.entries = append(c.entries, x)
		acct.updatedAt = x.createdAt
		return len(c.entries) - 1
	}
	// Follow-up events (release, expiry) are added as lots appear, so the
	// queue is processed in time order with insertions.
	for len(events) > 0 {
		ev := events[0]
		events = events[1:]
		if ev.at.After(e.now) {
			continue
		}
		oi := firstOrder + ev.order
		if ev.rank == evEarn || ev.rank == evRefund {
			acct.updatedAt = ev.at // every order and refund saves the account
		}
		switch ev.rank {
		case evEarn:
			o := orders[ev.order]
			local := o.at.In(e.loc)
			bday := 100
			if m.bMonth != nil && int(local.Month()) == *m.bMonth {
				bday = r.BirthdayMultiplierPct
			}
			computed := r.OrderPoints(o.amount, 100, bday)
			today := local.Year()*10000 + int(local.Month())*100 + local.Day()
			if acct.capDay != today {
				acct.capDay, acct.capEarned = today, 0
			}
			pts := computed
			if r.DailyCap > 0 {
				pts = max(0, min(computed, r.DailyCap-acct.capEarned))
			}
			acct.capEarned += pts
			detail, _ := json.Marshal(points.EarnDetail{AmountFen: o.amount, Rate: e.rateText, TierPct: 100,
				BirthdayPct: bday, Computed: computed, CappedBy: computed - pts, Points: pts})
			rec := orderRec{member: m.id, ext: fmt.Sprintf("demo-%d-%d", m.id-e.memberBase, ev.order+1), amount: o.amount,
				points: pts, lot: -1, entry: -1, earnDetail: string(detail), items: itemsJSON(o.items), orderedAt: o.at,
				updatedAt: o.at}
			if pts > 0 {
				expires := r.Expiry.ExpiresAt(o.at, e.loc)
				l := lotRec{member: m.id, points: pts, remaining: pts, expiresAt: expires, createdAt: o.at, updated: o.at}
				x := entryRec{kind: points.KindEarn, order: oi, lot: -1, expiresAt: expires, createdAt: o.at}
				var until time.Time
				if r.PendingDays > 0 {
					until = o.at.AddDate(0, 0, r.PendingDays)
				}
				if !until.IsZero() && until.After(o.at) {
					x.pending = pts
					acct.pending += pts
					l.status, l.availableAt = lotPending, &until
				} else {
					x.points = pts
					acct.available += pts
					pay := min(acct.debt, pts) // credits pay off debt first
					acct.debt -= pay
					l.remaining -= pay
					l.status = lotActive
					if l.remaining == 0 {
						l.status = lotUsed
					}
				}
				l.entry = entry(x)
				c.lots = append(c.lots, l)
				li := len(c.lots) - 1
				memberLots = append(memberLots, li)
				rec.lot, rec.entry = li, l.entry
				due := time.Time{}
				if l.status == lotPending {
					events = insertEvent(events, pointsEvent{at: until.Add(jobDelay), rank: evRelease, order: ev.order, ref: li})
					due = until
				}
				if expires != nil {
					at := *expires
					if due.After(at) {
						at = due // a lot held past its expiry expires once released
					}
					events = insertEvent(events, pointsEvent{at: at.Add(2 * jobDelay), rank: evExpire, order: ev.order, ref: li})
				}
			}
			c.orders = append(c.orders, rec)
		case evRefund:
			o := &c.orders[oi]
			rf := orders[ev.order].refunds[ev.ref]
			refunded := o.refunded + rf.amount
			target := o.points
			if refunded < o.amount {
				target = proportion(o.points, refunded, o.amount)
			}
			take := target - o.reversed
			rec := refundRec{order: oi, member: m.id, refundID: fmt.Sprintf("R%d", ev.ref+1), amount: rf.amount, entry: -1,
				reason: rf.reason, createdAt: rf.at}
			if take > 0 && o.lot >= 0 {
				rec.entry, rec.reversed, rec.pendingCancel = e.reverse(c, &acct, memberLots, o, take, rf.at, rec.refundID, oi, entry)
			}
			o.refunded, o.reversed, o.updatedAt = refunded, target, rf.at
			c.refunds = append(c.refunds, rec)
		case evRelease:
			l := &c.lots[ev.ref]
			if l.status != lotPending {
				continue // a refund cancelled all of it
			}
			n := l.remaining
			pay := min(acct.debt, n)
			acct.debt -= pay
			l.remaining -= pay
			l.status, l.updated = lotActive, ev.at
			if l.remaining == 0 {
				l.status = lotUsed
			}
			acct.pending -= n
			acct.available += n
			entry(entryRec{kind: points.KindRelease, points: n, pending: -n, order: -1, lot: ev.ref, expiresAt: l.expiresAt,
				createdAt: ev.at})
		case evExpire:
			l := &c.lots[ev.ref]
			if l.status != lotActive || l.remaining == 0 {
				continue
			}
			l.status, l.updated = lotExpired, ev.at
			acct.available -= l.remaining
			entry(entryRec{kind: points.KindExpire, points: -l.remaining, order: -1, lot: ev.ref, expiresAt: l.expiresAt,
				createdAt: ev.at})
		}
	}
	c.accounts = append(c.accounts, acct)
	// Purchase facts (member/facts.go): counted orders are those not fully
	// refunded; spend is paid minus refunded over all orders.
	for _, o := range c.orders[firstOrder:] {
		m.spend += o.amount - o.refunded
		if o.refunded < o.amount {
			m.orderCount++
			at := o.orderedAt
			if m.firstOrder == nil || at.Before(*m.firstOrder) {
				m.firstOrder = &at
			}
			if m.lastOrder == nil || at.After(*m.lastOrder) {
				m.lastOrder = &at
			}
		}
	}
}

// reverse takes back a refund's points as points.Service.Refund does: from
// the order's lot while it is held (cancelling pending points), else from
// the available balance, the order's own lot first, then the lots that
// expire first. Demo members never redeem, so the order's lot always holds
// enough and no debt arises; the general path is kept all the same.
func (e *env) reverse(c *chunk, acct *accountRec, memberLots []int, o *orderRec, take int64, at time.Time,
	refundID string, oi int, entry func(entryRec) int) (ei int, reversed, cancelled int64) {
	l := &c.lots[o.lot]
	x := entryRec{kind: points.KindReverse, order: oi, lot: -1, refundID: refundID, createdAt: at}
	switch l.status {
	case lotPending:
		n := min(take, l.remaining)
		l.remaining -= n
		if l.remaining == 0 {
			l.status = lotCancelled
		}
		l.updated = at
		acct.pending -= n
		x.pending = -n
		return entry(x), 0, n
	case lotExpired:
		n := min(take, l.remaining)
		l.remaining -= n
		l.updated = at
		take -= n
		if take == 0 {
			return -1, 0, 0
		}
	}
	left := take
	takeFrom := func(li int) {
		lot := &c.lots[li]
		if lot.status != lotActive || left == 0 {
			return
		}
		n := min(left, lot.remaining)
		lot.remaining -= n
		if lot.remaining == 0 {
			lot.status = lotUsed
		}
		lot.updated = at
		left -= n
	}
	takeFrom(o.lot)
	if left > 0 {
		order := slices.Clone(memberLots)
		slices.SortStableFunc(order, func(a, b int) int {
			ea, eb := c.lots[a].expiresAt, c.lots[b].expiresAt
			switch {
			case ea == nil && eb == nil:
				return 0
			case ea == nil:
				return 1
			case eb == nil:
				return -1
			}
			return ea.Compare(*eb)
		})
		for _, li := range order {
			takeFrom(li)
		}
	}
	// What no lot held becomes debt (never for demo members, who do not
	// redeem, but kept as the points package does it).
	acct.debt += left
	acct.available -= take
	x.points = -take
	return entry(x), take, 0
}

// insertEvent adds ev to the time-ordered queue.
func insertEvent(q []pointsEvent, ev pointsEvent) []pointsEvent {
	i, _ := slices.BinarySearchFunc(q, ev, func(a, b pointsEvent) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.rank, b.rank))
	})
	return slices.Insert(q, i, ev)
}

// proportion returns floor(points × part / whole) without overflow, as the
// points package rounds partial refunds.
func proportion(pts, part, whole int64) int64 {
	n := new(big.Int).Mul(big.NewInt(pts), big.NewInt(part))
	return n.Quo(n, big.NewInt(whole)).Int64()
}
