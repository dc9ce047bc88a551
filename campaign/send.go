package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/wechat"
)

// prepare runs the checks that depend on the moment of sending, in one
// transaction:
//
//   - the frequency cap (capped campaigns): the members' rows are locked
//     (in id order) while their recent capped sends are counted, and each
//     row that passes reserves its place by taking its sent_at, so two
//     campaigns cannot both slip past the cap;
//   - the 48-hour customer-service window.
//
// Rows that fail a check are skipped with the reason; the others stay
// claimed, ready for markSending.
func (e *Engine) prepare(ctx context.Context, c Campaign, rows []Delivery) ([]Delivery, error) {
	if !c.Capped() && c.Channel != ChannelCustomerService {
		return rows, nil
	}
	now := e.now()
	owner := *rows[0].LeaseOwner
	ids := make([]uint64, len(rows))
	for i, r := range rows {
		ids[i] = r.MemberID
	}
	var ready []Delivery
	err := e.inTx(ctx, func(tx *gorm.DB) error {
		ready = ready[:0]
		var ms []struct {
			ID                uint64
			LastInteractionAt *time.Time
		}
		q := tx.Table("members").Select("id, last_interaction_at").Where("merchant_id = ? AND id IN ?", c.MerchantID, ids).Order("id")
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
				Where("merchant_id = ? AND member_id IN ? AND capped = ? AND sent_at > ? AND status IN ?", c.MerchantID, ids, true,
					now.Add(-e.o.CapWindow), []string{DeliveryClaimed, DeliverySending, DeliverySent, DeliveryDelivered, DeliveryUnknown}).
				Group("member_id").Find(&counts).Error; err != nil {
				return fmt.Errorf("campaign %d: frequency cap: %w", c.ID, err)
			}
			for _, cnt := range counts {
				recent[cnt.MemberID] = cnt.N
			}
		}
		skip := map[string][]uint64{}
		for _, r := range rows {
			switch {
			case c.Capped() && recent[r.MemberID] >= e.o.FrequencyCap:
				skip[ReasonFrequencyCap] = append(skip[ReasonFrequencyCap], r.ID)
			case c.Channel == ChannelCustomerService &&
				(lastSeen[r.MemberID] == nil || now.Sub(*lastSeen[r.MemberID]) >= 48*time.Hour):
				skip[ReasonOutsideWindow] = append(skip[ReasonOutsideWindow], r.ID)
			default:
				recent[r.MemberID]++
				ready = append(ready, r)
			}
		}
		for reason, rowIDs := range skip {
			if err := tx.Model(&Delivery{}).Where("id IN ? AND lease_owner = ?", rowIDs, owner).
				Updates(map[string]any{"status": DeliverySkipped, "reason": reason, "lease_owner": nil, "lease_until": nil,
					"finished_at": now, "updated_at": now}).Error; err != nil {
				return fmt.Errorf("campaign %d: skip: %w", c.ID, err)
			}
		}
		if !c.Capped() || len(ready) == 0 {
			return nil
		}
		readyIDs := make([]uint64, len(ready))
		for i, r := range ready {
			readyIDs[i] = r.ID
		}
		return tx.Model(&Delivery{}).Where("id IN ? AND status = ? AND lease_owner = ?", readyIDs, DeliveryClaimed, owner).
			Updates(map[string]any{"sent_at": now, "updated_at": now}).Error
	})
	if err != nil {
		return nil, err
	}
	return ready, nil
}

// markSending is the write-ahead mark of a group about to be sent: from
// here WeChat may have the message, and a lost worker leaves the row
// unknown, never pending. A mini-program subscription grant is spent here
// (given back if the send does not happen); a row without one is skipped.
// It returns the rows marked.
func (e *Engine) markSending(ctx context.Context, c Campaign, group []Delivery) ([]Delivery, error) {
	now := e.now()
	owner := *group[0].LeaseOwner
	var marked []Delivery
	err := e.inTx(ctx, func(tx *gorm.DB) error {
		marked = marked[:0]
		var noGrant []uint64
		if c.Channel != ChannelMPSubscribe {
			marked = append(marked, group...)
		} else {
			granted, err := spendGrants(ctx, tx, c, group, now)
			if err != nil {
				return err
			}
			for _, r := range group {
				if _, ok := granted[r.MemberID]; ok {
					marked = append(marked, r)
				} else {
					noGrant = append(noGrant, r.ID)
				}
			}
		}
		if len(noGrant) > 0 {
			if err := tx.Model(&Delivery{}).Where("id IN ? AND lease_owner = ?", noGrant, owner).
				Updates(map[string]any{"status": DeliverySkipped, "reason": ReasonNoGrant, "sent_at": nil, "lease_owner": nil,
					"lease_until": nil, "finished_at": now, "updated_at": now}).Error; err != nil {
				return fmt.Errorf("campaign %d: skip: %w", c.ID, err)
			}
		}
		if len(marked) == 0 {
			return nil
		}
		ids := make([]uint64, len(marked))
		for i, r := range marked {
			ids[i] = r.ID
		}
		return tx.Model(&Delivery{}).Where("id IN ? AND status = ? AND lease_owner = ?", ids, DeliveryClaimed, owner).
			Updates(map[string]any{"status": DeliverySending, "sent_at": now, "attempts": gorm.Expr("attempts + 1"),
				"updated_at": now}).Error
	})
	return marked, err
}

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

// sendGroup is how many sends are marked at once: at most this many rows
// (plus those in flight) end unknown when a worker dies, and the marking
// costs one statement per group (three for mini-program subscribe
// messages, which spend grants).
const sendGroup = 32

// result is the outcome of one send.
type result struct {
	row       Delivery
	marked    bool // marked sending (attempts counted, a grant spent)
	attempted bool // WeChat was called
	msgID     int64
	err       error
}

// placeholder finds member variables in message texts.
var placeholder = regexp.MustCompile(`\{\{\s*([a-z_]+)\s*\}\}`)

// variablesOf lists the member variables a message uses.
func variablesOf(m Message) []string {
	var names []string
	add := func(s string) {
		for _, sub := range placeholder.FindAllStringSubmatch(s, -1) {
			if !containsStr(names, sub[1]) {
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

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// render fills a text's variables.
func render(s string, vals map[string]string) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		return vals[name]
	})
}

// sending is what the sends of one slice share: where results go, the
// calls still in flight, and the halt raised by an answer that stops the
// whole account or campaign (quota spent, template gone, account refused).
type sending struct {
	out      chan<- result
	inFlight sync.WaitGroup
	halt     atomic.Bool
}

// sendAll sends the rows through the account's limiter, at most
// Concurrency at a time across the instance (waiting for the limiter
// included), handing every row's result to s.out as soon as it is known
// (rows it never sends included). Rows are marked sending a group at a
// time just before they take a slot, so the rows WeChat may have and
// nobody has recorded yet are only those holding a slot or just done. Once
// an answer halts the slice, no further call is made: rows not yet called
// go back to the queue untouched. It returns when every row is either
// handed over or in flight (counted in s.inFlight), false when it stopped
// early (ctx, a database error, a halt).
func (e *Engine) sendAll(ctx context.Context, c Campaign, mc merchantClock, lane Lane, rows []Delivery, s *sending) bool {
	out := s.out
	handed := make([]bool, len(rows))
	defer func() {
		for i, r := range rows {
			if !handed[i] {
				out <- result{row: r} // never marked: back to the queue
			}
		}
	}()
	if len(rows) == 0 {
		return true
	}
	var msg Message
	_ = json.Unmarshal([]byte(c.Message), &msg)
	vals := map[uint64]map[string]string{}
	if names := variablesOf(msg); len(names) > 0 && e.vars != nil {
		ids := make([]uint64, len(rows))
		for i, r := range rows {
			ids[i] = r.MemberID
		}
		var err error
		if vals, err = e.vars.Values(ctx, c.MerchantID, ids, names); err != nil {
			e.log.WarnContext(ctx, "campaign: member variables", "campaign_id", c.ID, "error", err)
			return false
		}
	}
	for start := 0; start < len(rows); start += sendGroup {
		if s.halt.Load() {
			return false
		}
		group := rows[start:min(start+sendGroup, len(rows))]
		marked, err := e.markSending(ctx, c, group)
		if err != nil {
			e.log.WarnContext(ctx, "campaign: mark sending", "campaign_id", c.ID, "error", err)
			return false
		}
		for j, r := range group {
			i := start + j
			if !slices.ContainsFunc(marked, func(m Delivery) bool { return m.ID == r.ID }) {
				handed[i] = true // skipped while marking (no grant): already written
				continue
			}
			select {
			case e.sem <- struct{}{}:
			case <-ctx.Done():
				// Marked but never called: the results say so.
				for k := j; k < len(group); k++ {
					if !handed[start+k] && slices.ContainsFunc(marked, func(m Delivery) bool { return m.ID == group[k].ID }) {
						handed[start+k] = true
						out <- result{row: group[k], marked: true}
					}
				}
				return false
			}
			handed[i] = true
			s.inFlight.Add(1)
			go func() {
				defer s.inFlight.Done()
				defer func() { <-e.sem }()
				// The limiter paces the call itself; a stop or a halt while
				// waiting means it was never made.
				if err := e.limiter.Wait(ctx, mc.appID, lane); err != nil || s.halt.Load() {
					out <- result{row: r, marked: true}
					return
				}
				// The call runs to its end even if the instance is told to
				// stop: its result is what the row needs.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.o.SendTimeout)
				defer cancel()
				res := result{row: r, marked: true, attempted: true}
				res.msgID, res.err = e.send(sctx, c, msg, r, vals[r.MemberID])
				if res.err != nil {
					if _, st := e.classify(res, e.now()); st != stopNone {
						s.halt.Store(true)
					}
				}
				out <- res
			}()
		}
	}
	return true
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

// held is the set of rows a slice has claimed and not yet recorded.
type held struct {
	mu  sync.Mutex
	ids map[uint64]struct{}
}

func newHeld() *held { return &held{ids: map[uint64]struct{}{}} }

func (h *held) add(rows []Delivery) {
	h.mu.Lock()
	for _, r := range rows {
		h.ids[r.ID] = struct{}{}
	}
	h.mu.Unlock()
}

func (h *held) remove(rs []result) {
	h.mu.Lock()
	for _, r := range rs {
		delete(h.ids, r.row.ID)
	}
	h.mu.Unlock()
}

func (h *held) list() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]uint64, 0, len(h.ids))
	for id := range h.ids {
		out = append(out, id)
	}
	return out
}

// renewLease keeps the leases of the rows a slice holds alive while it
// works (by primary key: the rows are known); the returned func stops it.
func (e *Engine) renewLease(ctx context.Context, owner string, h *held) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(e.o.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				ids := h.list()
				for start := 0; start < len(ids); start += 1000 {
					_ = e.db.WithContext(ctx).Model(&Delivery{}).
						Where("id IN ? AND lease_owner = ? AND status IN ?", ids[start:min(start+1000, len(ids))], owner,
							[]string{DeliveryClaimed, DeliverySending}).
						Update("lease_until", e.now().Add(e.o.Lease)).Error
				}
			}
		}
	}()
	return func() { close(done) }
}

// outcome is what a result does to its row; results with equal outcomes
// are written by one statement.
type outcome struct {
	status, reason string
	errcode        int
	retryAt        time.Time // pending: back in the queue at this time
	giveBackGrant  bool      // a spent subscription grant is returned
	notSent        bool      // WeChat did not take it: the attempt does not count
}

// stop says what a result means beyond its row.
type stop int

const (
	stopNone     stop = iota
	stopQuota         // the account's daily quota is spent (45009)
	stopTemplate      // the template does not exist (40037): the campaign cannot work
	stopAccount       // the account may not send at all (48001, unknown merchant)
)

// classify maps a send's result to the row's next state.
func (e *Engine) classify(r result, now time.Time) (outcome, stop) {
	code := wechat.ErrCode(r.err)
	// notSent returns the row to the queue as if WeChat had not been asked.
	notSent := func(s stop) (outcome, stop) {
		return outcome{status: DeliveryPending, errcode: code, retryAt: now, giveBackGrant: true, notSent: true}, s
	}
	switch {
	case !r.marked:
		// Still only claimed: back to the queue as it was.
		return outcome{status: DeliveryPending, retryAt: now}, stopNone
	case !r.attempted:
		return notSent(stopNone)
	case r.err == nil:
		return outcome{status: DeliverySent}, stopNone
	case errors.Is(r.err, wechat.ErrQuotaExhausted):
		return notSent(stopQuota)
	case errors.Is(r.err, wechat.ErrRateLimited), errors.Is(r.err, wechat.ErrTransient), errors.Is(r.err, wechat.ErrTokenInvalid):
		if r.row.Attempts+1 >= e.o.MaxAttempts {
			return outcome{status: DeliveryFailed, reason: ReasonTransient, errcode: code}, stopNone
		}
		backoff := e.o.RetryBase << min(r.row.Attempts, 6)
		backoff += time.Duration(rand.Int64N(int64(backoff)/2 + 1)) // jitter: retries do not arrive together
		return outcome{status: DeliveryPending, reason: ReasonTransient, errcode: code, retryAt: now.Add(backoff).Truncate(time.Second),
			giveBackGrant: true}, stopNone
	case errors.Is(r.err, wechat.ErrNotFollower):
		return outcome{status: DeliverySkipped, reason: ReasonNotFollowing, errcode: code}, stopNone
	case errors.Is(r.err, wechat.ErrNoSubscription):
		return outcome{status: DeliverySkipped, reason: ReasonNoGrant, errcode: code}, stopNone
	case errors.Is(r.err, wechat.ErrOutOfWindow):
		return outcome{status: DeliverySkipped, reason: ReasonOutsideWindow, errcode: code}, stopNone
	case errors.Is(r.err, wechat.ErrInvalidTemplate):
		return outcome{status: DeliveryFailed, reason: ReasonBadTemplate, errcode: code}, stopTemplate
	case errors.Is(r.err, wechat.ErrInvalidOpenID):
		return outcome{status: DeliveryFailed, reason: ReasonInvalidOpenID, errcode: code}, stopNone
	case errors.Is(r.err, wechat.ErrUnauthorized), errors.Is(r.err, apperr.ErrNotFound):
		return notSent(stopAccount)
	}
	return outcome{status: DeliveryFailed, reason: ReasonRejected, errcode: code}, stopNone
}

func wechatWords(err error) string {
	if code := wechat.ErrCode(err); code != 0 {
		return fmt.Sprintf("%s (errcode %d)", wechat.Describe(code), code)
	}
	return err.Error()
}

// record writes the results: sent rows with their msgid, retries back to
// the queue with their next time, failures and skips with the reason, the
// day's quota, and gifts due. Every update is conditional on this
// instance's lease, so a row another instance took over is not touched.
func (e *Engine) record(ctx context.Context, c Campaign, mc merchantClock, results []result) error {
	if len(results) == 0 {
		return nil
	}
	now := e.now()
	owner := *results[0].row.LeaseOwner
	var gift *Gift
	if c.Gift != nil {
		var g Gift
		if json.Unmarshal([]byte(*c.Gift), &g) == nil && (g.Points > 0 || g.RewardID > 0) {
			gift = &g
		}
	}
	var sent []result
	groups := map[outcome][]uint64{}
	var grantsBack, unfollowed []uint64
	var stopped stop
	var stopErr error
	for _, r := range results {
		o, st := e.classify(r, now)
		if st != stopNone && stopped == stopNone {
			stopped, stopErr = st, r.err
		}
		if o.status == DeliverySent {
			sent = append(sent, r)
			continue
		}
		if o.giveBackGrant && c.Channel == ChannelMPSubscribe {
			grantsBack = append(grantsBack, r.row.MemberID)
		}
		if o.reason == ReasonNotFollowing {
			unfollowed = append(unfollowed, r.row.MemberID)
		}
		groups[o] = append(groups[o], r.row.ID)
	}
	exhausted := stopped == stopQuota
	local := now.In(mc.loc)
	day := local.Format(time.DateOnly)
	if len(sent) > 0 || exhausted {
		if err := e.ensureQuotaRow(ctx, c.MerchantID, day); err != nil {
			return err
		}
	}
	err := e.inTx(ctx, func(tx *gorm.DB) error {
		if len(sent) > 0 {
			if err := e.markSent(ctx, tx, owner, sent, gift != nil, now); err != nil {
				return err
			}
		}
		for o, ids := range groups {
			upd := map[string]any{"status": o.status, "reason": o.reason, "errcode": o.errcode, "lease_owner": nil,
				"lease_until": nil, "updated_at": now}
			if o.status == DeliveryPending {
				upd["next_attempt_at"] = o.retryAt
				upd["sent_at"] = nil // not sent: it must not count toward the frequency cap
				if o.notSent {
					upd["attempts"] = gorm.Expr("CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END")
				}
			}
			if o.status == DeliveryFailed || o.status == DeliverySkipped {
				upd["finished_at"] = now
				if o.status == DeliverySkipped {
					upd["sent_at"] = nil
				}
			}
			if err := tx.Model(&Delivery{}).Where("id IN ? AND lease_owner = ? AND status IN ?", ids, owner,
				[]string{DeliveryClaimed, DeliverySending}).Updates(upd).Error; err != nil {
				return fmt.Errorf("campaign %d: record: %w", c.ID, err)
			}
		}
		// One row per member in a campaign step, so one statement gives
		// each of them back the grant its send took.
		if len(grantsBack) > 0 {
			if err := tx.Exec("UPDATE member_subscription_grants SET remaining = remaining + 1, updated_at = ? "+
				"WHERE merchant_id = ? AND member_id IN ? AND template_id = ?", now, c.MerchantID, grantsBack, c.TemplateID).Error; err != nil {
				return fmt.Errorf("campaign %d: give back grants: %w", c.ID, err)
			}
		}
		// Last: the day's quota row is shared by every instance sending for
		// the account, so its lock is held as briefly as possible.
		if len(sent) > 0 || exhausted {
			upd := map[string]any{"used": gorm.Expr("used + ?", len(sent))}
			if exhausted {
				upd["exhausted_until"] = time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, mc.loc).UTC()
			}
			if err := tx.Table("wechat_send_quota").Where("merchant_id = ? AND day = ?", c.MerchantID, day).
				Updates(upd).Error; err != nil {
				return fmt.Errorf("campaign %d: quota: %w", c.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if exhausted {
		e.log.WarnContext(ctx, "campaign: daily quota exhausted; sends resume after local midnight",
			"merchant_id", c.MerchantID, "campaign_id", c.ID, "errcode", 45009)
	}
	for _, id := range unfollowed {
		if e.followers != nil {
			if err := e.followers.MarkUnfollowed(ctx, c.MerchantID, id); err != nil {
				e.log.WarnContext(ctx, "campaign: mark unfollowed", "member_id", id, "error", err)
			}
		}
	}
	switch stopped {
	case stopTemplate:
		return e.pause(ctx, c, fmt.Sprintf("WeChat says template %q does not exist on the account (errcode 40037)", c.TemplateID))
	case stopAccount:
		return e.pause(ctx, c, "WeChat refused the account: "+wechatWords(stopErr))
	}
	if gift != nil {
		for _, r := range sent {
			e.grantGift(ctx, c, r.row, *gift)
		}
	}
	attempted, failed := 0, 0
	for _, r := range results {
		if r.attempted {
			attempted++
		}
	}
	for o, ids := range groups {
		if o.status == DeliveryFailed {
			failed += len(ids)
		}
	}
	return e.autoPause(ctx, c, attempted, failed)
}

// ensureQuotaRow creates the account's quota row of the day, once; the
// sends then only update it (concurrent upserts of one row deadlock on
// MySQL).
func (e *Engine) ensureQuotaRow(ctx context.Context, merchantID uint64, day string) error {
	key := fmt.Sprintf("%d/%s", merchantID, day)
	e.mu.Lock()
	known := e.quotaRows[key]
	e.mu.Unlock()
	if known {
		return nil
	}
	q := "INSERT INTO wechat_send_quota (merchant_id, day, used) VALUES (?, ?, 0) ON CONFLICT (merchant_id, day) DO NOTHING"
	if e.mysql {
		q = "INSERT INTO wechat_send_quota (merchant_id, day, used) VALUES (?, ?, 0) ON DUPLICATE KEY UPDATE used = used"
	}
	if err := e.db.WithContext(ctx).Exec(q, merchantID, day).Error; err != nil {
		return fmt.Errorf("campaign: quota row: %w", err)
	}
	e.mu.Lock()
	e.quotaRows[key] = true
	e.mu.Unlock()
	return nil
}

// markSent writes sent rows with their msgids in one statement, and applies
// receipts that arrived before the msgid was stored.
func (e *Engine) markSent(ctx context.Context, tx *gorm.DB, owner string, sent []result, gift bool, now time.Time) error {
	var b strings.Builder
	args := make([]any, 0, 2*len(sent)+len(sent)+4)
	b.WriteString("UPDATE campaign_deliveries SET status = ?, reason = '', errcode = 0, lease_owner = NULL, lease_until = NULL, updated_at = ?, gift_state = ?, msg_id = CASE id")
	state := giftNone
	if gift {
		state = giftDue
	}
	args = append(args, DeliverySent, now, state)
	for _, r := range sent {
		b.WriteString(" WHEN ? THEN ?")
		var msgID any
		if r.msgID != 0 {
			msgID = r.msgID
		}
		args = append(args, r.row.ID, msgID)
	}
	b.WriteString(" END WHERE lease_owner = ? AND status = ? AND id IN (")
	args = append(args, owner, DeliverySending)
	for i, r := range sent {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?")
		args = append(args, r.row.ID)
	}
	b.WriteString(")")
	if err := tx.WithContext(ctx).Exec(b.String(), args...).Error; err != nil {
		return fmt.Errorf("campaign: mark sent: %w", err)
	}
	var msgIDs []int64
	for _, r := range sent {
		if r.msgID != 0 {
			msgIDs = append(msgIDs, r.msgID)
		}
	}
	if len(msgIDs) == 0 {
		return nil
	}
	var early []Receipt
	if err := tx.WithContext(ctx).Where("merchant_id = ? AND msg_id IN ?", sent[0].row.MerchantID, msgIDs).Find(&early).Error; err != nil {
		return fmt.Errorf("campaign: receipts: %w", err)
	}
	for _, rc := range early {
		if err := applyReceipt(ctx, tx, rc); err != nil {
			return err
		}
	}
	return nil
}

// applyReceipt moves the sent row of a receipt's msgid to delivered or
// failed.
func applyReceipt(ctx context.Context, tx *gorm.DB, rc Receipt) error {
	status, reason := DeliveryDelivered, ""
	switch rc.Outcome() {
	case OutcomeBlocked:
		status, reason = DeliveryFailed, ReasonUserBlock
	case OutcomeFailed:
		status, reason = DeliveryFailed, ReasonSystem
	}
	// idx_deliveries_msg (merchant_id, msg_id).
	return tx.WithContext(ctx).Model(&Delivery{}).
		Where("merchant_id = ? AND msg_id = ? AND status = ?", rc.MerchantID, rc.MsgID, DeliverySent).
		Updates(map[string]any{"status": status, "reason": reason, "finished_at": rc.OccurredAt, "updated_at": rc.ReceivedAt}).Error
}

// autoPause stops a campaign most of whose sends fail: something is wrong
// with it (a template's fields, the openids) that more sends will not fix.
// Each instance judges by the sends it made itself (a fair sample; no count
// over the whole campaign per batch).
func (e *Engine) autoPause(ctx context.Context, c Campaign, attempted, failed int) error {
	key := [2]uint64{c.ID, uint64(c.Step)}
	e.mu.Lock()
	t := e.tally[key]
	t[0] += attempted
	t[1] += failed
	e.tally[key] = t
	e.mu.Unlock()
	if t[0] >= e.o.AutoPauseMin && t[1]*100 >= e.o.AutoPausePct*t[0] {
		return e.pause(ctx, c, fmt.Sprintf("%d of %d sends failed (auto-pause at %d%%): check the template and the audience",
			t[1], t[0], e.o.AutoPausePct))
	}
	return nil
}

// grantGift gives a delivered member the campaign's gift. The key makes a
// repeat (a retry, another instance) harmless.
func (e *Engine) grantGift(ctx context.Context, c Campaign, d Delivery, g Gift) {
	if e.gifts == nil {
		return
	}
	key := fmt.Sprintf("campaign:%d:%d:%d", c.ID, d.Step, d.MemberID)
	if err := e.gifts.Grant(ctx, c.MerchantID, d.MemberID, g, key, "campaign "+c.Name); err != nil {
		e.log.WarnContext(ctx, "campaign: gift not granted yet", "campaign_id", c.ID, "member_id", d.MemberID, "error", err)
		return
	}
	_ = e.db.WithContext(ctx).Model(&Delivery{}).Where("id = ? AND gift_state = ?", d.ID, giftDue).
		Update("gift_state", giftGranted).Error
}

// grantDueGifts retries gifts that could not be granted when their message
// was sent.
func (e *Engine) grantDueGifts(ctx context.Context) error {
	var due []Delivery
	// idx_deliveries_gift (gift_state, id): due gifts are few.
	if err := e.db.WithContext(ctx).Where("gift_state = ? AND updated_at < ?", giftDue, e.now().Add(-time.Minute)).
		Order("id").Limit(100).Find(&due).Error; err != nil {
		return fmt.Errorf("campaign: due gifts: %w", err)
	}
	camps := map[uint64]*Campaign{}
	for _, d := range due {
		c := camps[d.CampaignID]
		if c == nil {
			cc, err := e.reload(ctx, d.CampaignID)
			if err != nil {
				return err
			}
			c = &cc
			camps[d.CampaignID] = c
		}
		var g Gift
		if c.Gift != nil && json.Unmarshal([]byte(*c.Gift), &g) == nil {
			e.grantGift(ctx, *c, d, g)
		}
	}
	return nil
}

// maybeComplete finishes a step when it is planned and nothing is left to
// send: a recurring campaign waits for its next run, any other completes.
// The campaign row is locked while the open rows are counted, so rows
// added meanwhile (care automations add to a running day's campaign under
// the same lock) are either counted or added after the decision, to a
// campaign they then reopen.
func (e *Engine) maybeComplete(ctx context.Context, c Campaign) error {
	var next *time.Time
	if c.ScheduleKind == ScheduleCron {
		mc, err := e.merchantClock(ctx, c.MerchantID)
		if err != nil {
			return err
		}
		t, err := nextCron(c.Cron, e.now(), mc.loc)
		if err != nil {
			return e.pause(ctx, c, err.Error())
		}
		next = &t
	}
	done := false
	err := e.inTx(ctx, func(tx *gorm.DB) error {
		cur, err := lockCampaign(ctx, tx, c.MerchantID, c.ID)
		if err != nil || cur.Status != StatusRunning || !cur.PlanDone {
			return err
		}
		var open []uint64
		// idx_deliveries_claim (campaign_id, status, id): an existence
		// probe that stops at the first open row (a COUNT would count a
		// million pending rows every round).
		if err := tx.Model(&Delivery{}).Select("id").
			Where("campaign_id = ? AND status IN ? AND step = ?", cur.ID, []string{DeliveryPending, DeliveryClaimed, DeliverySending}, cur.Step).
			Limit(1).Find(&open).Error; err != nil {
			return fmt.Errorf("campaign %d: completion: %w", cur.ID, err)
		}
		if len(open) > 0 {
			return nil
		}
		now := e.now()
		upd := map[string]any{"status": StatusCompleted, "completed_at": now, "updated_at": now}
		if next != nil {
			upd = map[string]any{"status": StatusScheduled, "next_run_at": *next, "updated_at": now}
		}
		if err := tx.Model(&Campaign{}).Where("id = ?", cur.ID).Updates(upd).Error; err != nil {
			return fmt.Errorf("campaign %d: complete: %w", cur.ID, err)
		}
		done = true
		return nil
	})
	if err == nil && done {
		e.log.InfoContext(ctx, "campaign: step finished", "merchant_id", c.MerchantID, "campaign_id", c.ID, "step", c.Step,
			"recurring", next != nil)
	}
	return err
}
