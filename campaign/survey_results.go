package campaign

// Survey results: NPS and mean satisfaction by week, per acquisition
// channel and per points tier, the response rate, and the latest answers.
//
// NPS = % promoters (9–10) − % detractors (0–6) of the answers, −100 to
// 100; satisfaction is the mean 1–5 score; the gap is the mean of
// satisfaction − expectation over the answers that gave an expectation
// (DOMAIN: satisfaction = experience − expectation).

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"
)

// SurveyFigures are the figures of a group of answers.
type SurveyFigures struct {
	Answers    int64 `json:"answers"`
	Promoters  int64 `json:"promoters"`
	Passives   int64 `json:"passives"`
	Detractors int64 `json:"detractors"`
	// NPS is % promoters − % detractors, rounded to one decimal; null
	// without answers.
	NPS *float64 `json:"nps"`
	// Satisfaction is the mean satisfaction score (1–5), two decimals.
	Satisfaction *float64 `json:"satisfaction"`
	// ExpectationGap is the mean of satisfaction − expectation over the
	// answers that gave an expectation; null when none did.
	ExpectationGap *float64 `json:"expectation_gap"`

	satSum, gapSum, gapN int64
}

func (f *SurveyFigures) add(nps, sat int, exp *int) {
	f.Answers++
	switch {
	case nps >= PromoterMin:
		f.Promoters++
	case nps <= DetractorMax:
		f.Detractors++
	default:
		f.Passives++
	}
	f.satSum += int64(sat)
	if exp != nil {
		f.gapSum += int64(sat - *exp)
		f.gapN++
	}
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func (f *SurveyFigures) finish() {
	if f.Answers == 0 {
		return
	}
	n := float64(f.Answers)
	nps := round(100*float64(f.Promoters)/n-100*float64(f.Detractors)/n, 1)
	sat := round(float64(f.satSum)/n, 2)
	f.NPS, f.Satisfaction = &nps, &sat
	if f.gapN > 0 {
		g := round(float64(f.gapSum)/float64(f.gapN), 2)
		f.ExpectationGap = &g
	}
}

// SurveyWeek is a week's figures; Week is its Monday (local date).
type SurveyWeek struct {
	Week string `json:"week"`
	SurveyFigures
}

// SurveyGroup is a channel's or a tier's figures. Key is the channel's
// scene or the tier's id ("" for members with none); Name the tier's name.
type SurveyGroup struct {
	Key  string `json:"key"`
	Name string `json:"name"`
	SurveyFigures
}

// LatestAnswer is one of the latest answers, with the member's name.
type LatestAnswer struct {
	SurveyAnswer
	MemberName string `json:"member_name"`
}

// SurveyResults are a period's figures.
type SurveyResults struct {
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Overall SurveyFigures `json:"overall"`
	// Invitations sent in the period, how many of them were answered, and
	// the rate (0 to 1; 0 without invitations).
	Invited      int64          `json:"invited"`
	Responded    int64          `json:"responded"`
	ResponseRate float64        `json:"response_rate"`
	Weeks        []SurveyWeek   `json:"weeks"`
	Channels     []SurveyGroup  `json:"channels"`
	Tiers        []SurveyGroup  `json:"tiers"`
	Latest       []LatestAnswer `json:"latest"`
}

// Results returns the figures of the answers given in [from, to), weeks in
// the merchant's time zone (Monday to Sunday), optionally of one survey.
func (s *Surveys) Results(ctx context.Context, merchantID, surveyID uint64, from, to time.Time) (SurveyResults, error) {
	r := SurveyResults{From: from, To: to, Weeks: []SurveyWeek{}, Channels: []SurveyGroup{}, Tiers: []SurveyGroup{},
		Latest: []LatestAnswer{}}
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return r, fmt.Errorf("survey: zone: %w", err)
	}
	// idx_survey_answers_time (merchant_id, answered_at), then members by
	// primary key. One row per answer of the period, read as a stream: the
	// groups are a handful, the rows are never held.
	q := s.db.WithContext(ctx).Table("survey_answers a").
		Select("a.nps, a.satisfaction, a.expectation, a.answered_at, COALESCE(m.channel_scene, '') AS channel, m.tier_id, COALESCE(t.name, '') AS tier_name").
		Joins("JOIN members m ON m.id = a.member_id AND m.merchant_id = a.merchant_id").
		Joins("LEFT JOIN points_tiers t ON t.id = m.tier_id AND t.merchant_id = m.merchant_id").
		Where("a.merchant_id = ? AND a.answered_at >= ? AND a.answered_at < ?", merchantID, from.UTC(), to.UTC())
	if surveyID != 0 {
		q = q.Where("a.survey_id = ?", surveyID)
	}
	rows, err := q.Rows()
	if err != nil {
		return r, fmt.Errorf("survey: results: %w", err)
	}
	defer rows.Close()
	weeks := map[string]*SurveyWeek{}
	channels := map[string]*SurveyGroup{}
	tiers := map[string]*SurveyGroup{}
	for rows.Next() {
		var row struct {
			NPS          int `gorm:"column:nps"`
			Satisfaction int
			Expectation  *int
			AnsweredAt   time.Time
			Channel      string
			TierID       *uint64
			TierName     string
		}
		if err := s.db.ScanRows(rows, &row); err != nil {
			return r, fmt.Errorf("survey: results: %w", err)
		}
		r.Overall.add(row.NPS, row.Satisfaction, row.Expectation)
		day := civil(row.AnsweredAt.In(loc))
		monday := day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7)).Format(time.DateOnly)
		if weeks[monday] == nil {
			weeks[monday] = &SurveyWeek{Week: monday}
		}
		weeks[monday].add(row.NPS, row.Satisfaction, row.Expectation)
		if channels[row.Channel] == nil {
			channels[row.Channel] = &SurveyGroup{Key: row.Channel, Name: row.Channel}
		}
		channels[row.Channel].add(row.NPS, row.Satisfaction, row.Expectation)
		tier := ""
		if row.TierID != nil {
			tier = fmt.Sprint(*row.TierID)
		}
		if tiers[tier] == nil {
			tiers[tier] = &SurveyGroup{Key: tier, Name: row.TierName}
		}
		tiers[tier].add(row.NPS, row.Satisfaction, row.Expectation)
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("survey: results: %w", err)
	}
	r.Overall.finish()
	for _, w := range weeks {
		w.finish()
		r.Weeks = append(r.Weeks, *w)
	}
	sort.Slice(r.Weeks, func(i, j int) bool { return r.Weeks[i].Week < r.Weeks[j].Week })
	groups := func(m map[string]*SurveyGroup) []SurveyGroup {
		out := make([]SurveyGroup, 0, len(m))
		for _, g := range m {
			g.finish()
			out = append(out, *g)
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Answers != out[j].Answers {
				return out[i].Answers > out[j].Answers
			}
			return out[i].Key < out[j].Key
		})
		return out
	}
	r.Channels, r.Tiers = groups(channels), groups(tiers)

	// Response rate: the invitations of the period and how many of them
	// were answered (idx_survey_invitations_time; an answer by primary key
	// of uk_survey_answers_invitation).
	var rate struct {
		Invited   int64
		Responded int64
	}
	rq := s.db.WithContext(ctx).Table("survey_invitations i").
		Select("COUNT(*) AS invited, COUNT(a.id) AS responded").
		Joins("LEFT JOIN survey_answers a ON a.invitation_id = i.id").
		Where("i.merchant_id = ? AND i.invited_at >= ? AND i.invited_at < ?", merchantID, from.UTC(), to.UTC())
	if surveyID != 0 {
		rq = rq.Where("i.survey_id = ?", surveyID)
	}
	if err := rq.Scan(&rate).Error; err != nil {
		return r, fmt.Errorf("survey: response rate: %w", err)
	}
	r.Invited, r.Responded = rate.Invited, rate.Responded
	if r.Invited > 0 {
		r.ResponseRate = round(float64(r.Responded)/float64(r.Invited), 4)
	}

	lq := s.db.WithContext(ctx).Table("survey_answers a").Select("a.*, m.name AS member_name").
		Joins("JOIN members m ON m.id = a.member_id AND m.merchant_id = a.merchant_id").
		Where("a.merchant_id = ? AND a.answered_at >= ? AND a.answered_at < ?", merchantID, from.UTC(), to.UTC())
	if surveyID != 0 {
		lq = lq.Where("a.survey_id = ?", surveyID)
	}
	var latest []struct {
		SurveyAnswer
		MemberName string
	}
	if err := lq.Order("a.answered_at DESC, a.id DESC").Limit(20).Find(&latest).Error; err != nil {
		return r, fmt.Errorf("survey: latest answers: %w", err)
	}
	for _, l := range latest {
		r.Latest = append(r.Latest, LatestAnswer{SurveyAnswer: l.SurveyAnswer, MemberName: l.MemberName})
	}
	return r, nil
}
