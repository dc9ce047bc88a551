// Command loyalty runs the WeChat marketing and loyalty service.
//
//	loyalty [-config FILE] [serve]     run the service (the default)
//	loyalty [-config FILE] migrate     apply database migrations and exit
//	loyalty [-config FILE] merchant create --name ... --wechat-app-id ...
//	loyalty [-config FILE] secrets rotate    re-encrypt stored secrets under the current key
//	loyalty [-config FILE] backup FILE       copy the SQLite database to FILE while it serves
//	loyalty [-config FILE] healthcheck [ready]  exit 0 when the local service answers /healthz (/readyz)
//	loyalty version
//
// Configuration comes from the YAML file (-config or LOYALTY_CONFIG) and
// LOYALTY_* environment variables; see configs/config.example.yaml.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
	_ "time/tzdata" // merchant time zones work on machines without a zoneinfo database

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, for tests: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loyalty", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("LOYALTY_CONFIG"), "YAML configuration file (or LOYALTY_CONFIG)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loyalty [-config FILE] [serve | migrate | merchant create | secrets rotate | backup FILE | healthcheck [ready] | points reconcile | members import | demo seed | version]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmd, rest := "serve", fs.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	cfg, err := configs.Load(*configPath, os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(cfg.Log, stderr)
	gin.SetMode(gin.ReleaseMode)
	wechat.SilenceSDKDebugLog()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case cmd == "serve" && len(rest) == 0:
		err = serve(ctx, cfg, log, stderr)
	case cmd == "migrate" && len(rest) == 0:
		err = migrate(ctx, cfg, log, stdout)
	case cmd == "merchant" && len(rest) > 0 && rest[0] == "create":
		err = createMerchant(ctx, cfg, log, rest[1:], stdout, stderr)
	case cmd == "secrets":
		err = secretsCommand(ctx, cfg, log, rest, stdout)
	case cmd == "healthcheck":
		err = healthcheckCommand(ctx, cfg, rest, stdout)
	case cmd == "backup":
		err = backupCommand(ctx, cfg, log, rest, stdout)
	case cmd == "members" && len(rest) > 0:
		err = membersCommand(ctx, cfg, log, rest, stdout, stderr)
	case cmd == "points" && len(rest) > 0:
		err = pointsCommand(ctx, cfg, log, rest, stdout, stderr)
	case cmd == "demo" && len(rest) > 0:
		err = demoCommand(ctx, cfg, log, rest, stdout, stderr)
	default:
		fs.Usage()
		return 2
	}
	if err != nil {
		var usage usageError
		if errors.As(err, &usage) {
			fmt.Fprintln(stderr, err)
			return 2
		}
		log.Error("failed", "command", cmd, "error", err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line; it exits with status 2.
type usageError struct{ error }

func serve(ctx context.Context, cfg configs.Config, log *slog.Logger, stderr io.Writer) error {
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (LOYALTY_HTTP_ADDR): %w", cfg.HTTP.Addr, err)
	}
	log.Info("starting", "version", versionString(), "config", cfg)
	if cfg.HTTP.DebugAddr != "" {
		go serveDebug(cfg.HTTP.DebugAddr, log)
	}
	app, err := newApp(ctx, cfg, log, stderr)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer app.Close()
	return app.Serve(ctx, ln)
}

func migrate(ctx context.Context, cfg configs.Config, log *slog.Logger, stdout io.Writer) error {
	gdb, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	if err := db.Migrate(ctx, gdb, log); err != nil {
		return err
	}
	current, latest, err := db.SchemaVersion(ctx, gdb)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d (latest %d)\n", current, latest)
	return nil
}

func newLogger(c configs.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return "loyalty " + v
}

// serveDebug serves Go's pprof profiles on their own listener, apart from
// the API.
func serveDebug(addr string, log *slog.Logger) {
	log.Info("debug server listening", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("debug server", "error", err)
	}
}
