package db

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"
)

func TestTxMemoOncePerTransaction(t *testing.T) {
	gdb, err := Open(context.Background(), Options{Driver: SQLite, DSN: filepath.Join(t.TempDir(), "m.db"), MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(gdb)
	var m TxMemo
	if !m.First(gdb, "k") || !m.First(gdb, "k") {
		t.Fatal("outside a transaction every call must be first")
	}
	run := func(fail bool) (firsts []bool) {
		err := gdb.Transaction(func(tx *gorm.DB) error {
			// Sessions derived from the transaction are the same transaction.
			firsts = append(firsts, m.First(tx, "k"), m.First(tx.WithContext(context.Background()), "k"),
				m.First(tx.Session(&gorm.Session{}), "other"), m.First(tx, "other"))
			if fail {
				return errRollback
			}
			return nil
		})
		if err != nil && !fail {
			t.Fatal(err)
		}
		return firsts
	}
	want := []bool{true, false, true, false}
	for i, fail := range []bool{true, false, false} { // a transaction run again after a rollback is a new one
		if got := run(fail); !slices.Equal(got, want) {
			t.Fatalf("transaction %d: firsts %v, want %v", i, got, want)
		}
	}
	// Finished transactions are forgotten once collected.
	deadline := time.Now().Add(5 * time.Second)
	for m.len() > 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := m.len(); n != 0 {
		t.Fatalf("%d finished transactions still remembered", n)
	}
}

var errRollback = errors.New("rollback")
