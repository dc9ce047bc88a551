package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// runCLI runs the binary's main logic with the given environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func cliEnv(t *testing.T) map[string]string {
	return map[string]string{
		"LOYALTY_DATA_DIR":   t.TempDir(),
		"LOYALTY_SECRET_KEY": strings.Repeat("s", 40),
		"LOYALTY_LOG_LEVEL":  "error",
	}
}

var validFlags = []string{"merchant", "create", "--name", "Tea House", "--wechat-app-id", "wx0123456789abcdef",
	"--wechat-app-secret", "0123456789abcdef0123456789abcdef", "--wechat-token", "teatoken",
	"--wechat-aes-key", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
	"--mp-app-id", "wxfedcba9876543210", "--mp-app-secret", "fedcba9876543210fedcba9876543210",
	"--owner", "Boss", "--owner-password", "correct horse"}

func TestMerchantCreate(t *testing.T) {
	for _, backend := range []string{"sqlite", "mysql"} {
		t.Run(backend, func(t *testing.T) {
			env := cliEnv(t)
			if backend == "mysql" {
				_, dsn := dbtest.OpenMySQLEmpty(t)
				env["LOYALTY_DB_DRIVER"], env["LOYALTY_DB_DSN"] = "mysql", dsn
			}
			code, out, errOut := runCLI(t, env, validFlags...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Fatalf("stdout is not one JSON object: %q", out)
			}
			if got["merchant_id"] == nil || got["owner"] != "boss" || got["owner_password"] != nil {
				t.Fatalf("output %v", got)
			}
			// The owner can log in to the service that reads this database.
			cfg, err := configs.Load("", envList(env))
			if err != nil {
				t.Fatal(err)
			}
			gdb, err := openDB(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			staffs := admin.NewStaffs(gdb, clock, nil)
			if _, _, err := staffs.Login(context.Background(), "boss", "correct horse"); err != nil {
				t.Fatalf("owner login: %v", err)
			}
			// Secrets are encrypted at rest.
			var stored admin.Merchant
			gdb.First(&stored)
			if strings.Contains(stored.OAAppSecretEnc, "0123456789abcdef") || stored.OAAppSecretEnc == "" {
				t.Fatalf("secret stored as %q", stored.OAAppSecretEnc)
			}

			// The same AppID again: refused, clearly, with nothing created.
			code, _, errOut = runCLI(t, env, validFlags...)
			if code != 2 || !strings.Contains(errOut, "already exists") {
				t.Fatalf("duplicate: exit %d %q", code, errOut)
			}
			var n int64
			gdb.Model(&admin.Merchant{}).Count(&n)
			if n != 1 {
				t.Fatalf("%d merchants after a refused duplicate", n)
			}
		})
	}
}

func TestMerchantCreateBadInput(t *testing.T) {
	env := cliEnv(t)
	cases := []struct {
		args []string
		want string
	}{
		{replaceFlag("--wechat-app-id", "wx123"), "--wechat-app-id"},
		{replaceFlag("--wechat-app-secret", "short"), "--wechat-app-secret"},
		{replaceFlag("--wechat-token", "a b"), "--wechat-token"},
		{replaceFlag("--wechat-aes-key", "tooshort"), "--wechat-aes-key"},
		{replaceFlag("--owner", "x"), "--owner"},
		{replaceFlag("--owner-password", "1234"), "--owner-password"},
		{replaceFlag("--name", " "), "--name"},
		{append(append([]string{}, validFlags...), "--bogus"), "bogus"},
	}
	for _, tc := range cases {
		code, out, errOut := runCLI(t, env, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: exit %d stdout %q stderr %q, want exit 2 naming %s", tc.want, code, out, errOut, tc.want)
		}
	}
	// A bad owner leaves no merchant behind: the same AppID can be used now.
	if code, _, errOut := runCLI(t, env, validFlags...); code != 0 {
		t.Fatalf("after refused attempts: exit %d %s", code, errOut)
	}
}

// Without a secret key (and outside sandbox mode) nothing can be encrypted:
// a clear error, not a generated key nobody will find again.
func TestMerchantCreateNeedsSecretKey(t *testing.T) {
	env := cliEnv(t)
	delete(env, "LOYALTY_SECRET_KEY")
	t.Setenv("LOYALTY_SECRET_KEY", "")
	code, _, errOut := runCLI(t, env, validFlags...)
	if code == 0 || !strings.Contains(errOut, "LOYALTY_SECRET_KEY") {
		t.Fatalf("exit %d %q", code, errOut)
	}
}

func TestMigrateAndVersion(t *testing.T) {
	env := cliEnv(t)
	for range 2 {
		code, out, errOut := runCLI(t, env, "migrate")
		if code != 0 || !strings.HasPrefix(out, "schema version ") {
			t.Fatalf("migrate: %d %q %q", code, out, errOut)
		}
	}
	if code, out, _ := runCLI(t, env, "version"); code != 0 || !strings.HasPrefix(out, "loyalty ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, map[string]string{"LOYALTY_DB_DRIVER": "oracle"}, "migrate"); code != 2 || !strings.Contains(errOut, "LOYALTY_DB_DRIVER") {
		t.Fatalf("bad config: %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, env, "frobnicate"); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
}

// With credentials in the configuration and LOYALTY_WECHAT_API_BASE set,
// the service serves that merchant against the WeChat at the base URL (here
// a simulator running apart from the service, as a real WeChat would).
func TestConfiguredMerchantAgainstExternalWeChat(t *testing.T) {
	sim := wechattest.New()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	m := configs.Merchant{Name: "Real Shop", TimeZone: "Asia/Shanghai", AppID: "wx00112233445566ff",
		AppSecret: "00112233445566778899aabbccddeeff", Token: "realtoken",
		MPAppID: "wx66554433221100ff", MPAppSecret: "ffeeddccbbaa99887766554433221100"}
	sim.AddOfficialAccount(wechattest.App{AppID: m.AppID, Secret: m.AppSecret})
	sim.AddMiniProgram(wechattest.App{AppID: m.MPAppID, Secret: m.MPAppSecret})
	a := startApp(t, func(c *configs.Config) {
		c.WeChat.Sandbox = configs.SandboxAuto
		c.WeChat.APIBase = srv.URL
		c.WeChat.Merchant = m
		c.SecretKey = strings.Repeat("r", 32)
	})
	if a.sandbox != nil {
		t.Fatal("sandbox mode despite configured credentials")
	}
	var merchantID uint64
	a.db.Model(&admin.Merchant{}).Where("oa_app_id = ?", m.AppID).Pluck("id", &merchantID)
	if merchantID == 0 {
		t.Fatal("configured merchant not created")
	}
	sim.Follow(m.AppID, "o_real", "u_real")
	ep := wechattest.Endpoint{URL: fmt.Sprintf("%s/wechat/%d/callback", a.base, merchantID), AppID: m.AppID, Token: m.Token}
	req, _ := ep.Request(wechattest.SubscribeEvent("gh_real", "o_real", ""))
	if st, body := send(t, req); st != 200 || body != "success" {
		t.Fatalf("callback: %d %q", st, body)
	}
	a.waitProcessed()
	var mem member.Member
	if err := a.db.Where("merchant_id = ? AND oa_openid = ?", merchantID, "o_real").Take(&mem).Error; err != nil {
		t.Fatal(err)
	}
	if mem.UnionID == nil || *mem.UnionID != "u_real" {
		t.Fatalf("member %+v: unionid not fetched from the configured WeChat", mem)
	}
	if sim.CountRequests("/cgi-bin/user/info") != 1 {
		t.Fatal("user info did not go to LOYALTY_WECHAT_API_BASE")
	}
	// Sandbox tools do not exist outside sandbox mode.
	if st := a.call("POST", "/api/admin/v1/sandbox/follow", "", map[string]string{}, nil); st != 404 && st != 401 {
		t.Fatalf("sandbox route outside sandbox: %d", st)
	}
}

func replaceFlag(flag, value string) []string {
	out := append([]string{}, validFlags...)
	for i := range out {
		if out[i] == flag {
			out[i+1] = value
		}
	}
	return out
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
