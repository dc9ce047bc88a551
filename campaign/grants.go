package campaign

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// Grants records a member's subscribe-message grants.
type Grants struct {
	db  *gorm.DB
	now func() time.Time
}

// NewGrants returns the grant store.
func NewGrants(gdb *gorm.DB, now func() time.Time) *Grants { return &Grants{db: gdb, now: now} }

// Add records that the member accepted one more message of each template
// (wx.requestSubscribeMessage answered "accept").
func (g *Grants) Add(ctx context.Context, merchantID, memberID uint64, templateIDs []string) (map[string]int, error) {
	v := &apperr.Validation{}
	if len(templateIDs) == 0 || len(templateIDs) > 20 {
		v.Add("template_ids", "must name 1 to 20 templates")
	}
	for i, id := range templateIDs {
		if id == "" || len(id) > 128 || strings.ContainsAny(id, " \t\r\n") {
			v.Add(fmt.Sprintf("template_ids[%d]", i), "is not a template id")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	out := map[string]int{}
	err := g.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := g.now()
		for _, id := range templateIDs {
			res := tx.Exec("UPDATE member_subscription_grants SET remaining = remaining + 1, updated_at = ? "+
				"WHERE merchant_id = ? AND member_id = ? AND template_id = ?", now, merchantID, memberID, id)
			if res.Error != nil {
				return fmt.Errorf("campaign: grant: %w", res.Error)
			}
			if res.RowsAffected == 0 {
				if err := tx.Exec("INSERT INTO member_subscription_grants (merchant_id, member_id, template_id, remaining, updated_at) VALUES (?, ?, ?, 1, ?)",
					merchantID, memberID, id, now).Error; err != nil {
					return fmt.Errorf("campaign: grant: %w", err)
				}
			}
		}
		var rows []struct {
			TemplateID string
			Remaining  int
		}
		if err := tx.Table("member_subscription_grants").Select("template_id, remaining").
			Where("merchant_id = ? AND member_id = ? AND template_id IN ?", merchantID, memberID, templateIDs).Find(&rows).Error; err != nil {
			return err
		}
		for _, r := range rows {
			out[r.TemplateID] = r.Remaining
		}
		return nil
	})
	return out, err
}
