package audit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(dbtest.Main(m))
}

var now = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// Record writes the entry in the caller's transaction: a rolled-back change
// leaves no entry; the actor comes from the principal.
func TestRecordIsPartOfTheTransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		mid := dbtest.NewMerchantID()
		ctx := authz.WithPrincipal(context.Background(), authz.Principal{MerchantID: mid, StaffID: 7, Name: "kim",
			Role: authz.RoleAdmin, ClientIP: "192.0.2.1", RequestID: "req-1"})
		boom := errors.New("boom")
		err := gdb.Transaction(func(tx *gorm.DB) error {
			if err := audit.Record(ctx, tx, mid, audit.Entry{Action: "tag.create", TargetType: "tag", TargetIDs: []uint64{1}}, now); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		rec := audit.NewRecorder(gdb, func() time.Time { return now })
		if got, _ := rec.List(ctx, mid, audit.Query{Limit: 10}); len(got) != 0 {
			t.Fatalf("rolled-back entry kept: %+v", got)
		}
		big := strings.Repeat("字", 5000)
		err = gdb.Transaction(func(tx *gorm.DB) error {
			return audit.Record(ctx, tx, mid, audit.Entry{Action: "member.update", TargetType: "member",
				TargetIDs: []uint64{3, 4}, Before: map[string]string{"name": "a"}, After: map[string]string{"name": big}}, now)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := rec.List(ctx, mid, audit.Query{Limit: 10, TargetType: "member", TargetID: 4})
		if err != nil || len(got) != 1 {
			t.Fatalf("by target: %+v %v", got, err)
		}
		e := got[0]
		if e.ActorType != audit.ActorStaff || e.ActorID != 7 || e.ActorName != "kim" || e.ClientIP != "192.0.2.1" ||
			e.RequestID != "req-1" || e.TargetIDs != "[3,4]" || e.Before != `{"name":"a"}` || !strings.Contains(e.After, "truncated") {
			t.Fatalf("entry: %+v", e)
		}
		if len(e.After) > 10<<10 {
			t.Fatalf("summary not bounded: %d bytes", len(e.After))
		}
		// No principal: the system did it.
		if err := audit.Record(context.Background(), gdb, mid, audit.Entry{Action: "job.run"}, now); err != nil {
			t.Fatal(err)
		}
		got, _ = rec.List(ctx, mid, audit.Query{Limit: 1})
		if got[0].ActorType != audit.ActorSystem || got[0].TargetIDs != "[]" {
			t.Fatalf("system entry: %+v", got[0])
		}
		// Another merchant's log is empty.
		if got, _ := rec.List(ctx, dbtest.NewMerchantID(), audit.Query{Limit: 10}); len(got) != 0 {
			t.Fatal("entries leak across merchants")
		}
	})
}

// Track records a generic entry for a successful mutating call that
// recorded nothing itself, and nothing for reads, failures or calls that
// recorded their own entry.
func TestTrackSafetyNet(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		mid := dbtest.NewMerchantID()
		rec := audit.NewRecorder(gdb, func() time.Time { return now })
		r := gin.New()
		g := r.Group("", func(c *gin.Context) {
			c.Request = c.Request.WithContext(authz.WithPrincipal(c.Request.Context(), authz.Principal{MerchantID: mid, APIKeyID: 9, Name: "pos"}))
		}, rec.Track())
		g.POST("/things/:thing_id/poke", func(c *gin.Context) { c.Status(http.StatusNoContent) })
		g.POST("/things/:thing_id/own", func(c *gin.Context) {
			_ = audit.Record(c.Request.Context(), gdb, mid, audit.Entry{Action: "thing.own", TargetType: "thing"}, now)
			c.Status(http.StatusOK)
		})
		g.POST("/things/:thing_id/fail", func(c *gin.Context) { c.Status(http.StatusBadRequest) })
		g.GET("/things/:thing_id", func(c *gin.Context) { c.Status(http.StatusOK) })
		g.POST("/things/:thing_id/preview", audit.ReadOnly, func(c *gin.Context) { c.Status(http.StatusOK) })
		for _, p := range []string{"POST /things/5/poke", "POST /things/6/own", "POST /things/7/fail", "GET /things/8", "POST /things/9/preview"} {
			method, path, _ := strings.Cut(p, " ")
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
		}
		got, err := rec.List(context.Background(), mid, audit.Query{Limit: 10})
		if err != nil || len(got) != 2 {
			t.Fatalf("entries: %+v %v", got, err)
		}
		if got[0].Action != "thing.own" || got[1].Action != "POST /things/:thing_id/poke" || got[1].TargetType != "thing" ||
			got[1].TargetIDs != "[5]" || got[1].ActorType != audit.ActorAPIKey || got[1].ActorID != 9 {
			t.Fatalf("entries: %+v", got)
		}
		if got, _ := rec.List(context.Background(), mid, audit.Query{Limit: 10, Action: "POST /things/:thing_id/poke"}); len(got) != 1 {
			t.Fatal("filter by exact action")
		}
		if got, _ := rec.List(context.Background(), mid, audit.Query{Limit: 10, Action: "thing."}); len(got) != 1 {
			t.Fatal("filter by action prefix")
		}
		if got, _ := rec.List(context.Background(), mid, audit.Query{Limit: 10, Action: "thin_."}); len(got) != 0 {
			t.Fatal("LIKE wildcards in a prefix must match literally")
		}
	})
}
