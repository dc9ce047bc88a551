package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/points"
)

// pointsCommand runs `loyalty points <subcommand>`:
//
//	loyalty points reconcile [-merchant ID] [-chunk N] [-facts=false] [-max-report N]
//
// reconcile re-derives every member's balances from the ledger and lots
// (and purchase facts from the orders), prints each mismatch and a summary
// to stdout, and fails (exit status 1) when anything disagrees.
func pointsCommand(ctx context.Context, cfg configs.Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reconcile" {
		return usageError{errors.New("usage: loyalty points reconcile [-merchant ID] [-chunk N] [-facts=false] [-max-report N]")}
	}
	gdb, err := openCurrentDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	err = points.RunReconcile(ctx, gdb, args[1:], stdout, stderr)
	var usage *points.UsageError
	if errors.As(err, &usage) {
		return usageError{usage}
	}
	return err
}
