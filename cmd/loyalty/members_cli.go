package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

const membersUsage = "usage: loyalty members import -merchant ID [-dry-run] [-workers N] FILE.csv"

// membersCommand runs `loyalty members import`:
//
//	loyalty members import -merchant ID [-dry-run] [-workers N] FILE.csv
//
// -dry-run prints what the import would do (rows created, already
// existing, rejected with their reasons) and changes nothing. Without it
// the file is imported in batches, with progress on stderr; running the
// same command again after an interruption resumes the import, and after
// it finished changes nothing. -workers is how many batches are written at
// once on MySQL (each on its own connection; they still commit in order).
func membersCommand(ctx context.Context, cfg configs.Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return usageError{errors.New(membersUsage)}
	}
	fs := flag.NewFlagSet("members import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	merchantID := fs.Uint64("merchant", 0, "the merchant whose members these are")
	dry := fs.Bool("dry-run", false, "report what the import would do; change nothing")
	workers := fs.Int("workers", member.DefaultImportWorkers, "batches written at once (MySQL)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 || *merchantID == 0 || *workers < 1 || *workers > 16 {
		return usageError{errors.New(membersUsage)}
	}
	path := fs.Arg(0)
	gdb, err := openCurrentDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	// The importer needs from points only its tiers and the opening
	// entries: no member lookups or time zones.
	im := member.NewImporter(gdb, points.NewService(gdb, nil, nil, clock, log), clock)
	im.Workers = *workers
	if *dry {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rep, err := im.DryRun(ctx, *merchantID, f)
		if err != nil {
			return err
		}
		printImportReport(stdout, "dry run", rep)
		return nil
	}
	hash, err := fileSHA256(path)
	if err != nil {
		return err
	}
	im.Progress = func(r member.ImportReport) {
		fmt.Fprintf(stderr, "%d rows read: %d created, %d existing, %d rejected\n", r.Rows, r.Created, r.Existing, r.Rejected)
	}
	job, err := im.Import(ctx, *merchantID, filepath.Base(path), hash, func() (io.ReadCloser, error) { return os.Open(path) })
	if job.ID != 0 {
		printImportReport(stdout, fmt.Sprintf("import %d (%s)", job.ID, job.Status), member.ImportReport{Rows: job.RowsRead,
			Created: job.Created, Existing: job.Existing, Rejected: job.Rejected, RejectedRows: job.RejectedRows})
	}
	return err
}

func printImportReport(w io.Writer, what string, r member.ImportReport) {
	fmt.Fprintf(w, "%s: %d rows, %d created, %d existing (unchanged), %d rejected\n", what, r.Rows, r.Created, r.Existing, r.Rejected)
	for _, rej := range r.RejectedRows {
		fmt.Fprintf(w, "  row %d: %s %s\n", rej.Row, rej.Field, rej.Reason)
	}
	if len(r.RejectedRows) < r.Rejected {
		fmt.Fprintf(w, "  ... and %d more\n", r.Rejected-len(r.RejectedRows))
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
