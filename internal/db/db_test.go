package db_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var quiet = slog.New(slog.DiscardHandler)

func latest(t *testing.T, gdb *gorm.DB) int64 {
	t.Helper()
	current, want, err := db.SchemaVersion(context.Background(), gdb)
	if err != nil {
		t.Fatal(err)
	}
	if current != want {
		t.Fatalf("schema version %d, want latest %d", current, want)
	}
	return current
}

func TestMigrateEmptyMySQLThenAgain(t *testing.T) {
	gdb, _ := dbtest.OpenMySQLEmpty(t)
	ctx := context.Background()
	if err := db.Migrate(ctx, gdb, quiet); err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	v := latest(t, gdb)
	if v < 10 {
		t.Fatalf("schema version %d, want at least 10", v)
	}
	if !gdb.Migrator().HasTable("members") || !gdb.Migrator().HasTable("wechat_events") {
		t.Fatal("tables missing after migrate")
	}
	// Already migrated: a no-op, not an error.
	if err := db.Migrate(ctx, gdb, quiet); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if got := latest(t, gdb); got != v {
		t.Fatalf("version moved from %d to %d", v, got)
	}
}

// Two processes starting at once both run the migrations: the lock makes one
// wait, and both end at the latest version without errors. Separate pools
// stand in for separate processes (the lock lives in the database).
func TestMigrateConcurrentMySQL(t *testing.T) {
	_, dsn := dbtest.OpenMySQLEmpty(t)
	concurrentMigrate(t, func() *gorm.DB {
		gdb, err := db.Open(context.Background(), db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		return gdb
	})
}

func TestMigrateConcurrentSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	concurrentMigrate(t, func() *gorm.DB {
		gdb, err := db.Open(context.Background(), db.Options{Driver: db.SQLite, DSN: path, MaxOpenConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		return gdb
	})
}

func concurrentMigrate(t *testing.T, open func() *gorm.DB) {
	t.Helper()
	const n = 3
	dbs := make([]*gorm.DB, n)
	for i := range dbs {
		dbs[i] = open()
		defer db.Close(dbs[i])
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Migrate(context.Background(), dbs[i], quiet)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	for _, gdb := range dbs {
		latest(t, gdb)
	}
}

// schema describes tables, columns and indexes in a dialect-neutral way.
type schema map[string]string

func describe(t *testing.T, gdb *gorm.DB) schema {
	t.Helper()
	out := schema{}
	tables, err := gdb.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if skipTable(table) {
			continue
		}
		cols, err := gdb.Migrator().ColumnTypes(table)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cols {
			nullable, _ := c.Nullable()
			names = append(names, c.Name()+":"+typeClass(c.DatabaseTypeName())+nullMark(nullable))
		}
		out[table] = strings.Join(names, ",")
		idx, err := gdb.Migrator().GetIndexes(table)
		if err != nil {
			t.Fatal(err)
		}
		var ix []string
		for _, i := range idx {
			if i.Name() == "PRIMARY" || strings.HasPrefix(i.Name(), "sqlite_autoindex") {
				continue
			}
			unique, _ := i.Unique()
			ix = append(ix, i.Name()+"("+strings.Join(i.Columns(), ",")+")"+map[bool]string{true: " unique"}[unique])
		}
		sort.Strings(ix)
		out[table+" indexes"] = strings.Join(ix, "; ")
	}
	return out
}

func skipTable(name string) bool {
	return strings.HasPrefix(name, "goose_") || strings.HasPrefix(name, "sqlite_")
}

// typeClass maps a column type to what both dialects agree on: integers
// (booleans are small integers), text and times.
func typeClass(dbType string) string {
	switch t := strings.ToUpper(dbType); {
	case strings.Contains(t, "INT"), t == "BOOLEAN":
		return "int"
	case strings.Contains(t, "CHAR"), strings.HasSuffix(t, "TEXT"): // TEXT, MEDIUMTEXT
		return "text"
	case strings.Contains(t, "DATE"), strings.Contains(t, "TIME"):
		return "time"
	default:
		return t
	}
}

func nullMark(nullable bool) string {
	if nullable {
		return "?"
	}
	return ""
}

// The two migration sets must describe the same schema: same tables, the
// same columns in the same order with the same nullability, the same
// indexes.
func TestSchemaParity(t *testing.T) {
	lite := describe(t, dbtest.OpenSQLite(t))
	my := describe(t, dbtest.OpenMySQL(t))
	if len(lite) == 0 {
		t.Fatal("no tables described")
	}
	for k, v := range my {
		if lite[k] != v {
			t.Errorf("%s differs:\n mysql:  %s\n sqlite: %s", k, v, lite[k])
		}
	}
	for k := range lite {
		if _, ok := my[k]; !ok {
			t.Errorf("%s exists only in SQLite", k)
		}
	}
}

// Every table is scoped by merchant (merchants itself is the tenant).
func TestEveryTableHasMerchantID(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		tables, err := gdb.Migrator().GetTables()
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			if skipTable(table) || table == "merchants" || table == "login_throttle" || table == "instances" { // service-level: no tenant
				continue
			}
			if !gdb.Migrator().HasColumn(table, "merchant_id") {
				t.Errorf("table %s has no merchant_id column", table)
			}
		}
	})
}

func TestIsDuplicate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		mid := dbtest.NewMerchantID()
		insert := func() error {
			return gdb.Exec("INSERT INTO member_merges (merchant_id, from_member_id, into_member_id, reason, created_at) VALUES (?, 1, 2, 'test', ?)",
				mid, "2026-01-01 00:00:00").Error
		}
		if err := insert(); err != nil {
			t.Fatal(err)
		}
		err := insert()
		if !db.IsDuplicate(err) {
			t.Fatalf("second insert: %v, want a duplicate-key error", err)
		}
	})
}

func TestOpenRejectsUnknownDriver(t *testing.T) {
	if _, err := db.Open(context.Background(), db.Options{Driver: "postgres", DSN: "x"}); err == nil {
		t.Fatal("want an error for an unknown driver")
	}
}

// Every pooled MySQL connection runs in READ COMMITTED, UTC and utf8mb4
// (emoji in a member's name must survive), and plans IN lists of any length
// from index dives.
func TestMySQLSessionSettings(t *testing.T) {
	gdb := dbtest.OpenMySQL(t)
	// @@tx_isolation on MariaDB, @@transaction_isolation on MySQL 8.
	var level string
	if err := gdb.Raw("SELECT @@tx_isolation").Scan(&level).Error; err != nil {
		if err := gdb.Raw("SELECT @@transaction_isolation").Scan(&level).Error; err != nil {
			t.Fatal(err)
		}
	}
	if level != "READ-COMMITTED" {
		t.Fatalf("isolation %q, want READ-COMMITTED", level)
	}
	var charset, tz string
	if err := gdb.Raw("SELECT @@character_set_connection, @@session.time_zone").Row().Scan(&charset, &tz); err != nil {
		t.Fatal(err)
	}
	if charset != "utf8mb4" || tz != "+00:00" {
		t.Fatalf("charset %q time zone %q", charset, tz)
	}
	var dives int
	if err := gdb.Raw("SELECT @@session.eq_range_index_dive_limit").Scan(&dives).Error; err != nil || dives != 0 {
		t.Fatalf("eq_range_index_dive_limit %d (%v), want 0: long IN lists must be planned from index dives", dives, err)
	}
	mid := dbtest.NewMerchantID()
	name := "小林😀"
	if err := gdb.Exec("INSERT INTO members (merchant_id, name, source, created_at, updated_at) VALUES (?, ?, 'test', ?, ?)",
		mid, name, "2026-01-01 00:00:00", "2026-01-01 00:00:00").Error; err != nil {
		t.Fatal(err)
	}
	var got string
	gdb.Raw("SELECT name FROM members WHERE merchant_id = ?", mid).Scan(&got)
	if got != name {
		t.Fatalf("name read back as %q", got)
	}
}

// TakeOne gives the row, the caller's not-found error for no row, and any
// other failure wrapped with what it was reading.
func TestTakeOne(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		type merchant struct {
			ID   uint64
			Name string
		}
		ctx := context.Background()
		name := "takeone-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if err := gdb.Exec("INSERT INTO merchants (name, oa_app_id, oa_app_secret_enc, oa_token_enc, created_at, updated_at)"+
			" VALUES (?, ?, 'x', 'x', ?, ?)", name, name, time.Now(), time.Now()).Error; err != nil {
			t.Fatal(err)
		}
		notFound := errors.New("no such merchant")
		m, err := db.TakeOne[merchant](gdb.WithContext(ctx).Table("merchants").Select("id, name").Where("name = ?", name),
			notFound, "merchant %q", name)
		if err != nil || m.Name != name || m.ID == 0 {
			t.Fatalf("found: %+v, %v", m, err)
		}
		m, err = db.TakeOne[merchant](gdb.WithContext(ctx).Table("merchants").Where("name = ?", name+"-none"), notFound, "merchant")
		if err != notFound || m != (merchant{}) {
			t.Fatalf("missing: %+v, %v; want the caller's error itself", m, err)
		}
		_, err = db.TakeOne[merchant](gdb.WithContext(ctx).Table("no_such_table"), notFound, "merchant %d", 7)
		if err == nil || errors.Is(err, notFound) || !strings.HasPrefix(err.Error(), "merchant 7: ") {
			t.Fatalf("failure: %v; want it wrapped as \"merchant 7: ...\"", err)
		}
	})
}

// Ready wants the schema, not just a server that answers.
func TestReady(t *testing.T) {
	ctx := context.Background()
	t.Run(dbtest.SQLite, func(t *testing.T) {
		gdb := dbtest.OpenSQLite(t)
		if err := db.Ready(ctx, gdb); err != nil {
			t.Fatalf("migrated: %v", err)
		}
		newest := latest(t, gdb)
		if err := gdb.Exec("DELETE FROM goose_db_version WHERE version_id = ?", newest).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Ready(ctx, gdb); err == nil || !strings.Contains(err.Error(), "expects") {
			t.Fatalf("schema behind: %v", err)
		}
	})
	t.Run(dbtest.MySQL, func(t *testing.T) {
		gdb := dbtest.OpenMySQLIsolated(t)
		if err := db.Ready(ctx, gdb); err != nil {
			t.Fatalf("migrated: %v", err)
		}
		if err := gdb.Exec("DROP TABLE goose_db_version").Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Ready(ctx, gdb); err == nil {
			t.Fatal("ready without a schema")
		}
	})
}
