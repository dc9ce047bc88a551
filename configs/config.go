// Package configs loads the service configuration: defaults, then an optional
// YAML file, then LOYALTY_* environment variables, then validation. It
// returns a value; nothing here is global.
package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/go-sql-driver/mysql"
	"go.yaml.in/yaml/v3"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/wechat"
)

// Config is the whole service configuration. Every field documents its YAML
// key and its environment variable; configs/config.example.yaml shows them all.
type Config struct {
	// DataDir holds the embedded SQLite database and, in sandbox mode, the
	// generated secret key.
	DataDir string `yaml:"data_dir" env:"LOYALTY_DATA_DIR"`
	// SecretKey signs tokens and encrypts stored WeChat secrets. At least 32
	// characters. When empty it is read from <data_dir>/secret.key, which
	// sandbox mode creates.
	SecretKey string `yaml:"secret_key" env:"LOYALTY_SECRET_KEY"`
	// SecretKeysOld are earlier secret keys, kept while a key is replaced:
	// they decrypt stored secrets and verify member tokens made under them,
	// and never encrypt or sign. Comma-separated in the environment. See
	// the README's "Replacing the secret key".
	SecretKeysOld []string `yaml:"secret_keys_old" env:"LOYALTY_SECRET_KEYS_OLD" envSeparator:","`

	// Workers runs the background work (applying stored WeChat events) in
	// this instance. Set it false on API-only replicas when other instances
	// do that work; at least one instance must run workers.
	Workers bool `yaml:"workers" env:"LOYALTY_WORKERS"`

	HTTP   HTTP   `yaml:"http"`
	DB     DB     `yaml:"db"`
	Redis  Redis  `yaml:"redis"`
	WeChat WeChat `yaml:"wechat"`
	Log    Log    `yaml:"log"`
	Send   Send   `yaml:"send"`

	Webhooks Webhooks `yaml:"webhooks"`

	MemberLogin MemberLogin `yaml:"member_login"`
}

// MemberLogin bounds member logins (mini-program and H5). Each one spends
// one of the merchant's WeChat code exchanges, which WeChat rations, so a
// flood is refused (429) before WeChat is called. Shared by all instances
// when Redis is configured, per instance otherwise.
type MemberLogin struct {
	// PerClientPerMinute is the most logins per client address per minute
	// (mind carrier NAT and shop Wi-Fi: many members may share an address).
	PerClientPerMinute int `yaml:"per_client_per_minute" env:"LOYALTY_MEMBER_LOGIN_PER_CLIENT"`
	// PerMerchantPerMinute is the most logins per merchant per minute.
	PerMerchantPerMinute int `yaml:"per_merchant_per_minute" env:"LOYALTY_MEMBER_LOGIN_PER_MERCHANT"`
}

// Send configures the delivery engine of campaigns.
type Send struct {
	// RatePerSecond is the most messages sent per second per WeChat
	// account, across all instances when Redis is configured (each
	// instance's own limit otherwise).
	RatePerSecond float64 `yaml:"rate_per_second" env:"LOYALTY_SEND_RATE"`
	// ServiceSharePct of the rate is kept for service messages (points
	// notices), which marketing cannot use.
	ServiceSharePct float64 `yaml:"service_share_pct" env:"LOYALTY_SEND_SERVICE_SHARE_PCT"`
	// Concurrency is how many sends one instance keeps in flight.
	Concurrency int `yaml:"concurrency" env:"LOYALTY_SEND_CONCURRENCY"`
	// DailyQuota is the account's daily message quota (WeChat's: 100,000
	// template messages for most accounts, more for large ones).
	DailyQuota int64 `yaml:"daily_quota" env:"LOYALTY_SEND_DAILY_QUOTA"`
	// NoticeRetention is how long a finished service notice (one row per
	// points, tier or coupon event) is kept before housekeeping deletes
	// it; the member page's message history shows notices this far back.
	NoticeRetention time.Duration `yaml:"notice_retention" env:"LOYALTY_NOTICE_RETENTION"`
}

// Webhooks configures the delivery of webhook events to merchants'
// endpoints.
type Webhooks struct {
	// AllowPrivateTargets lets endpoints point at loopback, private and
	// link-local addresses. Off in production: such an endpoint would make
	// the service call into its own network (SSRF).
	AllowPrivateTargets bool `yaml:"allow_private_targets" env:"LOYALTY_WEBHOOKS_ALLOW_PRIVATE_TARGETS"`
	// Concurrency is how many deliveries one instance keeps in flight.
	Concurrency int `yaml:"concurrency" env:"LOYALTY_WEBHOOKS_CONCURRENCY"`
	// PerEndpoint is how many of them may go to one endpoint at once.
	PerEndpoint int `yaml:"per_endpoint" env:"LOYALTY_WEBHOOKS_PER_ENDPOINT"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout" env:"LOYALTY_WEBHOOKS_TIMEOUT"`
}

// HTTP configures the listener.
type HTTP struct {
	Addr string `yaml:"addr" env:"LOYALTY_HTTP_ADDR"`
	// PublicURL is how WeChat and browsers reach the service (for example
	// https://crm.example.com); used to print the callback URL. Defaults to
	// http://<addr>. An https URL means TLS is terminated in front of the
	// service, and responses then carry Strict-Transport-Security.
	PublicURL string `yaml:"public_url" env:"LOYALTY_PUBLIC_URL"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight requests.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"LOYALTY_HTTP_SHUTDOWN_TIMEOUT"`
	// MetricsAddr, when set, serves /metrics and Go's pprof profiles on
	// their own listener there, and the main listener no longer serves
	// /metrics (404). Production should set it to a loopback or private
	// address: neither is for the public. When empty, /metrics is on the
	// main listener (block it at the proxy).
	MetricsAddr string `yaml:"metrics_addr" env:"LOYALTY_METRICS_ADDR"`
	// DebugAddr, when set, serves Go's pprof profiles there (keep it on a
	// loopback or private address). Kept for older configurations:
	// MetricsAddr serves the profiles too.
	DebugAddr string `yaml:"debug_addr" env:"LOYALTY_DEBUG_ADDR"`
	// TrustedProxies are the addresses or CIDR ranges of reverse proxies
	// (load balancers) whose X-Forwarded-For is believed. Empty: the client
	// address is the peer address. Behind a load balancer this must be set,
	// or every client looks like the balancer (login throttling per address
	// would then lock everyone out together).
	TrustedProxies []string `yaml:"trusted_proxies" env:"LOYALTY_TRUSTED_PROXIES" envSeparator:","`
}

// BehindTLS reports whether clients reach the service over https
// (PublicURL says so): responses then carry Strict-Transport-Security.
func (h HTTP) BehindTLS() bool { return strings.HasPrefix(h.PublicURL, "https://") }

// DB configures the database.
type DB struct {
	Driver string `yaml:"driver" env:"LOYALTY_DB_DRIVER"` // sqlite or mysql
	// DSN is a file path (sqlite) or a go-sql-driver DSN (mysql), e.g.
	// user:pass@tcp(127.0.0.1:3306)/loyalty.
	DSN             string        `yaml:"dsn" env:"LOYALTY_DB_DSN"`
	MaxOpenConns    int           `yaml:"max_open_conns" env:"LOYALTY_DB_MAX_OPEN_CONNS"`
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime" env:"LOYALTY_DB_CONN_MAX_LIFETIME"`
	// SlowQuery logs statements slower than this at warn level (0 = never).
	SlowQuery time.Duration `yaml:"slow_query" env:"LOYALTY_DB_SLOW_QUERY"`
	// ClaimStrategy is how campaign and webhook workers on several
	// instances take different delivery rows on MySQL: "skip-locked" (SELECT ... FOR
	// UPDATE SKIP LOCKED; MySQL 8, MariaDB 10.6+) or "update-limit" (an
	// owner-stamped UPDATE ... LIMIT; for engines without SKIP LOCKED, such
	// as TiDB).
	ClaimStrategy string `yaml:"claim_strategy" env:"LOYALTY_DB_CLAIM_STRATEGY"`
}

// Redis is optional; when Addr is set it holds the shared WeChat access-token
// cache (and, later, cross-instance rate limits).
type Redis struct {
	Addr     string `yaml:"addr" env:"LOYALTY_REDIS_ADDR"`
	Password string `yaml:"password" env:"LOYALTY_REDIS_PASSWORD"`
	DB       int    `yaml:"db" env:"LOYALTY_REDIS_DB"`
}

// WeChat configures the WeChat integration.
type WeChat struct {
	// APIBase, when set, receives every outgoing WeChat API call instead of
	// the real WeChat hosts (any WeChat simulator).
	APIBase string `yaml:"api_base" env:"LOYALTY_WECHAT_API_BASE"`
	// Timeout bounds each WeChat API call.
	Timeout time.Duration `yaml:"timeout" env:"LOYALTY_WECHAT_TIMEOUT"`
	// Sandbox is auto, on or off. auto: sandbox mode when no WeChat
	// credentials are configured, no api_base is set and the database holds
	// no real merchant (until one is created). Sandbox mode runs the
	// in-process WeChat simulator; on, with a real merchant, warns and keeps
	// the simulator and the sandbox tools away from it.
	Sandbox string `yaml:"sandbox" env:"LOYALTY_SANDBOX"`
	// Merchant, when its app_id is set, is created (or updated) at startup,
	// so a single-merchant install needs no CLI step.
	Merchant Merchant `yaml:"merchant"`
}

// Merchant is a merchant's WeChat credentials given in configuration.
type Merchant struct {
	Name        string `yaml:"name" env:"LOYALTY_MERCHANT_NAME"`
	TimeZone    string `yaml:"time_zone" env:"LOYALTY_MERCHANT_TIME_ZONE"`
	AppID       string `yaml:"app_id" env:"LOYALTY_WECHAT_APP_ID"`
	AppSecret   string `yaml:"app_secret" env:"LOYALTY_WECHAT_APP_SECRET"`
	Token       string `yaml:"token" env:"LOYALTY_WECHAT_TOKEN"`
	AESKey      string `yaml:"aes_key" env:"LOYALTY_WECHAT_AES_KEY"`
	MPAppID     string `yaml:"mp_app_id" env:"LOYALTY_MP_APP_ID"`
	MPAppSecret string `yaml:"mp_app_secret" env:"LOYALTY_MP_APP_SECRET"`
}

// Configured reports whether credentials were given.
func (m Merchant) Configured() bool { return m.AppID != "" }

// Credentials returns the WeChat credentials.
func (m Merchant) Credentials() wechat.Credentials {
	return wechat.Credentials{AppID: m.AppID, AppSecret: m.AppSecret, Token: m.Token,
		EncodingAESKey: m.AESKey, MPAppID: m.MPAppID, MPAppSecret: m.MPAppSecret}
}

// Log configures logging (always to stderr; stdout is for command output).
type Log struct {
	Level  string `yaml:"level" env:"LOYALTY_LOG_LEVEL"`   // debug, info, warn, error
	Format string `yaml:"format" env:"LOYALTY_LOG_FORMAT"` // json or text
}

// Sandbox settings.
const (
	SandboxAuto = "auto"
	SandboxOn   = "on"
	SandboxOff  = "off"
)

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		DataDir: "data",
		Workers: true,
		HTTP:    HTTP{Addr: "127.0.0.1:8080", ShutdownTimeout: 15 * time.Second},
		DB: DB{Driver: "sqlite", MaxOpenConns: 50, ConnMaxLifetime: time.Hour, SlowQuery: 200 * time.Millisecond,
			ClaimStrategy: "skip-locked"},
		WeChat: WeChat{Timeout: 5 * time.Second, Sandbox: SandboxAuto,
			Merchant: Merchant{Name: "My shop", TimeZone: "Asia/Shanghai"}},
		Log:  Log{Level: "info", Format: "json"},
		Send: Send{RatePerSecond: 50, ServiceSharePct: 2, Concurrency: 64, DailyQuota: 100000, NoticeRetention: 180 * 24 * time.Hour},

		Webhooks: Webhooks{Concurrency: 32, PerEndpoint: 2, Timeout: 10 * time.Second},

		MemberLogin: MemberLogin{PerClientPerMinute: 60, PerMerchantPerMinute: 6000},
	}
}

// Load builds the configuration from the YAML file at path (skipped when
// path is empty) and the environment given as KEY=VALUE pairs (os.Environ()
// in production), then validates it. Errors name the bad key.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true) // a misspelt key is an error, not a silent default
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) /* empty file */ {
			return Config{}, fmt.Errorf("config: %s: %s", path, nameYAMLError(raw, err))
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: envMap(environ)}); err != nil {
		return Config{}, fmt.Errorf("config: %w", nameEnvErrors(err))
	}
	if cfg.DB.DSN == "" && cfg.DB.Driver == "sqlite" {
		cfg.DB.DSN = filepath.Join(cfg.DataDir, "loyalty.db")
	}
	if cfg.HTTP.PublicURL == "" {
		cfg.HTTP.PublicURL = "http://" + cfg.HTTP.Addr
	}
	cfg.HTTP.PublicURL = strings.TrimRight(cfg.HTTP.PublicURL, "/")
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks every setting and reports all problems at once, each as
// "yaml.key (ENV_VAR): reason".
func (c Config) Validate() error {
	v := &apperr.Validation{}
	bad := func(field, reason string) { v.Add(keyName(field), reason) }

	if c.DataDir == "" {
		bad("DataDir", "must not be empty")
	}
	if c.SecretKey != "" && len(c.SecretKey) < 32 {
		bad("SecretKey", "must be at least 32 characters (for example the output of `openssl rand -hex 32`)")
	}
	if len(c.SecretKeysOld) > 0 && c.SecretKey == "" {
		bad("SecretKeysOld", "needs secret_key (LOYALTY_SECRET_KEY): the old keys only decrypt, the current one must be given")
	}
	seenKeys := map[string]bool{c.SecretKey: true}
	for i, k := range c.SecretKeysOld {
		switch {
		case len(k) < 32:
			bad("SecretKeysOld", fmt.Sprintf("key %d must be at least 32 characters", i+1))
		case seenKeys[k]:
			bad("SecretKeysOld", fmt.Sprintf("key %d repeats secret_key or an earlier old key", i+1))
		}
		seenKeys[k] = true
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("HTTP.Addr", "must be host:port, e.g. 127.0.0.1:8080")
	}
	if c.HTTP.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.DebugAddr); err != nil {
			bad("HTTP.DebugAddr", "must be host:port, e.g. 127.0.0.1:6060")
		}
	}
	if c.HTTP.MetricsAddr != "" {
		switch _, _, err := net.SplitHostPort(c.HTTP.MetricsAddr); {
		case err != nil:
			bad("HTTP.MetricsAddr", "must be host:port, e.g. 127.0.0.1:9090")
		case c.HTTP.MetricsAddr == c.HTTP.Addr:
			bad("HTTP.MetricsAddr", "must differ from http.addr: it is a separate listener")
		case c.HTTP.MetricsAddr == c.HTTP.DebugAddr:
			bad("HTTP.MetricsAddr", "must differ from http.debug_addr (the metrics listener serves the profiles too; leave debug_addr empty)")
		}
	}
	for _, p := range c.HTTP.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				bad("HTTP.TrustedProxies", fmt.Sprintf("%q is not an IP address or CIDR range", p))
			}
		}
	}
	if c.Send.RatePerSecond < 1 || c.Send.RatePerSecond > 100000 {
		bad("Send.RatePerSecond", "must be 1 to 100000")
	}
	if c.Send.ServiceSharePct < 0 || c.Send.ServiceSharePct > 50 {
		bad("Send.ServiceSharePct", "must be 0 to 50")
	}
	if c.Send.Concurrency < 1 || c.Send.Concurrency > 10000 {
		bad("Send.Concurrency", "must be 1 to 10000")
	}
	if c.Send.DailyQuota < 100 {
		bad("Send.DailyQuota", "must be at least 100")
	}
	// At least 30 days: an expiry reminder's event can come again within
	// weeks, and its row is what keeps it from being sent twice.
	if c.Send.NoticeRetention < 30*24*time.Hour {
		bad("Send.NoticeRetention", "must be at least 720h (30 days)")
	}
	if c.Webhooks.Concurrency < 1 || c.Webhooks.Concurrency > 10000 {
		bad("Webhooks.Concurrency", "must be 1 to 10000")
	}
	if c.Webhooks.PerEndpoint < 1 || c.Webhooks.PerEndpoint > c.Webhooks.Concurrency {
		bad("Webhooks.PerEndpoint", "must be 1 to Webhooks.Concurrency")
	}
	if c.Webhooks.Timeout < time.Second || c.Webhooks.Timeout > time.Minute {
		bad("Webhooks.Timeout", "must be 1s to 1m")
	}
	if c.MemberLogin.PerClientPerMinute < 1 || c.MemberLogin.PerClientPerMinute > 1000000 {
		bad("MemberLogin.PerClientPerMinute", "must be 1 to 1000000")
	}
	if c.MemberLogin.PerMerchantPerMinute < 1 || c.MemberLogin.PerMerchantPerMinute > 1000000 {
		bad("MemberLogin.PerMerchantPerMinute", "must be 1 to 1000000")
	}
	if !isHTTPURL(c.HTTP.PublicURL) {
		bad("HTTP.PublicURL", "must be an absolute http(s) URL")
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		bad("HTTP.ShutdownTimeout", "must be positive")
	}
	switch c.DB.Driver {
	case "sqlite":
		if c.DB.DSN == "" {
			bad("DB.DSN", "must not be empty")
		}
	case "mysql":
		if c.DB.DSN == "" {
			bad("DB.DSN", "is required when db.driver is mysql")
		} else if _, err := mysql.ParseDSN(c.DB.DSN); err != nil {
			bad("DB.DSN", "is not a valid MySQL DSN: "+err.Error())
		}
	default:
		bad("DB.Driver", `must be "sqlite" or "mysql"`)
	}
	if c.DB.MaxOpenConns < 1 {
		bad("DB.MaxOpenConns", "must be at least 1")
	}
	if c.DB.ConnMaxLifetime < 0 {
		bad("DB.ConnMaxLifetime", "must not be negative")
	}
	if c.DB.ClaimStrategy != "skip-locked" && c.DB.ClaimStrategy != "update-limit" {
		bad("DB.ClaimStrategy", `must be "skip-locked" or "update-limit"`)
	}
	if c.Redis.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Redis.Addr); err != nil {
			bad("Redis.Addr", "must be host:port, e.g. 127.0.0.1:6379")
		}
	}
	if c.WeChat.APIBase != "" && !isHTTPURL(c.WeChat.APIBase) {
		bad("WeChat.APIBase", "must be an absolute http(s) URL")
	}
	if c.WeChat.Timeout <= 0 {
		bad("WeChat.Timeout", "must be positive")
	}
	switch c.WeChat.Sandbox {
	case SandboxAuto, SandboxOff:
	case SandboxOn:
		if c.WeChat.APIBase != "" {
			bad("WeChat.Sandbox", "cannot be on while wechat.api_base is set (the sandbox runs its own simulator)")
		}
	default:
		bad("WeChat.Sandbox", `must be "auto", "on" or "off"`)
	}
	if m := c.WeChat.Merchant; m.Configured() || m.AppSecret != "" || m.Token != "" {
		if err := m.Credentials().Validate(); err != nil {
			var cv *apperr.Validation
			if errors.As(err, &cv) {
				for f, reason := range cv.Fields {
					bad("WeChat.Merchant."+credentialField[f], reason)
				}
			}
		}
		if strings.TrimSpace(m.Name) == "" {
			bad("WeChat.Merchant.Name", "must not be empty")
		}
	}
	if _, err := time.LoadLocation(c.WeChat.Merchant.TimeZone); err != nil || c.WeChat.Merchant.TimeZone == "" {
		bad("WeChat.Merchant.TimeZone", "must be an IANA time zone such as Asia/Shanghai")
	}
	if _, ok := logLevels[c.Log.Level]; !ok {
		bad("Log.Level", `must be "debug", "info", "warn" or "error"`)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("Log.Format", `must be "json" or "text"`)
	}
	if err := v.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// SlogLevel returns the configured log level.
func (l Log) SlogLevel() slog.Level { return logLevels[l.Level] }

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// credentialField maps wechat.Credentials.Validate field names to the Go
// field names of Merchant.
var credentialField = map[string]string{
	"app_id": "AppID", "app_secret": "AppSecret", "token": "Token", "aes_key": "AESKey",
	"mp_app_id": "MPAppID", "mp_app_secret": "MPAppSecret",
}

// LogValue redacts secrets so the configuration can be logged at startup.
func (c Config) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	dsn := c.DB.DSN
	if c.DB.Driver == "mysql" {
		if parsed, err := mysql.ParseDSN(dsn); err == nil && parsed.Passwd != "" {
			parsed.Passwd = "redacted"
			dsn = parsed.FormatDSN()
		}
	}
	return slog.GroupValue(
		slog.String("data_dir", c.DataDir),
		slog.String("secret_key", redact(c.SecretKey)),
		slog.Int("secret_keys_old", len(c.SecretKeysOld)),
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("metrics_addr", c.HTTP.MetricsAddr),
		slog.String("public_url", c.HTTP.PublicURL),
		slog.String("db_driver", c.DB.Driver),
		slog.String("db_dsn", dsn),
		slog.String("redis_addr", c.Redis.Addr),
		slog.String("wechat_api_base", c.WeChat.APIBase),
		slog.String("sandbox", c.WeChat.Sandbox),
		slog.String("merchant_app_id", c.WeChat.Merchant.AppID),
		slog.String("merchant_app_secret", redact(c.WeChat.Merchant.AppSecret)),
	)
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// keyName turns a Go field path such as "WeChat.Merchant.AppID" into the
// documented "wechat.merchant.app_id (LOYALTY_WECHAT_APP_ID)".
func keyName(path string) string {
	t := reflect.TypeOf(Config{})
	var yamlKeys []string
	var envKey string
	for _, name := range strings.Split(path, ".") {
		f, ok := t.FieldByName(name)
		if !ok {
			return path
		}
		yamlKeys = append(yamlKeys, f.Tag.Get("yaml"))
		envKey = f.Tag.Get("env")
		t = f.Type
	}
	key := strings.Join(yamlKeys, ".")
	if envKey != "" {
		key += " (" + envKey + ")"
	}
	return key
}

var yamlLineRe = regexp.MustCompile(`line (\d+): `)

// nameYAMLError adds the dotted key to the YAML decoder's "line N: cannot
// unmarshal ..." messages, which otherwise only give the line.
func nameYAMLError(raw []byte, err error) string {
	msg := err.Error()
	var root yaml.Node
	if yaml.Unmarshal(raw, &root) != nil {
		return msg
	}
	return yamlLineRe.ReplaceAllStringFunc(msg, func(m string) string {
		line, _ := strconv.Atoi(yamlLineRe.FindStringSubmatch(m)[1])
		if key := keyAtLine(&root, line, ""); key != "" {
			return fmt.Sprintf("line %d (%s): ", line, key)
		}
		return m
	})
}

// keyAtLine returns the dotted path of the mapping key on line, or "".
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			path := key.Value
			if prefix != "" {
				path = prefix + "." + key.Value
			}
			if key.Line == line {
				return path
			}
			if k := keyAtLine(val, line, path); k != "" {
				return k
			}
		}
	}
	return ""
}

// nameEnvErrors rewrites env's parse errors, which name the Go field, to name
// the environment variable instead.
func nameEnvErrors(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if key := envKeyOfField(reflect.TypeOf(Config{}), pe.Name); key != "" {
				msgs = append(msgs, fmt.Sprintf("%s: %v", key, pe.Err))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

// envKeyOfField finds the env tag of the (uniquely named) field name.
func envKeyOfField(t reflect.Type, name string) string {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == name && f.Tag.Get("env") != "" {
			return f.Tag.Get("env")
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
			if k := envKeyOfField(f.Type, name); k != "" {
				return k
			}
		}
	}
	return ""
}
