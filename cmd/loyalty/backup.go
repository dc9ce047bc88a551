package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/db"
)

// backupReport is what `loyalty backup` prints.
type backupReport struct {
	Backup        string `json:"backup"`
	Bytes         int64  `json:"bytes"`
	SchemaVersion int64  `json:"schema_version"`
}

// backupCommand runs `loyalty backup FILE`: a consistent copy of the
// embedded SQLite database, taken with VACUUM INTO while the service
// serves (readers and writers go on; the copy is one transaction's view),
// checked with PRAGMA quick_check and only then moved to FILE, which must
// not exist. Restoring is copying FILE back to the database path while the
// service is stopped (docs/operations.md). MySQL is backed up with the
// server's own tools, also in docs/operations.md.
func backupCommand(ctx context.Context, cfg configs.Config, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		return usageError{errors.New("usage: loyalty backup FILE   (SQLite; a new file, e.g. /var/backups/loyalty-$(date +%F).db)")}
	}
	if cfg.DB.Driver != db.SQLite {
		return usageError{errors.New("loyalty backup copies the embedded SQLite database; back MySQL up with " +
			"mysqldump --single-transaction or a physical backup tool (docs/operations.md, \"Backups and restore\")")}
	}
	target, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	if _, err := os.Stat(target); err == nil {
		return usageError{fmt.Errorf("backup: %s exists; give a new file", target)}
	}
	if _, err := os.Stat(db.SQLitePath(cfg.DB.DSN)); err != nil {
		return fmt.Errorf("backup: the database (LOYALTY_DB_DSN) %w", err)
	}
	gdb, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	version, _, err := db.SchemaVersion(ctx, gdb)
	if err != nil {
		return err
	}

	// VACUUM INTO refuses an existing file: write a fresh temporary one
	// beside the target, so the final rename stays on one file system.
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	_ = os.Remove(tmpPath)
	defer func() { _ = os.Remove(tmpPath) }() // gone after the rename; cleans up a failure

	if err := gdb.WithContext(ctx).Exec("VACUUM INTO ?", tmpPath).Error; err != nil {
		return fmt.Errorf("backup: VACUUM INTO: %w", err)
	}
	if err := checkSQLiteFile(ctx, tmpPath); err != nil {
		return err
	}
	if err := syncFile(tmpPath); err != nil {
		return err
	}
	if err := os.Rename(tmpPath, target); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(filepath.Dir(target)); err != nil {
		return err
	}
	info, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return json.NewEncoder(stdout).Encode(backupReport{Backup: target, Bytes: info.Size(), SchemaVersion: version})
}

// checkSQLiteFile opens the copy on its own and runs PRAGMA quick_check.
func checkSQLiteFile(ctx context.Context, path string) error {
	copyDB, err := db.Open(ctx, db.Options{Driver: db.SQLite, DSN: path, MaxOpenConns: 1})
	if err != nil {
		return fmt.Errorf("backup: open the copy: %w", err)
	}
	defer func() { _ = db.Close(copyDB) }()
	var result string
	if err := copyDB.WithContext(ctx).Raw("PRAGMA quick_check").Scan(&result).Error; err != nil {
		return fmt.Errorf("backup: check the copy: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("backup: the copy fails its check: %s", result)
	}
	// The check opened the copy in WAL mode; fold the log back into the
	// file so the backup is one self-contained file.
	if err := copyDB.WithContext(ctx).Exec("PRAGMA journal_mode=DELETE").Error; err != nil {
		return fmt.Errorf("backup: finish the copy: %w", err)
	}
	return nil
}

// syncFile flushes a file or directory to stable storage.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", path, err)
	}
	return nil
}
