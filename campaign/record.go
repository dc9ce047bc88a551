package campaign

// Recording: what each send's result does to its row (classify), the
// campaign (a template gone pauses it) and the account (45009 stops it
// until local midnight), written a chunk at a time through the state
// machine; the day's quota; and the gifts of sent rows, granted at once
// or retried later with backoff, fairly across merchants.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/wechat"
)

// outcome is what a result does to its row; results with equal outcomes
// are written by one statement.
type outcome struct {
	status        DeliveryStatus
	reason        Reason
	errcode       int
	retryAt       time.Time // pending: back in the queue at this time
	giveBackGrant bool      // a spent subscription grant is returned
	notSent       bool      // WeChat did not take it: the attempt does not count
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
		return outcome{status: DeliveryPending, reason: ReasonTransient, errcode: code,
			retryAt: now.Add(backoff(e.o.RetryBase, r.row.Attempts, 6)).Truncate(time.Second), giveBackGrant: true}, stopNone
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

// backoff is base doubled per attempt (at most 2^maxShift times), plus up
// to half of it again at random, so retries do not arrive together.
func backoff(base time.Duration, attempt, maxShift int) time.Duration {
	d := base << min(attempt, maxShift)
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

func wechatWords(err error) string {
	if code := wechat.ErrCode(err); code != 0 {
		return fmt.Sprintf("%s (errcode %d)", wechat.Describe(code), code)
	}
	return err.Error()
}

// recordPatience bounds how long the recorder keeps trying to write a
// chunk of results the database refuses (a restart, a failover).
const recordPatience = 30 * time.Second

// recordStream writes results as they arrive, recordChunk at a time or
// every 50 ms. Results are written even after the instance is told to
// stop: a call made and not recorded leaves its row unknown, and a row
// handed back and not recorded waits out its lease. While the database
// refuses the writes, the recorder keeps trying (and the sends wait for
// it, the results' buffer being full) for as long as the rows' lease can
// still hold them, recordPatience at most.
func (e *Engine) recordStream(ctx context.Context, c Campaign, mc merchantClock, results <-chan result, l *lease) error {
	ctx = context.WithoutCancel(ctx)
	patience := min(e.o.Lease, recordPatience)
	var errs []error
	var chunk []result
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		giveUp := time.Now().Add(patience)
		for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
			err := e.record(ctx, c, mc, l, chunk)
			if err == nil {
				break
			}
			if !errors.Is(err, errNotWritten) || time.Now().Add(wait).After(giveUp) {
				errs = append(errs, err)
				break
			}
			e.log.WarnContext(ctx, "campaign: results not written; trying again", "merchant_id", c.MerchantID,
				"campaign_id", c.ID, "rows", len(chunk), "error", err)
			time.Sleep(wait)
		}
		chunk = chunk[:0]
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r, ok := <-results:
			if !ok {
				flush()
				return errors.Join(errs...)
			}
			if chunk = append(chunk, r); len(chunk) >= recordChunk {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// errNotWritten marks a record that wrote nothing (its transaction
// rolled back), so it can be tried again whole. (Should a commit succeed
// and its answer be lost, the second try moves no row and only counts the
// quota twice: sends then stop early, never late.)
var errNotWritten = errors.New("campaign: results not written")

// record writes the results through the state machine, in one
// transaction: sent rows with their msgid, retries back to the queue with
// their next time, failures and skips with the reason, grants given back,
// the day's quota. Every transition is guarded by the slice's lease, so a
// row another instance took over is not touched; gifts are granted for
// the rows that moved to sent.
func (e *Engine) record(ctx context.Context, c Campaign, mc merchantClock, l *lease, results []result) error {
	if len(results) == 0 {
		return nil
	}
	ids := make([]uint64, len(results))
	for i, r := range results {
		ids[i] = r.row.ID
	}
	// The rows are let go once written, whatever happened to the write.
	l.begin(ids)
	defer l.end(ids, nil, time.Time{})
	now := e.now()
	gift := c.Gift != nil && (c.Gift.Points > 0 || c.Gift.RewardID > 0)
	var sent []sentRow
	sentRows := map[uint64]Delivery{}
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
			sent = append(sent, sentRow{id: r.row.ID, msgID: r.msgID})
			sentRows[r.row.ID] = r.row
			continue
		}
		// A grant is given back only if this slice spent it (marked the
		// row) and WeChat did not take the message.
		if o.giveBackGrant && r.marked && c.Channel == ChannelMPSubscribe {
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
			return fmt.Errorf("%w: %w", errNotWritten, err)
		}
	}
	var delivered []uint64
	err := retryTx(ctx, e.db, func(tx *gorm.DB) error {
		delivered = nil
		if e.hooks.record != nil {
			if err := e.hooks.record(); err != nil {
				return err
			}
		}
		if len(sent) > 0 {
			var err error
			if delivered, err = e.rows.markSent(ctx, tx, c.MerchantID, l.owner, sent, gift, now); err != nil {
				return err
			}
		}
		for o, rowIDs := range groups {
			if _, err := e.rows.settle(ctx, tx, rowIDs, l.owner, o, now); err != nil {
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
		// the account, so its lock is held as briefly as possible. Every
		// message WeChat took counts, whoever now holds its row.
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
		return fmt.Errorf("%w: %w", errNotWritten, err)
	}
	if len(delivered) < len(sent) {
		e.log.WarnContext(ctx, "campaign: WeChat took messages whose rows another instance had taken over; they stay as that instance left them",
			"merchant_id", c.MerchantID, "campaign_id", c.ID, "rows", len(sent)-len(delivered))
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
	if gift {
		var failed giftFailures
		for _, id := range delivered {
			row := sentRows[id]
			row.GiftState = GiftDue
			failed.add(e.grantGift(ctx, c, row))
		}
		failed.log(ctx, e.log, c)
	}
	attempted, failedSends := 0, 0
	for _, r := range results {
		if r.attempted {
			attempted++
		}
	}
	for o, rowIDs := range groups {
		if o.status == DeliveryFailed {
			failedSends += len(rowIDs)
		}
	}
	return e.autoPause(ctx, c, attempted, failedSends)
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

// giftOutcome is how a gift attempt ended.
type giftOutcome int

const (
	giftOK giftOutcome = iota
	giftLater
	giftGivenUp
)

// grantGift tries to give a sent row's due gift once. The key makes a
// repeat (a retry, another instance) harmless. A failure is recorded on
// the row: due again after a backoff, or given up after the last attempt
// or when the gift cannot ever be given (its reward or member is gone),
// with the reason kept for the deliveries list.
func (e *Engine) grantGift(ctx context.Context, c Campaign, d Delivery) giftResult {
	if e.gifts == nil {
		return giftResult{}
	}
	key := fmt.Sprintf("campaign:%d:%d:%d", c.ID, d.Step, d.MemberID)
	now := e.now()
	err := errNoGift
	if c.Gift != nil {
		err = e.gifts.Grant(ctx, c.MerchantID, d.MemberID, *c.Gift, key, "campaign "+c.Name)
	}
	if err == nil {
		if err := e.rows.giftGranted(ctx, d.ID, now); err != nil {
			return giftResult{outcome: giftLater, err: err}
		}
		return giftResult{}
	}
	attempts := d.GiftAttempts + 1
	var next *time.Time
	res := giftResult{outcome: giftGivenUp, err: err}
	if attempts < e.o.GiftAttempts && !errors.Is(err, apperr.ErrNotFound) {
		at := now.Add(min(backoff(e.o.GiftRetryBase, attempts-1, 10), 6*time.Hour))
		next, res.outcome = &at, giftLater
	}
	if werr := e.rows.giftFailed(ctx, d.ID, attempts, next, clientWords(err), now); werr != nil {
		e.log.WarnContext(ctx, "campaign: gift attempt not recorded", "campaign_id", c.ID, "member_id", d.MemberID, "error", werr)
	}
	return res
}

// clientWords is an error as a merchant should read it: the message of
// an apperr.Error, else the error's text.
func clientWords(err error) string {
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return ae.Msg
	}
	return err.Error()
}

// errNoGift gives up the due gifts of a campaign whose gift was removed
// (a care rule edited after its messages were sent).
var errNoGift = apperr.New(apperr.ErrNotFound, "the campaign no longer has a gift")

// giftResult is how one gift attempt ended.
type giftResult struct {
	outcome giftOutcome
	err     error
}

// giftFailures tallies a round's failed gifts of one campaign, so a
// reward that is out of stock costs one log line per round, not one per
// member.
type giftFailures struct {
	later, gaveUp int
	first         error
}

func (f *giftFailures) add(r giftResult) {
	switch r.outcome {
	case giftLater:
		f.later++
	case giftGivenUp:
		f.gaveUp++
	default:
		return
	}
	if f.first == nil {
		f.first = r.err
	}
}

func (f *giftFailures) log(ctx context.Context, log *slog.Logger, c Campaign) {
	if f.later+f.gaveUp == 0 {
		return
	}
	log.WarnContext(ctx, "campaign: gifts not granted", "merchant_id", c.MerchantID, "campaign_id", c.ID,
		"retry_later", f.later, "gave_up", f.gaveUp, "error", f.first)
}

// grantDueGifts retries gifts that could not be granted when their message
// was sent, whose time has come. The round is shared fairly: each
// merchant with due gifts gets an equal part of GiftBatch (at least one),
// oldest first, so one merchant's failing gifts (a reward sold out) do not
// hold back another's.
func (e *Engine) grantDueGifts(ctx context.Context) error {
	now := e.now()
	var merchants []uint64
	// idx_deliveries_gift (gift_state, merchant_id, gift_next_at): one
	// probe per merchant with due gifts.
	if err := e.db.WithContext(ctx).Model(&Delivery{}).Select("merchant_id").
		Where("gift_state = ? AND gift_next_at <= ?", GiftDue, now).Group("merchant_id").
		Order("MIN(gift_next_at)").Limit(e.o.GiftBatch).Pluck("merchant_id", &merchants).Error; err != nil {
		return fmt.Errorf("campaign: merchants with due gifts: %w", err)
	}
	if len(merchants) == 0 {
		return nil
	}
	share := max(1, e.o.GiftBatch/len(merchants))
	camps := map[uint64]*Campaign{}
	failed := map[uint64]*giftFailures{}
	var errs []error
	for _, merchantID := range merchants {
		var due []Delivery
		if err := e.db.WithContext(ctx).Where("gift_state = ? AND merchant_id = ? AND gift_next_at <= ?", GiftDue, merchantID, now).
			Order("gift_next_at, id").Limit(share).Find(&due).Error; err != nil {
			errs = append(errs, fmt.Errorf("campaign: due gifts of merchant %d: %w", merchantID, err))
			continue
		}
		for _, d := range due {
			c := camps[d.CampaignID]
			if c == nil {
				cc, err := e.reload(ctx, d.CampaignID)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				c = &cc
				camps[d.CampaignID] = c
				failed[d.CampaignID] = &giftFailures{}
			}
			failed[d.CampaignID].add(e.grantGift(ctx, *c, d))
		}
	}
	for id, f := range failed {
		f.log(ctx, e.log, *camps[id])
	}
	return errors.Join(errs...)
}
