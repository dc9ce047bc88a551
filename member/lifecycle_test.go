package member_test

import (
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/member"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func daysAgo(d ...int) member.History {
	var h member.History
	for i := len(d) - 1; i >= 0; i-- {
		h = append(h, member.Order{At: now.Add(-time.Duration(d[i]) * 24 * time.Hour), NetFen: 1000, Campaign: true})
	}
	// Oldest first: the arguments are given newest first.
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h
}

func TestComputeStageEveryEdge(t *testing.T) {
	wonBack := now.Add(-20 * 24 * time.Hour)
	onPurpose := member.Traits{OnPurpose: true}
	cases := []struct {
		name     string
		orders   member.History
		traits   member.Traits
		previous string
		wonBack  *time.Time
		cadence  string
		want     string
		wantWB   bool
	}{
		{"follower who never bought", nil, member.Traits{}, member.StagePotential, nil, "", member.StagePotential, false},
		{"only refunded orders (none counted)", nil, member.Traits{}, member.StageNew, nil, "", member.StagePotential, false},
		{"first purchase", daysAgo(3), onPurpose, member.StagePotential, nil, "", member.StageNew, false},
		{"second purchase", daysAgo(40, 3), member.Traits{}, member.StageNew, nil, "", member.StageRepeat, false},
		{"4 orders in 12 months but no trait", daysAgo(200, 100, 50, 3), member.Traits{}, member.StageRepeat, nil, "", member.StageRepeat, false},
		{"4 orders in 12 months with a trait", daysAgo(200, 100, 50, 3), onPurpose, member.StageRepeat, nil, "", member.StageLoyal, false},
		{"cross-category trait", daysAgo(200, 100, 50, 3), member.Traits{CrossCategory: true}, member.StageRepeat, nil, "", member.StageLoyal, false},
		{"4 orders but one older than 12 months", daysAgo(400, 100, 50, 3), onPurpose, member.StageRepeat, nil, "", member.StageRepeat, false},
		{"low cadence: 2 orders a year are loyal", daysAgo(100, 3), onPurpose, member.StageRepeat, nil, member.CadenceLow, member.StageLoyal, false},
		{"at risk after 90 days (medium)", daysAgo(91), onPurpose, member.StageNew, nil, "", member.StageAtRisk, false},
		{"not yet at risk at 89 days", daysAgo(89), onPurpose, member.StageNew, nil, "", member.StageNew, false},
		{"churned after 180 days", daysAgo(181), onPurpose, member.StageAtRisk, nil, "", member.StageChurned, false},
		{"lost after 360 days", daysAgo(361), onPurpose, member.StageChurned, nil, "", member.StageLost, false},
		{"high cadence at risk after 45 days", daysAgo(46), onPurpose, member.StageNew, nil, member.CadenceHigh, member.StageAtRisk, false},
		// Own rhythm: gaps of 10 days → at risk at 20 days, but never below
		// half the preset (45 days for medium).
		{"own rhythm clamped to half the preset", daysAgo(76, 66, 56, 46), member.Traits{}, member.StageRepeat, nil, "", member.StageAtRisk, false},
		{"own rhythm: not yet", daysAgo(74, 64, 54, 44), member.Traits{}, member.StageRepeat, nil, "", member.StageRepeat, false},
		// Slow buyer: gaps of 100 days → at risk at 180 days, not 90.
		{"slow own rhythm", daysAgo(400, 300, 200, 100), member.Traits{}, member.StageRepeat, nil, "", member.StageRepeat, false},
		{"churned member buys again: won back, not new", daysAgo(400, 2), member.Traits{}, member.StageChurned, nil, "", member.StageWonBack, true},
		{"lost member with one old order buys again", daysAgo(800, 2), member.Traits{}, member.StageLost, nil, "", member.StageWonBack, true},
		{"won back stays won back", daysAgo(400, 20, 5), member.Traits{}, member.StageWonBack, &wonBack, "", member.StageWonBack, true},
		{"won back, lapsing, keeps the mark", daysAgo(400, 100), member.Traits{}, member.StageWonBack, &wonBack, "", member.StageAtRisk, true},
		{"won back, then churned again: mark gone", daysAgo(600, 200), member.Traits{}, member.StageAtRisk, &wonBack, "", member.StageChurned, false},
		{"won back becomes loyal", daysAgo(300, 90, 60, 30, 2), onPurpose, member.StageWonBack, &wonBack, "", member.StageLoyal, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := member.ComputeStage(member.StageInput{Cadence: c.cadence, Orders: c.orders, Traits: c.traits,
				Previous: c.previous, WonBackAt: c.wonBack, Now: now})
			if got.Stage != c.want || (got.WonBackAt != nil) != c.wantWB || got.Reason == "" {
				t.Fatalf("got %+v, want %s (won-back mark %v)", got, c.want, c.wantWB)
			}
		})
	}
}

func TestThresholdsAndMedianGap(t *testing.T) {
	if g := daysAgo(30, 20).MedianGap(); g != 0 {
		t.Fatalf("two orders have no rhythm: %v", g)
	}
	if g := daysAgo(40, 30, 10, 5).MedianGap(); g != 10*24*time.Hour {
		t.Fatalf("median of 10, 20, 5 days: %v", g)
	}
	if g := daysAgo(40, 30, 10, 6, 5).MedianGap(); g != 7*24*time.Hour {
		t.Fatalf("median of 10, 20, 4, 1 days: %v", g)
	}
	th := member.ThresholdsFor(member.CadenceLow, 0)
	if th.AtRisk != 180*24*time.Hour || th.Churn != 365*24*time.Hour || th.Lost() != 730*24*time.Hour {
		t.Fatalf("low: %+v", th)
	}
	th = member.ThresholdsFor(member.CadenceMedium, 200*24*time.Hour)
	if th.AtRisk != 180*24*time.Hour || th.Churn != 360*24*time.Hour {
		t.Fatalf("clamped to twice the preset: %+v", th)
	}
}

// Quintiles with ties: equal values share a score; scores spread 1..5.
func TestQuintileBoundariesWithTies(t *testing.T) {
	q := member.NewQuintiles([]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, true)
	for v, want := range map[int64]int{1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 5, 10: 5} {
		if got := q.Score(v); got != want {
			t.Errorf("score(%d) = %d, want %d", v, got, want)
		}
	}
	ties := member.NewQuintiles([]int64{1, 1, 1, 1, 1, 1, 1, 1, 5, 9}, true)
	if ties.Score(1) != 1 || ties.Score(5) != 5 || ties.Score(9) != 5 {
		t.Fatalf("ties: %d %d %d", ties.Score(1), ties.Score(5), ties.Score(9))
	}
	same := member.NewQuintiles([]int64{7, 7, 7}, true)
	if same.Score(7) != 1 {
		t.Fatalf("all equal: %d", same.Score(7))
	}
	// Recency: fewer days is better.
	r := member.NewQuintiles([]int64{1, 10, 100, 1000, 10000}, false)
	if r.Score(1) != 5 || r.Score(10000) != 1 || r.Score(100) != 3 {
		t.Fatalf("recency: %d %d %d", r.Score(1), r.Score(10000), r.Score(100))
	}
}

func TestPyramidAndTwoEight(t *testing.T) {
	var spends []int64
	for i := int64(1); i <= 100; i++ {
		spends = append(spends, i*100)
	}
	spends = append(spends, 0, -50) // no spend, net refunds: lead
	p := member.NewPyramid(spends, member.DefaultCRMSettings)
	for spend, want := range map[int64]string{10000: member.PyramidPlatinum, 9600: member.PyramidPlatinum,
		9500: member.PyramidGold, 8100: member.PyramidGold, 8000: member.PyramidIron, 100: member.PyramidIron,
		0: member.PyramidLead, -50: member.PyramidLead} {
		if got := p.Tier(spend); got != want {
			t.Errorf("tier(%d) = %s, want %s", spend, got, want)
		}
	}
	// Top 20 of 1..100 (×100): 81..100 sum 1810 of 5050.
	if want := 1810.0 / 5050.0; p.ShareTop20 < want-1e-9 || p.ShareTop20 > want+1e-9 {
		t.Fatalf("2:8 share %v, want %v", p.ShareTop20, want)
	}
	// A tie across the boundary goes up.
	tied := member.NewPyramid([]int64{50, 50, 50, 10}, member.DefaultCRMSettings)
	if tied.Tier(50) != member.PyramidPlatinum {
		t.Fatalf("tie at the platinum boundary: %s", tied.Tier(50))
	}
	if member.NewPyramid(nil, member.DefaultCRMSettings).Tier(100) != member.PyramidLead {
		t.Fatal("no customers")
	}
}

func TestChurnRiskAndCLV(t *testing.T) {
	if _, _, ok := member.ChurnRisk(nil, "", false, now); ok {
		t.Fatal("no orders, no risk score")
	}
	risk, reason, _ := member.ChurnRisk(daysAgo(90), member.CadenceMedium, false, now)
	if risk != 50 || reason != "recent_purchase" {
		t.Fatalf("halfway to churn: %d %s", risk, reason)
	}
	risk, reason, _ = member.ChurnRisk(daysAgo(150), member.CadenceMedium, true, now)
	if risk != 100 || reason != "overdue" {
		t.Fatalf("overdue and unfollowed: %d %s", risk, reason)
	}
	risk, reason, _ = member.ChurnRisk(daysAgo(9), member.CadenceMedium, true, now)
	if risk != 25 || reason != "unfollowed" {
		t.Fatalf("recent but unfollowed: %d %s", risk, reason)
	}
	if v := member.CLV(5000, 1000, 100); v != 5000 {
		t.Fatalf("certain churn adds nothing: %d", v)
	}
	// r = 1: 1000/1.1 + 1000/1.21 + 1000/1.331 = 2486.85
	if v := member.CLV(5000, 1000, 0); v != 7487 {
		t.Fatalf("CLV: %d", v)
	}
}

// DOMAIN: lost after the last unanswered win-back attempt, whatever the
// idle time says; an order after that wins the member back.
func TestComputeStageWinBackLost(t *testing.T) {
	lostAt := now.Add(-5 * 24 * time.Hour)
	got := member.ComputeStage(member.StageInput{Orders: daysAgo(200), Previous: member.StageChurned, WinBackLostAt: &lostAt, Now: now})
	if got.Stage != member.StageLost || got.Reason != "win_back_unanswered" {
		t.Fatalf("unanswered: %+v", got)
	}
	got = member.ComputeStage(member.StageInput{Orders: daysAgo(200, 2), Previous: member.StageLost, WinBackLostAt: &lostAt, Now: now})
	if got.Stage != member.StageWonBack || got.WonBackAt == nil {
		t.Fatalf("ordered after the last attempt: %+v", got)
	}
}
