// Package audit records who changed what through the admin API.
//
// A feature records an entry with Record inside the transaction of the
// change it describes, so the change and its audit entry commit together or
// not at all; the caller (staff member or API key) comes from the request's
// authz.Principal. Track is the admin API's safety net: a mutating call that
// succeeded without recording anything still gets a generic entry (method,
// route and path ids), so no change goes unrecorded.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// Actor types.
const (
	ActorStaff  = "staff"
	ActorAPIKey = "api_key"
	ActorSystem = "system"
)

// Entry is one change to record.
type Entry struct {
	Action     string   // what happened, e.g. "member.update", "tag.assign"
	TargetType string   // the kind of thing changed, e.g. "member"
	TargetIDs  []uint64 // the things changed
	Before     any      // a summary of the state before (marshalled to JSON), or nil
	After      any      // a summary of the state after, or nil
}

// Log is an audit_log row.
type Log struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	ActorType  string
	ActorID    uint64
	ActorName  string
	Action     string
	TargetType string
	TargetIDs  string // JSON array
	Before     string `gorm:"column:before_json"` // JSON, "" when none
	After      string `gorm:"column:after_json"`  // JSON, "" when none
	RequestID  string
	ClientIP   string
	CreatedAt  time.Time
}

// TableName implements gorm's tabler.
func (Log) TableName() string { return "audit_log" }

type target struct {
	MerchantID uint64
	AuditID    uint64
	TargetType string
	TargetID   uint64
}

func (target) TableName() string { return "audit_log_targets" }

// maxSummary bounds a before/after summary; longer ones are cut (they are
// summaries, not backups).
const maxSummary = 8 << 10

// Record writes e for the merchant in tx (the transaction of the change).
// The actor is the principal of ctx, or "system" when there is none (a
// command-line tool or a scheduled job).
func Record(ctx context.Context, tx *gorm.DB, merchantID uint64, e Entry, now time.Time) error {
	row := Log{MerchantID: merchantID, ActorType: ActorSystem, Action: e.Action, TargetType: e.TargetType,
		CreatedAt: now}
	if p, ok := authz.From(ctx); ok {
		row.ActorName, row.RequestID, row.ClientIP = p.Name, p.RequestID, p.ClientIP
		if p.IsStaff() {
			row.ActorType, row.ActorID = ActorStaff, p.StaffID
		} else {
			row.ActorType, row.ActorID = ActorAPIKey, p.APIKeyID
		}
	}
	ids := e.TargetIDs
	if ids == nil {
		ids = []uint64{}
	}
	raw, _ := json.Marshal(ids)
	row.TargetIDs = string(raw)
	var err error
	if row.Before, err = summary(e.Before); err != nil {
		return err
	}
	if row.After, err = summary(e.After); err != nil {
		return err
	}
	if err := tx.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	if len(ids) > 0 {
		targets := make([]target, len(ids))
		for i, id := range ids {
			targets[i] = target{MerchantID: merchantID, AuditID: row.ID, TargetType: e.TargetType, TargetID: id}
		}
		if err := tx.WithContext(ctx).CreateInBatches(targets, 500).Error; err != nil {
			return fmt.Errorf("audit: record %s targets: %w", e.Action, err)
		}
	}
	if t, ok := ctx.Value(trackerKey{}).(*tracker); ok {
		t.recorded.Store(true)
	}
	return nil
}

func summary(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("audit: summary: %w", err)
	}
	if len(raw) > maxSummary {
		cut := raw[:maxSummary]
		for !utf8.Valid(cut) {
			cut = cut[:len(cut)-1]
		}
		raw, _ = json.Marshal(map[string]string{"truncated": string(cut)})
	}
	return string(raw), nil
}

type trackerKey struct{}

type tracker struct{ recorded atomic.Bool }

// Recorder writes entries outside a feature's transaction (Track's
// fallback).
type Recorder struct {
	db  *gorm.DB
	now func() time.Time
}

// NewRecorder returns a recorder on gdb.
func NewRecorder(gdb *gorm.DB, now func() time.Time) *Recorder { return &Recorder{db: gdb, now: now} }

// Track must run after authentication on every admin route. For a mutating
// request (not GET/HEAD/OPTIONS) that succeeds without the handler having
// recorded an entry, it records a generic one: the method and route as the
// action and the numeric path parameters as targets.
func (r *Recorder) Track() gin.HandlerFunc {
	return func(c *gin.Context) {
		switch c.Request.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			c.Next()
			return
		}
		t := &tracker{}
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), trackerKey{}, t))
		c.Next()
		if c.Writer.Status() >= 300 || t.recorded.Load() {
			return
		}
		p, ok := authz.From(c.Request.Context())
		if !ok {
			return
		}
		var ids []uint64
		targetType := ""
		for _, prm := range c.Params {
			if id, err := strconv.ParseUint(prm.Value, 10, 64); err == nil {
				ids = append(ids, id)
				targetType = strings.TrimSuffix(prm.Key, "_id")
			}
		}
		e := Entry{Action: c.Request.Method + " " + c.FullPath(), TargetType: targetType, TargetIDs: ids}
		// The response is written; the request's context may end any moment.
		ctx := context.WithoutCancel(c.Request.Context())
		if err := Record(ctx, r.db, p.MerchantID, e, r.now()); err != nil {
			httpx.Logger(c).ErrorContext(ctx, "audit: fallback entry not recorded", "merchant_id", p.MerchantID,
				"action", e.Action, "error", err)
		}
	}
}

// ReadOnly marks a POST route that changes nothing (a preview that needs a
// body): Track records no entry for it.
func ReadOnly(c *gin.Context) {
	if t, ok := c.Request.Context().Value(trackerKey{}).(*tracker); ok {
		t.recorded.Store(true)
	}
	c.Next()
}

// Query selects audit entries of one merchant, newest first.
type Query struct {
	ActorType  string
	ActorID    uint64
	Action     string // exact, or a prefix ending in "." (e.g. "member.")
	TargetType string
	TargetID   uint64
	Since      *time.Time
	Until      *time.Time
	Before     uint64 // cursor: entries with a smaller id
	Limit      int
}

// List returns entries matching q. It walks idx_audit_log_merchant (or the
// targets index when a target is given) backwards from the cursor.
func (r *Recorder) List(ctx context.Context, merchantID uint64, q Query) ([]Log, error) {
	if q.Limit <= 0 || q.Limit > 200 {
		return nil, apperr.Invalid("limit", "must be 1 to 200")
	}
	tx := r.db.WithContext(ctx).Model(&Log{}).Where("audit_log.merchant_id = ?", merchantID)
	if q.TargetID != 0 {
		tx = tx.Where("audit_log.id IN (?)", r.db.Model(&target{}).Select("audit_id").
			Where("merchant_id = ? AND target_type = ? AND target_id = ?", merchantID, q.TargetType, q.TargetID))
	} else if q.TargetType != "" {
		tx = tx.Where("audit_log.target_type = ?", q.TargetType)
	}
	if q.ActorType != "" {
		tx = tx.Where("audit_log.actor_type = ?", q.ActorType)
	}
	if q.ActorID != 0 {
		tx = tx.Where("audit_log.actor_id = ?", q.ActorID)
	}
	if prefix, ok := strings.CutSuffix(q.Action, "."); ok && prefix != "" {
		tx = tx.Where("audit_log.action LIKE ?"+db.LikeEscape, db.LikePrefix(prefix+"."))
	} else if q.Action != "" {
		tx = tx.Where("audit_log.action = ?", q.Action)
	}
	if q.Since != nil {
		tx = tx.Where("audit_log.created_at >= ?", *q.Since)
	}
	if q.Until != nil {
		tx = tx.Where("audit_log.created_at < ?", *q.Until)
	}
	if q.Before != 0 {
		tx = tx.Where("audit_log.id < ?", q.Before)
	}
	var out []Log
	if err := tx.Order("audit_log.id DESC").Limit(q.Limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}
