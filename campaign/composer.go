package campaign

// What the campaign composer asks before it saves anything: the
// account's templates and their fields, a message rendered for a real
// member, and when a schedule would send under which limits.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// TemplateView is one of the account's templates as WeChat lists it.
type TemplateView struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Content string   `json:"content"`
	Fields  []string `json:"fields"` // the {{field.DATA}} names a message fills, in order
}

// Templates lists the account's templates of a channel (template: the
// official account's; mp_subscribe: the mini-program's subscribe
// templates), live from WeChat.
func (s *Campaigns) Templates(ctx context.Context, merchantID uint64, ch Channel) ([]TemplateView, error) {
	list := s.wx.Templates
	switch ch {
	case ChannelTemplate:
	case ChannelMPSubscribe:
		list = s.wx.MPTemplates
	default:
		return nil, apperr.Invalid("channel", "must be template or mp_subscribe (customer-service messages have no template)")
	}
	ts, err := list(ctx, merchantID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", apperr.New(apperr.ErrUnavailable, "WeChat could not list the templates: %s", wechatWords(err)), err)
	}
	out := make([]TemplateView, len(ts))
	for i, t := range ts {
		out[i] = TemplateView{ID: t.ID, Title: t.Title, Content: t.Content, Fields: append([]string{}, t.Fields...)}
	}
	return out, nil
}

// MessageVariables lists the member variables a message may use.
func MessageVariables() []string { return slices.Clone(knownVariables) }

// PreviewInput is a message to render: a saved campaign's or the
// composer's unsaved one.
type PreviewInput struct {
	Channel    Channel `json:"channel"`
	TemplateID string  `json:"template_id"`
	Message    Message `json:"message"`
	// MemberID is the member to render for; 0: the merchant's newest
	// member.
	MemberID uint64 `json:"member_id"`
}

// Preview is a message rendered for one member, as WeChat would get it.
type Preview struct {
	MemberID   uint64            `json:"member_id"`
	MemberName string            `json:"member_name"`
	Values     map[string]string `json:"values"` // the member's variables ("" when empty: the fallback applies)
	Fields     map[string]string `json:"fields"` // template fields, rendered
	// Content is the template's content with the rendered fields in place
	// (template and subscribe channels).
	Content string `json:"content"`
	URL     string `json:"url"`
	Page    string `json:"page"`
	Text    string `json:"text"`
}

// checkVariables adds to v what is wrong with the {{variables}} of a text.
func checkVariables(v *apperr.Validation, field, text string) {
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(knownVariables, m[1]) {
			v.Add(field, fmt.Sprintf("uses {{%s}}, which is not a member variable (%s)", m[1], strings.Join(knownVariables, ", ")))
		}
	}
	if strings.Count(text, "{{") != strings.Count(text, "}}") || strings.Count(text, "{{") != len(placeholder.FindAllString(text, -1)) {
		v.Add(field, "has a malformed {{variable}}: write {{name}}, or {{name|fallback}} with a fallback of up to 32 characters without braces or |")
	}
}

var templateData = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\.DATA\s*\}\}`)

// Preview renders a message for a real member of the merchant, with the
// values and fallbacks a send would use. Nothing is written or sent.
func (s *Campaigns) Preview(ctx context.Context, merchantID uint64, in PreviewInput) (Preview, error) {
	v := &apperr.Validation{}
	if !slices.Contains(Channels, in.Channel) {
		v.Add("channel", "must be template, mp_subscribe or customer_service")
	}
	for k, text := range in.Message.Fields {
		checkVariables(v, "message.fields."+k, text)
	}
	checkVariables(v, "message.text", in.Message.Text)
	checkVariables(v, "message.url", in.Message.URL)
	checkVariables(v, "message.page", in.Message.Page)
	var content string
	if v.Err() == nil && in.Channel != ChannelCustomerService {
		ts, err := s.Templates(ctx, merchantID, in.Channel)
		if err != nil {
			return Preview{}, err
		}
		i := slices.IndexFunc(ts, func(t TemplateView) bool { return t.ID == in.TemplateID })
		if i < 0 {
			v.Add("template_id", fmt.Sprintf("%q is not a template of this account", in.TemplateID))
		} else {
			content = ts[i].Content
		}
	}
	if err := v.Err(); err != nil {
		return Preview{}, err
	}
	var who struct {
		ID   uint64
		Name string
	}
	q := s.db.WithContext(ctx).Table("members").Select("id, name").Where("merchant_id = ? AND erased_at IS NULL", merchantID)
	if in.MemberID != 0 {
		q = q.Where("id = ?", in.MemberID)
	} else {
		q = q.Order("id DESC") // idx on (merchant_id, id)
	}
	err := q.Take(&who).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound) && in.MemberID != 0:
		return Preview{}, apperr.Invalid("member_id", fmt.Sprintf("member %d is not a member of this merchant", in.MemberID))
	case errors.Is(err, gorm.ErrRecordNotFound):
		return Preview{}, apperr.New(apperr.ErrUnprocessable, "the merchant has no members to preview the message with yet")
	case err != nil:
		return Preview{}, fmt.Errorf("campaign: preview member: %w", err)
	}
	vals, err := s.engine.vars.Values(ctx, merchantID, []uint64{who.ID}, knownVariables)
	if err != nil {
		return Preview{}, fmt.Errorf("campaign: preview values: %w", err)
	}
	p := Preview{MemberID: who.ID, MemberName: who.Name, Values: map[string]string{}, Fields: map[string]string{},
		URL: render(in.Message.URL, vals[who.ID]), Page: render(in.Message.Page, vals[who.ID]),
		Text: render(in.Message.Text, vals[who.ID])}
	for _, name := range knownVariables {
		p.Values[name] = vals[who.ID][name]
	}
	for k, text := range in.Message.Fields {
		p.Fields[k] = render(text, vals[who.ID])
	}
	if content != "" {
		p.Content = templateData.ReplaceAllStringFunc(content, func(m string) string {
			return p.Fields[templateData.FindStringSubmatch(m)[1]]
		})
	}
	return p, nil
}

// PreviewCampaign renders a saved campaign's message for a member.
func (s *Campaigns) PreviewCampaign(ctx context.Context, merchantID, id, memberID uint64) (Preview, error) {
	c, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Preview{}, err
	}
	return s.Preview(ctx, merchantID, PreviewInput{Channel: c.Channel, TemplateID: c.TemplateID, Message: c.Message, MemberID: memberID})
}

// SchedulePreview is when a schedule would send and the limits that apply
// to marketing sends.
type SchedulePreview struct {
	TimeZone string      `json:"time_zone"`
	NextRuns []time.Time `json:"next_runs"` // the next five runs of a cron schedule (empty without one)
	// QuietStart and QuietEnd are the merchant's quiet hours as local
	// HH:MM ("" when it has none): marketing sends due inside them wait
	// for the end.
	QuietStart string `json:"quiet_start"`
	QuietEnd   string `json:"quiet_end"`
	// FrequencyCap marketing messages per member in CapWindowDays days;
	// members at the cap are skipped.
	FrequencyCap  int `json:"frequency_cap"`
	CapWindowDays int `json:"cap_window_days"`
}

// NextRuns says when a cron expression (the merchant's zone) would run
// next, five times, and the quiet hours and frequency cap that apply.
func (s *Campaigns) NextRuns(ctx context.Context, merchantID uint64, expr string) (SchedulePreview, error) {
	loc, err := s.merchants.Location(ctx, merchantID)
	if err != nil {
		return SchedulePreview{}, err
	}
	start, end, err := s.merchants.QuietHours(ctx, merchantID)
	if err != nil {
		return SchedulePreview{}, err
	}
	capN, capWindow, err := s.engine.frequencyCap(ctx, merchantID)
	if err != nil {
		return SchedulePreview{}, err
	}
	out := SchedulePreview{TimeZone: loc.String(), NextRuns: []time.Time{}, FrequencyCap: capN,
		CapWindowDays: int(capWindow / (24 * time.Hour))}
	if start != end {
		out.QuietStart, out.QuietEnd = fmt.Sprintf("%02d:%02d", start/60, start%60), fmt.Sprintf("%02d:%02d", end/60, end%60)
	}
	if expr == "" {
		return out, nil
	}
	t := s.now()
	for range 5 {
		next, err := nextCron(expr, t, loc)
		if err != nil {
			return SchedulePreview{}, apperr.Invalid("cron", err.Error()+" (five fields: minute hour day-of-month month day-of-week)")
		}
		out.NextRuns = append(out.NextRuns, next)
		t = next
	}
	return out, nil
}
