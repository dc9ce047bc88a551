// Package db opens the database (MySQL/MariaDB in production, embedded
// SQLite by default), runs the embedded migrations and offers the few helpers
// every store needs.
package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Drivers.
const (
	MySQL  = "mysql"
	SQLite = "sqlite"
)

// Options say which database to open and how.
type Options struct {
	Driver          string // MySQL or SQLite
	DSN             string // go-sql-driver DSN, or a SQLite file path
	MaxOpenConns    int
	ConnMaxLifetime time.Duration
	SlowQuery       time.Duration // statements slower than this are logged (0 = never)
	Logger          *slog.Logger
}

// Open connects, checks the connection and tunes the pool. MySQL DSNs get
// the parameters the stores rely on (UTC times, utf8mb4, client-side
// parameter interpolation to save a round trip per statement). SQLite runs
// in WAL mode with a busy timeout, and transactions take the write lock when
// they begin, so two writers queue instead of failing with "database is
// locked" halfway through.
func Open(ctx context.Context, o Options) (*gorm.DB, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var dialector gorm.Dialector
	switch o.Driver {
	case MySQL:
		dsn, err := mysqlDSN(o.DSN)
		if err != nil {
			return nil, err
		}
		dialector = mysql.New(mysql.Config{DSN: dsn})
	case SQLite:
		if dir := filepath.Dir(sqlitePath(o.DSN)); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("db: create %s: %w", dir, err)
			}
		}
		dialector = sqlite.Open(sqliteDSN(o.DSN))
	default:
		return nil, fmt.Errorf("db: unknown driver %q", o.Driver)
	}
	gdb, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 slowLogger{log: o.Logger, threshold: o.SlowQuery},
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
		TranslateError:         true, // unique violations become gorm.ErrDuplicatedKey on both drivers
		SkipDefaultTransaction: true, // single statements need no BEGIN/COMMIT round trips
	})
	if err != nil {
		return nil, fmt.Errorf("db: open %s: %w", o.Driver, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("db: %w", err)
	}
	if o.MaxOpenConns > 0 {
		sqlDB.SetMaxOpenConns(o.MaxOpenConns)
		sqlDB.SetMaxIdleConns(o.MaxOpenConns)
	}
	sqlDB.SetConnMaxLifetime(o.ConnMaxLifetime)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("db: connect to %s: %w", o.Driver, err)
	}
	return gdb, nil
}

// Close closes the pool behind gdb.
func Close(gdb *gorm.DB) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

func mysqlDSN(dsn string) (string, error) {
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("db: bad MySQL DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Params["charset"] = "utf8mb4"
	if cfg.Collation == "" || !strings.HasPrefix(cfg.Collation, "utf8mb4") {
		cfg.Collation = "utf8mb4_unicode_ci"
	}
	return cfg.FormatDSN(), nil
}

// sqlitePath returns the file part of a SQLite DSN.
func sqlitePath(dsn string) string {
	p, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	return p
}

func sqliteDSN(dsn string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
}

// IsDuplicate reports whether err is a unique-constraint violation.
func IsDuplicate(err error) bool { return errors.Is(err, gorm.ErrDuplicatedKey) }

// slowLogger is a gorm logger that reports only slow statements, without
// their parameters (which hold personal data such as openids and phone
// numbers). Errors are returned to the caller and logged once at the edge.
type slowLogger struct {
	log       *slog.Logger
	threshold time.Duration
}

func (l slowLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l slowLogger) Info(context.Context, string, ...any)     {}
func (l slowLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}
func (l slowLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

func (l slowLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), _ error) {
	if l.threshold <= 0 {
		return
	}
	if elapsed := time.Since(begin); elapsed > l.threshold {
		sql, rows := fc()
		l.log.WarnContext(ctx, "slow query", "duration_ms", elapsed.Milliseconds(), "sql", sql, "rows", rows)
	}
}

// ParamsFilter hides parameters from the SQL that Trace logs.
func (l slowLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}
