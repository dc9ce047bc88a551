package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// checkResult is one invariant: held or not, with what was seen.
type checkResult struct {
	name   string
	ok     bool
	detail []string
}

// report is what the run prints.
type report struct {
	checks    []checkResult
	faults    []string
	endpoints []string
	memory    []string
	load      []string
}

func (r *report) ok() bool {
	for _, c := range r.checks {
		if !c.ok {
			return false
		}
	}
	return true
}

func (r *report) add(name string, ok bool, detail ...string) {
	r.checks = append(r.checks, checkResult{name, ok, detail})
}

func (r *report) print(w io.Writer, o options, took time.Duration) {
	fmt.Fprintf(w, "\n== soak report: %v of load, %d-member campaign, send limit %g/s, faults of %v, run %.0f s ==\n",
		o.duration, o.members, o.rate, o.faultWindow, took.Seconds())
	section := func(title string, lines []string) {
		fmt.Fprintln(w, "\n"+title)
		for _, l := range lines {
			fmt.Fprintln(w, "  "+l)
		}
	}
	section("load:", r.load)
	section("endpoints (every attempt through the proxy, during the load):", r.endpoints)
	section("faults (recovery: from the fault's end to the first success of a request started after it;\n"+
		"        * = the next fault had begun by then, so the figure covers both):", r.faults)
	section("memory per instance (RSS, sampled):", r.memory)
	fmt.Fprintln(w, "\ninvariants:")
	for _, c := range r.checks {
		mark := "ok  "
		if !c.ok {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s\n", mark, c.name)
		for i, d := range c.detail {
			if i == 20 {
				fmt.Fprintf(w, "         ... %d more\n", len(c.detail)-20)
				break
			}
			fmt.Fprintf(w, "         %s\n", d)
		}
	}
}

// check runs every invariant against the database and the simulator's
// record, and gathers the figures.
func (s *soak) check(l *load, camp *campaignRun, loadStart, loadEnd time.Time, drained bool) *report {
	r := &report{}
	r.add("the campaign and the inbox settled after the load", drained,
		fmt.Sprintf("waited for no delivery pending, claimed or sending and no event unapplied: at most %v, or until the leases of killed processes ran out", s.o.drain))
	s.checkCallbacks(r, l)
	s.checkOrders(r, l)
	out, err := s.cli("points", "reconcile", "-merchant", strconv.FormatUint(s.merchant, 10))
	r.add("`loyalty points reconcile` clean", err == nil, lastLines(string(out), 3)...)
	sent := s.sim.Sent()
	s.checkCampaign(r, camp, sent)
	s.checkRate(r, sent, loadStart)
	samples := l.rec.snapshot()
	s.checkRecovery(r, samples, sent)
	s.figures(r, l, samples, loadStart, loadEnd)
	return r
}

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[max(0, len(lines)-n):]
}

// counts runs a "key, count[, count]" query into a map.
func (s *soak) counts(query string, args ...any) (map[string][2]int, error) {
	rows, err := s.db.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][2]int{}
	for rows.Next() {
		var k string
		var a, b int
		if err := rows.Scan(&k, &a, &b); err != nil {
			return nil, err
		}
		out[k] = [2]int{a, b}
	}
	return out, rows.Err()
}

// checkCallbacks: every callback the service answered 200 is stored once,
// applied once (one member, one follow in its history); no follower, even
// one whose callback was never acknowledged, is there twice.
func (s *soak) checkCallbacks(r *report, l *load) {
	prefix := "o_cb_" + l.run + "_%"
	events, err1 := s.counts(`SELECT openid, COUNT(*), SUM(processed_at IS NOT NULL) FROM wechat_events
		WHERE merchant_id = ? AND event = 'subscribe' AND openid LIKE ? GROUP BY openid`, s.merchant, prefix)
	members, err2 := s.counts(`SELECT oa_openid, COUNT(*), 0 FROM members WHERE merchant_id = ? AND oa_openid LIKE ? GROUP BY oa_openid`, s.merchant, prefix)
	follows, err3 := s.counts(`SELECT m.oa_openid, COUNT(*), 0 FROM member_follow_events f JOIN members m ON m.id = f.member_id
		WHERE f.merchant_id = ? AND f.kind = 'subscribe' AND m.oa_openid LIKE ? GROUP BY m.oa_openid`, s.merchant, prefix)
	if err := firstErr(err1, err2, err3); err != nil {
		r.add("every acknowledged callback applied exactly once", false, err.Error())
		return
	}
	var bad []string
	acked, unacked, unackedApplied := 0, 0, 0
	for openid, ok := range l.callbacks {
		e, m, f := events[openid], members[openid][0], follows[openid][0]
		if ok {
			acked++
			if e[0] != 1 || e[1] != 1 || m != 1 || f != 1 {
				bad = append(bad, fmt.Sprintf("%s: %d stored, %d applied, %d members, %d follows", openid, e[0], e[1], m, f))
			}
			continue
		}
		unacked++
		if e[0] > 0 {
			unackedApplied++
		}
		if e[0] > 1 || m > 1 || f > 1 {
			bad = append(bad, fmt.Sprintf("%s (never acknowledged): %d stored, %d members, %d follows", openid, e[0], m, f))
		}
	}
	sort.Strings(bad)
	r.add("every acknowledged callback applied exactly once", len(bad) == 0 && acked > 0,
		append([]string{fmt.Sprintf("%d followers acknowledged (each: 1 event stored and applied, 1 member, 1 follow in its history); %d never acknowledged after 4 tries, %d of them stored anyway (at most once)",
			acked, unacked, unackedApplied)}, bad...)...)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkOrders: every acknowledged order and refund is stored once, as sent.
func (s *soak) checkOrders(r *report, l *load) {
	type stored struct {
		member           uint64
		amount, refunded int64
	}
	orders := map[string]stored{}
	rows, err := s.db.Query(`SELECT external_id, member_id, amount_fen, refunded_fen FROM points_orders WHERE merchant_id = ?`, s.merchant)
	if err == nil {
		for rows.Next() {
			var id string
			var o stored
			if err = rows.Scan(&id, &o.member, &o.amount, &o.refunded); err != nil {
				break
			}
			orders[id] = o
		}
		rows.Close()
	}
	refunds := map[string]int64{}
	if err == nil {
		rows, err = s.db.Query(`SELECT refund_id, amount_fen FROM points_refunds WHERE merchant_id = ?`, s.merchant)
		if err == nil {
			for rows.Next() {
				var id string
				var a int64
				if err = rows.Scan(&id, &a); err != nil {
					break
				}
				refunds[id] = a
			}
			rows.Close()
		}
	}
	if err != nil {
		r.add("every acknowledged order and refund stored once", false, err.Error())
		return
	}
	var bad []string
	nRefunds := 0
	for _, o := range l.orders {
		got, ok := orders[o.externalID]
		if !ok || got.member != o.memberID || got.amount != o.amount {
			bad = append(bad, fmt.Sprintf("order %s: stored %v %+v, sent member %d amount %d", o.externalID, ok, got, o.memberID, o.amount))
			continue
		}
		if o.refundID != "" {
			nRefunds++
			if refunds[o.refundID] != o.refundFen || got.refunded != o.refundFen {
				bad = append(bad, fmt.Sprintf("refund %s: stored %d (order refunded %d), sent %d", o.refundID, refunds[o.refundID], got.refunded, o.refundFen))
			}
		}
	}
	r.add("every acknowledged order and refund stored once", len(bad) == 0 && len(l.orders) > 0,
		append([]string{fmt.Sprintf("%d orders and %d refunds acknowledged; %d orders and %d refunds stored (the unique external ids make a repeat impossible; the rest were never acknowledged)",
			len(l.orders), nRefunds, len(orders), len(refunds))}, bad...)...)
}

// checkCampaign: no member got the campaign twice; each eligible member
// got it once or its row says unknown; what the rows say matches what
// WeChat got. The welcome care rule, likewise, greets nobody twice.
func (s *soak) checkCampaign(r *report, camp *campaignRun, sent []wechattest.Sent) {
	got := map[string]int{}
	welcomed := map[string]int{}
	var strangers []string
	for _, m := range sent {
		switch {
		case m.AppID != oaAppID:
		case m.TemplateID == templateID:
			got[m.ToUser]++
			if _, ok := camp.members[m.ToUser]; !ok {
				strangers = append(strangers, m.ToUser)
			}
		case m.TemplateID == welcomeTemplateID:
			welcomed[m.ToUser]++
		}
	}
	var twice []string
	for openid, n := range got {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s got the campaign %d times", openid, n))
		}
	}
	for openid, n := range welcomed {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s got the welcome %d times", openid, n))
		}
	}
	for _, openid := range strangers {
		twice = append(twice, openid+" is not in the audience but got the campaign")
	}
	sort.Strings(twice)
	r.add("no member got a campaign (or welcome) message twice", len(twice) == 0,
		append([]string{fmt.Sprintf("WeChat took the campaign for %d members, the welcome for %d followers", len(got), len(welcomed))}, twice...)...)

	rows, err := s.db.Query(`SELECT openid, status, reason, errcode FROM campaign_deliveries WHERE campaign_id = ?`, camp.id)
	if err != nil {
		r.add("every eligible member got the campaign or is reported unknown", false, err.Error())
		return
	}
	defer rows.Close()
	status := map[string]string{}
	for rows.Next() {
		var openid, st, reason string
		var code int
		if err := rows.Scan(&openid, &st, &reason, &code); err != nil {
			r.add("every eligible member got the campaign or is reported unknown", false, err.Error())
			return
		}
		if reason != "" || code != 0 {
			st += fmt.Sprintf(" (%s, errcode %d)", reason, code)
		}
		status[openid] = st
	}
	byStatus := map[string]int{}
	var bad []string
	unknownArrived := 0
	for openid := range camp.members {
		st, n := status[openid], got[openid]
		byStatus[st]++
		switch {
		case st == "":
			bad = append(bad, openid+": no delivery row")
		case strings.HasPrefix(st, "unknown"):
			unknownArrived += n
		case st == "sent" || st == "delivered":
			if n != 1 {
				bad = append(bad, fmt.Sprintf("%s: row %s, WeChat got it %d times", openid, st, n))
			}
		default:
			bad = append(bad, fmt.Sprintf("%s: row %s, WeChat got it %d times", openid, st, n))
		}
	}
	var summary []string
	for st, n := range byStatus {
		summary = append(summary, fmt.Sprintf("%s %d", orNone(st), n))
	}
	sort.Strings(summary)
	sort.Strings(bad)
	r.add("every eligible member got the campaign or is reported unknown", len(bad) == 0,
		append([]string{fmt.Sprintf("%d eligible; rows: %s; of the unknown rows, %d did reach WeChat",
			len(camp.members), strings.Join(summary, ", "), unknownArrived)}, bad...)...)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// checkRate: no 1 s window carries more sends to the account than its
// limit. The simulator sees arrivals, not the permits the instances took:
// a permit granted a moment before a window arrives inside it, so a window
// of arrivals holds the permits of 1 s plus that delay. The check allows
// the permits of 100 ms of delay (rate/10) and prints the busiest window
// as seen, and the busiest 5 s window per second, which the delay barely
// moves.
func (s *soak) checkRate(r *report, sent []wechattest.Sent, loadStart time.Time) {
	var at []wechattest.Sent
	for _, m := range sent {
		if m.AppID == oaAppID {
			at = append(at, m)
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].At.Before(at[j].At) })
	s.writeSends(at, loadStart)
	one, from := busiest(at, time.Second)
	five, _ := busiest(at, 5*time.Second)
	allowed := int(s.o.rate + math.Ceil(s.o.rate/10))
	detail := []string{fmt.Sprintf("%d sends to the account; busiest 1 s window %d (limit %g/s, allowed %d with 100 ms of permit-to-arrival delay); busiest 5 s window %.1f/s",
		len(at), one, s.o.rate, allowed, float64(five)/5)}
	if one > allowed {
		kinds := map[string]int{}
		for _, m := range at[from : from+one] {
			kinds[m.TemplateID]++
		}
		detail = append(detail, fmt.Sprintf("the busiest window starts %.2f s into the load: %v", at[from].At.Sub(loadStart).Seconds(), kinds))
	}
	r.add("the send rate never above the limit in any 1 s window", one <= allowed, detail...)
}

// busiest is the most arrivals in any window of length w, and the index of
// that window's first.
func busiest(at []wechattest.Sent, w time.Duration) (most, from int) {
	j := 0
	for i := range at {
		for at[i].At.Sub(at[j].At) >= w {
			j++
		}
		if i-j+1 > most {
			most, from = i-j+1, j
		}
	}
	return most, from
}

// writeSends leaves every send WeChat took in sends.csv in the run's
// directory (seconds into the load, template, openid), for a closer look.
func (s *soak) writeSends(at []wechattest.Sent, loadStart time.Time) {
	var b strings.Builder
	for _, m := range at {
		fmt.Fprintf(&b, "%.6f,%s,%s\n", m.At.Sub(loadStart).Seconds(), m.TemplateID, m.ToUser)
	}
	_ = os.WriteFile(filepath.Join(s.dir, "sends.csv"), []byte(b.String()), 0o644)
}

// checkRecovery: after each fault, every kind of work succeeds again; the
// time from the fault's end to the first success is reported.
func (s *soak) checkRecovery(r *report, samples map[string][]sample, sent []wechattest.Sent) {
	var sends []time.Time
	for _, m := range sent {
		if m.AppID == oaAppID {
			sends = append(sends, m.At)
		}
	}
	sort.Slice(sends, func(i, j int) bool { return sends[i].Before(sends[j]) })
	var bad []string
	for k, f := range s.faults {
		line := fmt.Sprintf("%-44s %5.1f s", f.name, f.ended.Sub(f.began).Seconds())
		// A recovery that runs into the next fault measures both.
		next := time.Time{}
		if k+1 < len(s.faults) {
			next = s.faults[k+1].began
		}
		overlap := func(d time.Duration) string {
			if !next.IsZero() && f.ended.Add(d).After(next) {
				return "*"
			}
			return ""
		}
		if f.err != nil {
			bad = append(bad, f.name+": "+f.err.Error())
		}
		for _, ep := range []string{"callback", "mp_login", "order"} {
			failed, first := 0, time.Duration(-1)
			for _, x := range samples[ep] {
				if !x.ok && !x.start.Before(f.began) && x.start.Before(f.ended) {
					failed++
				}
				if x.ok && !x.start.Before(f.ended) {
					first = x.start.Add(x.dur).Sub(f.ended)
					break
				}
			}
			if first < 0 {
				bad = append(bad, fmt.Sprintf("%s: no %s succeeded after it", f.name, ep))
				line += fmt.Sprintf(" | %s never (%d failed)", ep, failed)
				continue
			}
			line += fmt.Sprintf(" | %s %.2f s%s (%d failed)", ep, first.Seconds(), overlap(first), failed)
		}
		i := sort.Search(len(sends), func(i int) bool { return !sends[i].Before(f.ended) })
		if i < len(sends) {
			d := sends[i].Sub(f.ended)
			line += fmt.Sprintf(" | send %.2f s%s", d.Seconds(), overlap(d))
		} else {
			line += " | send: none after"
		}
		r.faults = append(r.faults, line)
	}
	r.add("every kind of work succeeds again after each fault", len(bad) == 0 && len(s.faults) > 0,
		append([]string{fmt.Sprintf("%d faults injected", len(s.faults))}, bad...)...)
}

// figures: throughput and latency per endpoint, the load's outcome, and
// memory per instance.
func (s *soak) figures(r *report, l *load, samples map[string][]sample, loadStart, loadEnd time.Time) {
	secs := loadEnd.Sub(loadStart).Seconds()
	names := make([]string, 0, len(samples))
	for k := range samples {
		if k != "setup" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		ss := samples[name]
		var ds []time.Duration
		ok := 0
		for _, x := range ss {
			if x.ok {
				ok++
			}
			ds = append(ds, x.dur)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		q := func(p float64) float64 {
			return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
		}
		r.endpoints = append(r.endpoints, fmt.Sprintf("%-13s %6d requests, %6d ok (%.1f/s), %5d failed; p50 %7.1f ms, p99 %7.1f ms, max %7.1f ms",
			name, len(ss), ok, float64(ok)/secs, len(ss)-ok, q(0.5), q(0.99), q(1)))
	}
	l.mu.Lock()
	acked := 0
	for _, ok := range l.callbacks {
		if ok {
			acked++
		}
	}
	r.load = append(r.load,
		fmt.Sprintf("%.0f s of load: %d followers (%d acknowledged), %d member logins, %d orders acknowledged",
			secs, len(l.callbacks), acked, l.logins, len(l.orders)))
	l.mu.Unlock()
	s.memMu.Lock()
	defer s.memMu.Unlock()
	for i, ms := range s.memory {
		if len(ms) == 0 {
			continue
		}
		most := ms[0]
		for _, m := range ms {
			if m.rss > most.rss {
				most = m
			}
		}
		half := ms[len(ms)/2]
		r.memory = append(r.memory, fmt.Sprintf("%s: first %d MB, middle %d MB, last %d MB, peak %d MB (%d samples; a restarted instance starts again)",
			s.instances[i].name, ms[0].rss/1024, half.rss/1024, ms[len(ms)-1].rss/1024, most.rss/1024, len(ms)))
	}
}
