package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/demo"
)

const demoUsage = "usage: loyalty demo seed --merchant ID --members N [--seed S] [--workers W] [--chunk C]"

// demoCommand runs `loyalty demo <subcommand>`:
//
//	loyalty demo seed --merchant ID --members N [--seed S] [--workers W] [--chunk C]
//
// seed fills an existing merchant that has no members yet with realistic
// demo data (members, follows, care dates, consents, tags, two years of
// orders and refunds with their points, lifecycle history) and runs the
// nightly attribute pass over it; see internal/demo. It refuses a merchant
// that already has members or was seeded before. Progress goes to stderr,
// a JSON summary to stdout.
func demoCommand(ctx context.Context, cfg configs.Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "seed" {
		return usageError{errors.New(demoUsage)}
	}
	fs := flag.NewFlagSet("demo seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o demo.Options
	fs.Uint64Var(&o.MerchantID, "merchant", 0, "id of an existing merchant without members (required)")
	fs.IntVar(&o.Members, "members", 0, fmt.Sprintf("members to generate, 1 to %d (required)", demo.MaxMembers))
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed gives the same data")
	fs.IntVar(&o.Workers, "workers", 0, "concurrent writers (default 2 on MySQL, 1 on SQLite)")
	fs.IntVar(&o.ChunkSize, "chunk", 0, "members per transaction (default 2000)")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("demo seed: unexpected arguments %v", fs.Args())}
	}
	if o.MerchantID == 0 || o.Members <= 0 {
		return usageError{fmt.Errorf("demo seed: --merchant and --members are required\n%s", demoUsage)}
	}
	gdb, err := openCurrentDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	// Only time zones and CRM settings are read, so no keyring is needed.
	merchants := admin.NewMerchants(gdb, nil, clock, nil)
	if _, err := merchants.Get(ctx, o.MerchantID); err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			return usageError{fmt.Errorf("demo seed: merchant %d does not exist (create it with `loyalty merchant create`)", o.MerchantID)}
		}
		return err
	}
	o.Now, o.Log = clock, log
	start := time.Now()
	last := time.Time{}
	o.Progress = func(done, total int) {
		if time.Since(last) >= 5*time.Second || done == total {
			last = time.Now()
			fmt.Fprintf(stderr, "demo seed: %d/%d members (%s)\n", done, total, time.Since(start).Round(time.Second))
		}
	}
	res, err := demo.Seed(ctx, gdb, merchants, o)
	if err != nil {
		var ae *apperr.Error
		var v *apperr.Validation
		switch {
		case errors.As(err, &ae):
			return usageError{fmt.Errorf("demo seed: merchant %d: %s", o.MerchantID, ae.Msg)}
		case errors.As(err, &v):
			return usageError{fmt.Errorf("demo seed: %w", v)}
		}
		return err
	}
	fmt.Fprintf(stderr, "demo seed: done in %s (rows %s, attribute pass %s)\n", res.Duration.Round(time.Millisecond),
		res.WriteDuration.Round(time.Millisecond), res.Recompute.Duration.Round(time.Millisecond))
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
