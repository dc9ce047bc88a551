package demo

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

// env is what generation needs to know; the same for every chunk.
type env struct {
	merchantID  uint64
	seed        uint64
	total       int    // members to generate
	memberBase  uint64 // id of member 0 (ids are memberBase + index)
	now         time.Time
	loc         *time.Location
	rules       points.Rules
	ruleVersion int
	rateText    string
	cadence     string
	tagIDs      []uint64 // ids of tagDefs, in order
}

// Time spans of the data.
const (
	day           = 24 * time.Hour
	signupHistory = 3 * 365 * day // members joined over the last three years
	orderHistory  = 2 * 365 * day // orders span the last two years
	maxOrders     = 200           // per member
	jobDelay      = time.Minute   // the points jobs run every minute
)

// The rows of one chunk, with references between them as indexes into the
// chunk's slices; ids are assigned when the chunk is written.
type chunk struct {
	index    int
	members  []memberRec
	follows  []followRec
	care     []careRec
	consents []consentRec
	tags     []tagRec
	orders   []orderRec
	entries  []entryRec
	lots     []lotRec
	refunds  []refundRec
	accounts []accountRec
	stages   []stageRec
}

type memberRec struct {
	id                                      uint64
	oaOpenID, mpOpenID, unionID, phone      *string
	name                                    string
	gender                                  int
	bMonth, bDay, bYear                     *int
	source, followStatus                    string
	followedAt, unfollowedAt, followChanged *time.Time
	channel                                 *string
	lastInteraction                         *time.Time
	createdAt                               time.Time
	city                                    *string
	stage                                   string
	wonBackAt                               *time.Time
	orderCount, spend                       int64
	firstOrder, lastOrder                   *time.Time
}

type followRec struct {
	member      uint64
	kind        string
	scene       *string
	at          time.Time
	createdAtDB time.Time
}

type careRec struct {
	member     uint64
	kind       string
	label      string
	month, day int
	year       *int
	createdAt  time.Time
}

type consentRec struct {
	member               uint64
	channel              string
	granted              bool
	grantedAt, revokedAt *time.Time
	updatedAt            time.Time
}

type tagRec struct {
	member, tag uint64
	createdAt   time.Time
}

type orderRec struct {
	member           uint64
	ext              string
	amount, refunded int64
	points, reversed int64
	lot, entry       int // -1: none
	earnDetail       string
	items            string
	orderedAt        time.Time
	updatedAt        time.Time
}

// Entry kinds the demo writes, and how their keys name what they refer to.
type entryRec struct {
	member          uint64
	kind            string
	points, pending int64
	balance         int64
	order, lot      int    // what the key and ref_id name (-1: none)
	refundID        string // reverse entries
	expiresAt       *time.Time
	createdAt       time.Time
}

type lotRec struct {
	member             uint64
	entry              int
	status             string
	points, remaining  int64
	availableAt        *time.Time
	expiresAt          *time.Time
	createdAt, updated time.Time
}

type refundRec struct {
	order                           int
	member                          uint64
	refundID                        string
	amount, reversed, pendingCancel int64
	entry                           int // -1: none
	reason                          string
	createdAt                       time.Time
}

type accountRec struct {
	member                   uint64
	available, pending, debt int64
	capDay                   int
	capEarned                int64
	createdAt, updatedAt     time.Time
}

type stageRec struct {
	member           uint64
	from, to, reason string
	at               time.Time
}

// rng returns the random source of a chunk: the same seed and chunk always
// give the same rows, whichever worker writes them.
func rng(seed uint64, chunkIndex int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(chunkIndex)*0x9E3779B97F4A7C15+0x2545F4914F6CDD1D))
}

// signup is member i's creation time: signups grow fourfold over the three
// years, and member ids follow signup order as auto-increment ids would.
func (e *env) signup(r *rand.Rand, i int) time.Time {
	h := float64(signupHistory)
	g := math.Log(4) / h
	u := (float64(i) + r.Float64()) / float64(e.total)
	t := math.Log(1+u*(math.Exp(g*h)-1)) / g
	return e.now.Add(-signupHistory + time.Duration(t)).Truncate(time.Millisecond)
}

func ptr[T any](v T) *T { return &v }

func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// generate builds the rows of members [start, start+n).
func (e *env) generate(index, start, n int) *chunk {
	r := rng(e.seed, index)
	c := &chunk{index: index}
	for i := start; i < start+n; i++ {
		e.member(r, c, i)
	}
	return c
}

func (e *env) member(r *rand.Rand, c *chunk, i int) {
	m := memberRec{id: e.memberBase + uint64(i), createdAt: e.signup(r, i), gender: genders.pick(r)}
	key := fmt.Sprintf("%08x%014d", uint32(e.seed*0x9E3779B1+e.merchantID), i)
	m.source = sources.pick(r)
	switch x := r.Float64(); {
	case x < 0.55:
		m.name = surnames.pick(r) + string(givenChars[r.IntN(len(givenChars))])
		if r.IntN(2) == 0 {
			m.name += string(givenChars[r.IntN(len(givenChars))])
		}
	case x < 0.60:
		m.name = latinNames[r.IntN(len(latinNames))]
	}
	if r.Float64() < 0.6 {
		// An affine permutation of [0, 10^8) keeps phone numbers unique.
		n := (uint64(i)*7_919_311 + e.seed%100_000_000) % 100_000_000
		m.phone = ptr(phonePref[i%len(phonePref)] + fmt.Sprintf("%08d", n))
	}
	if r.Float64() < 0.55 {
		mo, d := dayOfYear(r)
		m.bMonth, m.bDay = &mo, &d
		if r.Float64() < 0.3 {
			m.bYear = ptr(yearFor(r, 1960, 2008, mo, d))
		}
	}
	if r.Float64() < 0.75 {
		m.city = ptr(cities.pick(r))
	}
	hasOA := m.source != "mp_login" || r.Float64() < 0.25
	if hasOA {
		m.oaOpenID = ptr("oDemo" + key)
	}
	if m.source == "mp_login" || r.Float64() < 0.25 {
		m.mpOpenID = ptr("mDemo" + key)
	}
	if m.mpOpenID != nil && r.Float64() < 0.7 {
		m.unionID = ptr("uDemo" + key)
	}
	m.followStatus = member.FollowNone
	if hasOA {
		e.followHistory(r, c, &m)
	}
	e.care(r, c, &m)
	e.consents(r, c, &m)
	orders := e.orders(r, &m)
	e.points(c, &m, orders)
	e.stages(c, &m, orders)
	e.assignTags(r, c, &m)
	c.members = append(c.members, m)
}

// followHistory writes the member's follow events and the follow columns
// that the member package would derive from them.
func (e *env) followHistory(r *rand.Rand, c *chunk, m *memberRec) {
	add := func(kind string, scene *string, at time.Time) {
		at = ms(at)
		c.follows = append(c.follows, followRec{member: m.id, kind: kind, scene: scene, at: at, createdAtDB: at})
		if kind == member.HistoryScan {
			return
		}
		m.followChanged = &at
		if kind == member.HistorySubscribe {
			m.followStatus, m.followedAt = member.FollowFollowing, &at
		} else {
			m.followStatus, m.unfollowedAt = member.FollowUnfollowed, &at
		}
	}
	var last time.Time
	switch m.source {
	case "oa_message":
		// A follower from before the service: no follow event, seen when
		// they wrote.
		m.followStatus = member.FollowFollowing
		last = m.createdAt
	case "oa_follow", "oa_oauth":
		var scene *string
		if m.source == "oa_follow" && r.Float64() < 0.45 {
			scene = ptr(scenes.pick(r))
			m.channel = scene
		}
		add(member.HistorySubscribe, scene, m.createdAt)
		last = m.createdAt
	default: // a mini-program user who followed later
		t := m.createdAt.Add(expDur(r, 90*day))
		if t.After(e.now) {
			m.oaOpenID = nil
			return
		}
		add(member.HistorySubscribe, nil, t)
		last = t
	}
	if r.Float64() < 0.06 { // scanned another code later
		if t := last.Add(expDur(r, 200*day)); t.Before(e.now) {
			sc := ptr(scenes.pick(r))
			c.follows = append(c.follows, followRec{member: m.id, kind: member.HistoryScan, scene: sc, at: ms(t), createdAtDB: ms(t)})
			if m.channel == nil {
				m.channel = sc
			}
			last = t
		}
	}
	if r.Float64() < 0.18 {
		if t := last.Add(expDur(r, 150*day)); t.Before(e.now) {
			add(member.HistoryUnsubscribe, nil, t)
			last = t
			if r.Float64() < 0.25 {
				if t2 := t.Add(expDur(r, 60*day)); t2.Before(e.now) {
					var sc *string
					if r.Float64() < 0.3 {
						sc = ptr(scenes.pick(r))
					}
					add(member.HistorySubscribe, sc, t2)
					last = t2
				}
			}
		}
	}
	// Messages and menu clicks: the latest is all the member row keeps.
	li := last
	if m.followStatus == member.FollowFollowing && r.Float64() < 0.5 {
		span := e.now.Sub(last)
		li = last.Add(time.Duration(math.Sqrt(r.Float64()) * float64(span)))
	}
	m.lastInteraction = ptr(ms(li))
}

func (e *env) care(r *rand.Rand, c *chunk, m *memberRec) {
	if r.Float64() >= 0.12 {
		return
	}
	kinds := []struct{ kind, label string }{{member.CareWedding, "结婚纪念日"}, {member.CareChildBirthday, "宝宝生日"},
		{member.CareCustom, "恋爱纪念日"}}
	for k := 0; k < 1+r.IntN(2); k++ {
		x := kinds[r.IntN(len(kinds))]
		mo, d := dayOfYear(r)
		rec := careRec{member: m.id, kind: x.kind, label: x.label, month: mo, day: d, createdAt: m.createdAt}
		if r.Float64() < 0.7 {
			lo, hi := 1990, 2023
			if x.kind == member.CareChildBirthday {
				lo, hi = 2008, 2024
			}
			rec.year = ptr(yearFor(r, lo, hi, mo, d))
		}
		c.care = append(c.care, rec)
	}
}

func (e *env) consents(r *rand.Rand, c *chunk, m *memberRec) {
	give := func(channel string, p float64) {
		if r.Float64() >= p {
			return
		}
		at := ms(m.createdAt.Add(expDur(r, 5*day)))
		if at.After(e.now) {
			at = m.createdAt
		}
		rec := consentRec{member: m.id, channel: channel, granted: true, grantedAt: &at, updatedAt: at}
		if r.Float64() < 0.08 {
			if t := at.Add(expDur(r, 200*day)); t.Before(e.now) {
				t = ms(t)
				rec.granted, rec.revokedAt, rec.updatedAt = false, &t, t
			}
		}
		c.consents = append(c.consents, rec)
	}
	if m.oaOpenID != nil {
		give(member.ConsentTemplate, 0.55)
	}
	if m.mpOpenID != nil {
		give(member.ConsentSubscribe, 0.35)
	}
	if m.phone != nil {
		give(member.ConsentSMS, 0.25)
	}
}

func (e *env) assignTags(r *rand.Rand, c *chunk, m *memberRec) {
	at := m.createdAt
	if m.lastOrder != nil {
		at = *m.lastOrder
	}
	for k, t := range tagDefs {
		p := t.share
		switch k {
		case 0: // VIP: the biggest spenders
			if m.spend >= 300_000 {
				p = 0.8
			}
		case 1: // 高价值
			if m.spend >= 150_000 {
				p = 0.6
			}
		}
		if r.Float64() < p {
			c.tags = append(c.tags, tagRec{member: m.id, tag: e.tagIDs[k], createdAt: at})
		}
	}
}

// rawOrder is an order before its points are worked out.
type rawOrder struct {
	at      time.Time
	amount  int64
	items   []points.Item
	refunds []rawRefund
}

type rawRefund struct {
	at     time.Time
	amount int64
	reason string
}

// buyProbability is the share of members of a source who ever buy.
var buyProbability = map[string]float64{"oa_follow": 0.42, "mp_login": 0.65, "oa_message": 0.38, "oa_oauth": 0.30}

// orders draws the member's orders: a personal rhythm (median gap about
// six weeks), a chance to stop after each order (most buy once or twice, a
// few for years), a chance to come back after stopping (won back), busier
// months (Spring Festival, 618, Double 11, December) and weekends, and a
// basket that some members fill with gift boxes by the dozen.
func (e *env) orders(r *rand.Rand, m *memberRec) []rawOrder {
	p := buyProbability[m.source]
	if m.followStatus == member.FollowUnfollowed {
		p *= 0.6
	}
	if r.Float64() >= p {
		return nil
	}
	gap := time.Duration(min(max(logNormal(r, float64(40*day), 0.75), float64(4*day)), float64(300*day)))
	stopClass := func() float64 {
		switch x := r.Float64(); {
		case x < 0.5:
			return 0.55
		case x < 0.8:
			return 0.25
		case x < 0.95:
			return 0.08
		}
		return 0.025
	}
	pStop := stopClass()
	big := r.Float64() < 0.03
	fav := favourite.pick(r)
	windowStart := e.now.Add(-orderHistory)
	var t time.Time
	if m.createdAt.Before(windowStart) {
		t = windowStart.Add(time.Duration(r.Float64() * float64(gap)))
	} else {
		t = m.createdAt.Add(expDur(r, 20*day))
	}
	var out []rawOrder
	prev := m.createdAt
	for len(out) < maxOrders && t.Before(e.now) {
		local := t.In(e.loc)
		w := monthWeight[local.Month()]
		if wd := local.Weekday(); wd == time.Saturday || wd == time.Sunday {
			w *= 1.25
		}
		if r.Float64()*1.9 > w { // seasonal thinning: try again a little later
			t = t.Add(expDur(r, gap/3) + time.Hour)
			continue
		}
		at := time.Date(local.Year(), local.Month(), local.Day(), hourWeights.pick(r), r.IntN(60), r.IntN(60),
			r.IntN(1000)*int(time.Millisecond), e.loc).UTC()
		if !at.After(prev) || at.After(e.now) {
			at = t
		}
		if !at.After(prev) || at.After(e.now) {
			break
		}
		o := rawOrder{at: ms(at)}
		o.items, o.amount = basket(r, fav, big)
		e.refunds(r, &o)
		out = append(out, o)
		prev = o.at
		if r.Float64() < pStop {
			if r.Float64() >= 0.2 {
				break
			}
			// Lapsed, then won back after a long pause.
			t = prev.Add(150*day + expDur(r, 200*day))
			pStop = stopClass()
			continue
		}
		t = prev.Add(expDur(r, gap) + 6*time.Hour)
	}
	return out
}

// basket returns an order's items and amount (the items' total less a
// coupon now and then).
func basket(r *rand.Rand, fav string, big bool) ([]points.Item, int64) {
	lines := 1
	for lines < 5 && r.Float64() < 0.4 {
		lines++
	}
	items := make([]points.Item, 0, lines)
	var total int64
	for k := 0; k < lines; k++ {
		cat := fav
		if r.Float64() < 0.25 {
			cat = categories[r.IntN(len(categories))]
		}
		if big && r.Float64() < 0.5 {
			cat = "礼盒"
		}
		ps := byCategory[cat]
		p := ps[r.IntN(len(ps))]
		qty := int64(1)
		if r.Float64() < 0.15 {
			qty = 2
		}
		if big {
			qty = 1 + int64(r.IntN(12))
		}
		items = append(items, points.Item{SKU: p.sku, Name: p.name, Category: p.category, Quantity: qty, PriceFen: p.priceFen})
		total += qty * p.priceFen
	}
	if r.Float64() < 0.2 { // a coupon
		total = total * int64(80+r.IntN(16)) / 100 / 10 * 10
	}
	return items, max(total, 100)
}

// refunds draws the order's refunds: 4% of orders, most in full, within
// two weeks.
func (e *env) refunds(r *rand.Rand, o *rawOrder) {
	if r.Float64() >= 0.04 {
		return
	}
	at := o.at.Add(time.Hour + time.Duration(r.Float64()*float64(14*day)))
	if at.After(e.now) {
		return
	}
	reason := refundReasons[r.IntN(len(refundReasons))]
	if r.Float64() < 0.6 {
		o.refunds = append(o.refunds, rawRefund{at: ms(at), amount: o.amount, reason: reason})
		return
	}
	part := max(o.amount*int64(10+r.IntN(50))/100/10*10, 10)
	part = min(part, o.amount)
	o.refunds = append(o.refunds, rawRefund{at: ms(at), amount: part, reason: reason})
	if left := o.amount - part; left > 0 && r.Float64() < 0.15 {
		if at2 := at.Add(time.Duration(r.Float64() * float64(3*day))); at2.Before(e.now) {
			o.refunds = append(o.refunds, rawRefund{at: ms(at2), amount: left, reason: reason})
		}
	}
}

func itemsJSON(items []points.Item) string {
	b, _ := json.Marshal(items)
	return string(b)
}
