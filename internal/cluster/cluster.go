// Package cluster knows how many instances of the service are running,
// through the database they share: each instance beats (writes its row of
// the instances table) every few seconds, and the live ones are those seen
// within three beats. The count is what instances divide shared limits by
// when they cannot share them through Redis.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"
)

// instance is a row of the instances table.
type instance struct {
	Name      string `gorm:"primaryKey"`
	StartedAt time.Time
	SeenAt    time.Time
}

func (instance) TableName() string { return "instances" }

// forget is how long a silent instance's row is kept.
const forget = 24 * time.Hour

// Instances beats for this instance and counts the live ones.
type Instances struct {
	db      *gorm.DB
	name    string
	every   time.Duration
	now     func() time.Time
	log     *slog.Logger
	started time.Time

	mu      sync.Mutex
	live    int
	countAt time.Time
}

// New returns the instance named name (unique among the running ones, e.g.
// host:pid:random), beating every every (default 5 s).
func New(db *gorm.DB, name string, every time.Duration, now func() time.Time, log *slog.Logger) *Instances {
	if every <= 0 {
		every = 5 * time.Second
	}
	return &Instances{db: db, name: name, every: every, now: now, log: log, started: now(), live: 1}
}

// Run beats until ctx ends, then removes this instance's row, so the
// others count one fewer at once.
func (i *Instances) Run(ctx context.Context) {
	t := time.NewTicker(i.every)
	defer t.Stop()
	for n := 0; ; n++ {
		if err := i.Beat(ctx); err != nil && ctx.Err() == nil {
			i.log.WarnContext(ctx, "cluster: heartbeat failed", "error", err)
		}
		if n%720 == 0 { // about hourly at the default beat
			i.db.WithContext(ctx).Where("seen_at < ?", i.now().Add(-forget)).Delete(&instance{})
		}
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			i.db.WithContext(stop).Where("name = ?", i.name).Delete(&instance{})
			cancel()
			return
		case <-t.C:
		}
	}
}

// Beat records that this instance is alive now.
func (i *Instances) Beat(ctx context.Context) error {
	now := i.now()
	res := i.db.WithContext(ctx).Model(&instance{}).Where("name = ?", i.name).Update("seen_at", now)
	if res.Error != nil {
		return fmt.Errorf("cluster: beat: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	// The first beat (or the row was forgotten): a second instance never
	// has this name, so the insert cannot race another's.
	if err := i.db.WithContext(ctx).Create(&instance{Name: i.name, StartedAt: i.started, SeenAt: now}).Error; err != nil {
		return fmt.Errorf("cluster: first beat: %w", err)
	}
	return nil
}

// Live returns how many instances are alive (seen within three beats), at
// least 1 (this one). The count is read at most once a beat; when the
// database cannot be read, the last count stands.
func (i *Instances) Live(ctx context.Context) int {
	now := i.now()
	i.mu.Lock()
	defer i.mu.Unlock()
	if now.Sub(i.countAt) < i.every {
		return i.live
	}
	var n int64
	// idx_instances_seen.
	if err := i.db.WithContext(ctx).Model(&instance{}).Where("seen_at >= ?", now.Add(-3*i.every)).Count(&n).Error; err != nil {
		i.log.WarnContext(ctx, "cluster: counting the live instances failed; keeping the last count", "live", i.live, "error", err)
		return i.live
	}
	i.live, i.countAt = max(1, int(n)), now
	return i.live
}
