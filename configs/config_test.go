package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:8080" || cfg.DB.Driver != "sqlite" || cfg.DB.DSN != filepath.Join("data", "loyalty.db") {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.HTTP.PublicURL != "http://127.0.0.1:8080" || cfg.WeChat.Sandbox != SandboxAuto || cfg.WeChat.Merchant.TimeZone != "Asia/Shanghai" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, path, `
http:
  addr: 0.0.0.0:9000
db:
  driver: mysql
  dsn: "u:p@tcp(db:3306)/loyalty"
wechat:
  timeout: 3s
`)
	cfg, err := Load(path, []string{
		"LOYALTY_HTTP_ADDR=127.0.0.1:7000",
		"LOYALTY_WECHAT_API_BASE=http://127.0.0.1:9999/wx",
		"LOYALTY_REDIS_ADDR=127.0.0.1:6379",
		"LOYALTY_SECRET_KEY=" + strings.Repeat("k", 32),
		"LOYALTY_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.HTTP.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.7"}) {
		t.Errorf("trusted proxies %q", cfg.HTTP.TrustedProxies)
	}
	if cfg.HTTP.Addr != "127.0.0.1:7000" {
		t.Errorf("addr %q: environment must win over the file", cfg.HTTP.Addr)
	}
	if cfg.DB.Driver != "mysql" || cfg.DB.DSN != "u:p@tcp(db:3306)/loyalty" || cfg.WeChat.Timeout != 3*time.Second {
		t.Errorf("file values lost: %+v", cfg)
	}
	if cfg.WeChat.APIBase != "http://127.0.0.1:9999/wx" || cfg.Redis.Addr != "127.0.0.1:6379" {
		t.Errorf("env values lost: %+v", cfg)
	}
}

// Every bad setting fails fast with a message naming its key (and the
// environment variable that sets it).
func TestValidationNamesTheKey(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  []string
		want string
	}{
		{"bad driver", "", []string{"LOYALTY_DB_DRIVER=postgres"}, "db.driver (LOYALTY_DB_DRIVER)"},
		{"mysql without dsn", "", []string{"LOYALTY_DB_DRIVER=mysql"}, "db.dsn (LOYALTY_DB_DSN): is required"},
		{"bad mysql dsn", "", []string{"LOYALTY_DB_DRIVER=mysql", "LOYALTY_DB_DSN=nonsense"}, "db.dsn (LOYALTY_DB_DSN)"},
		{"bad addr", "", []string{"LOYALTY_HTTP_ADDR=8080"}, "http.addr (LOYALTY_HTTP_ADDR)"},
		{"bad api base", "", []string{"LOYALTY_WECHAT_API_BASE=ftp://x"}, "wechat.api_base (LOYALTY_WECHAT_API_BASE)"},
		{"short secret", "", []string{"LOYALTY_SECRET_KEY=short"}, "secret_key (LOYALTY_SECRET_KEY)"},
		{"short old key", "", []string{"LOYALTY_SECRET_KEY=" + strings.Repeat("k", 32), "LOYALTY_SECRET_KEYS_OLD=" + strings.Repeat("o", 32) + ",short"},
			"secret_keys_old (LOYALTY_SECRET_KEYS_OLD): key 2 must be at least 32 characters"},
		{"old key repeats the current one", "", []string{"LOYALTY_SECRET_KEY=" + strings.Repeat("k", 32), "LOYALTY_SECRET_KEYS_OLD=" + strings.Repeat("k", 32)},
			"secret_keys_old (LOYALTY_SECRET_KEYS_OLD): key 1 repeats"},
		{"old keys without a current one", "", []string{"LOYALTY_SECRET_KEYS_OLD=" + strings.Repeat("o", 32)}, "secret_keys_old (LOYALTY_SECRET_KEYS_OLD): needs secret_key"},
		{"bad duration env", "", []string{"LOYALTY_WECHAT_TIMEOUT=soon"}, "LOYALTY_WECHAT_TIMEOUT"},
		{"bad app id", "", []string{"LOYALTY_WECHAT_APP_ID=wx123", "LOYALTY_WECHAT_APP_SECRET=" + strings.Repeat("a", 32), "LOYALTY_WECHAT_TOKEN=tok123"},
			"wechat.merchant.app_id (LOYALTY_WECHAT_APP_ID)"},
		{"secret without app id", "", []string{"LOYALTY_WECHAT_APP_SECRET=" + strings.Repeat("a", 32)}, "wechat.merchant.app_id (LOYALTY_WECHAT_APP_ID)"},
		{"bad time zone", "wechat:\n  merchant:\n    time_zone: Mars/Base\n", nil, "wechat.merchant.time_zone"},
		{"sandbox with api base", "", []string{"LOYALTY_SANDBOX=on", "LOYALTY_WECHAT_API_BASE=http://x"}, "wechat.sandbox (LOYALTY_SANDBOX)"},
		{"bad sandbox", "", []string{"LOYALTY_SANDBOX=maybe"}, "wechat.sandbox (LOYALTY_SANDBOX)"},
		{"bad log level", "", []string{"LOYALTY_LOG_LEVEL=loud"}, "log.level (LOYALTY_LOG_LEVEL)"},
		{"bad member login limit", "", []string{"LOYALTY_MEMBER_LOGIN_PER_CLIENT=0"}, "member_login.per_client_per_minute (LOYALTY_MEMBER_LOGIN_PER_CLIENT)"},
		{"bad member merchant limit", "member_login:\n  per_merchant_per_minute: -5\n", nil, "member_login.per_merchant_per_minute"},
		{"bad metrics addr", "", []string{"LOYALTY_METRICS_ADDR=9090"}, "http.metrics_addr (LOYALTY_METRICS_ADDR)"},
		{"metrics on the main listener", "", []string{"LOYALTY_METRICS_ADDR=127.0.0.1:8080"}, "http.metrics_addr (LOYALTY_METRICS_ADDR): must differ"},
		{"metrics on the debug listener", "", []string{"LOYALTY_METRICS_ADDR=127.0.0.1:6060", "LOYALTY_DEBUG_ADDR=127.0.0.1:6060"}, "http.metrics_addr (LOYALTY_METRICS_ADDR): must differ"},
		{"bad trusted proxy", "", []string{"LOYALTY_TRUSTED_PROXIES=10.0.0.0/8,lb.local"}, "http.trusted_proxies (LOYALTY_TRUSTED_PROXIES)"},
		{"bad claim strategy", "", []string{"LOYALTY_DB_CLAIM_STRATEGY=nowait"}, "db.claim_strategy (LOYALTY_DB_CLAIM_STRATEGY)"},
		{"short notice retention", "", []string{"LOYALTY_NOTICE_RETENTION=24h"}, "send.notice_retention (LOYALTY_NOTICE_RETENTION): must be at least 720h"},
		{"unknown yaml key", "http:\n  adress: x\n", nil, "field adress not found"},
		{"wrong yaml type", "db:\n  max_open_conns: many\n", nil, "max_open_conns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				writeFile(t, path, tc.file)
			}
			_, err := Load(path, tc.env)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil); err == nil {
		t.Fatal("want an error for a missing config file")
	}
}

func TestExampleFileLoadsAndDocumentsEveryKey(t *testing.T) {
	cfg, err := Load("config.example.yaml", nil)
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if cfg.HTTP.Addr == "" {
		t.Fatal("example file left http.addr empty")
	}
	raw, err := os.ReadFile("config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range envVars() {
		if !strings.Contains(string(raw), env) {
			t.Errorf("config.example.yaml does not mention %s", env)
		}
	}
}

func TestLogValueRedactsSecrets(t *testing.T) {
	cfg := Default()
	cfg.SecretKey = "super-secret-super-secret-super-secret"
	cfg.SecretKeysOld = []string{"older-secret-older-secret-older-secret"}
	cfg.DB.Driver, cfg.DB.DSN = "mysql", "app:hunter2@tcp(db:3306)/loyalty"
	cfg.WeChat.Merchant.AppSecret = "0123456789abcdef0123456789abcdef"
	got := cfg.LogValue().String()
	for _, secret := range []string{"super-secret", "older-secret", "hunter2", "0123456789abcdef"} {
		if strings.Contains(got, secret) {
			t.Errorf("log value leaks %q: %s", secret, got)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// envVars lists every environment variable Config reads.
func envVars() []string {
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if e := f.Tag.Get("env"); e != "" {
				out = append(out, e)
			}
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
	return out
}
