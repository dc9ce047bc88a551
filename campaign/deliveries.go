package campaign

// The delivery state machine. A campaign_deliveries row is one message of
// a campaign step to one member, and this file is the only code that
// writes the table. Planning inserts rows; every later change is a
// transition that names the states it moves rows from and, for rows
// leased to a worker, the lease owner, and returns the rows that actually
// moved. Callers act only on those: a worker whose lease was taken over
// finds that its rows did not move, and sends nothing for them.
//
//	             plan (insert)
//	   ┌───────────┼────────────┐
//	   ▼           ▼            ▼
//	holdout     skipped      pending ◀───────────────────────────────┐
//	                           │ claim (lease: owner, until)          │ settle: back to the queue
//	                           ▼                                      │ (retry later, or never called);
//	                        claimed ──── skip ──▶ skipped             │ sweep: claim expired
//	                           │ markSending (write-ahead: from here  │
//	                           ▼ WeChat may have the message)         │
//	                        sending ───────────────────────────────────┘
//	                           │  ├── settle ──▶ failed | skipped
//	                           │  └── sweep: lease expired ──▶ unknown (never resent on its own)
//	                           ▼ markSent: WeChat took it
//	                         sent ── receipt ──▶ delivered | failed
//
//	pending ── withdraw (its care rule changed, its notice kind switched off) ──▶ skipped
//	pending ── mergeNotice (another event of the same notice kind) ──▶ pending
//
// A sent row also carries its gift, if the campaign has one:
// none → due (markSent) → granted, or due again later (backoff), or
// gave up after the last attempt, with the reason kept.
//
// Exactly once, in one paragraph: a row is sent only by the worker whose
// markSending moved it from claimed to sending under its own lease, and
// only while that lease is live (lease.go); nothing moves a sending row
// back to pending except its own worker, which knows WeChat was not
// called; a lost worker's sending rows become unknown. So a member gets a
// campaign step's message at most once, and exactly once unless a worker
// died (or lost its lease) with the call in flight.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/db"
)

// DeliveryStatus is where a delivery row stands.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"   // planned, waiting for a worker (or for its retry time)
	DeliveryHoldout   DeliveryStatus = "holdout"   // the control group: never sent
	DeliverySkipped   DeliveryStatus = "skipped"   // not sent, for a reason (final)
	DeliveryClaimed   DeliveryStatus = "claimed"   // leased to a worker, not yet sent
	DeliverySending   DeliveryStatus = "sending"   // WeChat may have it
	DeliverySent      DeliveryStatus = "sent"      // WeChat took it
	DeliveryDelivered DeliveryStatus = "delivered" // WeChat's receipt says it arrived
	DeliveryFailed    DeliveryStatus = "failed"    // not sent, or the receipt says it did not arrive (final)
	DeliveryUnknown   DeliveryStatus = "unknown"   // its worker was lost while sending: WeChat may or may not have it
)

// DeliveryStatuses lists the delivery statuses.
var DeliveryStatuses = []DeliveryStatus{DeliveryPending, DeliveryHoldout, DeliverySkipped, DeliveryClaimed, DeliverySending,
	DeliverySent, DeliveryDelivered, DeliveryFailed, DeliveryUnknown}

// openStatuses are the statuses of rows a step still has to settle.
var openStatuses = []DeliveryStatus{DeliveryPending, DeliveryClaimed, DeliverySending}

// leased are the statuses of rows a worker holds.
var leased = []DeliveryStatus{DeliveryClaimed, DeliverySending}

// Reason says why a row was skipped or failed.
type Reason string

// Skip and failure reasons.
const (
	ReasonNone             Reason = ""
	ReasonNoOpenID         Reason = "no_openid"
	ReasonNotFollowing     Reason = "not_following"
	ReasonNoConsent        Reason = "no_consent"
	ReasonFrequencyCap     Reason = "frequency_cap"
	ReasonNoGrant          Reason = "no_subscription"
	ReasonOutsideWindow    Reason = "outside_window"
	ReasonInvalidOpenID    Reason = "invalid_openid"
	ReasonBadTemplate      Reason = "invalid_template"
	ReasonTransient        Reason = "wechat_unavailable"
	ReasonRejected         Reason = "wechat_rejected"
	ReasonUserBlock        Reason = "user_block"
	ReasonSystem           Reason = "system_failed"
	ReasonNoAccount        Reason = "no_account"
	ReasonWorkerLost       Reason = "worker_lost"        // unknown: the worker's lease expired while it was sending
	ReasonCareRuleChanged  Reason = "care_rule_changed"  // withdrawn: the rule now sends to another openid
	ReasonCareRuleDisabled Reason = "care_rule_disabled" // withdrawn: the rule was disabled
	ReasonCareRuleDeleted  Reason = "care_rule_deleted"  // withdrawn: the rule was deleted
	ReasonWonBack          Reason = "won_back"           // withdrawn: the member ordered before the win-back attempt went out
	ReasonNoticeOff        Reason = "notice_off"         // withdrawn: the merchant switched the notice kind off
	ReasonWinBackChanged   Reason = "win_back_changed"   // withdrawn: the win-back program was disabled, the attempt dropped, or the channel changed
)

// Reasons lists the reasons.
var Reasons = []Reason{ReasonNoOpenID, ReasonNotFollowing, ReasonNoConsent, ReasonFrequencyCap, ReasonNoGrant,
	ReasonOutsideWindow, ReasonInvalidOpenID, ReasonBadTemplate, ReasonTransient, ReasonRejected, ReasonUserBlock,
	ReasonSystem, ReasonNoAccount, ReasonWorkerLost, ReasonCareRuleChanged, ReasonCareRuleDisabled, ReasonCareRuleDeleted, ReasonWonBack, ReasonNoticeOff}

// GiftState is where a sent row's gift stands.
type GiftState int

// Gift states.
const (
	GiftNone    GiftState = 0 // no gift (or not sent)
	GiftDue     GiftState = 1 // to be granted at gift_next_at
	GiftGranted GiftState = 2
	GiftGaveUp  GiftState = 3 // every attempt failed; gift_error says why
)

// String names the state as the API shows it.
func (g GiftState) String() string {
	switch g {
	case GiftDue:
		return "due"
	case GiftGranted:
		return "granted"
	case GiftGaveUp:
		return "gave_up"
	}
	return "none"
}

// Delivery is a campaign_deliveries row.
type Delivery struct {
	ID            uint64 `gorm:"primaryKey"`
	MerchantID    uint64
	CampaignID    uint64
	Step          int
	MemberID      uint64
	OpenID        string `gorm:"column:openid"`
	Capped        bool
	Status        DeliveryStatus
	Reason        Reason
	ErrCode       int `gorm:"column:errcode"`
	Attempts      int
	NextAttemptAt *time.Time
	LeaseOwner    *string
	LeaseUntil    *time.Time
	MsgID         *int64
	SentAt        *time.Time
	FinishedAt    *time.Time
	GiftState     GiftState
	GiftAttempts  int
	GiftNextAt    *time.Time
	GiftError     string
	// NoticeKey names the event a service notice reports ('' for any
	// other delivery): with uk_deliveries, one notice per event.
	NoticeKey string
	// Vars are the event's message variables (service notices only).
	Vars      map[string]string `gorm:"serializer:json"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TableName implements gorm's tabler.
func (Delivery) TableName() string { return "campaign_deliveries" }

// deliveryRows writes campaign_deliveries: the transitions above, each a
// method.
type deliveryRows struct {
	db       *gorm.DB
	mysql    bool
	strategy ClaimStrategy // on MySQL; SQLite's write lock serialises claims
}

// ClaimStrategy is how instances claiming at once on MySQL take different
// rows (db.ClaimStrategy: the webhook worker claims the same ways).
type ClaimStrategy = db.ClaimStrategy

// The strategies.
const (
	ClaimSkipLocked  = db.ClaimSkipLocked
	ClaimUpdateLimit = db.ClaimUpdateLimit
)

// ClaimStrategies lists the strategies, the default first.
var ClaimStrategies = db.ClaimStrategies

// maxIDs bounds the id list of one statement.
const maxIDs = 1000

// byID is the table for a statement that names its rows by id. On MySQL
// the primary key is forced: with a status in the guard the optimizer may
// otherwise walk a status index instead of the id list (with
// eq_range_index_dive_limit=0 it prices a long id list from statistics)
// and lock every row of that status (seen: 18,096 pending rows locked to
// claim 200), deadlocking with every other worker.
func (s deliveryRows) byID(tx *gorm.DB) *gorm.DB {
	if s.mysql {
		return tx.Table("campaign_deliveries FORCE INDEX (PRIMARY)")
	}
	return tx.Model(&Delivery{})
}

// guard names the rows a transition may move: the ids asked for, in one
// of the from states, leased to owner when owner is set.
type guard struct {
	ids   []uint64
	from  []DeliveryStatus
	owner string
}

func (g guard) where(q *gorm.DB, ids []uint64) *gorm.DB {
	q = q.Where("id IN ? AND status IN ?", ids, g.from)
	if g.owner != "" {
		q = q.Where("lease_owner = ?", g.owner)
	}
	return q
}

// move is one guarded transition inside tx: it locks the rows that match
// the guard (in id order, so two transitions never wait on each other in
// opposite orders), sets set on them, and returns their ids. The UPDATE
// repeats the guard, so it can never move a row the guard does not allow;
// the lock makes the rows it found the rows it moved. (SQLite takes its
// write lock when the transaction begins: the same holds there.) set is
// written as given: no automatic updated_at.
func (s deliveryRows) move(ctx context.Context, tx *gorm.DB, g guard, set map[string]any) ([]uint64, error) {
	var moved []uint64
	for start := 0; start < len(g.ids); start += maxIDs {
		part := g.ids[start:min(start+maxIDs, len(g.ids))]
		var locked []uint64
		q := g.where(s.byID(tx.WithContext(ctx)), part)
		if s.mysql {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Order("id").Pluck("id", &locked).Error; err != nil {
			return nil, fmt.Errorf("lock deliveries: %w", err)
		}
		if len(locked) == 0 {
			continue
		}
		if err := g.where(s.byID(tx.WithContext(ctx)), locked).UpdateColumns(set).Error; err != nil {
			return nil, fmt.Errorf("move deliveries: %w", err)
		}
		moved = append(moved, locked...)
	}
	return moved, nil
}

// plan inserts planned rows. sel is a SELECT of (merchant_id,
// campaign_id, step, member_id, openid, capped, status, reason,
// created_at, updated_at) whose status is pending, holdout or skipped; a
// row its (campaign, step, member) already has is left as it is, so
// planning the same members twice (a crash, two instances) plans them
// once. It returns the rows inserted.
func (s deliveryRows) plan(ctx context.Context, tx *gorm.DB, sel string, args ...any) (int64, error) {
	q := "INSERT INTO campaign_deliveries (merchant_id, campaign_id, step, member_id, openid, capped, status, reason, created_at, updated_at) " + sel
	if s.mysql {
		q += " ON DUPLICATE KEY UPDATE campaign_deliveries.id = campaign_deliveries.id"
	} else {
		q += " ON CONFLICT (campaign_id, step, member_id, notice_key) DO NOTHING"
	}
	res := tx.WithContext(ctx).Exec(q, args...)
	if res.Error != nil {
		return 0, fmt.Errorf("plan deliveries: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// planNotice inserts the one row of a service notice, inside tx, the
// transaction of the event it reports: (nothing) → pending, or skipped
// when the member has no openid, does not follow, or withdrew consent to
// template messages (the same rules as a campaign's planning, skipExprs).
// A row the event's key already has is left as it is, so an event
// reported twice is one notice. It returns whether a row was inserted.
// The member's row is read by primary key; nothing but the new row is
// locked.
func (s deliveryRows) planNotice(ctx context.Context, tx *gorm.DB, c Campaign, memberID uint64, key string,
	vars map[string]string, now time.Time) (bool, error) {
	v, err := jsonValue(vars)
	if err != nil {
		return false, err
	}
	openid, status, reason := skipExprs(c)
	q := "INSERT INTO campaign_deliveries (merchant_id, campaign_id, step, member_id, openid, capped, status, reason, " +
		"notice_key, vars, created_at, updated_at) " +
		"SELECT m.merchant_id, ?, ?, m.id, COALESCE(" + openid + ", ''), ?, " + status + ", " + reason + ", ?, ?, ?, ? " +
		"FROM members m WHERE m.merchant_id = ? AND m.id = ? AND m.erased_at IS NULL"
	if s.mysql {
		q += " ON DUPLICATE KEY UPDATE campaign_deliveries.id = campaign_deliveries.id"
	} else {
		q += " ON CONFLICT (campaign_id, step, member_id, notice_key) DO NOTHING"
	}
	res := tx.WithContext(ctx).Exec(q, c.ID, c.Step, false, key, v, now, now, c.MerchantID, memberID)
	if res.Error != nil {
		return false, fmt.Errorf("campaign %d: plan notice %s: %w", c.ID, key, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// mergeNotice folds an event into the member's notice of the same kind
// that no worker has taken yet, inside tx, the event's transaction:
// pending → pending, its variables replaced by merge(old). The row is
// locked while it is read and updated only if still pending, so a row a
// claim took meanwhile is left alone (a claim's SKIP LOCKED passes over
// the locked row; a claim that got there first has moved it, and the
// caller then plans a new row). It returns whether a row took the event.
// uk_deliveries' (campaign_id, step, member_id) prefix finds the row.
func (s deliveryRows) mergeNotice(ctx context.Context, tx *gorm.DB, c Campaign, memberID uint64,
	merge func(old map[string]string) map[string]string, now time.Time) (bool, error) {
	var rows []Delivery
	q := tx.WithContext(ctx).Where("campaign_id = ? AND step = ? AND member_id = ? AND status = ? AND notice_key <> ''",
		c.ID, c.Step, memberID, DeliveryPending).Order("id DESC").Limit(1)
	if s.mysql {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.Find(&rows).Error; err != nil {
		return false, fmt.Errorf("campaign %d: pending notice: %w", c.ID, err)
	}
	if len(rows) == 0 {
		return false, nil
	}
	v, err := jsonValue(merge(rows[0].Vars))
	if err != nil {
		return false, err
	}
	res := s.byID(tx.WithContext(ctx)).Where("id = ? AND status = ?", rows[0].ID, DeliveryPending).
		UpdateColumns(map[string]any{"vars": v, "updated_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("campaign %d: merge notice: %w", c.ID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// claim leases up to n due pending rows of the campaign's step to owner
// until until: pending → claimed. It returns the rows claimed. held tells
// the rows owner already holds (claimed earlier and not yet moved on): the
// update-limit strategy tells its new rows from them.
//
// Either way a row moves only from pending, so two instances never claim
// the same row: with skip-locked, each locks its candidates, skipping rows
// another holds, and moves them by the guarded move; with update-limit,
// the UPDATE's own WHERE is the guard (a row another claim took meanwhile
// is no longer pending when the UPDATE reaches it, in READ COMMITTED). On
// SQLite the write lock serialises claims.
func (s deliveryRows) claim(ctx context.Context, c Campaign, owner string, n int, now, until time.Time,
	held func(id uint64) bool) ([]Delivery, error) {
	var rows []Delivery
	set := map[string]any{"status": DeliveryClaimed, "lease_owner": owner, "lease_until": until, "updated_at": now}
	due := "campaign_id = ? AND step = ? AND status = ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
	err := retryTx(ctx, s.db, func(tx *gorm.DB) error {
		rows = rows[:0]
		if s.mysql && s.strategy == ClaimUpdateLimit {
			// idx_deliveries_claim (campaign_id, status, id) serves both.
			res := tx.WithContext(ctx).Model(&Delivery{}).Where(due, c.ID, c.Step, DeliveryPending, now).
				Order("id").Limit(n).UpdateColumns(set)
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error
			}
			var mine []Delivery
			if err := tx.WithContext(ctx).Where("campaign_id = ? AND step = ? AND status = ? AND lease_owner = ?",
				c.ID, c.Step, DeliveryClaimed, owner).Order("id").Find(&mine).Error; err != nil {
				return err
			}
			for _, r := range mine {
				if !held(r.ID) {
					rows = append(rows, r)
				}
			}
			if int64(len(rows)) != res.RowsAffected {
				return fmt.Errorf("claimed %d rows, found %d new ones held by %s", res.RowsAffected, len(rows), owner)
			}
			return nil
		}
		// idx_deliveries_claim (campaign_id, status, id).
		q := tx.Model(&Delivery{}).Select("id").Where(due, c.ID, c.Step, DeliveryPending, now).Order("id").Limit(n)
		if s.mysql {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var ids []uint64
		if err := q.Find(&ids).Error; err != nil {
			return err
		}
		moved, err := s.move(ctx, tx, guard{ids: ids, from: []DeliveryStatus{DeliveryPending}}, set)
		if err != nil || len(moved) == 0 {
			return err
		}
		return tx.Where("id IN ?", moved).Order("id").Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("campaign %d: claim: %w", c.ID, err)
	}
	return rows, nil
}

// renew extends owner's lease on rows it still holds (claimed or sending)
// to until, and returns those rows: a row asked for and not returned was
// released by owner meanwhile or taken from it.
func (s deliveryRows) renew(ctx context.Context, ids []uint64, owner string, until time.Time) ([]uint64, error) {
	var renewed []uint64
	err := retryTx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		renewed, err = s.move(ctx, tx, guard{ids: ids, from: leased, owner: owner}, map[string]any{"lease_until": until})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("campaign: renew lease: %w", err)
	}
	return renewed, nil
}

// reserve stamps claimed rows with the time they are about to be sent, so
// the frequency cap counts them while they wait, and renews their lease
// until until (claimed → claimed).
func (s deliveryRows) reserve(ctx context.Context, tx *gorm.DB, ids []uint64, owner string, now, until time.Time) ([]uint64, error) {
	return s.move(ctx, tx, guard{ids: ids, from: []DeliveryStatus{DeliveryClaimed}, owner: owner},
		map[string]any{"sent_at": now, "lease_until": until, "updated_at": now})
}

// skip gives up claimed rows for a reason found before sending: claimed →
// skipped.
func (s deliveryRows) skip(ctx context.Context, tx *gorm.DB, ids []uint64, owner string, why Reason, now time.Time) ([]uint64, error) {
	return s.move(ctx, tx, guard{ids: ids, from: []DeliveryStatus{DeliveryClaimed}, owner: owner},
		map[string]any{"status": DeliverySkipped, "reason": why, "sent_at": nil, "lease_owner": nil, "lease_until": nil,
			"finished_at": now, "updated_at": now})
}

// markSending is the write-ahead mark of rows about to be sent, their
// lease renewed until until: claimed → sending. From here a lost worker
// leaves the row unknown, never pending.
func (s deliveryRows) markSending(ctx context.Context, tx *gorm.DB, ids []uint64, owner string, now, until time.Time) ([]uint64, error) {
	return s.move(ctx, tx, guard{ids: ids, from: []DeliveryStatus{DeliveryClaimed}, owner: owner},
		map[string]any{"status": DeliverySending, "sent_at": now, "lease_until": until, "attempts": gorm.Expr("attempts + 1"),
			"updated_at": now})
}

// settle writes the outcome of rows owner holds that were not sent, or
// whose send failed: claimed or sending → pending (again at o.retryAt),
// failed or skipped.
func (s deliveryRows) settle(ctx context.Context, tx *gorm.DB, ids []uint64, owner string, o outcome, now time.Time) ([]uint64, error) {
	set := map[string]any{"status": o.status, "reason": o.reason, "errcode": o.errcode, "lease_owner": nil,
		"lease_until": nil, "updated_at": now}
	switch o.status {
	case DeliveryPending:
		set["next_attempt_at"] = o.retryAt
		set["sent_at"] = nil // not sent: it must not count toward the frequency cap
		if o.notSent {
			set["attempts"] = gorm.Expr("CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END")
		}
	case DeliverySkipped:
		set["sent_at"] = nil
		set["finished_at"] = now
	case DeliveryFailed:
		set["finished_at"] = now
	default:
		return nil, fmt.Errorf("campaign: settle to %s is not a transition", o.status)
	}
	return s.move(ctx, tx, guard{ids: ids, from: leased, owner: owner}, set)
}

// sentRow is a row WeChat took, with the msgid it answered (0: none).
type sentRow struct {
	id    uint64
	msgID int64
}

// markSent records sends WeChat took, with their msgids, in one statement:
// sending → sent, the gift (when the campaign has one) due a minute later
// (the sender grants it at once; the retry loop picks up what it could
// not). Receipts that arrived before the msgid was stored are applied. It
// returns the rows that moved.
func (s deliveryRows) markSent(ctx context.Context, tx *gorm.DB, merchantID uint64, owner string, sent []sentRow, gift bool,
	now time.Time) ([]uint64, error) {
	g := guard{from: []DeliveryStatus{DeliverySending}, owner: owner}
	msgIDs := make(map[uint64]int64, len(sent))
	for _, r := range sent {
		g.ids = append(g.ids, r.id)
		msgIDs[r.id] = r.msgID
	}
	var moved []uint64
	q := g.where(s.byID(tx.WithContext(ctx)), g.ids)
	if s.mysql {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.Order("id").Pluck("id", &moved).Error; err != nil {
		return nil, fmt.Errorf("campaign: mark sent: %w", err)
	}
	if len(moved) == 0 {
		return nil, nil
	}
	state, giftAt := GiftNone, (*time.Time)(nil)
	if gift {
		at := now.Add(time.Minute)
		state, giftAt = GiftDue, &at
	}
	var b strings.Builder
	args := make([]any, 0, 3*len(moved)+8)
	table := "campaign_deliveries"
	if s.mysql {
		table += " FORCE INDEX (PRIMARY)"
	}
	b.WriteString("UPDATE " + table + " SET status = ?, reason = '', errcode = 0, lease_owner = NULL, lease_until = NULL, " +
		"updated_at = ?, gift_state = ?, gift_next_at = ?, msg_id = CASE id")
	args = append(args, DeliverySent, now, state, giftAt)
	var withMsg []int64
	for _, id := range moved {
		b.WriteString(" WHEN ? THEN ?")
		var v any
		if m := msgIDs[id]; m != 0 {
			v = m
			withMsg = append(withMsg, m)
		}
		args = append(args, id, v)
	}
	b.WriteString(" END WHERE lease_owner = ? AND status = ? AND id IN ?")
	args = append(args, owner, DeliverySending, moved)
	if err := tx.WithContext(ctx).Exec(b.String(), args...).Error; err != nil {
		return nil, fmt.Errorf("campaign: mark sent: %w", err)
	}
	if len(withMsg) == 0 {
		return moved, nil
	}
	var early []Receipt
	if err := tx.WithContext(ctx).Where("merchant_id = ? AND msg_id IN ?", merchantID, withMsg).Find(&early).Error; err != nil {
		return nil, fmt.Errorf("campaign: receipts: %w", err)
	}
	for _, rc := range early {
		if err := s.applyReceipt(ctx, tx, rc); err != nil {
			return nil, err
		}
	}
	return moved, nil
}

// applyReceipt moves the sent row of a receipt's msgid to delivered or
// failed: sent → delivered | failed.
func (s deliveryRows) applyReceipt(ctx context.Context, tx *gorm.DB, rc Receipt) error {
	status, reason := DeliveryDelivered, ReasonNone
	switch rc.Outcome() {
	case OutcomeBlocked:
		status, reason = DeliveryFailed, ReasonUserBlock
	case OutcomeFailed:
		status, reason = DeliveryFailed, ReasonSystem
	}
	// idx_deliveries_msg (merchant_id, msg_id).
	err := tx.WithContext(ctx).Model(&Delivery{}).
		Where("merchant_id = ? AND msg_id = ? AND status = ?", rc.MerchantID, rc.MsgID, DeliverySent).
		UpdateColumns(map[string]any{"status": status, "reason": reason, "finished_at": rc.OccurredAt, "updated_at": rc.ReceivedAt}).Error
	if err != nil {
		return fmt.Errorf("campaign: receipt %d: %w", rc.MsgID, err)
	}
	return nil
}

// sweep settles expired leases: rows claimed but never marked go back to
// the queue (claimed → pending); rows left sending (WeChat may have them)
// become unknown (sending → unknown) and are never resent automatically.
// It returns how many rows of each it moved.
//
// Expired rows are first found by a plain read (idx_deliveries_lease
// (status, lease_until); almost always none), then moved by id like every
// other transition, with the expiry repeated in the guard: an UPDATE
// driven by the lease index would lock the index before the rows, the
// opposite order of the workers' transitions, and deadlock with them.
func (s deliveryRows) sweep(ctx context.Context, now time.Time) (released, lost int64, err error) {
	expired := func(st DeliveryStatus, set map[string]any) (int64, error) {
		var n int64
		for {
			var ids []uint64
			if err := s.db.WithContext(ctx).Model(&Delivery{}).Where("status = ? AND lease_until < ?", st, now).
				Order("id").Limit(maxIDs).Pluck("id", &ids).Error; err != nil {
				return n, err
			}
			if len(ids) == 0 {
				return n, nil
			}
			res := s.byID(s.db.WithContext(ctx)).Where("id IN ? AND status = ? AND lease_until < ?", ids, st, now).
				UpdateColumns(set)
			if res.Error != nil {
				return n, res.Error
			}
			n += res.RowsAffected
			if len(ids) < maxIDs {
				return n, nil
			}
		}
	}
	released, err = expired(DeliveryClaimed, map[string]any{"status": DeliveryPending, "sent_at": nil, "lease_owner": nil,
		"lease_until": nil, "updated_at": now})
	if err != nil {
		return released, 0, fmt.Errorf("campaign: release expired claims: %w", err)
	}
	lost, err = expired(DeliverySending, map[string]any{"status": DeliveryUnknown, "reason": ReasonWorkerLost, "lease_owner": nil,
		"lease_until": nil, "updated_at": now})
	if err != nil {
		return released, lost, fmt.Errorf("campaign: orphaned sends: %w", err)
	}
	return released, lost, nil
}

// withdraw skips a campaign's rows no worker has taken yet: pending →
// skipped. Like claim, it moves only pending rows, so a row is either
// withdrawn or sent, never both.
func (s deliveryRows) withdraw(ctx context.Context, tx *gorm.DB, campaignID uint64, why Reason, now time.Time) (int64, error) {
	// idx_deliveries_claim (campaign_id, status, id).
	res := tx.WithContext(ctx).Model(&Delivery{}).Where("campaign_id = ? AND status = ?", campaignID, DeliveryPending).
		UpdateColumns(map[string]any{"status": DeliverySkipped, "reason": why, "finished_at": now, "updated_at": now})
	if res.Error != nil {
		return 0, fmt.Errorf("campaign %d: withdraw: %w", campaignID, res.Error)
	}
	return res.RowsAffected, nil
}

// withdrawMembers skips the rows of some members in some campaigns that no
// worker has taken yet: pending → skipped (a win-back attempt for a member
// who has ordered meanwhile). Like withdraw, it moves only pending rows.
func (s deliveryRows) withdrawMembers(ctx context.Context, tx *gorm.DB, campaignIDs, memberIDs []uint64, why Reason,
	now time.Time) (int64, error) {
	if len(campaignIDs) == 0 || len(memberIDs) == 0 {
		return 0, nil
	}
	// uk_deliveries (campaign_id, step, member_id).
	res := tx.WithContext(ctx).Model(&Delivery{}).
		Where("campaign_id IN ? AND member_id IN ? AND status = ?", campaignIDs, memberIDs, DeliveryPending).
		UpdateColumns(map[string]any{"status": DeliverySkipped, "reason": why, "finished_at": now, "updated_at": now})
	if res.Error != nil {
		return 0, fmt.Errorf("campaign: withdraw members: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// giftGranted records a granted gift: due → granted.
func (s deliveryRows) giftGranted(ctx context.Context, id uint64, now time.Time) error {
	err := s.db.WithContext(ctx).Model(&Delivery{}).Where("id = ? AND gift_state = ?", id, GiftDue).
		UpdateColumns(map[string]any{"gift_state": GiftGranted, "gift_next_at": nil, "gift_error": "", "updated_at": now}).Error
	if err != nil {
		return fmt.Errorf("campaign: gift of delivery %d: %w", id, err)
	}
	return nil
}

// giftFailed records a failed attempt at a gift: due again at next, or,
// when next is nil, given up (due → gave up) with why kept.
func (s deliveryRows) giftFailed(ctx context.Context, id uint64, attempts int, next *time.Time, why string, now time.Time) error {
	set := map[string]any{"gift_attempts": attempts, "gift_next_at": next, "gift_error": clip(why, 255), "updated_at": now}
	if next == nil {
		set["gift_state"] = GiftGaveUp
	}
	err := s.db.WithContext(ctx).Model(&Delivery{}).Where("id = ? AND gift_state = ?", id, GiftDue).UpdateColumns(set).Error
	if err != nil {
		return fmt.Errorf("campaign: gift of delivery %d: %w", id, err)
	}
	return nil
}

// retryTx runs fn in a transaction, again when it loses a deadlock or a
// lock wait to another instance. Every transaction given to it must be
// safe to rerun: its statements are guarded, or idempotent.
func retryTx(ctx context.Context, gdb *gorm.DB, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := range 5 {
		if err = gdb.WithContext(ctx).Transaction(fn); err == nil || !db.IsTransient(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1)*5*time.Millisecond + time.Duration(rand.IntN(5))*time.Millisecond)
	}
	return err
}
