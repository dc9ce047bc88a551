package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// `loyalty members import`: a dry run reports the malformed row and changes
// nothing; the import creates the members; the same command again changes
// nothing and reports the same.
func TestMembersImportCLI(t *testing.T) {
	for _, backend := range []string{"sqlite", "mysql"} {
		t.Run(backend, func(t *testing.T) {
			env := cliEnv(t)
			if backend == "mysql" {
				_, dsn := dbtest.OpenMySQLEmpty(t)
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
			file := filepath.Join(t.TempDir(), "members.csv")
			csv := "openid,phone,name,points\no_cli_1,13900000001,Ada,50\no_cli_2,12,Bad,\n,13900000003,Bo,\n"
			if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"members", "import", "-merchant", m.MerchantID.String()}

			code, out, errOut = runCLI(t, env, append(args, "-dry-run", file)...)
			if code != 0 || !strings.Contains(out, "dry run: 3 rows, 2 created, 0 existing (unchanged), 1 rejected") ||
				!strings.Contains(out, "row 3: phone") {
				t.Fatalf("dry run: exit %d %q %q", code, out, errOut)
			}
			want := "import 1 (done): 3 rows, 2 created, 0 existing (unchanged), 1 rejected\n  row 3: phone is not a valid phone\n"
			for run := 1; run <= 2; run++ {
				code, out, errOut = runCLI(t, env, append(args, file)...)
				if code != 0 || out != want {
					t.Fatalf("run %d: exit %d %q %q", run, code, out, errOut)
				}
			}
			code, _, errOut = runCLI(t, env, "members", "import", file)
			if code != 2 || !strings.Contains(errOut, "usage") {
				t.Fatalf("without -merchant: exit %d %q", code, errOut)
			}
		})
	}
}
