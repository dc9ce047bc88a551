package db

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A SQLite file deleted under a running service is not made again, empty,
// by the next pooled connection (which others would then write to while
// the old connections keep the deleted file): the connection fails, and
// the file stays gone, so /readyz sees it.
func TestSQLiteDeletedFileIsNotRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone.db")
	gdb, err := Open(context.Background(), Options{Driver: SQLite, DSN: path, MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(gdb)
	if err := gdb.Exec("CREATE TABLE t (id INTEGER)").Error; err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := gdb.DB()
	held, err := sqlDB.Conn(context.Background()) // the pool's open connection keeps the old file
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	fresh, err := sqlDB.Conn(context.Background()) // a second connection must be opened
	if err == nil {
		err = fresh.PingContext(context.Background())
		fresh.Close()
	}
	if err == nil {
		t.Fatal("a new connection opened a database at the deleted path")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the deleted file was made again: %v", err)
	}
	if err := Ready(context.Background(), gdb); err == nil {
		t.Fatal("ready with the database file gone")
	}
}
