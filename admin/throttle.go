package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// ThrottlePolicy decides how failed logins slow a key down. Failures count
// while each comes within Window of the previous one. The first Free cost
// nothing; each further failure locks the key
// for 1, 2, 4, 8... seconds, up to MaxLock: a guessing run is slowed at
// once and soon refused for a while. So at most Free+1 passwords are
// checked before a key is locked, however many guesses arrive at once.
type ThrottlePolicy struct {
	Free    int
	Window  time.Duration
	MaxLock time.Duration
	// ResetOnSuccess: a right password forgets the key's earlier failures
	// (a username's), rather than only not counting itself (an address's,
	// which other people's failures share).
	ResetOnSuccess bool
}

// Default policies: a username is a single account, so it gets few free
// tries; one address may be an office or a carrier NAT full of staff.
var (
	UserThrottle = ThrottlePolicy{Free: 5, Window: 15 * time.Minute, MaxLock: 15 * time.Minute, ResetOnSuccess: true}
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

// staleAttempt is how long a reserved attempt may stay unfinished before it
// no longer counts as in flight (its instance died mid-check). Far above a
// bcrypt check plus the wait for a slot.
const staleAttempt = time.Minute

type throttleRow struct {
	ThrottleKey   string `gorm:"primaryKey"`
	Failures      int
	LastFailureAt time.Time // the last counted attempt
	LockedUntil   *time.Time
	Attempts      int64 // numbers the reservations
	Pending       int   // reserved attempts whose check has not finished
}

func (throttleRow) TableName() string { return "login_throttle" }

// Throttle counts login attempts per key in the database, so every
// instance sees the same counts. An attempt is counted (reserved) before
// its password is checked, in one transaction that also checks the lock:
// parallel guesses queue on the key's row, and once Free+1 are counted the
// rest are refused without a password check.
type Throttle struct {
	db  *gorm.DB
	now func() time.Time
}

// NewThrottle returns a throttle on gdb.
func NewThrottle(gdb *gorm.DB, now func() time.Time) *Throttle { return &Throttle{db: gdb, now: now} }

// ThrottleKey is one counter an attempt is charged to, with its policy.
type ThrottleKey struct {
	Key    string
	Policy ThrottlePolicy
}

// Attempt is a login attempt counted before its password is checked. The
// caller ends it with exactly one of Failed, Succeeded or Cancel.
type Attempt struct {
	t    *Throttle
	keys []reservedKey
}

type reservedKey struct {
	ThrottleKey
	seq   int64 // the key's attempts after this one was counted
	alone bool  // no other attempt of the key was in flight
}

// errThrottleRowGone makes Reserve try again when a counter row was purged
// between its creation and the locking read.
var errThrottleRowGone = errors.New("admin: login throttle row vanished")

// Reserve counts one attempt against every key, or against none when any
// of them is locked: then the error is ErrTooManyRequests with Retry-After.
func (t *Throttle) Reserve(ctx context.Context, keys ...ThrottleKey) (*Attempt, error) {
	keys = slices.Clone(keys)
	// One lock order for everybody (the rows are locked sorted by key), so
	// two logins sharing a key cannot deadlock.
	slices.SortFunc(keys, func(a, b ThrottleKey) int { return strings.Compare(a.Key, b.Key) })
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Key
	}
	for range 3 {
		a, err := t.reserve(ctx, keys, names)
		if !errors.Is(err, errThrottleRowGone) {
			return a, err
		}
	}
	return nil, fmt.Errorf("admin: login throttle: %w", errThrottleRowGone)
}

func (t *Throttle) reserve(ctx context.Context, keys []ThrottleKey, names []string) (*Attempt, error) {
	now := t.now()
	// The rows are created outside the locking transaction, each in a
	// statement of its own: an insert inside it would take a shared lock
	// on MySQL that two transactions could then both wait to upgrade.
	for _, k := range keys {
		err := t.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
			Create(&throttleRow{ThrottleKey: k.Key, LastFailureAt: now}).Error
		if err != nil {
			return nil, fmt.Errorf("admin: login throttle: %w", err)
		}
	}
	a := &Attempt{t: t}
	err := t.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rows []throttleRow
		// Primary key: locks exactly these rows, in key order.
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("throttle_key IN ?", names).
			Order("throttle_key").Find(&rows).Error; err != nil {
			return fmt.Errorf("admin: login throttle: %w", err)
		}
		if len(rows) != len(keys) {
			return errThrottleRowGone
		}
		var wait time.Duration
		for _, r := range rows {
			if r.LockedUntil != nil && r.LockedUntil.After(now) {
				wait = max(wait, r.LockedUntil.Sub(now))
			}
		}
		if wait > 0 {
			return &apperr.RetryAfter{Seconds: int(math.Ceil(wait.Seconds())),
				Err: apperr.New(apperr.ErrTooManyRequests, "too many failed logins; try again later")}
		}
		for i, r := range rows {
			p := keys[i].Policy
			if now.Sub(r.LastFailureAt) > p.Window {
				r.Failures = 0
			}
			if r.Pending > 0 && now.Sub(r.LastFailureAt) > staleAttempt {
				r.Pending = 0
			}
			a.keys = append(a.keys, reservedKey{ThrottleKey: keys[i], seq: r.Attempts + 1, alone: r.Pending == 0})
			r.Failures++
			r.Attempts++
			r.Pending++
			r.LastFailureAt = now
			r.LockedUntil = nil
			if d := p.lockFor(r.Failures); d > 0 {
				until := now.Add(d)
				r.LockedUntil = &until
			}
			if err := tx.Model(&throttleRow{}).Where("throttle_key = ?", r.ThrottleKey).Updates(map[string]any{
				"failures": r.Failures, "last_failure_at": r.LastFailureAt, "locked_until": r.LockedUntil,
				"attempts": r.Attempts, "pending": r.Pending}).Error; err != nil {
				return fmt.Errorf("admin: login throttle: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Counter updates on one row need no transaction: each is one statement.
// The CASEs keep the unsigned MySQL columns from going below zero.
var (
	minusPending  = gorm.Expr("CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END")
	minusFailures = gorm.Expr("CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END")
)

// Failed records that the password was wrong: the attempt stays counted.
func (a *Attempt) Failed(ctx context.Context) error {
	for _, k := range a.keys {
		if err := a.t.db.WithContext(ctx).Model(&throttleRow{}).Where("throttle_key = ?", k.Key).
			Update("pending", minusPending).Error; err != nil {
			return fmt.Errorf("admin: login throttle: %w", err)
		}
	}
	return nil
}

// Succeeded records that the password was right. On a key whose policy
// resets on success, the failures are forgotten if this attempt followed
// all of them: no other attempt was in flight when it was counted and none
// was counted after it. Otherwise (a success in the middle of a burst of
// guesses) it only uncounts itself, so the guesses keep their weight.
func (a *Attempt) Succeeded(ctx context.Context) error {
	for _, k := range a.keys {
		if k.Policy.ResetOnSuccess && k.alone {
			res := a.t.db.WithContext(ctx).Model(&throttleRow{}).Where("throttle_key = ? AND attempts = ?", k.Key, k.seq).
				Updates(map[string]any{"failures": 0, "locked_until": nil, "pending": minusPending})
			if res.Error != nil {
				return fmt.Errorf("admin: login throttle: %w", res.Error)
			}
			if res.RowsAffected > 0 {
				continue
			}
		}
		if err := a.uncount(ctx, k.Key); err != nil {
			return err
		}
	}
	return nil
}

// Cancel uncounts an attempt whose password was never checked (the server
// was too busy, or the request failed before the check).
func (a *Attempt) Cancel(ctx context.Context) error {
	for _, k := range a.keys {
		if err := a.uncount(ctx, k.Key); err != nil {
			return err
		}
	}
	return nil
}

func (a *Attempt) uncount(ctx context.Context, key string) error {
	err := a.t.db.WithContext(ctx).Model(&throttleRow{}).Where("throttle_key = ?", key).
		Updates(map[string]any{"failures": minusFailures, "pending": minusPending}).Error
	if err != nil {
		return fmt.Errorf("admin: login throttle: %w", err)
	}
	return nil
}

// Purge deletes counters idle for longer than olderThan, so the table
// holds only recent attackers.
func (t *Throttle) Purge(ctx context.Context, olderThan time.Duration) error {
	cutoff := t.now().Add(-olderThan)
	return t.db.WithContext(ctx).Where("last_failure_at < ? AND (locked_until IS NULL OR locked_until < ?)", cutoff, cutoff).
		Delete(&throttleRow{}).Error
}
