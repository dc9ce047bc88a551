package demo_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/demo"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

// directory lists one merchant, for the nightly pass.
type directory struct {
	merchants
	id uint64
}

func (d directory) IDs(context.Context) ([]uint64, error) { return []uint64{d.id}, nil }

// dashboardView is the part of GET /dashboard this test compares.
type dashboardView struct {
	Current struct {
		Members     int64
		Pyramid     map[string]int64
		RFM         []struct{ Members int64 }
		RFMUnscored int64 `json:"rfm_unscored"`
		ShareTop20  *struct {
			Share     float64
			Customers int64
		} `json:"share_top20"`
	}
}

// The README's path: the service runs (its nightly pass may already have
// run today, at startup, when the merchant had no members) and `demo seed`
// fills the merchant. The dashboard's figures must then agree with each
// other whatever the hour: the 2:8 figure comes from the seed's pass, like
// the pyramid tiers and RFM scores beside it, instead of staying the empty
// figure of the pass that found no members. Checked through the dashboard
// handler over the real member and points figures, with the seed after
// the day's pass (14:30 local) and before it (01:30 local, the pass then
// finding the day done at 04:00).
func TestSeedAfterTheDaysPassKeepsTheDashboardConsistent(t *testing.T) {
	for name, start := range map[string]time.Time{
		"after the day's pass":  time.Date(2026, 3, 15, 6, 30, 0, 0, time.UTC),  // 14:30 in Shanghai
		"before the day's pass": time.Date(2026, 3, 14, 17, 30, 0, 0, time.UTC), // 01:30 on 15 March in Shanghai
	} {
		t.Run(name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
				consistentAfterSeed(t, gdb, start)
			})
		})
	}
}

func consistentAfterSeed(t *testing.T, gdb *gorm.DB, start time.Time) {
	ctx := context.Background()
	mid := dbtest.NewMerchantID()
	clk := &fakeclock.Clock{}
	clk.Set(start)
	dir := directory{merchants{member.DefaultCRMSettings}, mid}
	attrs := member.NewAttributes(gdb, points.NewHistory(gdb), dir, clk.Now, quiet)
	if _, err := attrs.RunNightly(ctx); err != nil { // finds no members, if it runs at this hour
		t.Fatal(err)
	}
	if _, err := demo.Seed(ctx, gdb, dir, demo.Options{MerchantID: mid, Members: 800, Seed: 5, ChunkSize: 400,
		Now: clk.Now, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	// Later the same local day, past the nightly hour: the day is done.
	later := time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC) // 04:00 on 15 March in Shanghai
	if start.After(later) {
		later = start.Add(time.Hour)
	}
	clk.Set(later)
	if ran, err := attrs.RunNightly(ctx); err != nil || ran != 0 {
		t.Fatalf("nightly pass after the seed's: ran %d, %v; want the day done", ran, err)
	}

	psvc := points.NewService(gdb, nil, zone{}, clk.Now, quiet)
	h := admin.NewDashboardHandler(member.NewDashboard(gdb, attrs), points.NewDashboard(psvc), zone{}, clk.Now)
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(func(c *gin.Context) {
		p := authz.Principal{MerchantID: mid, StaffID: 1, Role: authz.RoleOwner}
		c.Request = c.Request.WithContext(authz.WithPrincipal(c.Request.Context(), p))
	})
	h.Register(r.Group("/api/admin/v1"))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/admin/v1/dashboard", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("dashboard: %d %s", rec.Code, rec.Body)
	}
	var v dashboardView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	cur := v.Current
	var scored int64
	for _, c := range cur.RFM {
		scored += c.Members
	}
	if cur.Members != 800 || scored == 0 || scored+cur.RFMUnscored != cur.Members || cur.Pyramid["none"] != 0 {
		t.Fatalf("the seed's pass is not in the distributions: %s", rec.Body)
	}
	// The 2:8 figure is that of the pass that scored these members: its
	// customers are the members with RFM scores (a counted order in 12
	// months), and the top fifth of them bring more than a fifth of the
	// spend.
	if s := cur.ShareTop20; s == nil || s.Customers != scored || s.Share <= 0.2 || s.Share >= 1 {
		t.Fatalf("share_top20 %+v disagrees with the RFM grid (%d scored members) of the same answer: %s",
			cur.ShareTop20, scored, rec.Body)
	}
}
