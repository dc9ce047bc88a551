// Package dbtest gives tests real, migrated databases: SQLite (a new file per
// test) and MySQL/MariaDB when LOYALTY_TEST_MYSQL_DSN is set, e.g.
// "root@tcp(127.0.0.1:3306)/". Each test package gets its own MySQL database,
// created on first use and dropped when the package's tests end (use Main in
// TestMain). Tests isolate themselves by merchant: every row is scoped by
// merchant_id, so NewMerchantID gives each test its own tenant.
//
// Without LOYALTY_TEST_MYSQL_DSN the MySQL variants are skipped with a
// message, unless LOYALTY_TEST_REQUIRE_MYSQL=1 (set by .ci/run), which turns
// a missing or unreachable MySQL into a failure, so CI cannot pass while
// silently skipping them.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
)

// Backend names.
const (
	SQLite = db.SQLite
	MySQL  = db.MySQL
)

var (
	mu        sync.Mutex
	shared    *gorm.DB // the package's MySQL database
	sharedErr error
	created   []string // databases to drop at exit
)

// Main runs the package's tests and drops the MySQL databases they created:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		_ = db.Close(shared)
	}
	if len(created) > 0 {
		if admin, err := openServer(); err == nil {
			for _, name := range created {
				admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
			}
			_ = db.Close(admin)
		}
	}
	return code
}

// Each runs fn as a subtest against every available backend.
func Each(t *testing.T, fn func(t *testing.T, gdb *gorm.DB)) {
	t.Helper()
	t.Run(SQLite, func(t *testing.T) { fn(t, OpenSQLite(t)) })
	t.Run(MySQL, func(t *testing.T) { fn(t, OpenMySQL(t)) })
}

// OpenSQLite returns a migrated SQLite database in a new file.
func OpenSQLite(t testing.TB) *gorm.DB {
	t.Helper()
	gdb, err := db.Open(context.Background(), db.Options{Driver: db.SQLite,
		DSN: filepath.Join(t.TempDir(), "test.db"), MaxOpenConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	if err := db.Migrate(context.Background(), gdb, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return gdb
}

// OpenMySQL returns the package's migrated MySQL database, shared by the
// package's tests (isolate by merchant), or skips.
func OpenMySQL(t testing.TB) *gorm.DB {
	t.Helper()
	requireMySQL(t)
	mu.Lock()
	defer mu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = newDatabase()
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// OpenMySQLIsolated returns a new migrated MySQL database for this test
// alone, for tests that look at whole tables (queues, migrations).
func OpenMySQLIsolated(t testing.TB) *gorm.DB {
	t.Helper()
	requireMySQL(t)
	mu.Lock()
	gdb, err := newDatabase()
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	return gdb
}

// OpenMySQLEmpty returns a new, not migrated MySQL database and its DSN.
func OpenMySQLEmpty(t testing.TB) (*gorm.DB, string) {
	t.Helper()
	requireMySQL(t)
	mu.Lock()
	name, dsn, err := createDatabase()
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	gdb, err := db.Open(context.Background(), db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: 16})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	return gdb, dsn
}

// MySQLDSN returns the configured server DSN, or skips.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	requireMySQL(t)
	return os.Getenv("LOYALTY_TEST_MYSQL_DSN")
}

func requireMySQL(t testing.TB) {
	t.Helper()
	if os.Getenv("LOYALTY_TEST_MYSQL_DSN") != "" {
		return
	}
	if os.Getenv("LOYALTY_TEST_REQUIRE_MYSQL") == "1" {
		t.Fatal("LOYALTY_TEST_REQUIRE_MYSQL=1 but LOYALTY_TEST_MYSQL_DSN is not set")
	}
	t.Skip("MySQL tests need LOYALTY_TEST_MYSQL_DSN (e.g. root@tcp(127.0.0.1:3306)/); .ci/run sets it")
}

// newDatabase creates and migrates a database. Callers hold mu.
func newDatabase() (*gorm.DB, error) {
	name, dsn, err := createDatabase()
	if err != nil {
		return nil, err
	}
	gdb, err := db.Open(context.Background(), db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: 32})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if err := db.Migrate(context.Background(), gdb, slog.New(slog.DiscardHandler)); err != nil {
		_ = db.Close(gdb)
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	return gdb, nil
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]`)

// createDatabase creates an empty database named after the test binary.
// Callers hold mu.
func createDatabase() (name, dsn string, err error) {
	admin, err := openServer()
	if err != nil {
		return "", "", err
	}
	defer func() { _ = db.Close(admin) }()
	pkg := unsafeChars.ReplaceAllString(strings.ToLower(strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")), "_")
	if len(pkg) > 30 {
		pkg = pkg[:30]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name = fmt.Sprintf("lt_%s_%s", pkg, hex.EncodeToString(b))
	if err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	created = append(created, name)
	cfg, err := mysqldrv.ParseDSN(os.Getenv("LOYALTY_TEST_MYSQL_DSN"))
	if err != nil {
		return "", "", err
	}
	cfg.DBName = name
	return name, cfg.FormatDSN(), nil
}

func openServer() (*gorm.DB, error) {
	cfg, err := mysqldrv.ParseDSN(os.Getenv("LOYALTY_TEST_MYSQL_DSN"))
	if err != nil {
		return nil, fmt.Errorf("LOYALTY_TEST_MYSQL_DSN: %w", err)
	}
	cfg.DBName = ""
	gdb, err := db.Open(context.Background(), db.Options{Driver: db.MySQL, DSN: cfg.FormatDSN(), MaxOpenConns: 2})
	if err != nil {
		return nil, fmt.Errorf("MySQL at LOYALTY_TEST_MYSQL_DSN unreachable: %w", err)
	}
	return gdb, nil
}

// NewMerchantID returns a merchant id no other test uses, so a test owns
// every row it creates in a shared database.
func NewMerchantID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return 1_000_000 + binary.BigEndian.Uint64(b[:])%(1<<40)
}
