package member_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

type importFixture struct {
	db       *gorm.DB
	merchant uint64
	im       *member.Importer
	points   *points.Service
	tier     uint64
	tag      uint64
}

func newImportFixture(t *testing.T, gdb *gorm.DB) *importFixture {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	f := &importFixture{db: gdb, merchant: dbtest.NewMerchantID()}
	svc := member.NewService(gdb, nil, clock.Now, quiet)
	f.points = points.NewService(gdb, svc, fixedZone{shanghai}, clock.Now, quiet)
	f.im = member.NewImporter(gdb, f.points, clock.Now)
	tier := points.Tier{MerchantID: f.merchant, Name: "Gold", Level: 1, Threshold: 1000, MultiplierPct: 100, Benefits: "[]",
		CreatedAt: clock.Now(), UpdatedAt: clock.Now()}
	tag := member.Tag{MerchantID: f.merchant, Name: "VIP", CreatedAt: clock.Now(), UpdatedAt: clock.Now()}
	if err := gdb.Create(&tier).Error; err != nil {
		t.Fatal(err)
	}
	if err := gdb.Create(&tag).Error; err != nil {
		t.Fatal(err)
	}
	f.tier, f.tag = tier.ID, tag.ID
	return f
}

func (f *importFixture) run(t *testing.T, csv string) (member.ImportJob, error) {
	t.Helper()
	sum := sha256.Sum256([]byte(csv))
	return f.im.Import(context.Background(), f.merchant, "members.csv", hex.EncodeToString(sum[:]),
		func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(csv)), nil })
}

func (f *importFixture) count(t *testing.T, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := f.db.Table(table).Where("merchant_id = ? AND "+where, append([]any{f.merchant}, args...)...).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// state is what an import changes, to compare runs.
func (f *importFixture) state(t *testing.T) string {
	t.Helper()
	var sum struct{ N, P int64 }
	f.db.Table("points_ledger").Select("COUNT(*) AS n, COALESCE(SUM(points), 0) AS p").Where("merchant_id = ?", f.merchant).Scan(&sum)
	return fmt.Sprintf("members=%d tags=%d care=%d accounts=%d ledger=%d/%d lots=%d tiers=%d", f.count(t, "members", "1=1"),
		f.count(t, "member_tags", "1=1"), f.count(t, "member_care_dates", "1=1"), f.count(t, "points_accounts", "1=1"),
		sum.N, sum.P, f.count(t, "points_lots", "1=1"), f.count(t, "points_tier_history", "1=1"))
}

const importCSV = "openid,unionid,phone,name,birthday,wedding_anniversary,tier,points,tags\n" +
	"o_imp_1,u_imp_1,13800000001,Li Lei,1990-05-17,2015-10-01,gold,120,VIP|vip\n" +
	"o_imp_2,,,Han Meimei,02-29,,,0,\n" +
	"o_imp_3,,12345,Bad Phone,,,,,\n" + // rejected: phone
	",,13800000004,Only Phone,,,,35,\n" +
	"o_imp_1,,,Again,,,,,\n" + // rejected: repeats row 2's openid
	"o_imp_6,,,\"Broken,,,\n" // rejected: malformed CSV

// An import run twice changes nothing the second time, and both runs (and
// the dry run before them) report the same rejected rows.
func TestImportTwiceWithAMalformedRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newImportFixture(t, gdb)
		ctx := context.Background()
		dry, err := f.im.DryRun(ctx, f.merchant, strings.NewReader(importCSV))
		if err != nil {
			t.Fatal(err)
		}
		wantRejected := []member.RejectedRow{{Row: 4, Field: "phone"}, {Row: 6, Field: "openid"}, {Row: 7}}
		check := func(what string, rows, created, existing, rejected int, got []member.RejectedRow) {
			t.Helper()
			if rows != 6 || created != 3 || existing != 0 || rejected != 3 || len(got) != 3 {
				t.Fatalf("%s: rows %d created %d existing %d rejected %d %+v", what, rows, created, existing, rejected, got)
			}
			for i, w := range wantRejected {
				if got[i].Row != w.Row || got[i].Field != w.Field || got[i].Reason == "" {
					t.Fatalf("%s: rejected %+v, want row %d field %q", what, got[i], w.Row, w.Field)
				}
			}
		}
		check("dry run", dry.Rows, dry.Created, dry.Existing, dry.Rejected, dry.RejectedRows)
		if s := f.state(t); !strings.HasPrefix(s, "members=0 ") {
			t.Fatalf("the dry run changed something: %s", s)
		}

		job, err := f.run(t, importCSV)
		if err != nil || job.Status != member.ImportDone {
			t.Fatalf("import: %+v, %v", job, err)
		}
		check("import", job.RowsRead, job.Created, job.Existing, job.Rejected, job.RejectedRows)
		after := f.state(t)
		if after != "members=3 tags=1 care=1 accounts=2 ledger=2/155 lots=2 tiers=1" {
			t.Fatalf("after the import: %s", after)
		}
		var li member.Member
		if err := gdb.Where("merchant_id = ? AND oa_openid = ?", f.merchant, "o_imp_1").Take(&li).Error; err != nil {
			t.Fatal(err)
		}
		if li.Name != "Li Lei" || li.UnionID == nil || *li.UnionID != "u_imp_1" || li.BirthdayYear == nil || *li.BirthdayMonth != 5 ||
			li.TierID == nil || *li.TierID != f.tier || li.Source != "import" || li.FollowStatus != member.FollowNone ||
			li.LifecycleStage != member.StagePotential || li.Gender != member.GenderUnknown || li.Remark != "" ||
			li.MPOpenID != nil || li.FollowedAt != nil || li.ChannelScene != nil || li.ErasedAt != nil || li.CreatedAt.IsZero() {
			t.Fatalf("imported member: %+v", li)
		}
		sum, err := f.points.Summary(ctx, f.merchant, li.ID)
		if err != nil || sum.Available != 120 {
			t.Fatalf("opening balance: %+v, %v", sum, err)
		}
		var out bytes.Buffer
		if err := points.RunReconcile(ctx, gdb, []string{"-merchant", fmt.Sprint(f.merchant)}, &out, io.Discard); err != nil {
			t.Fatalf("reconcile after import: %v\n%s", err, out.String())
		}

		// The same file again: the finished job, nothing changed.
		again, err := f.run(t, importCSV)
		if err != nil || again.ID != job.ID || again.Status != member.ImportDone {
			t.Fatalf("second run: %+v, %v", again, err)
		}
		check("second run", again.RowsRead, again.Created, again.Existing, again.Rejected, again.RejectedRows)
		if s := f.state(t); s != after {
			t.Fatalf("the second run changed %s into %s", after, s)
		}
		// The same members in another file: all existing, nothing changed.
		other, err := f.run(t, strings.Replace(importCSV, "\n", "\no_imp_7,,,New,,,,5,\n", 1))
		if err != nil || other.ID == job.ID || other.Created != 1 || other.Existing != 3 || other.Rejected != 3 {
			t.Fatalf("another file: %+v, %v", other, err)
		}
		if n := f.count(t, "points_ledger", "1=1"); n != 3 {
			t.Fatalf("%d ledger entries, want the 2 openings and the new member's", n)
		}
	})
}

// An import interrupted after its first batch resumes where it stopped:
// every row is imported once, every opening balance entered once.
func TestImportResumesAfterInterruption(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newImportFixture(t, gdb)
		var b strings.Builder
		b.WriteString("openid,points\n")
		for i := 1; i <= 2500; i++ {
			fmt.Fprintf(&b, "o_res_%d,%d\n", i, i%7)
		}
		csv := b.String()
		crash := errors.New("power cut")
		f.im.AfterBatch(func(cursor int) error {
			if cursor < 2000 {
				return crash
			}
			return nil
		})
		job, err := f.run(t, csv)
		if !errors.Is(err, crash) || job.Status != member.ImportFailed || job.CursorRow != 1001 || job.Created != 1000 {
			t.Fatalf("interrupted run: %+v, %v", job, err)
		}
		if n := f.count(t, "members", "1=1"); n != 1000 {
			t.Fatalf("%d members after the first batch", n)
		}
		f.im.AfterBatch(nil)
		job, err = f.run(t, csv)
		if err != nil || job.Status != member.ImportDone || job.Created != 2500 || job.CursorRow != 2501 || job.Rejected != 0 {
			t.Fatalf("resumed run: %+v, %v", job, err)
		}
		withPoints := int64(0)
		for i := 1; i <= 2500; i++ {
			if i%7 != 0 {
				withPoints++
			}
		}
		if n := f.count(t, "members", "1=1"); n != 2500 {
			t.Fatalf("%d members", n)
		}
		if n := f.count(t, "points_ledger", "ref_type = 'import'"); n != withPoints {
			t.Fatalf("%d opening entries, want %d", n, withPoints)
		}
		var out bytes.Buffer
		if err := points.RunReconcile(context.Background(), gdb, []string{"-merchant", fmt.Sprint(f.merchant)}, &out, io.Discard); err != nil {
			t.Fatalf("reconcile: %v\n%s", err, out.String())
		}
	})
}
