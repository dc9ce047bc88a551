package member_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

func insertMember(t *testing.T, gdb *gorm.DB, m member.Member) uint64 {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	m.Source, m.FollowStatus, m.LifecycleStage, m.CreatedAt, m.UpdatedAt = member.SourceMPLogin, member.FollowNone,
		member.StagePotential, now, now
	if err := gdb.Create(&m).Error; err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func TestPurchaseFacts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		id := insertMember(t, gdb, member.Member{MerchantID: mid})
		f, err := member.GetPurchaseFacts(ctx, gdb, mid, id)
		if err != nil || f.OrderCount != 0 || f.TotalSpendFen != 0 || f.FirstOrderAt != nil || f.LastOrderAt != nil {
			t.Fatalf("new member: %v %+v", err, f)
		}
		t1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		t0, t2 := t1.Add(-48*time.Hour), t1.Add(48*time.Hour)
		for _, d := range []member.PurchaseDelta{{Orders: 1, SpendFen: 500, OrderedAt: t1},
			{Orders: 1, SpendFen: 300, OrderedAt: t2}, {Orders: 1, SpendFen: 200, OrderedAt: t0}} {
			if err := gdb.Transaction(func(tx *gorm.DB) error { return member.RecordPurchase(ctx, tx, mid, id, d) }); err != nil {
				t.Fatal(err)
			}
		}
		f, _ = member.GetPurchaseFacts(ctx, gdb, mid, id)
		if f.OrderCount != 3 || f.TotalSpendFen != 1000 || !f.FirstOrderAt.Equal(t0) || !f.LastOrderAt.Equal(t2) {
			t.Fatalf("after three orders %+v", f)
		}
		// Another merchant's member, or none: not found, nothing written.
		err = member.RecordPurchase(ctx, gdb, mid+1, id, member.PurchaseDelta{Orders: 1, SpendFen: 1, OrderedAt: t1})
		if !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("foreign member: %v", err)
		}
		if err := member.SetPurchaseFacts(ctx, gdb, mid, id, member.PurchaseFacts{}); err != nil {
			t.Fatal(err)
		}
		f, _ = member.GetPurchaseFacts(ctx, gdb, mid, id)
		if f != (member.PurchaseFacts{}) {
			t.Fatalf("cleared facts %+v", f)
		}
		other := insertMember(t, gdb, member.Member{MerchantID: mid})
		if err := member.SetPurchaseFacts(ctx, gdb, mid, other, member.PurchaseFacts{OrderCount: 1, TotalSpendFen: 9, FirstOrderAt: &t1, LastOrderAt: &t1}); err != nil {
			t.Fatal(err)
		}
		rng, err := member.PurchaseFactsRange(ctx, gdb, mid, 0, other)
		if err != nil || len(rng) != 1 || rng[other].TotalSpendFen != 9 || !rng[other].LastOrderAt.Equal(t1) {
			t.Fatalf("range: %v %+v", err, rng)
		}
		tier := uint64(7)
		if err := member.SetTier(ctx, gdb, mid, other, &tier); err != nil {
			t.Fatal(err)
		}
		var m member.Member
		gdb.Where("id = ?", other).Take(&m)
		if m.TierID == nil || *m.TierID != 7 {
			t.Fatalf("tier %v", m.TierID)
		}
		if err := member.LockMember(ctx, gdb, mid+1, other); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("lock foreign: %v", err)
		}
	})
}

func TestFindBuyer(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		svc := member.NewService(gdb, nil, func() time.Time { return time.Now().UTC() }, quiet)
		oa, mp, phone, name, month, day := "oa-buyer", "mp-buyer", "13800138000", "小林", 5, 1
		now := time.Now().UTC()
		id := insertMember(t, gdb, member.Member{MerchantID: mid, OAOpenID: &oa, MPOpenID: &mp, Phone: &phone, Name: name,
			BirthdayMonth: &month, BirthdayDay: &day, FollowedAt: &now})
		bare := insertMember(t, gdb, member.Member{MerchantID: mid})
		// A member merged into id: its old id still finds the survivor.
		gone := insertMember(t, gdb, member.Member{MerchantID: mid})
		gdb.Exec("DELETE FROM members WHERE id = ?", gone)
		gdb.Exec("INSERT INTO member_merges (merchant_id, from_member_id, into_member_id, reason, created_at) VALUES (?, ?, ?, 'test', ?)",
			mid, gone, id, now)
		for name, ref := range map[string]member.BuyerRef{"id": {ID: id}, "merged id": {ID: gone}, "oa openid": {OpenID: oa},
			"mp openid": {OpenID: mp}, "phone": {Phone: phone}, "+86 phone": {Phone: "+86" + phone}} {
			b, err := svc.FindBuyer(ctx, mid, ref)
			if err != nil || b.ID != id || b.BirthdayMonth != 5 || !b.EverFollowed || !b.HasMiniProgram || !b.ProfileComplete {
				t.Errorf("%s: %v %+v", name, err, b)
			}
		}
		b, err := svc.FindBuyer(ctx, mid, member.BuyerRef{ID: bare})
		if err != nil || b.ProfileComplete || b.EverFollowed || b.HasMiniProgram || b.BirthdayMonth != 0 {
			t.Fatalf("bare: %v %+v", err, b)
		}
		for name, ref := range map[string]member.BuyerRef{"none": {}, "unknown id": {ID: id + 1000}, "bad phone": {Phone: "12"},
			"unknown openid": {OpenID: "x"}} {
			if _, err := svc.FindBuyer(ctx, mid, ref); !errors.Is(err, apperr.ErrNotFound) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := svc.FindBuyer(ctx, mid+1, member.BuyerRef{ID: id}); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("other merchant: %v", err)
		}
		got, err := member.MemberIDByOAOpenID(ctx, gdb, mid, oa)
		if err != nil || got != id {
			t.Fatalf("by oa openid: %v %d", err, got)
		}
		if _, err := member.MemberIDByOAOpenID(ctx, gdb, mid, mp); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("mp openid is not an oa openid: %v", err)
		}
	})
}
