package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// ThrottlePolicy decides how failed logins slow a key down. Failures count
// while each comes within Window of the previous one. The first Free cost
// nothing; each further failure locks the key
// for 1, 2, 4, 8... seconds, up to MaxLock: a guessing run is slowed at
// once and soon refused for a while.
type ThrottlePolicy struct {
	Free    int
	Window  time.Duration
	MaxLock time.Duration
}

// Default policies: a username is a single account, so it gets few free
// tries; one address may be an office or a carrier NAT full of staff.
var (
	UserThrottle = ThrottlePolicy{Free: 5, Window: 15 * time.Minute, MaxLock: 15 * time.Minute}
	IPThrottle   = ThrottlePolicy{Free: 20, Window: 15 * time.Minute, MaxLock: 15 * time.Minute}
)

// lockFor returns how long a key with this many failures is locked.
func (p ThrottlePolicy) lockFor(failures int) time.Duration {
	over := failures - p.Free
	if over <= 0 {
		return 0
	}
	if over > 30 {
		return p.MaxLock
	}
	return min(time.Duration(math.Pow(2, float64(over-1)))*time.Second, p.MaxLock)
}

type throttleRow struct {
	ThrottleKey   string `gorm:"primaryKey"`
	Failures      int
	LastFailureAt time.Time
	LockedUntil   *time.Time
}

func (throttleRow) TableName() string { return "login_throttle" }

// Throttle counts failed logins per key in the database, so every instance
// sees the same counts.
type Throttle struct {
	db  *gorm.DB
	now func() time.Time
}

// NewThrottle returns a throttle on gdb.
func NewThrottle(gdb *gorm.DB, now func() time.Time) *Throttle { return &Throttle{db: gdb, now: now} }

// Check returns an ErrTooManyRequests error (with Retry-After) when any of
// keys is locked now.
func (t *Throttle) Check(ctx context.Context, keys ...string) error {
	var rows []throttleRow
	now := t.now()
	if err := t.db.WithContext(ctx).Where("throttle_key IN ? AND locked_until > ?", keys, now).Find(&rows).Error; err != nil {
		return fmt.Errorf("admin: login throttle: %w", err)
	}
	var wait time.Duration
	for _, r := range rows {
		wait = max(wait, r.LockedUntil.Sub(now))
	}
	if wait <= 0 {
		return nil
	}
	return &apperr.RetryAfter{Seconds: int(math.Ceil(wait.Seconds())),
		Err: apperr.New(apperr.ErrTooManyRequests, "too many failed logins; try again later")}
}

// Fail records one failed login against key under policy p.
func (t *Throttle) Fail(ctx context.Context, key string, p ThrottlePolicy) error {
	now := t.now()
	return t.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Make sure the row exists, then lock it: concurrent failures for
		// one key are counted one after the other, none lost.
		err := tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&throttleRow{ThrottleKey: key, LastFailureAt: now}).Error
		if err != nil {
			return fmt.Errorf("admin: login throttle: %w", err)
		}
		var r throttleRow
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("throttle_key = ?", key).Take(&r).Error; err != nil {
			return fmt.Errorf("admin: login throttle: %w", err)
		}
		if now.Sub(r.LastFailureAt) > p.Window {
			r.Failures = 0
		}
		r.Failures++
		r.LastFailureAt = now
		r.LockedUntil = nil
		if d := p.lockFor(r.Failures); d > 0 {
			until := now.Add(d)
			r.LockedUntil = &until
		}
		return tx.Model(&throttleRow{}).Where("throttle_key = ?", key).Updates(map[string]any{
			"failures": r.Failures, "last_failure_at": r.LastFailureAt, "locked_until": r.LockedUntil}).Error
	})
}

// Reset forgets the failures of key (after a successful login).
func (t *Throttle) Reset(ctx context.Context, key string) error {
	err := t.db.WithContext(ctx).Where("throttle_key = ?", key).Delete(&throttleRow{}).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("admin: login throttle: %w", err)
	}
	return nil
}

// Purge deletes counters idle for longer than the window, so the table
// holds only recent attackers.
func (t *Throttle) Purge(ctx context.Context, olderThan time.Duration) error {
	cutoff := t.now().Add(-olderThan)
	return t.db.WithContext(ctx).Where("last_failure_at < ? AND (locked_until IS NULL OR locked_until < ?)", cutoff, cutoff).
		Delete(&throttleRow{}).Error
}
