package member

import (
	"math"
	"slices"
	"sort"
	"time"
)

// The rules of ../shared/design/DOMAIN.md as pure functions: lifecycle
// stage, RFM scores, the value pyramid, churn risk and CLV. attributes.go
// feeds them from orders and stores what they say.

// Buying cadences: how often customers of the merchant's trade buy, which
// sets the lifecycle thresholds.
const (
	CadenceHigh   = "high"
	CadenceMedium = "medium"
	CadenceLow    = "low"
)

// Cadences lists the buying cadences.
var Cadences = []string{CadenceHigh, CadenceMedium, CadenceLow}

// CRMSettings are a merchant's thresholds for the computed attributes.
type CRMSettings struct {
	Cadence     string // high, medium (default) or low
	PlatinumPct int    // top share of customers by 12-month spend that is platinum (default 5)
	GoldPct     int    // the next share, gold (default 15)
}

// DefaultCRMSettings are the DOMAIN defaults.
var DefaultCRMSettings = CRMSettings{Cadence: CadenceMedium, PlatinumPct: 5, GoldPct: 15}

// preset is a cadence's thresholds.
type preset struct {
	atRisk, churn time.Duration
	loyalOrders   int // orders in 12 months that count as repeat buying for loyalty
}

const day = 24 * time.Hour

var presets = map[string]preset{
	CadenceHigh:   {45 * day, 90 * day, 8},
	CadenceMedium: {90 * day, 180 * day, 4},
	CadenceLow:    {180 * day, 365 * day, 2},
}

func presetOf(cadence string) preset {
	if p, ok := presets[cadence]; ok {
		return p
	}
	return presets[CadenceMedium]
}

// Thresholds are when one member counts as at risk and as churned.
type Thresholds struct {
	AtRisk, Churn time.Duration
}

// Lost is when a churned member counts as lost: twice the churn time.
func (t Thresholds) Lost() time.Duration { return 2 * t.Churn }

// ThresholdsFor returns the member's thresholds: the cadence's preset, or,
// for a member with at least 3 orders (medianGap > 0), their own rhythm:
// at risk at 2 gaps and churned at 3, each kept within half and twice the
// preset.
func ThresholdsFor(cadence string, medianGap time.Duration) Thresholds {
	p := presetOf(cadence)
	if medianGap <= 0 {
		return Thresholds{AtRisk: p.atRisk, Churn: p.churn}
	}
	clamp := func(d, base time.Duration) time.Duration { return min(max(d, base/2), 2*base) }
	return Thresholds{AtRisk: clamp(2*medianGap, p.atRisk), Churn: clamp(3*medianGap, p.churn)}
}

// Order is one counted order (not fully refunded) as the attributes see it.
type Order struct {
	At         time.Time
	NetFen     int64    // paid minus refunded
	Categories []string // of its items
	Campaign   bool     // a campaign brought it
}

// History is a member's counted orders, oldest first.
type History []Order

// MedianGap returns the median time between consecutive orders, or 0 with
// fewer than 3 orders (two gaps are no rhythm).
func (h History) MedianGap() time.Duration {
	if len(h) < 3 {
		return 0
	}
	gaps := make([]time.Duration, 0, len(h)-1)
	for i := 1; i < len(h); i++ {
		gaps = append(gaps, h[i].At.Sub(h[i-1].At))
	}
	slices.Sort(gaps)
	n := len(gaps)
	if n%2 == 1 {
		return gaps[n/2]
	}
	return (gaps[n/2-1] + gaps[n/2]) / 2
}

// Since returns the orders at or after t.
func (h History) Since(t time.Time) History {
	i := sort.Search(len(h), func(i int) bool { return !h[i].At.Before(t) })
	return h[i:]
}

// SpendFen returns the net spend of the orders.
func (h History) SpendFen() int64 {
	var sum int64
	for _, o := range h {
		sum += o.NetFen
	}
	return sum
}

// Traits are the loyalty traits beyond repeat buying (DOMAIN: at least one
// is needed to be loyal).
type Traits struct {
	CrossCategory bool // bought in more than one category in 12 months (相关性购买)
	Referrer      bool // brought another member (推荐性购买)
	OnPurpose     bool // bought without a campaign in 12 months (指向性购买)
}

// TraitsOf reads the order-based traits from the last 12 months' orders.
func TraitsOf(last12 History, referrer bool) Traits {
	t := Traits{Referrer: referrer}
	seen := ""
	for _, o := range last12 {
		if !o.Campaign {
			t.OnPurpose = true
		}
		for _, c := range o.Categories {
			if c == "" {
				continue
			}
			if seen == "" {
				seen = c
			} else if c != seen {
				t.CrossCategory = true
			}
		}
	}
	return t
}

// StageInput is what decides a member's stage.
type StageInput struct {
	Cadence   string
	Orders    History // counted orders, oldest first
	Traits    Traits
	Previous  string     // the stored stage
	WonBackAt *time.Time // when the member was last won back, if still relevant
	// WinBackLostAt is when the member's last win-back episode ended lost
	// (every attempt unanswered); nil: never.
	WinBackLostAt *time.Time
	Now           time.Time
}

// StageResult is a stage and the won-back mark to store with it.
type StageResult struct {
	Stage     string
	WonBackAt *time.Time
	Reason    string
}

// ComputeStage applies DOMAIN's lifecycle:
//
//   - no counted order: potential (a member whose orders were all refunded
//     never bought);
//   - no order since the last win-back attempt went unanswered (the
//     episode ended lost): lost;
//   - longer than the member's thresholds since the last order: at risk,
//     then churned, then lost (twice the churn time);
//   - otherwise active: a churned or lost member who bought again is won
//     back (never new again) and keeps that mark until loyal or churned
//     again; repeat buying in 12 months (8/4/2 orders by cadence) with a
//     loyalty trait is loyal; one order is new, more are repeat.
func ComputeStage(in StageInput) StageResult {
	if len(in.Orders) == 0 {
		return StageResult{Stage: StagePotential, Reason: "no_purchase"}
	}
	last := in.Orders[len(in.Orders)-1].At
	th := ThresholdsFor(in.Cadence, in.Orders.MedianGap())
	idle := in.Now.Sub(last)
	switch {
	case in.WinBackLostAt != nil && !last.After(*in.WinBackLostAt):
		return StageResult{Stage: StageLost, Reason: "win_back_unanswered"}
	case idle > th.Lost():
		return StageResult{Stage: StageLost, Reason: "idle_past_lost"}
	case idle > th.Churn:
		return StageResult{Stage: StageChurned, Reason: "idle_past_churn"}
	case idle > th.AtRisk:
		// Lapsing keeps a won-back mark: buying again returns to won back.
		return StageResult{Stage: StageAtRisk, WonBackAt: in.WonBackAt, Reason: "idle_past_at_risk"}
	}
	wonBack := in.WonBackAt
	if in.Previous == StageChurned || in.Previous == StageLost {
		t := last
		wonBack = &t
	}
	p := presetOf(in.Cadence)
	recent := len(in.Orders.Since(in.Now.Add(-365 * day)))
	tr := in.Traits
	if recent >= p.loyalOrders && (tr.CrossCategory || tr.Referrer || tr.OnPurpose) {
		return StageResult{Stage: StageLoyal, Reason: "repeat_buying_with_trait"}
	}
	if wonBack != nil {
		return StageResult{Stage: StageWonBack, WonBackAt: wonBack, Reason: "bought_after_churn"}
	}
	if len(in.Orders) == 1 {
		return StageResult{Stage: StageNew, Reason: "first_purchase"}
	}
	return StageResult{Stage: StageRepeat, Reason: "bought_again"}
}

// Quintiles scores values 1 to 5 by their place among all values: a value
// scores 1 + floor(5 × (how many values are strictly worse) / n), so equal
// values always share a score and the best fifth scores 5. higherIsBetter
// is false for recency in days (fewer days is better).
type Quintiles struct {
	sorted         []int64
	higherIsBetter bool
}

// NewQuintiles prepares the scoring of values among all of them.
func NewQuintiles(all []int64, higherIsBetter bool) Quintiles {
	s := slices.Clone(all)
	slices.Sort(s)
	return Quintiles{sorted: s, higherIsBetter: higherIsBetter}
}

// Score returns v's score, 1 to 5 (0 when there are no values).
func (q Quintiles) Score(v int64) int {
	n := len(q.sorted)
	if n == 0 {
		return 0
	}
	var worse int
	if q.higherIsBetter {
		worse = sort.Search(n, func(i int) bool { return q.sorted[i] >= v }) // values < v
	} else {
		worse = n - sort.Search(n, func(i int) bool { return q.sorted[i] > v }) // values > v
	}
	return 1 + 5*worse/n
}

// Pyramid ranks customers by 12-month spend into the value pyramid.
type Pyramid struct {
	platinumMin, goldMin int64 // smallest spend that is platinum / gold
	any                  bool
	// ShareTop20 is the share of 12-month spend from the top 20% of
	// customers (the 2:8 figure), 0 to 1.
	ShareTop20 float64
}

// NewPyramid sets the tier boundaries from every customer's positive
// 12-month spend: the top PlatinumPct% (at least one customer) are
// platinum, the next GoldPct% gold, the rest with positive spend iron;
// ties at a boundary go to the higher tier.
func NewPyramid(spends []int64, s CRMSettings) Pyramid {
	var pos []int64
	for _, v := range spends {
		if v > 0 {
			pos = append(pos, v)
		}
	}
	if len(pos) == 0 {
		return Pyramid{}
	}
	slices.SortFunc(pos, func(a, b int64) int { return cmpInt(b, a) }) // descending
	n := len(pos)
	count := func(pct int) int { return max(1, int(math.Ceil(float64(n)*float64(pct)/100))) }
	nPlat := min(n, count(s.PlatinumPct))
	nGold := min(n, nPlat+count(s.GoldPct))
	p := Pyramid{any: true, platinumMin: pos[nPlat-1], goldMin: pos[nGold-1]}
	top := max(1, int(math.Ceil(float64(n)*0.2)))
	var all, topSum float64
	for i, v := range pos {
		all += float64(v)
		if i < top {
			topSum += float64(v)
		}
	}
	p.ShareTop20 = topSum / all
	return p
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Tier returns the pyramid tier of a 12-month spend.
func (p Pyramid) Tier(spend int64) string {
	switch {
	case spend <= 0 || !p.any:
		return PyramidLead
	case spend >= p.platinumMin:
		return PyramidPlatinum
	case spend >= p.goldMin:
		return PyramidGold
	}
	return PyramidIron
}

// ChurnRisk scores 0 to 100 how likely a customer has left, with the main
// reason: the time since the last order against their own churn threshold
// (halfway to churn is 50), plus 20 for having unfollowed the official
// account. Members without orders have no score.
func ChurnRisk(orders History, cadence string, unfollowed bool, now time.Time) (risk int, reason string, ok bool) {
	if len(orders) == 0 {
		return 0, "", false
	}
	th := ThresholdsFor(cadence, orders.MedianGap())
	idle := now.Sub(orders[len(orders)-1].At)
	risk = int(math.Round(100 * float64(idle) / float64(th.Churn)))
	reason = "recent_purchase"
	if idle > th.AtRisk {
		reason = "overdue"
	}
	if unfollowed {
		risk += 20
		if reason == "recent_purchase" {
			reason = "unfollowed"
		}
	}
	return min(max(risk, 0), 100), reason, true
}

// Detractor churn rule (DOMAIN, "Satisfaction": dissatisfaction drives
// churn): a member whose last survey answer, within DetractorWindow, gave
// an NPS of 0–6 (a detractor) has DetractorRisk points more churn risk
// (capped at 100), and the reason "detractor" unless they are overdue
// already.
const (
	DetractorRiskPoints = 25
	DetractorMaxNPS     = 6
	DetractorWindow     = 180 * day
)

// DetractorRisk applies the detractor rule to a churn risk and reason.
func DetractorRisk(risk int, reason string, lastNPS *int, lastSurveyAt *time.Time, now time.Time) (int, string) {
	if lastNPS == nil || lastSurveyAt == nil || *lastNPS > DetractorMaxNPS || now.Sub(*lastSurveyAt) > DetractorWindow {
		return risk, reason
	}
	if reason != "overdue" {
		reason = "detractor"
	}
	return min(risk+DetractorRiskPoints, 100), reason
}

// CLV estimates a member's lifetime value in fen: net spend so far plus
// the next 3 years of their last 12 months' spend, each year kept with the
// probability (1 - churn risk) compounding and discounted 10% a year:
//
//	CLV = spend + Σ_{y=1..3} annual × r^y / 1.1^y,  r = 1 − risk/100
func CLV(totalSpend, annualSpend int64, risk int) int64 {
	r := 1 - float64(risk)/100
	future := 0.0
	for y := 1; y <= 3; y++ {
		future += float64(annualSpend) * math.Pow(r, float64(y)) / math.Pow(1.1, float64(y))
	}
	return totalSpend + int64(math.Round(future))
}
