package admin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/internal/secrets"
)

// clock is the tests' settable clock.
type clock = fakeclock.Clock

func TestMain(m *testing.M) {
	stop := startSimulator()
	code := dbtest.Main(m)
	stop()
	os.Exit(code)
}

// testPasswords hashes at bcrypt's lowest cost: the tests log in hundreds
// of times, and the default cost makes them crawl under -race.
func testPasswords() *admin.Passwords {
	return admin.NewPasswords(admin.PasswordOptions{Cost: bcrypt.MinCost})
}

func newClock() *clock { return fakeclock.New(time.Now().UTC().Truncate(time.Millisecond)) }

func keys(t *testing.T) *secrets.Keyring {
	k, err := secrets.New(strings.Repeat("k", 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// unique returns a lower-case name no other test uses (usernames are
// unique across the service).
func unique(prefix string) string {
	return prefix + strings.ToLower(strings.ReplaceAll(admin.GeneratePassword(), "-", "x")[:10])
}

func TestStaffLoginAndSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newClock()
		s := admin.NewStaffs(gdb, c.Now, testPasswords())
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		name := unique("owner")
		st, err := s.Create(ctx, mid, strings.ToUpper(name), "s3cret-pass", admin.RoleOwner)
		if err != nil || st.Username != name {
			t.Fatalf("create: %+v %v", st, err)
		}
		if strings.Contains(st.PasswordHash, "s3cret") || !strings.HasPrefix(st.PasswordHash, "$2") {
			t.Fatalf("password stored as %q", st.PasswordHash)
		}
		// Usernames are unique across merchants, whatever the case.
		if _, err := s.Create(ctx, dbtest.NewMerchantID(), name, "another-pass", admin.RoleViewer); !errors.Is(err, apperr.ErrConflict) {
			t.Fatalf("duplicate username: %v", err)
		}
		for _, bad := range []struct{ user, pass, role string }{
			{"ab", "long-enough", "owner"}, {"has space", "long-enough", "owner"},
			{unique("u"), "short", "owner"}, {unique("u"), strings.Repeat("p", 73), "owner"},
			{unique("u"), "long-enough", "root"},
		} {
			if _, err := s.Create(ctx, mid, bad.user, bad.pass, admin.Role(bad.role)); !errors.Is(err, apperr.ErrInvalid) {
				t.Errorf("create %+v: %v, want invalid", bad, err)
			}
		}

		for _, wrong := range [][2]string{{name, "wrong-pass"}, {unique("nobody"), "s3cret-pass"}} {
			if _, _, err := s.Login(ctx, wrong[0], wrong[1]); err != admin.ErrBadLogin {
				t.Errorf("login %v: %v, want ErrBadLogin", wrong, err)
			}
		}
		token, exp, err := s.Login(ctx, " "+strings.ToUpper(name)+" ", "s3cret-pass")
		if err != nil || !exp.After(c.Now()) {
			t.Fatalf("login: %v", err)
		}
		p, err := s.Authenticate(ctx, token)
		if err != nil || p.MerchantID != mid || p.Role != admin.RoleOwner || p.Name != name {
			t.Fatalf("authenticate: %+v %v", p, err)
		}
		var stored int64
		gdb.Table("staff_sessions").Where("token_hash = ?", token).Count(&stored)
		if stored != 0 {
			t.Fatal("raw token stored")
		}
		for _, bad := range []string{"", "lss_", token + "x", strings.TrimPrefix(token, "lss_")} {
			if _, err := s.Authenticate(ctx, bad); err != admin.ErrBadToken {
				t.Errorf("authenticate %q: %v", bad, err)
			}
		}
		// Expiry.
		c.Add(admin.SessionTTL + time.Minute)
		if _, err := s.Authenticate(ctx, token); err != admin.ErrBadToken {
			t.Fatalf("expired session accepted: %v", err)
		}
		// Logout and password change revoke sessions.
		t1, _, _ := s.Login(ctx, name, "s3cret-pass")
		t2, _, _ := s.Login(ctx, name, "s3cret-pass")
		if err := s.Logout(ctx, t1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, t1); err != admin.ErrBadToken {
			t.Fatal("logged-out session still valid")
		}
		if err := s.SetPassword(ctx, mid, name, "new-password"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, t2); err != admin.ErrBadToken {
			t.Fatal("session survived a password change")
		}
		if _, _, err := s.Login(ctx, name, "s3cret-pass"); err != admin.ErrBadLogin {
			t.Fatal("old password still works")
		}
		if _, _, err := s.Login(ctx, name, "new-password"); err != nil {
			t.Fatalf("new password: %v", err)
		}
		if err := s.SetPassword(ctx, dbtest.NewMerchantID(), name, "new-password"); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("password change from another merchant: %v", err)
		}
	})
}

func TestMerchants(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		var changed []uint64
		m := admin.NewMerchants(gdb, keys(t), newClock().Now, func(id uint64) { changed = append(changed, id) })
		ctx := context.Background()
		in := admin.MerchantInput{Name: "Shop", Credentials: admin.NewSandboxCredentials()}
		created, err := m.Create(ctx, in)
		if err != nil || created.TimeZone != "Asia/Shanghai" {
			t.Fatalf("create: %+v %v", created, err)
		}
		got, err := m.WeChatCredentials(ctx, created.ID)
		if err != nil || got != in.Credentials {
			t.Fatalf("credentials round trip: %+v %v", got, err)
		}
		var raw admin.Merchant
		gdb.Where("id = ?", created.ID).Take(&raw)
		for _, secret := range []string{in.Credentials.AppSecret, in.Credentials.Token, in.Credentials.EncodingAESKey, in.Credentials.MPAppSecret} {
			for _, col := range []string{raw.OAAppSecretEnc, raw.OATokenEnc, raw.OAAESKeyEnc, raw.MPAppSecretEnc} {
				if strings.Contains(col, secret) {
					t.Fatalf("secret %q stored in clear", secret)
				}
			}
		}
		if _, err := m.Create(ctx, in); !errors.Is(err, apperr.ErrConflict) {
			t.Fatalf("same AppID twice: %v", err)
		}
		bad := in
		bad.Name, bad.TimeZone = "", "Nowhere/City"
		bad.Credentials.AppID = "wxNOT"
		var v *apperr.Validation
		if _, err := m.Create(ctx, bad); !errors.As(err, &v) || v.Fields["name"] == "" || v.Fields["time_zone"] == "" || v.Fields["app_id"] == "" {
			t.Fatalf("bad input: %v", err)
		}
		if _, err := m.WeChatCredentials(ctx, created.ID+999999); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("unknown merchant: %v", err)
		}

		// Ensure: unchanged is a no-op; changed credentials are written
		// and announced.
		same, createdNow, err := m.Ensure(ctx, in)
		if err != nil || createdNow || same.ID != created.ID || len(changed) != 0 {
			t.Fatalf("ensure unchanged: %+v %v %v %v", same, createdNow, err, changed)
		}
		in.Credentials.AppSecret = strings.Repeat("f", 32)
		if _, _, err := m.Ensure(ctx, in); err != nil {
			t.Fatal(err)
		}
		if got, _ := m.WeChatCredentials(ctx, created.ID); got.AppSecret != in.Credentials.AppSecret || len(changed) != 1 {
			t.Fatalf("ensure update: %+v %v", got, changed)
		}
		fresh := admin.MerchantInput{Name: "New", Credentials: admin.NewSandboxCredentials()}
		if m2, createdNow, err := m.Ensure(ctx, fresh); err != nil || !createdNow || m2.ID == created.ID {
			t.Fatalf("ensure create: %+v %v %v", m2, createdNow, err)
		}

		// A different secret key cannot read the stored secrets.
		other, _ := secrets.New(strings.Repeat("z", 32))
		if _, err := admin.NewMerchants(gdb, other, time.Now, nil).WeChatCredentials(ctx, created.ID); !errors.Is(err, secrets.ErrDecrypt) {
			t.Fatalf("wrong key: %v", err)
		}
	})
}

// A caller holding a transaction reads the CRM settings through it: with a
// pool of one connection, held by the transaction, the read still answers
// (through a second connection it would wait for ever).
func TestCRMSettingsInTheCallersTransaction(t *testing.T) {
	gdb := dbtest.OpenMySQLIsolated(t)
	m := admin.NewMerchants(gdb, keys(t), newClock().Now, nil)
	ctx := context.Background()
	created, err := m.Create(ctx, admin.MerchantInput{Name: "Shop", Credentials: admin.NewSandboxCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = gdb.WithContext(wait).Transaction(func(tx *gorm.DB) error {
		got, err := m.CRMSettingsIn(wait, tx, created.ID)
		if err == nil && got.Cadence != created.BuyingCadence {
			return fmt.Errorf("cadence %q, want %q", got.Cadence, created.BuyingCadence)
		}
		return err
	})
	if err != nil {
		t.Fatalf("settings inside a transaction on a pool of one: %v", err)
	}
}
