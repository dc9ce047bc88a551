package points

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// JobStats says what one run of the jobs did.
type JobStats struct {
	Released int // held lots that became available
	Expired  int // lots that expired
	Reviewed int // tiers reviewed
	Coupons  int // coupons that expired
}

// RunJobs runs the points jobs once, until nothing is due: held points
// whose hold ended become available, lots whose expiry (a merchant-local
// midnight) has come expire, and tiers whose review date has come are
// reviewed, and issued coupons past their expiry expire. Any number of instances may run it at the same time: each lot
// or account is changed in its own transaction by a conditional UPDATE or
// under the account lock with a re-check, and each release or expiry entry
// has a unique key (release:lot:<id>, expire:lot:<id>), so each happens
// once.
func (s *Service) RunJobs(ctx context.Context) (JobStats, error) {
	var st JobStats
	var err error
	if st.Released, err = s.releaseDue(ctx); err != nil {
		return st, err
	}
	if st.Expired, err = s.expireDue(ctx); err != nil {
		return st, err
	}
	if st.Reviewed, err = s.reviewTiers(ctx); err != nil {
		return st, err
	}
	if st.Coupons, err = s.expireCoupons(ctx); err != nil { // coupons.go
		return st, err
	}
	return st, nil
}

// Run runs the jobs every interval until ctx ends (for the app's worker
// goroutines). Errors are logged; the next round tries again.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		st, err := s.RunJobs(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "points jobs", "error", err)
		} else if st != (JobStats{}) {
			s.log.InfoContext(ctx, "points jobs", "released", st.Released, "expired", st.Expired, "reviewed", st.Reviewed, "coupons_expired", st.Coupons)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type dueLot struct {
	ID         uint64
	MerchantID uint64
	MemberID   uint64
}

// dueLots returns a batch of lots in status whose column time has come.
// idx_points_lots_expiry / idx_points_lots_release: a range over the due
// part of one status, across merchants.
func (s *Service) dueLots(ctx context.Context, status, column string, now time.Time) ([]dueLot, error) {
	var out []dueLot
	err := s.db.WithContext(ctx).Model(&lot{}).Select("id, merchant_id, member_id").
		Where("status = ? AND "+column+" <= ?", status, now).Order(column + ", id").Limit(s.JobBatch).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("points: due %s lots: %w", status, err)
	}
	return out, nil
}

func (s *Service) releaseDue(ctx context.Context) (int, error) {
	return s.processDue(ctx, lotPending, "available_at", s.releaseLot)
}

func (s *Service) expireDue(ctx context.Context) (int, error) {
	return s.processDue(ctx, lotActive, "expires_at", s.expireLot)
}

func (s *Service) processDue(ctx context.Context, status, column string, one func(context.Context, dueLot) (bool, error)) (int, error) {
	done := 0
	for ctx.Err() == nil {
		due, err := s.dueLots(ctx, status, column, s.now())
		if err != nil {
			return done, err
		}
		changed := 0
		for _, d := range due {
			did, err := one(ctx, d)
			if err != nil {
				return done, err
			}
			if did {
				changed++
			}
		}
		done += changed
		// A short batch was the last; a batch another instance took
		// entirely from under us means it is working through the rest.
		if len(due) < s.JobBatch || changed == 0 {
			break
		}
	}
	return done, ctx.Err()
}

// releaseLot makes a held lot available. The conditional UPDATE on the
// lot's status decides which instance does it; the loser changes nothing.
func (s *Service) releaseLot(ctx context.Context, d dueLot) (bool, error) {
	did := false
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		did = false
		now := s.now()
		a, l, err := s.lockLotOwner(ctx, tx, d)
		if err != nil || a == nil {
			return err
		}
		if l.Status != lotPending || l.AvailableAt == nil || l.AvailableAt.After(now) {
			return nil // released, cancelled or moved meanwhile
		}
		n := l.Remaining
		pay := min(a.Debt, n)
		status := lotActive
		if n-pay == 0 {
			status = lotUsed
		}
		res := tx.WithContext(ctx).Exec("UPDATE points_lots SET status = ?, remaining = ?, updated_at = ? WHERE id = ? AND merchant_id = ? AND status = ?",
			status, n-pay, now, l.ID, l.MerchantID, lotPending)
		if res.Error != nil {
			return fmt.Errorf("points: release lot %d: %w", l.ID, res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		a.Debt -= pay
		a.Pending -= n
		a.Available += n
		e := Entry{MerchantID: a.MerchantID, MemberID: a.MemberID, Kind: KindRelease, Points: n, Pending: -n,
			Balance: a.Available, Reason: "hold ended", RefType: refLot, RefID: strconv.FormatUint(l.ID, 10),
			IdempotencyKey: "release:lot:" + strconv.FormatUint(l.ID, 10), ExpiresAt: l.ExpiresAt, CreatedAt: now}
		if err := tx.WithContext(ctx).Create(&e).Error; err != nil {
			return fmt.Errorf("points: release entry: %w", err)
		}
		did = true
		return s.saveAccount(ctx, tx, a)
	})
	return did, err
}

// expireLot expires what is left of an active lot whose time has come.
func (s *Service) expireLot(ctx context.Context, d dueLot) (bool, error) {
	did := false
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		did = false
		now := s.now()
		a, l, err := s.lockLotOwner(ctx, tx, d)
		if err != nil || a == nil {
			return err
		}
		if l.Status != lotActive || l.ExpiresAt == nil || l.ExpiresAt.After(now) {
			return nil
		}
		res := tx.WithContext(ctx).Exec("UPDATE points_lots SET status = ?, updated_at = ? WHERE id = ? AND merchant_id = ? AND status = ?",
			lotExpired, now, l.ID, l.MerchantID, lotActive)
		if res.Error != nil {
			return fmt.Errorf("points: expire lot %d: %w", l.ID, res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		a.Available -= l.Remaining
		e := Entry{MerchantID: a.MerchantID, MemberID: a.MemberID, Kind: KindExpire, Points: -l.Remaining,
			Balance: a.Available, Reason: "expired", RefType: refLot, RefID: strconv.FormatUint(l.ID, 10),
			IdempotencyKey: "expire:lot:" + strconv.FormatUint(l.ID, 10), ExpiresAt: l.ExpiresAt, CreatedAt: now}
		if err := tx.WithContext(ctx).Create(&e).Error; err != nil {
			return fmt.Errorf("points: expire entry: %w", err)
		}
		did = true
		return s.saveAccount(ctx, tx, a)
	})
	return did, err
}

// lockLotOwner locks the account of the member who owns the lot now (a
// member merge may have moved it since it was listed) and returns both; a
// nil account means the lot is gone.
func (s *Service) lockLotOwner(ctx context.Context, tx *gorm.DB, d dueLot) (*account, lot, error) {
	var l lot
	read := func() error {
		err := tx.WithContext(ctx).Where("id = ? AND merchant_id = ?", d.ID, d.MerchantID).Take(&l).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("points: lot %d: %w", d.ID, err)
		}
		return err
	}
	if err := read(); err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, lot{}, nil
		}
		return nil, lot{}, err
	}
	owner := l.MemberID
	a, err := s.lockAccount(ctx, tx, d.MerchantID, owner)
	if err != nil {
		return nil, lot{}, err
	}
	if err := read(); err != nil {
		return nil, lot{}, err
	}
	if l.MemberID != owner {
		return nil, lot{}, errRetry
	}
	return a, l, nil
}
