package campaign

// Sending: a slice of a campaign's time on this instance. It claims rows
// (a lease), checks them, takes a rate permit per row, marks the rows
// holding permits sending and calls WeChat, and hands each result to the recorder (record.go).
// Every write to a row goes through the state machine (deliveries.go), and
// a row is called only if markSending moved it under this slice's lease
// and the lease is still live (lease.go).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/wechat"
)

// sendGroup is the most rows marked sending in one transaction: the rows
// that got their rate permits while the previous marking ran. The marking
// costs two statements per group (four for mini-program subscribe
// messages, which spend grants).
const sendGroup = 32

// recordChunk is how many results are written together.
const recordChunk = 32

// result is the outcome of one row of a slice.
type result struct {
	row       Delivery
	marked    bool // moved to sending by this slice (attempts counted, a grant spent)
	attempted bool // WeChat was called
	msgID     int64
	err       error
}

// sending is what the sends of one slice share: where results go, the
// calls in flight, the lease, and the halt raised by an answer that stops
// the whole account or campaign (quota spent, template gone, account
// refused) or by the lease being lost.
type sending struct {
	out      chan<- result
	inFlight sync.WaitGroup
	lease    *lease
	halt     atomic.Bool
}

func (s *sending) halted() bool { return s.halt.Load() || s.lease.lost.Load() }

// sendSlice sends the campaign for up to SliceTime: it claims a batch,
// checks it and sends it group by group, and claims the next batch while
// the previous one's sends are still in flight, so the account's rate is
// kept up whatever WeChat's latency. Results are recorded as they come, a
// few at a time, so an instance that dies leaves unrecorded (and so
// unknown) only what it had in flight or just finished: at most
// Concurrency + 2×recordChunk rows. It does nothing in the
// merchant's quiet hours (capped campaigns) or when the account's quota is
// spent, and returns how many rows it handled.
func (e *Engine) sendSlice(ctx context.Context, c Campaign) (int, error) {
	if !c.PlanDone && c.PlanCursor == 0 {
		return 0, nil // nothing planned yet
	}
	mc, err := e.merchantClock(ctx, c.MerchantID)
	if err != nil {
		return 0, err
	}
	lane := LaneMarketing
	if c.Kind == KindService {
		lane = LaneService
	}
	// A small buffer: sends wait for the recorder rather than run ahead of
	// it, so what a crash leaves unrecorded stays small.
	results := make(chan result, recordChunk)
	run := &sending{out: results, lease: newLease(fmt.Sprintf("%s/%d", e.o.Owner, rand.Uint32()), e.o.Lease)}
	recorded := make(chan error, 1)
	go func() { recorded <- e.recordStream(ctx, c, mc, results, run.lease) }()
	var mu sync.Mutex
	handled := 0
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	stopRenewing := e.keepAlive(ctx, run.lease, func(why string, err error) {
		e.log.WarnContext(ctx, "campaign: "+why+"; this instance stops sending the slice", "merchant_id", c.MerchantID,
			"campaign_id", c.ID, "owner", run.lease.owner, "error", err)
	})
	stopWatching := e.watchStatus(ctx, c, run)
	defer stopWatching()
	// The producer claims and checks the next batch while the current one
	// is being sent: the limiter holds no tokens in reserve, so a pause to
	// claim would be rate lost.
	batches := make(chan []Delivery, 1)
	go func() {
		defer close(batches)
		deadline := time.Now().Add(e.o.SliceTime)
		local := e.now().In(mc.loc)
		// The quota left, counted down here as rows are claimed: the ledger
		// in the database lags the sends in flight.
		left, err := e.quotaLeft(ctx, c.MerchantID, local.Format(time.DateOnly), lane)
		if err != nil {
			fail(err)
			return
		}
		for first := true; ctx.Err() == nil && (first || time.Now().Before(deadline)); first = false {
			cur, err := e.reload(ctx, c.ID)
			if err != nil || cur.Status != StatusRunning || cur.Step != c.Step {
				if err != nil {
					fail(err)
				}
				return
			}
			local = e.now().In(mc.loc)
			if run.halted() || c.Capped() && InQuietHours(local, mc.quietStart, mc.quietEnd) || left <= 0 {
				return
			}
			if exhausted, err := e.exhausted(ctx, c.MerchantID, local.Format(time.DateOnly)); err != nil || exhausted {
				if err != nil {
					fail(err)
				}
				return
			}
			now := e.now()
			until := now.Add(e.o.Lease)
			rows, err := e.rows.claim(ctx, c, run.lease.owner, int(min(int64(e.o.Batch), left)), now, until, run.lease.holds)
			if err != nil || len(rows) == 0 {
				if err != nil {
					fail(err)
				}
				return
			}
			run.lease.hold(idsOf(rows), until)
			mu.Lock()
			handled += len(rows)
			mu.Unlock()
			left -= int64(len(rows))
			ready, err := e.prepare(ctx, c, mc, run.lease, rows)
			if err != nil {
				fail(err)
				// What prepare did not settle goes back to the queue.
				for _, r := range ready {
					results <- result{row: r}
				}
				return
			}
			select {
			case batches <- ready:
			case <-ctx.Done():
				for _, r := range ready {
					results <- result{row: r}
				}
				return
			}
		}
	}()
	more := true
	for ready := range batches {
		if more {
			more = e.sendAll(ctx, c, mc, lane, ready, run)
			continue
		}
		for _, r := range ready {
			results <- result{row: r} // never marked: back to the queue
		}
	}
	run.inFlight.Wait()
	close(results)
	if err := <-recorded; err != nil {
		errs = append(errs, err)
	}
	stopRenewing()
	return handled, errors.Join(errs...)
}

// watchStatus halts the slice once the campaign is no longer running this
// step (paused, cancelled, or moved on by another instance): the batch
// being sent stops within StatusEvery plus the calls in flight, rather than
// at the next claim (a batch at the account's rate can take a minute), and
// its rows not yet called go back to the queue. It reads two columns by
// primary key once per StatusEvery; the returned func stops it.
func (e *Engine) watchStatus(ctx context.Context, c Campaign, run *sending) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.o.StatusEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var cur struct {
				Status Status
				Step   int
			}
			err := e.db.WithContext(ctx).Model(&Campaign{}).Select("status, step").Where("id = ?", c.ID).Take(&cur).Error
			if err != nil {
				continue // the producer's next reload decides; a blip must not stop a send
			}
			if cur.Status != StatusRunning || cur.Step != c.Step {
				run.halt.Store(true)
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func idsOf(rows []Delivery) []uint64 {
	ids := make([]uint64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

// prepare runs the checks that depend on the moment of sending, in one
// transaction:
//
//   - the merchant's frequency cap (capped campaigns): the members' rows are locked
//     (in id order) while their recent capped sends are counted, and each
//     row that passes reserves its place by taking its sent_at, so two
//     campaigns cannot both slip past the cap;
//   - the 48-hour customer-service window.
//
// Rows that fail a check are skipped with the reason. It returns the rows
// ready for markSending: those that passed and are still this slice's. On
// an error it returns the rows it did not settle (still claimed).
func (e *Engine) prepare(ctx context.Context, c Campaign, mc merchantClock, l *lease, rows []Delivery) ([]Delivery, error) {
	if !c.Capped() && c.Channel != ChannelCustomerService {
		return rows, nil
	}
	now := e.now()
	members := make([]uint64, len(rows))
	for i, r := range rows {
		members[i] = r.MemberID
	}
	ids := idsOf(rows)
	until := now.Add(e.o.Lease)
	l.begin(ids)
	var ready []Delivery
	lost := false
	err := retryTx(ctx, e.db, func(tx *gorm.DB) error {
		ready, lost = ready[:0], false
		var ms []struct {
			ID                uint64
			LastInteractionAt *time.Time
		}
		q := tx.Table("members").Select("id, last_interaction_at").Where("merchant_id = ? AND id IN ?", c.MerchantID, members).Order("id")
		if c.Capped() && e.mysql {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Find(&ms).Error; err != nil {
			return fmt.Errorf("campaign %d: members: %w", c.ID, err)
		}
		lastSeen := make(map[uint64]*time.Time, len(ms))
		for _, m := range ms {
			lastSeen[m.ID] = m.LastInteractionAt
		}
		recent := map[uint64]int{}
		if c.Capped() {
			var counts []struct {
				MemberID uint64
				N        int
			}
			// idx_deliveries_member (merchant_id, member_id, sent_at); a
			// claimed row with a sent_at is a reservation of another batch.
			if err := tx.Model(&Delivery{}).Select("member_id, COUNT(*) AS n").
				Where("merchant_id = ? AND member_id IN ? AND capped = ? AND sent_at > ? AND status IN ?", c.MerchantID, members, true,
					now.Add(-mc.capWindow), []DeliveryStatus{DeliveryClaimed, DeliverySending, DeliverySent, DeliveryDelivered, DeliveryUnknown}).
				Group("member_id").Find(&counts).Error; err != nil {
				return fmt.Errorf("campaign %d: frequency cap: %w", c.ID, err)
			}
			for _, cnt := range counts {
				recent[cnt.MemberID] = cnt.N
			}
		}
		skip := map[Reason][]uint64{}
		var pass []Delivery
		for _, r := range rows {
			switch {
			case c.Capped() && recent[r.MemberID] >= mc.capN:
				skip[ReasonFrequencyCap] = append(skip[ReasonFrequencyCap], r.ID)
			case c.Channel == ChannelCustomerService &&
				(lastSeen[r.MemberID] == nil || now.Sub(*lastSeen[r.MemberID]) >= 48*time.Hour):
				skip[ReasonOutsideWindow] = append(skip[ReasonOutsideWindow], r.ID)
			default:
				recent[r.MemberID]++
				pass = append(pass, r)
			}
		}
		for why, rowIDs := range skip {
			moved, err := e.rows.skip(ctx, tx, rowIDs, l.owner, why, now)
			if err != nil {
				return fmt.Errorf("campaign %d: skip: %w", c.ID, err)
			}
			lost = lost || len(moved) < len(rowIDs)
		}
		if !c.Capped() {
			ready = pass
			return nil
		}
		reserved, err := e.rows.reserve(ctx, tx, idsOf(pass), l.owner, now, until)
		if err != nil {
			return fmt.Errorf("campaign %d: reserve: %w", c.ID, err)
		}
		lost = lost || len(reserved) < len(pass)
		for _, r := range pass {
			if slices.Contains(reserved, r.ID) {
				ready = append(ready, r)
			}
		}
		return nil
	})
	if err != nil {
		l.end(ids, ids, time.Time{}) // rolled back: still claimed, as they were
		return rows, err
	}
	if c.Capped() {
		l.end(ids, idsOf(ready), until)
	} else {
		l.end(ids, idsOf(ready), time.Time{})
	}
	if lost {
		l.lose()
		e.log.WarnContext(ctx, "campaign: rows of the lease were taken by another instance; this instance stops sending the slice",
			"merchant_id", c.MerchantID, "campaign_id", c.ID, "owner", l.owner)
	}
	return ready, nil
}

// markSending marks a group about to be sent (deliveryRows.markSending).
// A mini-program subscription grant is spent here (given back if the send
// does not happen); a row without one is skipped. It returns the rows
// marked, and loses the lease when a row of the group was not this
// slice's any more.
func (e *Engine) markSending(ctx context.Context, c Campaign, l *lease, group []Delivery) ([]Delivery, error) {
	now := e.now()
	until := now.Add(e.o.Lease)
	ids := idsOf(group)
	l.begin(ids)
	var marked []Delivery
	lost := false
	err := retryTx(ctx, e.db, func(tx *gorm.DB) error {
		marked, lost = marked[:0], false
		want := group
		if c.Channel == ChannelMPSubscribe {
			granted, err := spendGrants(ctx, tx, c, group, now)
			if err != nil {
				return err
			}
			var noGrant []uint64
			want = nil
			for _, r := range group {
				if _, ok := granted[r.MemberID]; ok {
					want = append(want, r)
				} else {
					noGrant = append(noGrant, r.ID)
				}
			}
			skipped, err := e.rows.skip(ctx, tx, noGrant, l.owner, ReasonNoGrant, now)
			if err != nil {
				return fmt.Errorf("campaign %d: skip: %w", c.ID, err)
			}
			lost = len(skipped) < len(noGrant)
		}
		moved, err := e.rows.markSending(ctx, tx, idsOf(want), l.owner, now, until)
		if err != nil {
			return fmt.Errorf("campaign %d: mark sending: %w", c.ID, err)
		}
		lost = lost || len(moved) < len(want)
		for _, r := range want {
			if slices.Contains(moved, r.ID) {
				r.Status = DeliverySending
				marked = append(marked, r)
			}
		}
		if lost && c.Channel == ChannelMPSubscribe {
			// Grants were spent for rows that did not move: roll back and
			// mark nothing; the lease is lost anyway.
			return errLeaseLost
		}
		return nil
	})
	if errors.Is(err, errLeaseLost) {
		marked, err = nil, nil
	}
	if err != nil {
		l.end(ids, ids, time.Time{}) // rolled back: still claimed, as they were
		return nil, err
	}
	l.end(ids, idsOf(marked), until)
	if lost {
		l.lose()
		e.log.WarnContext(ctx, "campaign: rows of the lease were taken by another instance; this instance stops sending the slice",
			"merchant_id", c.MerchantID, "campaign_id", c.ID, "owner", l.owner)
	}
	return marked, nil
}

var errLeaseLost = errors.New("campaign: lease lost")

// spendGrants spends one subscription grant of the campaign's template for
// each member of the group who has one left, in two statements whatever
// the group's size: lock the grants that can be spent, then spend them. It
// returns the members whose grant was spent. (A group holds each member
// once: there is one delivery row per campaign and member.)
func spendGrants(ctx context.Context, tx *gorm.DB, c Campaign, group []Delivery, now time.Time) (map[uint64]struct{}, error) {
	members := make([]uint64, len(group))
	for i, r := range group {
		members[i] = r.MemberID
	}
	var have []uint64
	if err := tx.WithContext(ctx).Table("member_subscription_grants").Clauses(clause.Locking{Strength: "UPDATE"}).
		Where("merchant_id = ? AND template_id = ? AND member_id IN ? AND remaining > 0", c.MerchantID, c.TemplateID, members).
		Pluck("member_id", &have).Error; err != nil {
		return nil, fmt.Errorf("campaign %d: grants: %w", c.ID, err)
	}
	granted := make(map[uint64]struct{}, len(have))
	for _, id := range have {
		granted[id] = struct{}{}
	}
	if len(have) == 0 {
		return granted, nil
	}
	if err := tx.WithContext(ctx).Exec("UPDATE member_subscription_grants SET remaining = remaining - 1, updated_at = ? "+
		"WHERE merchant_id = ? AND template_id = ? AND member_id IN ?", now, c.MerchantID, c.TemplateID, have).Error; err != nil {
		return nil, fmt.Errorf("campaign %d: spend grants: %w", c.ID, err)
	}
	return granted, nil
}

// sendAll sends the rows through the account's limiter, at most
// Concurrency at a time across the instance, handing every row's result to
// s.out as soon as it is known (rows it never sends included). Each row
// takes a slot, then its rate permit, and only then is marked sending,
// together with the rows that got their permits at about the same time
// (one transaction for whatever is waiting, up to sendGroup rows), and is
// called at once: a row waiting for the rate is still only claimed, so an
// instance that dies leaves unknown only the calls it had truly in flight
// (a claimed row goes back to the queue). Once the slice halts (an answer
// that stops the account or campaign, a database error while marking, or
// the lease lost), no further call is made: rows not yet marked go back to
// the queue. It returns once every row holds a slot or is handed over;
// what is still waiting for a permit, a marking or its call is counted in
// s.inFlight. It returns false when it stopped early.
func (e *Engine) sendAll(ctx context.Context, c Campaign, mc merchantClock, lane Lane, rows []Delivery, s *sending) bool {
	out := s.out
	if len(rows) == 0 {
		return true
	}
	msg := c.Message
	vals := map[uint64]map[string]string{}
	if names := memberVariables(variablesOf(msg)); len(names) > 0 && e.vars != nil {
		members := make([]uint64, len(rows))
		for i, r := range rows {
			members[i] = r.MemberID
		}
		var err error
		if vals, err = e.vars.Values(ctx, c.MerchantID, members, names); err != nil {
			e.log.WarnContext(ctx, "campaign: member variables", "campaign_id", c.ID, "error", err)
			for _, r := range rows {
				out <- result{row: r} // never marked: back to the queue
			}
			return false
		}
	}
	call := func(p permitted) {
		s.inFlight.Add(1)
		go func() {
			defer s.inFlight.Done()
			defer func() { <-e.sem }()
			r := p.row
			// A permit that waited long for its marking (a slow database)
			// would let the calls of the wait arrive together: take a fresh one.
			if time.Since(p.at) > permitFresh {
				if err := e.limiter.Wait(ctx, mc.appID, lane); err != nil {
					out <- result{row: r, marked: true}
					return
				}
			}
			if e.hooks.beforeCall != nil {
				e.hooks.beforeCall(r.ID)
			}
			if s.halted() || !s.lease.valid(r.ID, e.now()) {
				out <- result{row: r, marked: true}
				return
			}
			// The call runs to its end even if the instance is told to
			// stop: its result is what the row needs.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.o.SendTimeout)
			defer cancel()
			res := result{row: r, marked: true, attempted: true}
			res.msgID, res.err = e.send(sctx, c, msg, r, withVars(vals[r.MemberID], localVars(r.Vars, mc.loc)))
			if res.err != nil {
				if _, st := e.classify(res, e.now()); st != stopNone {
					s.halt.Store(true)
				}
			}
			out <- res
		}()
	}
	// The marker: the rows that got their permits within markLinger of the
	// first are marked in one transaction (up to sendGroup), and each row
	// marked is called at once.
	ready := make(chan permitted, len(rows))
	s.inFlight.Add(1)
	go func() {
		defer s.inFlight.Done()
		linger := time.NewTimer(markLinger)
		defer linger.Stop()
		for p := range ready {
			group := []permitted{p}
			linger.Reset(markLinger)
		more:
			for len(group) < sendGroup {
				select {
				case q, ok := <-ready:
					if !ok {
						break more
					}
					group = append(group, q)
				case <-linger.C:
					break more
				}
			}
			e.markAndCall(ctx, c, s, group, call)
		}
	}()
	var waiting sync.WaitGroup
	defer func() {
		// The channel closes once every row has its permit or has gone back.
		s.inFlight.Add(1)
		go func() {
			defer s.inFlight.Done()
			waiting.Wait()
			close(ready)
		}()
	}()
	for i, r := range rows {
		slot := false
		if !s.halted() {
			select {
			case e.sem <- struct{}{}:
				slot = true
			case <-ctx.Done():
			}
		}
		if !slot || s.halted() {
			if slot {
				<-e.sem // taken just as the slice halted
			}
			for _, r := range rows[i:] {
				out <- result{row: r} // never marked: back to the queue
			}
			return false
		}
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			// The limiter paces the call; a stop while waiting means the row
			// is never marked and goes back to the queue.
			if err := e.limiter.Wait(ctx, mc.appID, lane); err != nil {
				<-e.sem
				out <- result{row: r}
				return
			}
			ready <- permitted{row: r, at: time.Now()}
		}()
	}
	return true
}

// permitFresh is how long a rate permit stays good for its call: a row
// whose marking took longer takes another.
const permitFresh = 50 * time.Millisecond

// markLinger is how long the marker waits for more rows to mark with the
// first: at a high rate (or an account far from its limit) it makes one
// transaction of many rows, and costs a send at most this delay.
const markLinger = 2 * time.Millisecond

// permitted is a row that holds a slot and a rate permit taken at at.
type permitted struct {
	row Delivery
	at  time.Time
}

// markAndCall marks a group of rows holding their permits sending and
// calls each row marked; a row not marked (no grant, or not this slice's
// any more) gives its slot back and goes back to the queue if it is still
// claimed here (the recorder's write is guarded, so a row that is not is
// left alone). Once the slice has halted, nothing is marked.
func (e *Engine) markAndCall(ctx context.Context, c Campaign, s *sending, group []permitted, call func(permitted)) {
	back := func(ps []permitted) {
		for _, p := range ps {
			<-e.sem
			s.out <- result{row: p.row}
		}
	}
	if s.halted() {
		back(group)
		return
	}
	rows := make([]Delivery, len(group))
	for i, p := range group {
		rows[i] = p.row
	}
	if e.hooks.beforeMark != nil {
		e.hooks.beforeMark(idsOf(rows))
	}
	marked, err := e.markSending(ctx, c, s.lease, rows)
	if err != nil {
		e.log.WarnContext(ctx, "campaign: mark sending", "campaign_id", c.ID, "error", err)
		s.halt.Store(true)
		back(group)
		return
	}
	isMarked := make(map[uint64]bool, len(marked))
	for _, m := range marked {
		isMarked[m.ID] = true
	}
	var notMarked []permitted
	for _, p := range group {
		if isMarked[p.row.ID] {
			p.row.Status = DeliverySending
			call(p)
		} else {
			notMarked = append(notMarked, p)
		}
	}
	back(notMarked)
}

// send makes the one WeChat call of a delivery.
func (e *Engine) send(ctx context.Context, c Campaign, msg Message, r Delivery, vals map[string]string) (int64, error) {
	data := make(map[string]string, len(msg.Fields))
	for k, v := range msg.Fields {
		data[k] = render(v, vals)
	}
	switch c.Channel {
	case ChannelTemplate:
		// The delivery id as client_msg_id lets WeChat drop a repeat of a
		// send it already took (a retry after a timeout).
		return e.wx.SendTemplate(ctx, c.MerchantID, wechat.TemplateMessage{OpenID: r.OpenID, TemplateID: c.TemplateID,
			Data: data, URL: render(msg.URL, vals), MiniPage: render(msg.Page, vals),
			ClientMsgID: fmt.Sprintf("d%d", r.ID)})
	case ChannelMPSubscribe:
		return e.wx.SendMPSubscribe(ctx, c.MerchantID, wechat.SubscribeMessage{OpenID: r.OpenID, TemplateID: c.TemplateID,
			Data: data, Page: render(msg.Page, vals)})
	default:
		return 0, e.wx.SendCustomerText(ctx, c.MerchantID, r.OpenID, render(msg.Text, vals))
	}
}

// placeholder finds member variables in message texts: {{name}}, or
// {{name|亲爱的会员}} with a fallback used when the member's value is empty.
// A fallback is up to 32 characters without braces or another "|".
var placeholder = regexp.MustCompile(`\{\{\s*([a-z_]+)\s*(?:\|([^{}|]{0,32}))?\}\}`)

// variablesOf lists the member variables a message uses.
func variablesOf(m Message) []string {
	var names []string
	add := func(s string) {
		for _, sub := range placeholder.FindAllStringSubmatch(s, -1) {
			if !slices.Contains(names, sub[1]) {
				names = append(names, sub[1])
			}
		}
	}
	for _, v := range m.Fields {
		add(v)
	}
	add(m.Text)
	add(m.URL)
	add(m.Page)
	return names
}

// memberVariables keeps, of names, the member variables (a service
// notice's message also uses its event's variables, which its row holds).
func memberVariables(names []string) []string {
	return slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(knownVariables, n) })
}

// withVars is a member's values with a row's own variables (a service
// notice's event) over them.
func withVars(member, row map[string]string) map[string]string {
	if len(row) == 0 {
		return member
	}
	out := make(map[string]string, len(member)+len(row))
	maps.Copy(out, member)
	maps.Copy(out, row)
	return out
}

// render fills a text's variables; an empty value takes the variable's
// fallback ({{name|亲爱的会员}}), trimmed, when it has one.
func render(s string, vals map[string]string) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		sub := placeholder.FindStringSubmatch(m)
		if v := vals[sub[1]]; strings.TrimSpace(v) != "" {
			return v
		}
		return strings.TrimSpace(sub[2])
	})
}
