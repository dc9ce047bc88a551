// Package benchdb gives the load programs under docs/bench a fresh,
// migrated MySQL database of their own.
package benchdb

import (
	"context"
	"fmt"
	"log/slog"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
)

// Fresh drops and creates the database name on the server at dsn (a DSN
// without a database), migrates it and opens it with maxOpen connections.
// drop closes it and, unless keep, drops it.
func Fresh(ctx context.Context, dsn, name string, maxOpen int, keep bool) (gdb *gorm.DB, drop func(), err error) {
	server, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: 2})
	if err != nil {
		return nil, nil, err
	}
	server.Exec("DROP DATABASE IF EXISTS " + name)
	if err := server.Exec("CREATE DATABASE " + name).Error; err != nil {
		_ = db.Close(server)
		return nil, nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func() {
		if gdb != nil {
			_ = db.Close(gdb)
		}
		if !keep {
			server.Exec("DROP DATABASE " + name)
		}
		_ = db.Close(server)
	}
	if gdb, err = db.Open(ctx, db.Options{Driver: db.MySQL, DSN: dsn + name, MaxOpenConns: maxOpen}); err != nil {
		drop()
		return nil, nil, err
	}
	if err := db.Migrate(ctx, gdb, slog.New(slog.DiscardHandler)); err != nil {
		drop()
		return nil, nil, err
	}
	return gdb, drop, nil
}
