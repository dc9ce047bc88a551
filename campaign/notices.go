package campaign

// Service notices: template messages that tell a member what just
// happened to their account (points earned, redeemed or reversed, a tier
// change, a coupon issued). Each kind a merchant switches on is a service
// campaign that never completes (campaigns.notice_kind), and each notice
// is one of its delivery rows, written by Notices.Emit inside the
// transaction of the event it reports: points, tiers and coupons emit
// their events through the event package's Emitter (the same call that
// feeds the webhook outbox), so the notice exists exactly when the change
// does. The engine then sends the rows like any service campaign: the
// service rate lane, no frequency cap, no quiet hours, the lease and the
// write-ahead mark, receipts.
//
// One notice per event is a constraint: the row's notice_key names the
// event (the first ledger entry of the change, the tier history row, the
// coupon) and is part of uk_deliveries, so an event reported twice is
// still one row; a retried request (the same idempotency key) emits no
// event at all. One change of a member's points (an order of many lines)
// is one event, so one notice.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// NoticeKind is a kind of service notice.
type NoticeKind string

// Notice kinds.
const (
	NoticePointsEarned   NoticeKind = "points_earned"
	NoticePointsRedeemed NoticeKind = "points_redeemed"
	NoticePointsReversed NoticeKind = "points_reversed"
	NoticeTierUp         NoticeKind = "tier_up"
	NoticeTierDown       NoticeKind = "tier_down"
	NoticeCouponIssued   NoticeKind = "coupon_issued"
	NoticeCouponExpiring NoticeKind = "coupon_expiring" // an issued coupon expires within CouponExpiringWindow
	NoticePointsExpiring NoticeKind = "points_expiring" // points expire within the rules' expiring_soon_days
)

// CouponExpiringWindow is how long before its expiry a coupon's reminder
// is sent.
const CouponExpiringWindow = 3 * 24 * time.Hour

// NoticeKinds lists the notice kinds, in the order the settings show them.
var NoticeKinds = []NoticeKind{NoticePointsEarned, NoticePointsRedeemed, NoticePointsReversed, NoticeTierUp, NoticeTierDown,
	NoticeCouponIssued, NoticeCouponExpiring, NoticePointsExpiring}

// noticeVariables are the event variables each kind's message may use,
// besides the member variables. {{time}} is when the event happened, in
// the merchant's time zone.
var noticeVariables = map[NoticeKind][]string{
	NoticePointsEarned:   {"points_change", "balance", "reason", "time"},
	NoticePointsRedeemed: {"points_change", "balance", "reason", "time"},
	NoticePointsReversed: {"points_change", "balance", "reason", "time"},
	NoticeTierUp:         {"tier_from", "tier_to", "time"},
	NoticeTierDown:       {"tier_from", "tier_to", "time"},
	NoticeCouponIssued:   {"coupon_name", "coupon_code", "coupon_expires", "time"},
	NoticeCouponExpiring: {"coupon_name", "coupon_code", "coupon_expires", "time"},
	NoticePointsExpiring: {"points_expiring", "expires_on", "time"},
}

// noticeOff is the pause reason of a kind the merchant switched off (any
// other pause, such as the engine's auto-pause, keeps collecting notices).
const noticeOff = "switched off in the notice settings"

// Notices keeps the merchant's notice settings and turns events into
// notices. It implements event.Emitter.
type Notices struct {
	db       *gorm.DB
	engine   *Engine
	wx       WeChat
	now      func() time.Time
	points   ExpiringPoints  // nil: no points_expiring notices
	coupons  ExpiringCoupons // nil: no coupon_expiring notices
	pageSize int
}

// UseExpiring sets where the expiry reminders find their members;
// *points.Service satisfies both. Call before RunExpiring.
func (n *Notices) UseExpiring(p ExpiringPoints, c ExpiringCoupons) { n.points, n.coupons = p, c }

// NewNotices returns the notices of the engine's database.
func NewNotices(e *Engine) *Notices {
	return &Notices{db: e.db, engine: e, wx: e.wx, now: e.now, pageSize: 500}
}

// NoticeSetting is one kind's settings as the API shows them.
type NoticeSetting struct {
	Kind NoticeKind `json:"kind"`
	// Enabled: notices of this kind are produced. A kind without a
	// template cannot be switched on.
	Enabled    bool              `json:"enabled"`
	TemplateID string            `json:"template_id"`
	Fields     map[string]string `json:"fields"`
	URL        string            `json:"url"`
	// Paused says why the engine stopped sending (notices are kept and
	// sent once it is switched on again); "" when it is not paused.
	Paused     string   `json:"paused"`
	CampaignID uint64   `json:"campaign_id"` // its delivery report (0: never configured)
	Variables  []string `json:"variables"`   // the {{variables}} its fields may use
	// SuggestedFields is a mapping for WeChat's classic template layout
	// (first, keyword1-3, remark) the panel offers as a start.
	SuggestedFields map[string]string `json:"suggested_fields"`
}

// SuggestedNoticeFields maps the classic template layout (first,
// keyword1: member, keyword2: what happened, keyword3: when, remark) for
// each kind: the panel's starting point and the sandbox's configuration.
func SuggestedNoticeFields(k NoticeKind) map[string]string {
	what := map[NoticeKind][2]string{
		NoticePointsEarned:   {"积分到账 {{points_change}}", "{{reason}}：{{points_change}} 积分，当前积分 {{balance}}"},
		NoticePointsRedeemed: {"积分已使用 {{points_change}}", "{{reason}}：{{points_change}} 积分，剩余积分 {{balance}}"},
		NoticePointsReversed: {"积分变动 {{points_change}}", "{{reason}}：{{points_change}} 积分，当前积分 {{balance}}"},
		NoticeTierUp:         {"恭喜您升级为{{tier_to}}", "会员等级：{{tier_from|普通会员}} → {{tier_to}}"},
		NoticeTierDown:       {"您的会员等级已调整", "会员等级：{{tier_from}} → {{tier_to|普通会员}}"},
		NoticeCouponIssued:   {"优惠券已到账", "{{coupon_name}}，券码 {{coupon_code}}，有效期至 {{coupon_expires}}"},
		NoticeCouponExpiring: {"您的优惠券即将过期", "{{coupon_name}}，券码 {{coupon_code}}，{{coupon_expires}} 到期"},
		NoticePointsExpiring: {"您有积分即将过期", "{{points_expiring}} 积分将于 {{expires_on}} 起陆续过期"},
	}[k]
	return map[string]string{"first": what[0], "keyword1": "{{name|会员}}", "keyword2": what[1], "keyword3": "{{time}}",
		"remark": "{{merchant}}"}
}

// EnsureDefaults configures, for each kind the merchant has never
// configured, the given template and its suggested fields, switched on (a
// sandbox merchant's notices work out of the box). A kind configured
// before, even switched off, is left as it is.
func (n *Notices) EnsureDefaults(ctx context.Context, merchantID uint64, templates map[NoticeKind]string) error {
	for _, k := range NoticeKinds {
		t := templates[k]
		if t == "" {
			continue
		}
		var have int64
		if err := n.db.WithContext(ctx).Model(&Campaign{}).Where("merchant_id = ? AND notice_kind = ?", merchantID, k).
			Count(&have).Error; err != nil {
			return fmt.Errorf("campaign: notice %s: %w", k, err)
		}
		if have > 0 {
			continue
		}
		if _, err := n.Save(ctx, merchantID, k, NoticeInput{Enabled: true, TemplateID: t, Fields: SuggestedNoticeFields(k)}); err != nil {
			return fmt.Errorf("campaign: default notice %s: %w", k, err)
		}
	}
	return nil
}

// NoticeInput is a kind's new settings.
type NoticeInput struct {
	Enabled    bool              `json:"enabled"`
	TemplateID string            `json:"template_id"`
	Fields     map[string]string `json:"fields"`
	URL        string            `json:"url"`
}

var errNoticeKind = apperr.New(apperr.ErrNotFound, "no such notice kind")

func (k NoticeKind) valid() bool { return slices.Contains(NoticeKinds, k) }

func (k NoticeKind) variables() []string {
	return append(slices.Clone(knownVariables), noticeVariables[k]...)
}

// List returns the merchant's settings of every kind.
func (n *Notices) List(ctx context.Context, merchantID uint64) ([]NoticeSetting, error) {
	var cs []Campaign
	if err := n.db.WithContext(ctx).Where("merchant_id = ? AND notice_kind IS NOT NULL", merchantID).Find(&cs).Error; err != nil {
		return nil, fmt.Errorf("campaign: notices: %w", err)
	}
	out := make([]NoticeSetting, 0, len(NoticeKinds))
	for _, k := range NoticeKinds {
		i := slices.IndexFunc(cs, func(c Campaign) bool { return *c.NoticeKind == k })
		if i < 0 {
			out = append(out, NoticeSetting{Kind: k, Fields: map[string]string{}, Variables: k.variables(),
				SuggestedFields: SuggestedNoticeFields(k)})
			continue
		}
		out = append(out, settingOf(cs[i]))
	}
	return out, nil
}

func settingOf(c Campaign) NoticeSetting {
	s := NoticeSetting{Kind: *c.NoticeKind, Enabled: noticeOn(c), TemplateID: c.TemplateID, Fields: c.Message.Fields,
		URL: c.Message.URL, CampaignID: c.ID, Variables: c.NoticeKind.variables(), SuggestedFields: SuggestedNoticeFields(*c.NoticeKind)}
	if s.Fields == nil {
		s.Fields = map[string]string{}
	}
	if s.Enabled && c.Status == StatusPaused {
		s.Paused = c.PauseReason
	}
	return s
}

// noticeOn reports whether a kind's campaign collects notices: running,
// or paused by anything but the merchant.
func noticeOn(c Campaign) bool {
	return c.Status == StatusRunning || c.Status == StatusPaused && c.PauseReason != noticeOff
}

// Save replaces a kind's settings. Switching a kind on needs a template of
// the account and at least one mapped field; switching it off withdraws
// the notices not sent yet. Switching on a kind the engine paused resumes
// it.
func (n *Notices) Save(ctx context.Context, merchantID uint64, kind NoticeKind, in NoticeInput) (NoticeSetting, error) {
	if !kind.valid() {
		return NoticeSetting{}, errNoticeKind
	}
	in.TemplateID = strings.TrimSpace(in.TemplateID)
	v := &apperr.Validation{}
	if in.Enabled && in.TemplateID == "" {
		v.Add("template_id", "is required to switch the notice on (a notice kind stays off until it has a template)")
	}
	if len(in.TemplateID) > 128 {
		v.Add("template_id", "must be at most 128 characters")
	}
	switch {
	case in.TemplateID != "" && len(in.Fields) == 0:
		v.Add("fields", "must fill at least one template field")
	case in.TemplateID == "" && (len(in.Fields) > 0 || in.URL != ""):
		v.Add("template_id", "is required to map fields (the fields are the template's)")
	}
	allowed := kind.variables()
	checkText := func(field, text string) {
		if utf8.RuneCountInString(text) > 200 {
			v.Add(field, "must be at most 200 characters")
		}
		for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
			if !slices.Contains(allowed, m[1]) {
				v.Add(field, fmt.Sprintf("uses {{%s}}, which this notice does not have (%s)", m[1], strings.Join(allowed, ", ")))
			}
		}
		if strings.Count(text, "{{") != len(placeholder.FindAllString(text, -1)) {
			v.Add(field, "has a malformed {{variable}}: write {{name}}, or {{name|fallback}}")
		}
	}
	for k, text := range in.Fields {
		checkText("fields."+k, text)
	}
	checkText("url", in.URL)
	if in.URL != "" && !strings.HasPrefix(in.URL, "https://") && !strings.HasPrefix(in.URL, "http://") {
		v.Add("url", "must be an http(s) address")
	}
	if v.Err() == nil && in.TemplateID != "" {
		if err := n.checkTemplate(ctx, merchantID, in, v); err != nil {
			return NoticeSetting{}, err
		}
	}
	if err := v.Err(); err != nil {
		return NoticeSetting{}, err
	}
	var out Campaign
	err := retryTx(ctx, n.db, func(tx *gorm.DB) error {
		now := n.now()
		var c Campaign
		err := tx.WithContext(ctx).Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("merchant_id = ? AND notice_kind = ?", merchantID, kind).Take(&c).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			k := kind
			c = Campaign{MerchantID: merchantID, Name: "service notice: " + string(kind), Kind: KindService,
				Status: StatusPaused, PauseReason: noticeOff, Channel: ChannelTemplate, ScheduleKind: ScheduleNow,
				Step: 1, StepStartedAt: &now, PlanDone: true, NoticeKind: &k, CreatedAt: now, UpdatedAt: now}
			// uk_campaigns_notice: of two first saves, one creates the row
			// and the other's retry finds it.
			if err := tx.WithContext(ctx).Create(&c).Error; err != nil {
				return fmt.Errorf("campaign: create notice %s: %w", kind, err)
			}
		case err != nil:
			return fmt.Errorf("campaign: notice %s: %w", kind, err)
		}
		upd := map[string]any{"template_id": in.TemplateID, "message": Message{Fields: in.Fields, URL: in.URL}, "updated_at": now}
		if in.Enabled {
			upd["status"], upd["pause_reason"] = StatusRunning, ""
		} else {
			upd["status"], upd["pause_reason"] = StatusPaused, noticeOff
			if _, err := n.engine.rows.withdraw(ctx, tx, c.ID, ReasonNoticeOff, now); err != nil {
				return err
			}
		}
		if err := tx.WithContext(ctx).Model(&Campaign{}).Where("id = ?", c.ID).Updates(upd).Error; err != nil {
			return fmt.Errorf("campaign: save notice %s: %w", kind, err)
		}
		if err := tx.WithContext(ctx).Where("id = ?", c.ID).Take(&out).Error; err != nil {
			return fmt.Errorf("campaign: notice %s: %w", kind, err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "notice.update", TargetType: "campaign",
			TargetIDs: []uint64{c.ID}, Before: noticeSummary(c), After: noticeSummary(out)}, now)
	})
	if err != nil {
		if db.IsDuplicate(err) {
			// Another first save created the row meanwhile: this one now
			// finds it (uk_campaigns_notice).
			return n.Save(ctx, merchantID, kind, in)
		}
		return NoticeSetting{}, err
	}
	return settingOf(out), nil
}

func noticeSummary(c Campaign) map[string]any {
	return map[string]any{"kind": c.NoticeKind, "enabled": noticeOn(c), "template_id": c.TemplateID, "fields": c.Message.Fields,
		"url": c.Message.URL}
}

// checkTemplate asks WeChat whether the template exists and has the
// mapped fields (as the campaign composer does).
func (n *Notices) checkTemplate(ctx context.Context, merchantID uint64, in NoticeInput, v *apperr.Validation) error {
	templates, err := n.wx.Templates(ctx, merchantID)
	if err != nil {
		return fmt.Errorf("%w: %w", apperr.New(apperr.ErrUnavailable, "WeChat could not list the templates: %s", wechatWords(err)), err)
	}
	i := slices.IndexFunc(templates, func(t wechat.Template) bool { return t.ID == in.TemplateID })
	if i < 0 {
		v.Add("template_id", fmt.Sprintf("%q is not a template of this account", in.TemplateID))
		return nil
	}
	for k := range in.Fields {
		if !slices.Contains(templates[i].Fields, k) {
			v.Add("fields."+k, fmt.Sprintf("is not a field of template %q (fields: %s)", in.TemplateID,
				strings.Join(templates[i].Fields, ", ")))
		}
	}
	return nil
}

// notice is one notice an event asks for.
type notice struct {
	kind     NoticeKind
	memberID uint64
	key      string // the event's name: uk_deliveries makes it one notice
	vars     map[string]string
	// merge, when set, folds this notice into a waiting one of the same
	// kind: it returns the waiting notice's new variables.
	merge func(old map[string]string) map[string]string
}

// mergePoints folds a points notice into a waiting one: the changes add
// up, the balance and time are the newest, and the reasons are listed.
func mergePoints(x notice) func(old map[string]string) map[string]string {
	return func(old map[string]string) map[string]string {
		out := maps.Clone(x.vars)
		a, _ := strconv.ParseInt(old["points_change"], 10, 64)
		b, _ := strconv.ParseInt(x.vars["points_change"], 10, 64)
		out["points_change"] = strconv.FormatInt(a+b, 10)
		if a+b > 0 {
			out["points_change"] = "+" + out["points_change"]
		}
		if r := old["reason"]; r != "" && r != x.vars["reason"] {
			out["reason"] = clip(r+"、"+x.vars["reason"], 60)
		}
		return out
	}
}

// timeVar prefixes a variable holding a UTC time (RFC 3339): the sender
// shows it in the merchant's time zone, under the name without the prefix
// (see localVars).
const timeVar = "@"

// noticeReason says in the member's words (Chinese, as the member
// centre's ledger does) what a ledger entry was for: the ledger's own
// reason is written for staff ("order NT-1", "bonus: first_follow"). A
// staff adjustment keeps the reason staff gave.
func noticeReason(e event.PointsEntry) string {
	switch e.RefType {
	case "order":
		return "消费（订单 " + e.RefID + "）"
	case "refund":
		return "退款扣回"
	case "checkin":
		return "每日签到"
	case "bonus":
		return "奖励积分"
	case "lot":
		return "积分过期"
	case "reward":
		if name, ok := strings.CutPrefix(e.Reason, "redeemed "); ok {
			return "兑换「" + name + "」"
		}
		return "积分兑换"
	case "redemption":
		return "兑换取消退回"
	case "gift":
		return "赠送积分"
	case "referral":
		return "邀请好友奖励"
	}
	return e.Reason
}

// noticesOf lists the notices an event asks for (none for most events).
func noticesOf(ev event.Event, now time.Time) []notice {
	at := now.UTC().Format(time.RFC3339)
	switch d := ev.Data.(type) {
	case event.Points:
		// One notice per kind of change in the save: an order of many lines
		// is one change; a refund that takes points back is another.
		var out []notice
		for _, e := range d.Entries {
			k := entryNotice(e)
			if k == "" {
				continue
			}
			i := slices.IndexFunc(out, func(x notice) bool { return x.kind == k })
			if i < 0 {
				out = append(out, notice{kind: k, memberID: d.MemberID, key: "points:" + strconv.FormatUint(e.ID, 10),
					vars: map[string]string{"reason": noticeReason(e), "change": "0", timeVar + "time": at}})
				i = len(out) - 1
			}
			ch, _ := strconv.ParseInt(out[i].vars["change"], 10, 64)
			out[i].vars["change"] = strconv.FormatInt(ch+e.Points+e.Pending, 10)
		}
		for _, x := range out {
			ch, _ := strconv.ParseInt(x.vars["change"], 10, 64)
			delete(x.vars, "change")
			x.vars["points_change"] = strconv.FormatInt(ch, 10)
			if ch > 0 {
				x.vars["points_change"] = "+" + x.vars["points_change"]
			}
			x.vars["balance"] = strconv.FormatInt(d.Available, 10)
		}
		for i := range out {
			out[i].merge = mergePoints(out[i])
		}
		return out
	case event.Tier:
		if d.ChangeID == 0 {
			return nil
		}
		k := NoticeTierDown
		if d.Up {
			k = NoticeTierUp
		}
		return []notice{{kind: k, memberID: d.MemberID, key: "tier:" + strconv.FormatUint(d.ChangeID, 10),
			vars: map[string]string{"tier_from": d.FromName, "tier_to": d.ToName, timeVar + "time": at}}}
	case event.Coupon:
		return []notice{{kind: NoticeCouponIssued, memberID: d.MemberID, key: "coupon:" + strconv.FormatUint(d.CouponID, 10),
			vars: map[string]string{"coupon_name": d.RewardName, "coupon_code": d.Code,
				timeVar + "coupon_expires": d.ExpiresAt.UTC().Format(time.RFC3339), timeVar + "time": at}}}
	}
	return nil
}

// entryNotice is the notice kind of a ledger entry ("" for none: a hold
// ending or points expiring are not notified).
func entryNotice(e event.PointsEntry) NoticeKind {
	ch := e.Points + e.Pending
	switch e.Kind {
	case "earn", "gift":
		return NoticePointsEarned
	case "redeem":
		return NoticePointsRedeemed
	case "reverse":
		return NoticePointsReversed
	case "adjust":
		if ch > 0 {
			return NoticePointsEarned
		}
		return NoticePointsReversed
	}
	return ""
}

// Emit implements event.Emitter: inside tx, the transaction of the change,
// it writes a notice row for each notice the events ask for whose kind the
// merchant switched on.
func (n *Notices) Emit(ctx context.Context, tx *gorm.DB, events ...event.Event) error {
	now := n.now()
	for _, ev := range events {
		for _, x := range noticesOf(ev, now) {
			var cs []Campaign
			// uk_campaigns_notice (merchant_id, notice_kind): one row, share
			// locked on MySQL so a switch-off (which locks it for update and
			// withdraws the kind's pending rows) either sees this row or
			// makes this event see the kind off. Events share the lock; the
			// engine never locks a notice kind's campaign.
			q := "SELECT * FROM campaigns WHERE merchant_id = ? AND notice_kind = ?"
			if n.engine.mysql {
				q += " LOCK IN SHARE MODE"
			}
			if err := tx.WithContext(ctx).Raw(q, ev.MerchantID, x.kind).Scan(&cs).Error; err != nil {
				return fmt.Errorf("campaign: notice %s: %w", x.kind, err)
			}
			if len(cs) == 0 || !noticeOn(cs[0]) {
				continue
			}
			if x.merge != nil {
				// Events landing at once (an order, then its bonus; a burst
				// of orders from a till) are one notice while the first is
				// still waiting for a worker.
				merged, err := n.engine.rows.mergeNotice(ctx, tx, cs[0], x.memberID, x.merge, now)
				if err != nil {
					return err
				}
				if merged {
					continue
				}
			}
			if _, err := n.engine.rows.planNotice(ctx, tx, cs[0], x.memberID, x.key, x.vars, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// localVars shows a notice's time variables in the merchant's zone.
func localVars(vars map[string]string, loc *time.Location) map[string]string {
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		name, isTime := strings.CutPrefix(k, timeVar)
		if !isTime {
			out[k] = v
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			continue // written by noticesOf: cannot happen
		}
		layout := "2006-01-02 15:04"
		if name == "coupon_expires" || name == "expires_on" {
			layout = time.DateOnly
		}
		out[name] = t.In(loc).Format(layout)
	}
	return out
}

// Run calls RunExpiring every interval until ctx ends. Any number of
// instances may run it: the notices' keys keep each reminder single.
func (n *Notices) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := n.RunExpiring(ctx); err != nil && ctx.Err() == nil {
			n.engine.log.WarnContext(ctx, "notices: expiry reminders failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunExpiring writes the expiry reminders due now, for every merchant
// whose coupon_expiring or points_expiring notices are on: one per coupon
// (key coupon_expiring:<coupon>), one per member and first expiry date of
// their points (key points_expiring:<member>:<date>), so a scan repeated,
// or run by two instances, writes each reminder once.
func (n *Notices) RunExpiring(ctx context.Context) error {
	var cs []Campaign
	if err := n.db.WithContext(ctx).Where("notice_kind IN ?", []NoticeKind{NoticeCouponExpiring, NoticePointsExpiring}).
		Order("id").Find(&cs).Error; err != nil {
		return fmt.Errorf("notices: expiry kinds: %w", err)
	}
	var errs []error
	for _, c := range cs {
		if !noticeOn(c) {
			continue
		}
		var err error
		switch *c.NoticeKind {
		case NoticeCouponExpiring:
			err = n.couponReminders(ctx, c)
		case NoticePointsExpiring:
			err = n.pointsReminders(ctx, c)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("merchant %d %s: %w", c.MerchantID, *c.NoticeKind, err))
		}
	}
	return errors.Join(errs...)
}

func (n *Notices) couponReminders(ctx context.Context, c Campaign) error {
	if n.coupons == nil {
		return nil
	}
	for after := uint64(0); ; {
		page, err := n.coupons.CouponsExpiringSoon(ctx, c.MerchantID, CouponExpiringWindow, after, n.pageSize)
		if err != nil || len(page) == 0 {
			return err
		}
		at := n.now().UTC().Format(time.RFC3339)
		xs := make([]notice, len(page))
		for i, cp := range page {
			xs[i] = notice{kind: NoticeCouponExpiring, memberID: cp.MemberID, key: "coupon_expiring:" + strconv.FormatUint(cp.ID, 10),
				vars: map[string]string{"coupon_name": cp.RewardName, "coupon_code": cp.Code,
					timeVar + "coupon_expires": cp.ExpiresAt.UTC().Format(time.RFC3339), timeVar + "time": at}}
		}
		if err := n.planAll(ctx, c, xs); err != nil {
			return err
		}
		after = page[len(page)-1].ID
	}
}

func (n *Notices) pointsReminders(ctx context.Context, c Campaign) error {
	if n.points == nil {
		return nil
	}
	for after := uint64(0); ; {
		page, err := n.points.ExpiringSoon(ctx, c.MerchantID, 0, after, n.pageSize)
		if err != nil || len(page) == 0 {
			return err
		}
		at := n.now().UTC().Format(time.RFC3339)
		xs := make([]notice, len(page))
		for i, p := range page {
			first := p.FirstExpiresAt.UTC()
			xs[i] = notice{kind: NoticePointsExpiring, memberID: p.MemberID,
				key: "points_expiring:" + strconv.FormatUint(p.MemberID, 10) + ":" + first.Format(time.DateOnly),
				vars: map[string]string{"points_expiring": strconv.FormatInt(p.Points, 10),
					timeVar + "expires_on": first.Format(time.RFC3339), timeVar + "time": at}}
		}
		if err := n.planAll(ctx, c, xs); err != nil {
			return err
		}
		after = page[len(page)-1].MemberID
	}
}

// planAll writes a page of reminders in one transaction, the kind's
// campaign share locked (see Emit) and re-checked: a kind switched off
// meanwhile writes nothing.
func (n *Notices) planAll(ctx context.Context, c Campaign, xs []notice) error {
	return retryTx(ctx, n.db, func(tx *gorm.DB) error {
		q := "SELECT * FROM campaigns WHERE id = ?"
		if n.engine.mysql {
			q += " LOCK IN SHARE MODE"
		}
		var cur []Campaign
		if err := tx.WithContext(ctx).Raw(q, c.ID).Scan(&cur).Error; err != nil {
			return fmt.Errorf("notices: campaign %d: %w", c.ID, err)
		}
		if len(cur) == 0 || !noticeOn(cur[0]) {
			return nil
		}
		now := n.now()
		for _, x := range xs {
			if _, err := n.engine.rows.planNotice(ctx, tx, cur[0], x.memberID, x.key, x.vars, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// DefaultNoticeRetention is how long a finished notice row is kept by
// default: long past any window in which its event could come again (the
// expiry reminders look at most weeks ahead), long enough for the member
// page's message history of the last months.
const DefaultNoticeRetention = 180 * 24 * time.Hour

// noticePruneBatch bounds the rows one DELETE removes, so no statement
// holds locks for long.
const noticePruneBatch = 1000

// Prune deletes the notice rows (deliveries of the service-notice
// campaigns, one per event since migration 00235) that finished longer
// ago than olderThan, batch rows at a time (default 1000): a notice is a
// receipt of one event, not a record to keep, and they would otherwise
// grow with every order forever. Rows still waiting or in flight stay, and
// so do marketing and care deliveries. It returns how many it deleted. Any
// number of instances may run it: a row is deleted once, whoever gets it.
func (n *Notices) Prune(ctx context.Context, olderThan time.Duration, batch int) (int64, error) {
	if batch <= 0 {
		batch = noticePruneBatch
	}
	cutoff := n.now().Add(-olderThan)
	var campaigns []uint64
	// uk_campaigns_notice (merchant_id, notice_kind): every merchant's few
	// notice campaigns.
	if err := n.db.WithContext(ctx).Model(&Campaign{}).Where("notice_kind IS NOT NULL").Order("id").
		Pluck("id", &campaigns).Error; err != nil {
		return 0, fmt.Errorf("notices: prune: campaigns: %w", err)
	}
	finished := []DeliveryStatus{DeliverySent, DeliveryDelivered, DeliveryFailed, DeliverySkipped, DeliveryUnknown}
	var total int64
	for _, id := range campaigns {
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			var ids []uint64
			// idx_deliveries_claim (campaign_id, status, id): the finished
			// rows of one campaign, oldest ids first, each checked for its
			// last change (updated_at: a sent row has no finished_at); ids
			// grow with time, so the scan meets the young rows last.
			if err := n.db.WithContext(ctx).Model(&Delivery{}).
				Where("campaign_id = ? AND status IN ? AND updated_at < ?", id, finished, cutoff).
				Order("id").Limit(batch).Pluck("id", &ids).Error; err != nil {
				return total, fmt.Errorf("notices: prune campaign %d: %w", id, err)
			}
			if len(ids) == 0 {
				break
			}
			res := n.db.WithContext(ctx).Where("id IN ? AND status IN ?", ids, finished).Delete(&Delivery{})
			if res.Error != nil {
				return total, fmt.Errorf("notices: prune campaign %d: %w", id, res.Error)
			}
			total += res.RowsAffected
			if len(ids) < batch {
				break
			}
		}
	}
	return total, nil
}
