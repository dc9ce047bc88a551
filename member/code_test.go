package member_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/member"
)

func fieldOf(err error) string {
	var v *apperr.Validation
	if errors.As(err, &v) {
		for f := range v.Fields {
			return f
		}
	}
	return ""
}

// A member code names its member for MemberCodeTTL and no longer; it
// verifies under the key it was signed with while that key is in the ring
// (old keys only verify); another merchant's code is refused.
func TestMemberCodeLifetimeAndKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		clk := &fakeclock.Clock{}
		clk.Set(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
		oldKey, newKey := []byte("old-key-old-key-old-key-old-key!"), []byte("new-key-new-key-new-key-new-key!")
		codes := member.NewCodes(gdb, oldKey, clk.Now)
		mid := dbtest.NewMerchantID()
		c, err := codes.Issue(mid, 4242)
		if err != nil {
			t.Fatal(err)
		}
		if !c.ExpiresAt.Equal(clk.Now().Add(member.MemberCodeTTL)) || !c.RefreshAfter.Equal(clk.Now().Add(member.MemberCodeRefresh)) {
			t.Fatalf("times %+v", c)
		}
		rotated := member.NewCodes(gdb, newKey, clk.Now, oldKey)
		for name, cs := range map[string]*member.Codes{"same key": codes, "new key, old listed": rotated} {
			if id, exp, err := cs.Check(mid, c.Code); err != nil || id != 4242 || !exp.Equal(c.ExpiresAt) {
				t.Fatalf("%s: %d %v %v", name, id, exp, err)
			}
		}
		if _, _, err := member.NewCodes(gdb, newKey, clk.Now).Check(mid, c.Code); fieldOf(err) != "member_code" {
			t.Fatalf("old key removed: %v", err)
		}
		if _, _, err := codes.Check(mid+1, c.Code); fieldOf(err) != "member_code" {
			t.Fatalf("another merchant: %v", err)
		}
		clk.Add(member.MemberCodeTTL - time.Millisecond)
		if _, _, err := codes.Check(mid, c.Code); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		clk.Add(time.Millisecond)
		if _, _, err := codes.Check(mid, c.Code); fieldOf(err) != "member_code" {
			t.Fatalf("at expiry: %v", err)
		}
		if _, err := codes.Use(context.Background(), mid, c.Code, "late-order"); fieldOf(err) != "member_code" {
			t.Fatalf("expired code used: %v", err)
		}
	})
}

// Ten orders race for one code: exactly one gets the member, and that
// order may use the code again.
func TestMemberCodeUsedOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		clk := &fakeclock.Clock{}
		clk.Set(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
		codes := member.NewCodes(gdb, []byte("key-key-key-key-key-key-key-key!"), clk.Now)
		mid := dbtest.NewMerchantID()
		c, _ := codes.Issue(mid, 7)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			winner string
			wins   int
		)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				order := "order-" + string(rune('a'+i))
				id, err := codes.Use(context.Background(), mid, c.Code, order)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && id == 7:
					wins++
					winner = order
				case errors.Is(err, apperr.ErrConflict):
				default:
					t.Errorf("%s: %d %v", order, id, err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d orders got the code", wins)
		}
		if id, err := codes.Use(context.Background(), mid, c.Code, winner); err != nil || id != 7 {
			t.Fatalf("the winning order again: %d %v", id, err)
		}
		// Housekeeping forgets uses an hour after their code expired.
		clk.Add(member.MemberCodeTTL + time.Hour + time.Second)
		if err := codes.PurgeUses(context.Background()); err != nil {
			t.Fatal(err)
		}
		var n int64
		gdb.Table("member_code_uses").Where("merchant_id = ?", mid).Count(&n)
		if n != 0 {
			t.Fatalf("%d uses left after the purge", n)
		}
	})
}
