package member_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// dashDay is a UTC time on 2026-mm-dd at noon (dates of the fixture).
func dashDay(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC) }

// dashWorld writes a merchant's members, follow history, orders and stage
// events for the dashboard tests.
type dashWorld struct {
	t          *testing.T
	db         *gorm.DB
	merchantID uint64
	seq        int
}

type dashMember struct {
	created         time.Time
	scene           *string
	lastInteraction *time.Time
	stage           string
	pyramid         *string
	r, f, m         *int
	clv             *int64
	follows         []dashFollow
	orders          []dashOrder
	stages          []dashStage // in order; the last one's to is stage
}

type dashFollow struct {
	kind  string
	scene *string
	at    time.Time
}

type dashOrder struct {
	at               time.Time
	amount, refunded int64
}

type dashStage struct {
	from, to string
	at       time.Time
}

func dp[T any](v T) *T { return &v }

func (w *dashWorld) add(m dashMember) uint64 {
	w.t.Helper()
	w.seq++
	now := time.Now().UTC()
	res := w.db.Exec(`INSERT INTO members (merchant_id, oa_openid, source, follow_status, channel_scene, last_interaction_at,
  created_at, updated_at, lifecycle_stage, pyramid_tier, rfm_r, rfm_f, rfm_m, clv_fen)
VALUES (?, ?, 'oa_follow', 'following', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, w.merchantID, fmt.Sprintf("o_dash_%d", w.seq),
		m.scene, m.lastInteraction, m.created, now, m.stage, m.pyramid, m.r, m.f, m.m, m.clv)
	if res.Error != nil {
		w.t.Fatal(res.Error)
	}
	var id uint64
	w.db.Raw("SELECT id FROM members WHERE merchant_id = ? AND oa_openid = ?", w.merchantID, fmt.Sprintf("o_dash_%d", w.seq)).Scan(&id)
	for _, f := range m.follows {
		w.seq++
		if err := w.db.Create(&member.FollowEvent{MerchantID: w.merchantID, MemberID: id, EventID: uint64(w.seq), Kind: f.kind,
			Scene: f.scene, OccurredAt: f.at, CreatedAt: f.at}).Error; err != nil {
			w.t.Fatal(err)
		}
	}
	for _, o := range m.orders {
		w.seq++
		if err := w.db.Exec(`INSERT INTO points_orders (merchant_id, member_id, external_id, amount_fen, refunded_fen, points,
  rule_version, earn_detail, ordered_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, '{}', ?, ?, ?)`,
			w.merchantID, id, fmt.Sprintf("d%d", w.seq), o.amount, o.refunded, o.at, o.at, o.at).Error; err != nil {
			w.t.Fatal(err)
		}
	}
	for _, s := range m.stages {
		if err := w.db.Create(&member.StageEvent{MerchantID: w.merchantID, MemberID: id, FromStage: s.from, ToStage: s.to,
			Reason: "test", OccurredAt: s.at}).Error; err != nil {
			w.t.Fatal(err)
		}
	}
	return id
}

// stageAt is the independent reading of the stage events: a member's stage
// at t is where their last change before t took them.
func stageAt(events []member.StageEvent, memberID uint64, t time.Time) string {
	stage := member.StagePotential
	for _, e := range events {
		if e.MemberID == memberID && e.OccurredAt.Before(t) {
			stage = e.ToStage
		}
	}
	return stage
}

// The dashboard's member figures on a small merchant, each checked
// against numbers worked out by hand (and the stage rates against a
// member-by-member replay of the events as well), with a second merchant's
// rows that must not count.
func TestDashboardMemberFigures(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		w := &dashWorld{t: t, db: gdb, merchantID: dbtest.NewMerchantID()}
		P := member.Period{From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)}
		C := member.Period{From: time.Date(2026, 1, 30, 0, 0, 0, 0, time.UTC), To: P.From}
		s1, s2, s3 := dp("s1"), dp("s2"), dp("s3")
		sub, unsub, scan := member.HistorySubscribe, member.HistoryUnsubscribe, member.HistoryScan
		st := func(from, to string, at time.Time) dashStage { return dashStage{from, to, at} }
		const (
			pot, nw, rep, loy = member.StagePotential, member.StageNew, member.StageRepeat, member.StageLoyal
			risk, chu, lost   = member.StageAtRisk, member.StageChurned, member.StageLost
			won               = member.StageWonBack
		)
		iron, lead, gold, plat := dp("iron"), dp("lead"), dp("gold"), dp("platinum")
		ids := map[string]uint64{}
		ids["a"] = w.add(dashMember{created: dashDay(2026, 3, 5), scene: s1, stage: nw, pyramid: iron, r: dp(5), f: dp(1), m: dp(2),
			clv: dp(int64(1000)), follows: []dashFollow{{sub, s1, dashDay(2026, 3, 5)}},
			orders: []dashOrder{{dashDay(2026, 3, 6), 1000, 0}, {dashDay(2026, 3, 8), 500, 100}},
			stages: []dashStage{st(pot, nw, dashDay(2026, 3, 6))}})
		ids["b"] = w.add(dashMember{created: dashDay(2026, 3, 10), scene: s1, stage: pot, pyramid: lead,
			lastInteraction: dp(dashDay(2026, 3, 12)), follows: []dashFollow{{sub, s1, dashDay(2026, 3, 10)}}})
		ids["c"] = w.add(dashMember{created: dashDay(2026, 3, 20), stage: pot, follows: []dashFollow{{sub, nil, dashDay(2026, 3, 20)}}})
		ids["d"] = w.add(dashMember{created: dashDay(2026, 2, 10), scene: s2, stage: rep, pyramid: gold, r: dp(4), f: dp(3), m: dp(5),
			clv: dp(int64(5000)), follows: []dashFollow{{sub, s2, dashDay(2026, 2, 10)}, {unsub, nil, dashDay(2026, 2, 20)}},
			orders: []dashOrder{{dashDay(2026, 3, 2), 800, 0}, {dashDay(2026, 3, 3), 800, 800}},
			stages: []dashStage{st(pot, nw, dashDay(2026, 2, 12)), st(nw, rep, dashDay(2026, 3, 2))}})
		ids["e"] = w.add(dashMember{created: dashDay(2025, 6, 1), scene: s2, stage: chu, pyramid: lead, r: dp(1), f: dp(1), m: dp(1),
			clv: dp(int64(100)), lastInteraction: dp(dashDay(2026, 2, 15)),
			follows: []dashFollow{{sub, s2, dashDay(2025, 6, 1)}, {unsub, nil, dashDay(2026, 3, 15)}, {sub, s3, dashDay(2026, 3, 25)}},
			orders:  []dashOrder{{dashDay(2026, 3, 29), 300, 300}},
			stages:  []dashStage{st(pot, nw, dashDay(2025, 7, 1)), st(nw, risk, dashDay(2025, 12, 1)), st(risk, chu, dashDay(2026, 2, 20))}})
		ids["f"] = w.add(dashMember{created: dashDay(2024, 5, 1), scene: dp(""), stage: loy, pyramid: plat, r: dp(5), f: dp(5), m: dp(5),
			clv: dp(int64(20000)), follows: []dashFollow{{sub, nil, dashDay(2024, 5, 1)}, {scan, s1, dashDay(2026, 3, 7)}},
			orders: []dashOrder{{dashDay(2026, 2, 5), 2000, 0}},
			stages: []dashStage{st(pot, nw, dashDay(2024, 6, 1)), st(nw, rep, dashDay(2024, 8, 1)), st(rep, loy, dashDay(2025, 3, 1)),
				st(loy, risk, dashDay(2025, 12, 20)), st(risk, chu, dashDay(2026, 1, 25)), st(chu, loy, dashDay(2026, 2, 26))}})
		ids["g"] = w.add(dashMember{created: P.To, stage: pot}) // the instant the period ends: outside it
		ids["h"] = w.add(dashMember{created: dashDay(2025, 1, 1), stage: won, pyramid: iron, r: dp(3), f: dp(2), m: dp(3),
			clv: dp(int64(3000)), orders: []dashOrder{{dashDay(2026, 3, 10), 700, 0}},
			stages: []dashStage{st(pot, nw, dashDay(2025, 2, 1)), st(nw, risk, dashDay(2025, 6, 1)), st(risk, chu, dashDay(2025, 9, 1)),
				st(chu, lost, dashDay(2026, 1, 10)), st(lost, won, dashDay(2026, 3, 10))}})
		ids["i"] = w.add(dashMember{created: dashDay(2025, 1, 1), stage: chu, pyramid: lead, r: dp(1), f: dp(1), m: dp(2),
			clv:    dp(int64(50)),
			stages: []dashStage{st(pot, nw, dashDay(2025, 3, 1)), st(nw, risk, dashDay(2026, 2, 1)), st(risk, chu, dashDay(2026, 3, 20))}})
		// j's only order of the period was refunded in full: not active.
		ids["j"] = w.add(dashMember{created: dashDay(2025, 1, 1), stage: pot, orders: []dashOrder{{dashDay(2026, 3, 15), 500, 500}}})
		// Another merchant's member in the same period.
		other := &dashWorld{t: t, db: gdb, merchantID: dbtest.NewMerchantID(), seq: 1000}
		other.add(dashMember{created: dashDay(2026, 3, 5), scene: s1, stage: nw, pyramid: gold, r: dp(5), f: dp(5), m: dp(5),
			clv: dp(int64(999)), lastInteraction: dp(dashDay(2026, 3, 5)), follows: []dashFollow{{sub, s1, dashDay(2026, 3, 5)}},
			orders: []dashOrder{{dashDay(2026, 3, 6), 100, 0}}, stages: []dashStage{st(pot, nw, dashDay(2026, 3, 6))}})
		// The last nightly pass's 2:8 figure.
		computed := time.Date(2026, 3, 30, 19, 1, 0, 0, time.UTC)
		raw, _ := json.Marshal(member.RecomputeResult{Members: 9, Customers: 6, ShareTop20: 0.8, ComputedAtUTC: computed})
		result := string(raw)
		gdb.Create(&member.JobRun{MerchantID: w.merchantID, Job: "attributes", RunKey: "2026-03-31", Owner: "t", StartedAt: computed,
			FinishedAt: &computed, Result: &result})

		attrs := member.NewAttributes(gdb, nil, nil, time.Now, quiet)
		d := member.NewDashboard(gdb, attrs)
		got, err := d.Figures(ctx, w.merchantID, P, C)
		if err != nil {
			t.Fatal(err)
		}

		eq := func(what string, got, want any) {
			t.Helper()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %+v, want %+v", what, got, want)
			}
		}
		eq("period new followers", got.Period.NewFollowers, member.ByChannel{Total: 4,
			Channels: []member.ChannelCount{{"s1", 2}, {"", 1}, {"s3", 1}}})
		eq("period new members", got.Period.NewMembers, member.ByChannel{Total: 3, Channels: []member.ChannelCount{{"s1", 2}, {"", 1}}})
		eq("period unfollows", got.Period.Unfollows, int64(1))
		// a, d, h ordered (d's refunded order and e's fully refunded one do
		// not count); a, b, c, e followed and f scanned; b wrote.
		eq("period active", got.Period.ActiveMembers, int64(7))
		eq("compare new followers", got.Compare.NewFollowers, member.ByChannel{Total: 1, Channels: []member.ChannelCount{{"s2", 1}}})
		eq("compare new members", got.Compare.NewMembers, member.ByChannel{Total: 1, Channels: []member.ChannelCount{{"s2", 1}}})
		eq("compare unfollows", got.Compare.Unfollows, int64(1))
		eq("compare active", got.Compare.ActiveMembers, int64(3)) // f ordered, d followed, e wrote

		// At C's start (30 Jan): e at risk and i new are active customers,
		// f churned and h lost. During C e churned, f came back (loyal).
		// At P's start: d new, f loyal, i at risk active; e churned and h
		// lost. During P i churned and h was won back.
		rate := func(n, base int64) member.StageRate {
			r := float64(n) / float64(base)
			return member.StageRate{Entries: n, Base: base, Rate: &r}
		}
		eq("compare churn", got.Compare.Churn, rate(1, 2))
		eq("compare win-back", got.Compare.WinBack, rate(1, 2))
		eq("period churn", got.Period.Churn, rate(1, 3))
		eq("period win-back", got.Period.WinBack, rate(1, 2))
		// The same by replaying each member's events.
		var evs []member.StageEvent
		gdb.Where("merchant_id = ?", w.merchantID).Order("id").Find(&evs)
		for name, x := range map[string]struct {
			p     member.Period
			churn member.StageRate
			win   member.StageRate
		}{"period": {P, got.Period.Churn, got.Period.WinBack}, "compare": {C, got.Compare.Churn, got.Compare.WinBack}} {
			var churn, win member.StageRate
			for _, id := range ids {
				switch stageAt(evs, id, x.p.From) {
				case nw, rep, loy, risk, won:
					churn.Base++
				case chu, lost:
					win.Base++
				}
			}
			for _, e := range evs {
				if e.OccurredAt.Before(x.p.From) || !e.OccurredAt.Before(x.p.To) {
					continue
				}
				if e.ToStage == chu && e.FromStage != chu {
					churn.Entries++
				}
				if (e.FromStage == chu || e.FromStage == lost) && e.ToStage != chu && e.ToStage != lost && e.ToStage != pot {
					win.Entries++
				}
			}
			if churn.Entries != x.churn.Entries || churn.Base != x.churn.Base || win.Entries != x.win.Entries || win.Base != x.win.Base {
				t.Errorf("%s: replay says churn %+v win-back %+v; got %+v %+v", name, churn, win, x.churn, x.win)
			}
		}

		cur := got.Current
		eq("members", cur.Members, int64(10))
		eq("lifecycle", cur.Lifecycle, map[string]int64{pot: 4, nw: 1, rep: 1, loy: 1, risk: 0, chu: 2, won: 1, lost: 0})
		eq("pyramid", cur.Pyramid, map[string]int64{"platinum": 1, "gold": 1, "iron": 2, "lead": 3, "none": 3})
		eq("rfm", cur.RFM, []member.RFMCell{{R: 1, F: 1, Members: 2, AvgM: 1.5}, {R: 3, F: 2, Members: 1, AvgM: 3},
			{R: 4, F: 3, Members: 1, AvgM: 5}, {R: 5, F: 1, Members: 1, AvgM: 2}, {R: 5, F: 5, Members: 1, AvgM: 5}})
		eq("rfm unscored", cur.RFMUnscored, int64(4))
		eq("clv", cur.CLV, member.CLVFigures{Members: 6, EquityFen: 29150, AverageFen: 4858})
		if cur.ShareTop20 == nil || cur.ShareTop20.Share != 0.8 || cur.ShareTop20.Customers != 6 || !cur.ShareTop20.ComputedAt.Equal(computed) {
			t.Errorf("2:8: %+v", cur.ShareTop20)
		}

		// The other merchant sees only its own member, and no 2:8 figure
		// before its first nightly pass.
		og, err := d.Figures(ctx, other.merchantID, P, C)
		if err != nil {
			t.Fatal(err)
		}
		if og.Period.NewMembers.Total != 1 || og.Period.NewFollowers.Total != 1 || og.Period.ActiveMembers != 1 ||
			og.Current.Members != 1 || og.Current.ShareTop20 != nil || og.Compare.NewMembers.Total != 0 ||
			og.Period.Churn.Base != 0 || og.Period.Churn.Rate != nil {
			t.Errorf("other merchant: %+v", og)
		}
	})
}

// A long tail of channels is cut at MaxDashboardChannels, largest first,
// the rest summed.
func TestDashboardChannelTail(t *testing.T) {
	gdb := dbtest.OpenSQLite(t)
	w := &dashWorld{t: t, db: gdb, merchantID: dbtest.NewMerchantID()}
	n := 0
	for i := 0; i < member.MaxDashboardChannels+5; i++ {
		copies := 1
		switch i {
		case 0:
			copies = 3
		case 1:
			copies = 2
		}
		for k := 0; k < copies; k++ {
			w.add(dashMember{created: dashDay(2026, 3, 2), scene: dp(fmt.Sprintf("c%02d", i)), stage: member.StagePotential})
			n++
		}
	}
	P := member.Period{From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)}
	got, err := member.NewDashboard(gdb, nil).Figures(context.Background(), w.merchantID, P, P)
	if err != nil {
		t.Fatal(err)
	}
	nm := got.Period.NewMembers
	if nm.Total != int64(n) || len(nm.Channels) != member.MaxDashboardChannels || nm.OtherChannels != 5 ||
		nm.Channels[0] != (member.ChannelCount{Channel: "c00", Count: 3}) || nm.Channels[1] != (member.ChannelCount{Channel: "c01", Count: 2}) ||
		nm.Channels[member.MaxDashboardChannels-1].Channel != fmt.Sprintf("c%02d", member.MaxDashboardChannels-1) {
		t.Fatalf("%+v", nm)
	}
	if got.Current.ShareTop20 != nil || math.IsNaN(float64(got.Current.CLV.AverageFen)) || got.Current.CLV.Members != 0 {
		t.Fatalf("%+v", got.Current)
	}
}
