// Package db opens the database (MySQL/MariaDB in production, embedded
// SQLite by default), runs the embedded migrations and offers the few helpers
// every store needs.
package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
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
		cfg, err := mysqlConfig(o.DSN)
		if err != nil {
			return nil, err
		}
		connector, err := mysqldrv.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("db: bad MySQL DSN: %w", err)
		}
		dialector = mysql.New(mysql.Config{Conn: sql.OpenDB(readCommitted{connector})})
	case SQLite:
		if dir := filepath.Dir(SQLitePath(o.DSN)); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("db: create %s: %w", dir, err)
			}
		}
		dsn, err := sqliteDSN(o.DSN)
		if err != nil {
			return nil, err
		}
		dialector = sqlite.Open(dsn)
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

func mysqlConfig(dsn string) (*mysqldrv.Config, error) {
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("db: bad MySQL DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	// "merchant_id = ? AND id IN (…)" with 200 ids or more: past this limit
	// (200 by default) MySQL and MariaDB estimate IN lists from index
	// statistics instead of looking, and pick a scan of the merchant's
	// whole index over 200 primary-key lookups (100 ms instead of 6 at a
	// million members). Always looking costs a few µs per value.
	cfg.Params["eq_range_index_dive_limit"] = "0"
	collation := cfg.Collation
	if !strings.HasPrefix(collation, "utf8mb4") {
		collation = "utf8mb4_unicode_ci"
	}
	if err := cfg.Apply(mysqldrv.Charset("utf8mb4", collation)); err != nil {
		return nil, fmt.Errorf("db: MySQL charset: %w", err)
	}
	return cfg, nil
}

// readCommitted opens MySQL connections in READ COMMITTED. Under InnoDB's
// default REPEATABLE READ, "SELECT ... FOR UPDATE" of a row that does not
// exist yet (is this openid a member?) locks the gap, and two transactions
// inserting different new members into the same gap deadlock: under a
// burst of follows that was 8% of them. With READ COMMITTED the unique
// indexes still stop duplicates, without gap locks. (The statement form is
// used because the variable is tx_isolation on MariaDB 10.11 and
// transaction_isolation on MySQL 8.)
type readCommitted struct{ driver.Connector }

func (c readCommitted) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	execer, ok := conn.(driver.ExecerContext)
	if !ok {
		_ = conn.Close()
		return nil, errors.New("db: MySQL connection cannot execute statements")
	}
	if _, err := execer.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", nil); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("db: set isolation level: %w", err)
	}
	return conn, nil
}

// SQLitePath returns the file part of a SQLite DSN.
func SQLitePath(dsn string) string {
	p, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	return p
}

// sqliteDSN is the driver's DSN for a SQLite file: its pragmas, and
// mode=rw once the file exists (created here, empty, on the first run). A
// pooled connection opened after the file was deleted or moved then fails,
// rather than creating an empty database at the path that other
// connections would write to while the old ones keep the deleted file.
func sqliteDSN(dsn string) (string, error) {
	params := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
	if path := SQLitePath(dsn); path != ":memory:" && !strings.Contains(dsn, "mode=") {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return "", fmt.Errorf("db: create %s: %w", path, err)
		}
		f.Close()
		if !strings.HasPrefix(dsn, "file:") {
			dsn = "file:" + dsn
		}
		params = "mode=rw&" + params
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + params, nil
}

// IsDuplicate reports whether err is a unique-constraint violation, as
// gorm translates it or as the driver reports it (plain database/sql).
func IsDuplicate(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

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

// LikeEscape follows a LIKE whose pattern came from LikePrefix: '!' is the
// escape character on both MySQL and SQLite (SQLite has no default one).
const LikeEscape = " ESCAPE '!'"

// LikePrefix returns a LIKE pattern matching strings that start with s,
// with s's own wildcards matched literally. Use it with LikeEscape.
func LikePrefix(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s) + "%"
}

// InstanceName identifies this process in leases and job claims: host, pid
// and a random suffix (pids repeat across containers).
func InstanceName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// TakeOne returns the one row q selects. No row is notFound (the caller's
// not-found error, a 404 at the API); any other failure is wrapped with
// what (a format and its arguments, e.g. "points: tier %d", id).
func TakeOne[T any](q *gorm.DB, notFound error, what string, args ...any) (T, error) {
	var row T
	err := q.Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		var zero T
		return zero, notFound
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf(what+": %w", append(args, err)...)
	}
	return row, nil
}

// IsTransient reports whether err is a conflict between transactions that
// the same transaction run again is expected to get past: a deadlock or
// lock wait timeout on MySQL, a busy database on SQLite.
func IsTransient(err error) bool {
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205
	}
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
}
