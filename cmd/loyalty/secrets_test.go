package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// eachBackend runs fn on a new SQLite file and on a new MySQL database;
// db configures a service (or the CLI) to use it.
func eachBackend(t *testing.T, fn func(t *testing.T, db func(*configs.Config), env map[string]string)) {
	t.Run(dbtest.SQLite, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "loyalty.db")
		fn(t, func(c *configs.Config) { c.DB.Driver, c.DB.DSN = "sqlite", path },
			map[string]string{"LOYALTY_DB_DRIVER": "sqlite", "LOYALTY_DB_DSN": path})
	})
	t.Run(dbtest.MySQL, func(t *testing.T) {
		_, dsn := dbtest.OpenMySQLEmpty(t)
		fn(t, func(c *configs.Config) { c.DB.Driver, c.DB.DSN = "mysql", dsn },
			map[string]string{"LOYALTY_DB_DRIVER": "mysql", "LOYALTY_DB_DSN": dsn})
	})
}

func withKeys(current string, old ...string) func(*configs.Config) {
	return func(c *configs.Config) { c.SecretKey, c.SecretKeysOld = current, old }
}

// memberToken logs a new mini-program member in through the sandbox and
// returns their token.
func (a *testApp) memberToken(staffToken string) string {
	a.t.Helper()
	var code struct{ Code string }
	if st := a.call("POST", "/api/admin/v1/sandbox/mp-login-code", staffToken, map[string]string{}, &code); st != 200 {
		a.t.Fatalf("mp-login-code: %d", st)
	}
	var login struct{ Token string }
	if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", map[string]string{"code": code.Code}, &login); st != 200 {
		a.t.Fatalf("mp login: %d", st)
	}
	return login.Token
}

// Replacing LOYALTY_SECRET_KEY without downtime: an instance with the new
// key (and the old one in LOYALTY_SECRET_KEYS_OLD) serves next to one with
// the old key; `loyalty secrets rotate` re-encrypts every stored secret
// (and says so, and does nothing the second time); an instance with only
// the new key then reads everything. Member tokens signed with the old key
// keep working while the old key is listed, and stop when it is removed;
// staff sessions are not derived from the key and survive it all.
func TestSecretKeyRotation(t *testing.T) {
	eachBackend(t, func(t *testing.T, db func(*configs.Config), env map[string]string) {
		oldKey, newKey := strings.Repeat("o", 40), strings.Repeat("n", 40)
		before := startAppOn(t, db, withKeys(oldKey))
		oldMember := before.memberToken(before.login())
		// A staff account of its own: the demo owner's password (and so
		// its sessions) is renewed at every start.
		if _, err := before.staffs.Create(context.Background(), before.merchant, "rotator", "rotation-password", admin.RoleOwner); err != nil {
			t.Fatal(err)
		}
		var session struct{ Token string }
		if st := before.call("POST", "/api/admin/v1/login", "", map[string]string{"username": "rotator", "password": "rotation-password"}, &session); st != 200 {
			t.Fatalf("login: %d", st)
		}
		staff := session.Token
		profile := fmt.Sprintf("/api/member/v1/%d/profile", before.merchant)

		during := startAppOn(t, db, withKeys(newKey, oldKey))
		if st := during.call("GET", profile, oldMember, nil, nil); st != 200 {
			t.Fatalf("old member token on the new-key instance: %d", st)
		}
		if st := during.call("GET", "/api/admin/v1/settings", staff, nil, nil); st != 200 {
			t.Fatalf("settings on the new-key instance before rotation: %d", st)
		}
		newMember := during.memberToken(staff)

		env["LOYALTY_DATA_DIR"], env["LOYALTY_LOG_LEVEL"] = t.TempDir(), "error"
		env["LOYALTY_SECRET_KEY"], env["LOYALTY_SECRET_KEYS_OLD"] = newKey, oldKey
		var rep struct {
			KeyID            string   `json:"key_id"`
			Merchants        int      `json:"merchants"`
			SecretsRewritten int      `json:"secrets_rewritten"`
			Failed           []uint64 `json:"failed_merchants"`
		}
		code, out, errOut := runCLI(t, env, "secrets", "rotate")
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Merchants != 1 || rep.SecretsRewritten != 4 || len(rep.Failed) != 0 {
			t.Fatalf("rotate: exit %d %q %q", code, out, errOut)
		}
		code, out, errOut = runCLI(t, env, "secrets", "rotate")
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Merchants != 1 || rep.SecretsRewritten != 0 {
			t.Fatalf("second rotate: exit %d %q %q", code, out, errOut)
		}

		// Only the new key now: everything stored reads, WeChat callbacks
		// (token and AES key) and the simulator (AppSecret) work.
		after := startAppOn(t, db, withKeys(newKey))
		var settings struct {
			WeChat struct {
				AppSecretSet bool `json:"app_secret_set"`
				AESKeySet    bool `json:"aes_key_set"`
			} `json:"wechat"`
		}
		if st := after.call("GET", "/api/admin/v1/settings", staff, nil, &settings); st != 200 || !settings.WeChat.AppSecretSet || !settings.WeChat.AESKeySet {
			t.Fatalf("settings with the new key only: %d %+v", st, settings)
		}
		var followed struct{ Processed bool }
		if st := after.call("POST", "/api/admin/v1/sandbox/follow", staff, map[string]string{}, &followed); st != 200 || !followed.Processed {
			t.Fatalf("follow with the new key only: %d %+v", st, followed)
		}
		if st := after.call("GET", profile, newMember, nil, nil); st != 200 {
			t.Fatalf("new-key member token: %d", st)
		}
		if st := after.call("GET", profile, oldMember, nil, nil); st != 401 {
			t.Fatalf("old-key member token once the old key is gone: %d, want 401", st)
		}

		// Rotating with a key set that cannot read what is stored fails
		// loudly and changes nothing.
		env["LOYALTY_SECRET_KEY"], env["LOYALTY_SECRET_KEYS_OLD"] = strings.Repeat("x", 40), oldKey
		code, out, errOut = runCLI(t, env, "secrets", "rotate")
		if code != 1 || !strings.Contains(errOut, "could not be decrypted") || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Failed) != 1 {
			t.Fatalf("rotate without the current key: exit %d %q %q", code, out, errOut)
		}
		if st := after.call("GET", "/api/admin/v1/settings", staff, nil, nil); st != 200 {
			t.Fatalf("settings after a failed rotation: %d", st)
		}
	})
}
