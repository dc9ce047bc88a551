package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// cliChildEnv makes the test binary run the CLI with the arguments after
// "--" instead of the tests (TestCLIChild), so a test can kill it.
const cliChildEnv = "LOYALTY_TEST_CLI_CHILD"

// TestCLIChild is not a test: in a child process started by a test it runs
// `loyalty` with the arguments after "--" and exits with its code.
func TestCLIChild(t *testing.T) {
	if os.Getenv(cliChildEnv) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

// `loyalty members import` killed (SIGKILL) in the middle of the file, with
// batches in flight: the job is left running under the dead process's
// lease; once the lease has run out the same command finishes it, and every
// row is imported exactly once (members, tags, opening entries and lots),
// with the counts of a run that was never interrupted.
func TestMembersImportKilledAndResumed(t *testing.T) {
	for _, backend := range []string{"sqlite", "mysql"} {
		t.Run(backend, func(t *testing.T) {
			env := cliEnv(t)
			var gdb *gorm.DB
			if backend == "mysql" {
				var dsn string
				gdb, dsn = dbtest.OpenMySQLEmpty(t)
				env["LOYALTY_DB_DRIVER"], env["LOYALTY_DB_DSN"] = "mysql", dsn
			}
			code, out, errOut := runCLI(t, env, validFlags...)
			if code != 0 {
				t.Fatalf("merchant create: exit %d: %s", code, errOut)
			}
			var m struct {
				MerchantID json.Number `json:"merchant_id"`
			}
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatal(err)
			}
			merchant := m.MerchantID.String()
			if backend == "sqlite" {
				var err error
				gdb, err = db.Open(context.Background(), db.Options{Driver: db.SQLite, DSN: filepath.Join(env["LOYALTY_DATA_DIR"], "loyalty.db")})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close(gdb) })
			}
			if err := gdb.Exec("INSERT INTO tags (merchant_id, name, created_at, updated_at) VALUES (?, 'VIP', ?, ?)",
				merchant, time.Now().UTC(), time.Now().UTC()).Error; err != nil {
				t.Fatal(err)
			}

			const rows = 30000
			var b strings.Builder
			b.WriteString("openid,phone,points,tags\n")
			for i := 1; i <= rows; i++ {
				tags := ""
				if i%2 == 0 {
					tags = "VIP"
				}
				fmt.Fprintf(&b, "o_kill_%d,%d,%d,%s\n", i, 13000000000+i, i%5, tags)
			}
			file := filepath.Join(t.TempDir(), "members.csv")
			if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"members", "import", "-merchant", merchant, file}

			child := exec.Command(os.Args[0], "-test.run=^TestCLIChild$", "--", args[0], args[1], args[2], args[3], args[4])
			child.Env = append(os.Environ(), cliChildEnv+"=1", "LOYALTY_TEST_MYSQL_DSN=")
			for k, v := range env {
				child.Env = append(child.Env, k+"="+v)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			type jobRow struct {
				Status    string
				CursorRow int
				Created   int
			}
			var job jobRow
			deadline := time.Now().Add(2 * time.Minute)
			for job.CursorRow < 2000 {
				if time.Now().After(deadline) {
					_ = child.Process.Kill()
					t.Fatalf("the import did not get going: %+v", job)
				}
				time.Sleep(5 * time.Millisecond)
				gdb.Raw("SELECT status, cursor_row, created FROM member_imports").Scan(&job)
			}
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			gdb.Raw("SELECT status, cursor_row, created FROM member_imports").Scan(&job)
			if job.Status != "running" || job.CursorRow >= rows+1 {
				t.Fatalf("killed too late to test anything: %+v", job)
			}
			var members int
			gdb.Raw("SELECT COUNT(*) FROM members").Scan(&members)
			if members != job.Created {
				t.Fatalf("after the kill: %d members, the job says %d created (cursor %d)", members, job.Created, job.CursorRow)
			}

			// The dead process still holds the lease: the import is busy.
			code, _, errOut = runCLI(t, env, args...)
			if code == 0 || !strings.Contains(errOut, "being imported") {
				t.Fatalf("while the dead run's lease lasts: exit %d %q", code, errOut)
			}
			// Five minutes later the lease has run out.
			if err := gdb.Exec("UPDATE member_imports SET lease_until = ?", time.Now().UTC().Add(-time.Second)).Error; err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("import 1 (done): %d rows, %d created, 0 existing (unchanged), 0 rejected\n", rows, rows)
			code, out, errOut = runCLI(t, env, args...)
			if code != 0 || out != want {
				t.Fatalf("resumed: exit %d %q %q", code, out, errOut)
			}
			var n struct{ Members, Distinct, Tags, Entries, Points, Lots, Accounts int64 }
			gdb.Raw(`SELECT (SELECT COUNT(*) FROM members) AS members, (SELECT COUNT(DISTINCT oa_openid) FROM members) AS "distinct",
				(SELECT COUNT(*) FROM member_tags) AS tags, (SELECT COUNT(*) FROM points_ledger) AS entries,
				(SELECT COALESCE(SUM(points), 0) FROM points_ledger) AS points, (SELECT COUNT(*) FROM points_lots) AS lots,
				(SELECT COUNT(*) FROM points_accounts) AS accounts`).Scan(&n)
			var wantPoints, wantEntries, wantAccounts int64
			for i := 1; i <= rows; i++ {
				if i%5 != 0 {
					wantPoints += int64(i % 5)
					wantEntries++
					wantAccounts++
				}
			}
			if n.Members != rows || n.Distinct != rows || n.Tags != rows/2 || n.Entries != wantEntries || n.Points != wantPoints ||
				n.Lots != wantEntries || n.Accounts != wantAccounts {
				t.Fatalf("after the resumed run: %+v, want %d members, %d tags, %d entries of %d points", n, rows, rows/2,
					wantEntries, wantPoints)
			}
			code, out, errOut = runCLI(t, env, "points", "reconcile", "-merchant", merchant)
			if code != 0 {
				t.Fatalf("reconcile: exit %d %q %q", code, out, errOut)
			}
			// Once more: nothing changes.
			if code, out, _ = runCLI(t, env, args...); code != 0 || out != want {
				t.Fatalf("again: exit %d %q", code, out)
			}
			var again int64
			gdb.Raw("SELECT COUNT(*) FROM points_ledger").Scan(&again)
			if again != n.Entries {
				t.Fatalf("the run after it added %d entries", again-n.Entries)
			}
		})
	}
}
