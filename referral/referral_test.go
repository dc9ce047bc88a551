package referral_test

import (
	"context"
	"os"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/referral"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type noNames struct{}

func (noNames) Names(context.Context, uint64, []uint64) (map[uint64]string, error) {
	return map[uint64]string{}, nil
}

// addMember inserts a member row and returns it.
func addMember(t *testing.T, gdb *gorm.DB, merchantID uint64, unionID string) member.Member {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	m := member.Member{MerchantID: merchantID, Source: member.SourceOAFollow, FollowStatus: member.FollowFollowing,
		CreatedAt: now, UpdatedAt: now}
	if unionID != "" {
		m.UnionID = &unionID
	}
	if err := gdb.Create(&m).Error; err != nil {
		t.Fatal(err)
	}
	return m
}

// A merge moves what the merged-away member brought in and their referral
// to the survivor; a referral that would link the survivor to themselves
// becomes ineligible; an unknown code or a merchant channel's scene is no
// referral.
func TestJoinAndMerge(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		svc := referral.NewService(gdb, nil, noNames{}, "https://example.test", func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }, nil)
		code := func(m member.Member) string {
			t.Helper()
			var c string
			if err := gdb.Raw("SELECT code FROM referral_codes WHERE merchant_id = ? AND member_id = ?", mid, m.ID).Scan(&c).Error; err != nil || c == "" {
				t.Fatalf("code of %d: %q %v", m.ID, c, err)
			}
			return c
		}
		join := func(m member.Member, j member.Join) {
			t.Helper()
			if err := gdb.Transaction(func(tx *gorm.DB) error { return svc.Joined(ctx, tx, m, j) }); err != nil {
				t.Fatal(err)
			}
		}
		referrerOf := func(m member.Member) (uint64, string) {
			t.Helper()
			var r struct {
				ReferrerID uint64
				Status     string
			}
			gdb.Raw("SELECT referrer_id, status FROM referrals WHERE merchant_id = ? AND referee_id = ?", mid, m.ID).Scan(&r)
			return r.ReferrerID, r.Status
		}

		r := addMember(t, gdb, mid, "")
		// R's invitation code, as Invite stores it (without a QR code:
		// this test has no WeChat).
		if err := gdb.Exec("INSERT INTO referral_codes (merchant_id, member_id, code, created_at, updated_at) VALUES (?, ?, 'R2345678', ?, ?)",
			mid, r.ID, time.Now(), time.Now()).Error; err != nil {
			t.Fatal(err)
		}
		if code(r) != "R2345678" {
			t.Fatal("code not stored")
		}
		x := addMember(t, gdb, mid, "u_x")
		join(x, member.Join{Scene: "poster"})       // a channel
		join(x, member.Join{Scene: "ref_UNKNOWN2"}) // no such code
		join(x, member.Join{Ref: "R2345678"})       // R's link
		join(x, member.Join{Scene: "ref_R2345678"}) // a second touch
		if id, st := referrerOf(x); id != r.ID || st != string(referral.StatusPending) {
			t.Fatalf("x: referrer %d %s, want %d pending", id, st, r.ID)
		}
		if n := dbCount(t, gdb, "referrals", "merchant_id = ?", mid); n != 1 {
			t.Fatalf("%d referrals, want 1", n)
		}

		// y, another record of x's person (same unionid, as after an
		// erasure), through R's code: recorded ineligible.
		gdb.Exec("UPDATE members SET unionid = NULL WHERE id = ?", x.ID)
		y := addMember(t, gdb, mid, "u_x")
		join(y, member.Join{Ref: "R2345678"})
		if _, st := referrerOf(y); st != string(referral.StatusIneligible) {
			t.Fatalf("y: %s, want ineligible", st)
		}

		// x is merged into r (they turn out to be one person): r's own
		// referral of x would make r their own referrer: ineligible.
		if err := gdb.Transaction(func(tx *gorm.DB) error { return svc.MergeHook(ctx, tx, mid, x.ID, r.ID) }); err != nil {
			t.Fatal(err)
		}
		if id, st := referrerOf(r); id != r.ID || st != string(referral.StatusIneligible) {
			t.Fatalf("after the merge: r's referral %d %s, want ineligible self-referral", id, st)
		}
		// z is referred by w; w is merged into v, who keeps w's code.
		w, v := addMember(t, gdb, mid, ""), addMember(t, gdb, mid, "")
		gdb.Exec("INSERT INTO referral_codes (merchant_id, member_id, code, created_at, updated_at) VALUES (?, ?, 'W2345678', ?, ?)",
			mid, w.ID, time.Now(), time.Now())
		z := addMember(t, gdb, mid, "")
		join(z, member.Join{Ref: "W2345678"})
		if err := gdb.Transaction(func(tx *gorm.DB) error { return svc.MergeHook(ctx, tx, mid, w.ID, v.ID) }); err != nil {
			t.Fatal(err)
		}
		if id, _ := referrerOf(z); id != v.ID || code(v) != "W2345678" {
			t.Fatalf("after w merged into v: z's referrer %d, want %d", id, v.ID)
		}
	})
}

func dbCount(t *testing.T, gdb *gorm.DB, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := gdb.Table(table).Where(where, args...).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
