package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/gorm"
)

// The schema lives in versioned SQL files, one set per dialect because MySQL
// and SQLite spell DDL differently (TestSchemaParity checks that both sets
// describe the same tables, columns and indexes). MySQL DDL commits on its
// own, so every MySQL file holds exactly one statement: a failure leaves the
// database at a clean version, never half-way through a file.
//
//go:embed migrations/mysql/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// Migrate brings the schema up to date. It is safe to run twice and from two
// processes at once: on MySQL a lock row (goose's table locker, with a lease
// so a killed process does not block others forever) serialises runners; on
// SQLite an OS file lock next to the database file does. The loser waits,
// then finds nothing left to apply.
func Migrate(ctx context.Context, gdb *gorm.DB, log *slog.Logger) error {
	provider, release, err := newProvider(gdb, log)
	if err != nil {
		return err
	}
	defer release()
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path,
			"duration_ms", r.Duration.Milliseconds())
	}
	return nil
}

// SchemaVersion returns the newest applied migration version and the newest
// one embedded in the binary.
func SchemaVersion(ctx context.Context, gdb *gorm.DB) (current, latest int64, err error) {
	provider, release, err := newProvider(gdb, slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, 0, err
	}
	defer release()
	if current, err = provider.GetDBVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("db: schema version: %w", err)
	}
	sources := provider.ListSources()
	if len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	return current, latest, nil
}

// Ready reports whether the database can serve this binary: the schema is
// there and at least at the newest embedded version (a query on the schema,
// not a ping: a ping succeeds against a server whose database was dropped),
// and for SQLite the database file still exists (a deleted file keeps
// answering through open connections, but nothing written is kept). It is
// cheap enough for a readiness probe: one indexed query, no migration lock.
func Ready(ctx context.Context, gdb *gorm.DB) error {
	var current sql.NullInt64
	// goose_db_version is goose's default table; the service never migrates
	// down, so the newest applied version is the largest.
	if err := gdb.WithContext(ctx).Raw("SELECT MAX(version_id) FROM goose_db_version").Row().Scan(&current); err != nil {
		return fmt.Errorf("db: read the schema version: %w", err)
	}
	latest, err := latestVersion(gdb.Dialector.Name())
	if err != nil {
		return err
	}
	if current.Int64 < latest {
		return fmt.Errorf("db: the schema is at version %d, this binary expects %d", current.Int64, latest)
	}
	if gdb.Dialector.Name() == SQLite {
		sqlDB, err := gdb.DB()
		if err != nil {
			return fmt.Errorf("db: %w", err)
		}
		file, err := sqliteFile(sqlDB)
		if err != nil {
			return err
		}
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("db: the database file is gone: %w", err)
		}
	}
	return nil
}

// latestVersion is the newest migration embedded for the dialect.
func latestVersion(dialect string) (int64, error) {
	dir := "migrations/sqlite"
	if dialect == MySQL {
		dir = "migrations/mysql"
	}
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return 0, fmt.Errorf("db: migrations: %w", err)
	}
	var latest int64
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseInt(prefix, 10, 64); err == nil && v > latest {
			latest = v
		}
	}
	return latest, nil
}

func newProvider(gdb *gorm.DB, log *slog.Logger) (*goose.Provider, func(), error) {
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, nil, fmt.Errorf("db: %w", err)
	}
	var (
		dialect goose.Dialect
		dir     string
		locker  lock.Locker
	)
	switch gdb.Dialector.Name() {
	case MySQL:
		dialect, dir = goose.DialectMySQL, "migrations/mysql"
		locker, err = lock.NewMySQLTableLocker(
			lock.WithTableLeaseDuration(30*time.Second),
			lock.WithTableHeartbeatInterval(5*time.Second),
			// Poll every 200ms for up to 5 minutes: a second process starting
			// at the same time waits for the first one's migrations.
			lock.WithTableLockTimeout(200*time.Millisecond, 1500),
			lock.WithTableLogger(slog.New(slog.DiscardHandler)),
		)
		if err != nil {
			return nil, nil, fmt.Errorf("db: migration lock: %w", err)
		}
	case SQLite:
		dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
		path, err := sqliteFile(sqlDB)
		if err != nil {
			return nil, nil, err
		}
		locker = &fileLocker{lock: flock.New(path + ".migrate.lock")}
	default:
		return nil, nil, fmt.Errorf("db: no migrations for %s", gdb.Dialector.Name())
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, nil, err
	}
	provider, err := goose.NewProvider(dialect, sqlDB, sub,
		goose.WithLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(log),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("db: migrations: %w", err)
	}
	// Not provider.Close: that closes the *sql.DB, which the service keeps
	// using. The locker releases its lock after each run by itself.
	return provider, func() {}, nil
}

// sqliteFile asks SQLite where the main database file is, so the lock file
// sits next to it whatever the DSN looked like.
func sqliteFile(sqlDB *sql.DB) (string, error) {
	var seq int
	var name, file string
	if err := sqlDB.QueryRow("PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		return "", fmt.Errorf("db: locate sqlite file: %w", err)
	}
	if file == "" {
		return "", fmt.Errorf("db: an in-memory SQLite database cannot be shared safely; use a file")
	}
	return file, nil
}

// fileLocker serialises SQLite migrations across processes with an OS file
// lock (flock on Unix, LockFileEx on Windows).
type fileLocker struct{ lock *flock.Flock }

func (l *fileLocker) Lock(ctx context.Context, _ *sql.DB) error {
	ok, err := l.lock.TryLockContext(ctx, 100*time.Millisecond)
	if err != nil {
		return fmt.Errorf("db: migration lock %s: %w", l.lock.Path(), err)
	}
	if !ok {
		return fmt.Errorf("db: migration lock %s: not acquired", l.lock.Path())
	}
	return nil
}

func (l *fileLocker) Unlock(context.Context, *sql.DB) error {
	return l.lock.Unlock()
}
