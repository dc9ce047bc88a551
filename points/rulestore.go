package points

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
)

var errRulesVersion = apperr.New(apperr.ErrNotFound, "no such rules version")

// Rules returns the merchant's current rules.
func (s *Service) Rules(ctx context.Context, merchantID uint64) (RuleSet, error) {
	return s.rules(ctx, s.db, merchantID)
}

// RulesVersion returns one version of the merchant's rules (0: the
// defaults), to explain a past earn by its entry's rule_version.
func (s *Service) RulesVersion(ctx context.Context, merchantID uint64, version int) (RuleSet, error) {
	if version == 0 {
		return RuleSet{Rules: DefaultRules()}, nil
	}
	var rv ruleVersion
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND version = ?", merchantID, version).Take(&rv).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return RuleSet{}, errRulesVersion
	}
	if err != nil {
		return RuleSet{}, fmt.Errorf("points: rules version %d: %w", version, err)
	}
	r, err := decodeStoredRules(rv.Body)
	if err != nil {
		return RuleSet{}, err
	}
	return RuleSet{Version: rv.Version, CreatedAt: rv.CreatedAt, CreatedBy: rv.CreatedBy, Rules: r}, nil
}

// SetRules saves r as the merchant's next rules version, audited. Rules
// apply from now on: lots keep the expiry they were given, held points
// their hold, and past entries their rule_version.
func (s *Service) SetRules(ctx context.Context, merchantID uint64, r Rules) (RuleSet, error) {
	r.normalize()
	if err := r.Validate(); err != nil {
		return RuleSet{}, err
	}
	return s.saveRules(ctx, merchantID, func(Rules) (Rules, error) { return r, nil })
}

// saveRules saves next(current rules) as the merchant's next version,
// audited with the rules before and after, in one transaction. next sees
// the version it replaces: a concurrent save takes the same version
// number, the primary key stops the second, and inTx retries it (next
// included) on top of the first.
func (s *Service) saveRules(ctx context.Context, merchantID uint64, next func(cur Rules) (Rules, error)) (RuleSet, error) {
	var out RuleSet
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		cur, err := s.rules(ctx, tx, merchantID)
		if err != nil {
			return err
		}
		r, err := next(cur.Rules)
		if err != nil {
			return err
		}
		by := ""
		if p, ok := authz.From(ctx); ok {
			by = p.Name
		}
		rv := ruleVersion{MerchantID: merchantID, Version: cur.Version + 1, Body: marshalRules(r), CreatedBy: clip(by, 64),
			CreatedAt: now}
		if err := tx.WithContext(ctx).Create(&rv).Error; err != nil {
			return fmt.Errorf("points: save rules: %w", err)
		}
		out = RuleSet{Version: rv.Version, CreatedAt: now, CreatedBy: rv.CreatedBy, Rules: r}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "points.rules", TargetType: "points_rules",
			TargetIDs: []uint64{uint64(rv.Version)}, Before: json.RawMessage(marshalRules(cur.Rules)),
			After: json.RawMessage(rv.Body)}, now)
	})
	if err == nil {
		s.keywords.Delete(merchantID)
		s.rulesets.Invalidate(merchantID)
	}
	return out, err
}
