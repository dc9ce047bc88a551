package admin_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/secrets"
)

// eachIsolated runs fn on SQLite and on a MySQL database of its own: the
// rotation tests look at every merchant in the database.
func eachIsolated(t *testing.T, fn func(t *testing.T, gdb *gorm.DB)) {
	t.Run(dbtest.SQLite, func(t *testing.T) { fn(t, dbtest.OpenSQLite(t)) })
	t.Run(dbtest.MySQL, func(t *testing.T) { fn(t, dbtest.OpenMySQLIsolated(t)) })
}

func ring(t *testing.T, current string, old ...string) *secrets.Keyring {
	t.Helper()
	k, err := secrets.New(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rawMerchant(t *testing.T, gdb *gorm.DB, id uint64) admin.Merchant {
	t.Helper()
	var m admin.Merchant
	if err := gdb.Where("id = ?", id).Take(&m).Error; err != nil {
		t.Fatal(err)
	}
	return m
}

// A stored secret is bound to its merchant: copied into another merchant's
// row (by someone who can write the database), it does not decrypt there,
// and the error names the merchant and the column.
func TestSecretCopiedToAnotherMerchantDoesNotDecrypt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		m := admin.NewMerchants(gdb, keys(t), time.Now, nil)
		a, err := m.Create(ctx, admin.MerchantInput{Name: "A", Credentials: admin.NewSandboxCredentials()})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Create(ctx, admin.MerchantInput{Name: "B", Credentials: admin.NewSandboxCredentials()})
		if err != nil {
			t.Fatal(err)
		}
		stolen := rawMerchant(t, gdb, a.ID).OAAppSecretEnc
		if err := gdb.Model(&admin.Merchant{}).Where("id = ?", b.ID).Update("oa_app_secret_enc", stolen).Error; err != nil {
			t.Fatal(err)
		}
		_, err = m.WeChatCredentials(ctx, b.ID)
		if !errors.Is(err, secrets.ErrDecrypt) || !strings.Contains(err.Error(), "oa_app_secret_enc") ||
			!strings.Contains(err.Error(), "merchant "+itoa(b.ID)) {
			t.Fatalf("copied secret: %v, want ErrDecrypt naming merchant %d and the column", err, b.ID)
		}
		if _, err := m.Settings(ctx, b.ID); !errors.Is(err, secrets.ErrDecrypt) {
			t.Fatalf("settings of the merchant with a copied secret: %v", err)
		}
		// The merchant it was copied from is unaffected.
		if _, err := m.WeChatCredentials(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// Values written by versions before rotation existed (v1: bound to the
// column only), made by that code with the key "a"*32 (see
// internal/secrets' tests).
var v1Stored = map[string]string{
	"oa_app_secret_enc": "v1:jW2o-6eRQRjfu3j-mwmn9QfJX7tRzNx9ulwlOA2_MdIs0ZU84o3Fki5ghkPonfwZf-7sdRAU",
	"oa_token_enc":      "v1:GBziJJm8sdKnLFCibvnnn871FgJL67ojB8ye6szYTgfr2j-OmH0tvZXLKsYJ8aJ2pw",
	"oa_aes_key_enc":    "v1:KlUWZOh8L1ffbZgtv4-oSV26Ac6U-lb_u90hi157eUaIEIEXfa52cg_wbYX21UzTtQRo",
	"mp_app_secret_enc": "v1:gCuJKoJ4y6JbcxF2RV9oVper3Xq9L659EEUdy0Dc4Vw7VU3n4awJAkXvpmvJUOU_w4fkUvb3",
}

// An old-format value still reads after the upgrade, with the key that
// wrote it.
func TestOldFormatSecretsStillRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		oldKey := strings.Repeat("a", 32)
		m := admin.NewMerchants(gdb, ring(t, oldKey), time.Now, nil)
		legacy := legacyMerchant(t, gdb, m)
		c, err := m.WeChatCredentials(ctx, legacy.ID)
		if err != nil || c.AppSecret != "old-merchant.oa_app_secret" || c.Token != "old-merchant.oa_token" ||
			c.EncodingAESKey != "old-merchant.oa_aes_key" || c.MPAppSecret != "old-merchant.mp_app_secret" {
			t.Fatalf("v1 credentials: %+v %v", c, err)
		}
	})
}

// legacyMerchant creates a merchant and replaces its secrets with v1 values.
func legacyMerchant(t *testing.T, gdb *gorm.DB, m *admin.Merchants) admin.Merchant {
	t.Helper()
	created, err := m.Create(context.Background(), admin.MerchantInput{Name: "Legacy", Credentials: admin.NewSandboxCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string]any{}
	for col, v := range v1Stored {
		cols[col] = v
	}
	if err := gdb.Model(&admin.Merchant{}).Where("id = ?", created.ID).Updates(cols).Error; err != nil {
		t.Fatal(err)
	}
	return created
}

// Key rotation: with the new key current and the old one kept for reading,
// `secrets rotate` re-encrypts every value under the new key (v1 values
// too, now bound to their merchant); running it again changes nothing; a
// process with only the new key then reads everything. A merchant whose
// value does not decrypt is reported and left alone, not carried forward.
func TestRotateSecrets(t *testing.T) {
	eachIsolated(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		oldKey, newKey := strings.Repeat("a", 32), strings.Repeat("n", 32)
		before := admin.NewMerchants(gdb, ring(t, oldKey), time.Now, nil)
		var ids []uint64
		want := map[uint64]admin.MerchantInput{}
		for _, name := range []string{"One", "Two"} {
			in := admin.MerchantInput{Name: name, Credentials: admin.NewSandboxCredentials()}
			if name == "Two" {
				in.Credentials.MPAppID, in.Credentials.MPAppSecret = "", "" // empty values stay empty
			}
			created, err := before.Create(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, created.ID)
			want[created.ID] = in
		}
		legacy := legacyMerchant(t, gdb, before)
		ids = append(ids, legacy.ID)
		updatedAt := rawMerchant(t, gdb, ids[0]).UpdatedAt

		rotating := admin.NewMerchants(gdb, ring(t, newKey, oldKey), time.Now, nil)
		rep, err := rotating.RotateSecrets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// One: 4 values, Two: 3 (no mini-program), Legacy: 4.
		if rep.Merchants != 3 || rep.MerchantsChanged != 3 || rep.SecretsRewritten != 11 || len(rep.Failed) != 0 ||
			rep.KeyID != ring(t, newKey).KeyID() {
			t.Fatalf("first rotation: %+v", rep)
		}
		stored := map[uint64]admin.Merchant{}
		for _, id := range ids {
			stored[id] = rawMerchant(t, gdb, id)
			for _, v := range []string{stored[id].OAAppSecretEnc, stored[id].OATokenEnc, stored[id].OAAESKeyEnc, stored[id].MPAppSecretEnc} {
				if v != "" && !strings.HasPrefix(v, "v2:"+rep.KeyID+":") {
					t.Fatalf("merchant %d still holds %q", id, v)
				}
			}
		}
		if got := rawMerchant(t, gdb, ids[0]).UpdatedAt; !got.Equal(updatedAt) {
			t.Fatalf("rotation touched updated_at: %v -> %v", updatedAt, got)
		}

		// Idempotent: nothing left to do, nothing rewritten.
		rep, err = rotating.RotateSecrets(ctx)
		if err != nil || rep.Merchants != 3 || rep.MerchantsChanged != 0 || rep.SecretsRewritten != 0 {
			t.Fatalf("second rotation: %+v %v", rep, err)
		}
		for _, id := range ids {
			if sealedOf(rawMerchant(t, gdb, id)) != sealedOf(stored[id]) {
				t.Fatalf("second rotation rewrote merchant %d", id)
			}
		}

		// Only the new key: everything reads.
		after := admin.NewMerchants(gdb, ring(t, newKey), time.Now, nil)
		for id, in := range want {
			if c, err := after.WeChatCredentials(ctx, id); err != nil || c != in.Credentials {
				t.Fatalf("merchant %d after rotation: %+v %v", id, c, err)
			}
		}
		if c, err := after.WeChatCredentials(ctx, legacy.ID); err != nil || c.AppSecret != "old-merchant.oa_app_secret" {
			t.Fatalf("legacy merchant after rotation: %+v %v", c, err)
		}
		// And the old key alone no longer does.
		if _, err := before.WeChatCredentials(ctx, ids[0]); !errors.Is(err, secrets.ErrDecrypt) {
			t.Fatalf("old key after rotation: %v", err)
		}

		// A copied value is reported, and its merchant left as it was.
		if err := gdb.Model(&admin.Merchant{}).Where("id = ?", ids[1]).
			Update("oa_token_enc", stored[ids[0]].OATokenEnc).Error; err != nil {
			t.Fatal(err)
		}
		third := admin.NewMerchants(gdb, ring(t, strings.Repeat("3", 32), newKey), time.Now, nil)
		tampered := rawMerchant(t, gdb, ids[1])
		rep, err = third.RotateSecrets(ctx)
		if err != nil || len(rep.Failed) != 1 || rep.Failed[0] != ids[1] || rep.Merchants != 2 || rep.MerchantsChanged != 2 {
			t.Fatalf("rotation with a copied value: %+v %v", rep, err)
		}
		if sealedOf(rawMerchant(t, gdb, ids[1])) != sealedOf(tampered) {
			t.Fatal("the merchant with a copied value was rewritten")
		}
	})
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// sealedOf is what a merchant row stores of its credentials.
func sealedOf(m admin.Merchant) [4]string {
	return [4]string{m.OAAppSecretEnc, m.OATokenEnc, m.OAAESKeyEnc, m.MPAppSecretEnc}
}
