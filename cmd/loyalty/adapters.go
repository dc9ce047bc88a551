package main

import (
	"time"

	"context"
	"fmt"
	"slices"
	"strconv"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

// channelFigures gives admin's channel report the member package's counts
// and the points package's orders.
type channelFigures struct {
	members *member.Service
	points  *points.Service
}

func (c channelFigures) ChannelFigures(ctx context.Context, merchantID uint64, scenes []string) (map[string]admin.ChannelFigures, error) {
	figures, err := c.members.ChannelStats(ctx, merchantID, scenes)
	if err != nil {
		return nil, err
	}
	orders, err := c.points.OrdersByChannel(ctx, merchantID, scenes)
	if err != nil {
		return nil, err
	}
	out := make(map[string]admin.ChannelFigures, len(figures))
	for scene, f := range figures {
		out[scene] = admin.ChannelFigures{Followers: f.Followers, Members: f.Members, Orders: orders[scene]}
	}
	return out, nil
}

// messageVariables fills campaign messages' member variables from member
// (name) and points (balance, tier, points expiring soon).
type messageVariables struct {
	members   *member.Service
	points    *points.Service
	merchants *admin.Merchants
}

func (v messageVariables) Values(ctx context.Context, merchantID uint64, ids []uint64, names []string) (map[uint64]map[string]string, error) {
	out := make(map[uint64]map[string]string, len(ids))
	for _, id := range ids {
		out[id] = map[string]string{}
	}
	need := func(n ...string) bool {
		for _, x := range n {
			if slices.Contains(names, x) {
				return true
			}
		}
		return false
	}
	if need("name") {
		got, err := v.members.Names(ctx, merchantID, ids)
		if err != nil {
			return nil, err
		}
		for id, name := range got {
			out[id]["name"] = name
		}
	}
	if need("points", "tier", "expiring_points") {
		facts, err := v.points.MemberFacts(ctx, merchantID, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			f := facts[id]
			out[id]["points"] = strconv.FormatInt(f.Available, 10)
			out[id]["tier"] = f.TierName
			out[id]["expiring_points"] = strconv.FormatInt(f.ExpiringSoon, 10)
		}
	}
	if need("merchant") {
		m, err := v.merchants.Get(ctx, merchantID)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			out[id]["merchant"] = m.Name
		}
	}
	return out, nil
}

// campaignGifts grants campaign gifts through points.
type campaignGifts struct{ points *points.Service }

func (g campaignGifts) Grant(ctx context.Context, merchantID, memberID uint64, gift campaign.Gift, key, reason string) error {
	if gift.Points > 0 {
		_, _, err := g.points.Gift(ctx, merchantID, memberID, gift.Points, reason, key)
		return err
	}
	if gift.RewardID > 0 {
		_, _, err := g.points.GiftReward(ctx, merchantID, memberID, gift.RewardID, key)
		return err
	}
	return nil
}

// Check refuses a reward that is not one of the merchant's (or deleted):
// GetReward is scoped to the merchant.
func (g campaignGifts) Check(ctx context.Context, merchantID uint64, gift campaign.Gift) error {
	if gift.RewardID == 0 {
		return nil
	}
	_, err := g.points.GetReward(ctx, merchantID, gift.RewardID)
	return err
}

// orderCampaigns checks an order's campaign_id for points against the
// campaigns table: one probe of the primary key, with the merchant in the
// condition so another merchant's campaign is "not a campaign". (points
// cannot import campaign, which imports points.)
type orderCampaigns struct{ db *gorm.DB }

func (c orderCampaigns) CampaignExists(ctx context.Context, merchantID, campaignID uint64) (bool, error) {
	var n int64
	err := c.db.WithContext(ctx).Raw("SELECT COUNT(*) FROM campaigns WHERE id = ? AND merchant_id = ?", campaignID, merchantID).
		Scan(&n).Error
	if err != nil {
		return false, fmt.Errorf("campaign %d: %w", campaignID, err)
	}
	return n > 0, nil
}

// pointValues tells the win-back report what points are worth: the points
// rules' liability value.
type pointValues struct{ points *points.Service }

func (v pointValues) FenPer100Points(ctx context.Context, merchantID uint64) (int64, error) {
	rs, err := v.points.Rules(ctx, merchantID)
	if err != nil {
		return 0, err
	}
	return rs.Rules.LiabilityFenPer100, nil
}

// tagMarkingEmitter marks, in the transaction of each event about a member
// (points, stage, tier, a new or merged member), the member's tag rules
// for evaluation, then passes the events on to the webhook outbox.
type tagMarkingEmitter struct {
	next event.Emitter
	tags *member.TagRules
}

func (e tagMarkingEmitter) Emit(ctx context.Context, tx *gorm.DB, events ...event.Event) error {
	seen := map[[2]uint64]bool{}
	for _, ev := range events {
		var id uint64
		switch d := ev.Data.(type) {
		case event.Points:
			id = d.MemberID
		case event.Stage:
			id = d.MemberID
		case event.Tier:
			id = d.MemberID
		case event.Member:
			id = d.MemberID
		case event.Merge:
			id = d.MemberID
		}
		k := [2]uint64{ev.MerchantID, id}
		if id == 0 || seen[k] {
			continue
		}
		seen[k] = true
		if err := e.tags.MarkPending(ctx, tx, ev.MerchantID, id); err != nil {
			return err
		}
	}
	return e.next.Emit(ctx, tx, events...)
}

// orderWriterWith is w, followed in the order's transaction by what other
// features do when a member orders: the mark of the buyer's tag rules
// (order count, spend and last order are fields rules read), and the end of
// a win-back episode the order answers (its waiting attempts withdrawn).
func orderWriterWith(w points.OrderWriter, tags *member.TagRules, winBack *campaign.WinBack) points.OrderWriter {
	return func(ctx context.Context, merchantID uint64) (func(context.Context, *gorm.DB, uint64, member.PurchaseDelta, member.Order) error, error) {
		write, err := w(ctx, merchantID)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, tx *gorm.DB, memberID uint64, d member.PurchaseDelta, o member.Order) error {
			if err := write(ctx, tx, memberID, d, o); err != nil {
				return err
			}
			if err := tags.MarkPending(ctx, tx, merchantID, memberID); err != nil {
				return err
			}
			return winBack.Answered(ctx, tx, merchantID, memberID, o.At)
		}, nil
	}
}

// surveyFacts records a survey answer on the member (last scores, churn
// risk) and marks the member's tag rules, whose rules may read the
// scores, in the answer's transaction.
type surveyFacts struct {
	attrs *member.Attributes
	tags  *member.TagRules
}

func (f surveyFacts) RecordSurvey(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, nps, satisfaction int, at time.Time) error {
	if err := f.attrs.RecordSurvey(ctx, tx, merchantID, memberID, nps, satisfaction, at); err != nil {
		return err
	}
	return f.tags.MarkPending(ctx, tx, merchantID, memberID)
}
