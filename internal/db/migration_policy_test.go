package db

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// The upgrade policy (docs/operations.md, "Upgrades"): migrations are
// expand-then-contract across one release, so replicas of release N-1 keep
// working against the schema of release N while a rolling upgrade runs.
// An Up section may add tables, columns with a default (or nullable) and
// indexes; it may not take away or rename what the previous release reads
// or writes. Taking something away is the contract step: it ships at the
// earliest one release after the code stopped using it, and says so in a
// marker comment in its Up section:
//
//	-- contract: <what is dropped>; unused since <release>
//
// checkMigration returns the policy violations of one migration file.
func checkMigration(src string) []string {
	up, _, _ := strings.Cut(src, "+goose Down")
	if contractMarker.MatchString(up) {
		return nil // a declared contract step: reviewed by hand
	}
	var problems []string
	widened := widensMarker.FindAllStringSubmatch(up, -1)
	for _, stmt := range strings.Split(stripComments(up), ";") {
		stmt = strings.Join(strings.Fields(strings.ToUpper(stmt)), " ")
		if stmt == "" {
			continue
		}
		for _, rule := range forbidden {
			if rule.re.MatchString(stmt) && !widens(stmt, up, widened) {
				problems = append(problems, rule.why+": "+clip(stmt))
			}
		}
		if strings.HasPrefix(stmt, "ALTER TABLE ") {
			for _, clause := range splitTopLevel(stmt) {
				if addColumn.MatchString(clause) && strings.Contains(clause, "NOT NULL") &&
					!strings.Contains(clause, "DEFAULT") && !strings.Contains(clause, "AUTO_INCREMENT") {
					problems = append(problems, "a NOT NULL column without a DEFAULT breaks the previous release's INSERTs, which do not name it: "+clip(clause))
				}
			}
		}
	}
	return problems
}

// widensMarker declares a unique key widened in place: dropped and made
// again, under the same name, with columns added after the old ones, each
// with a default the previous release's rows all hold, so the previous
// release's duplicates are still refused. It names the key and says why.
var widensMarker = regexp.MustCompile(`(?m)^\s*--\s*widens:\s*(uk_\w+)\b.{20,}`)

// widens reports whether stmt only drops a unique key that a widens marker
// names and that the same Up section makes again under its name.
func widens(stmt, up string, marked [][]string) bool {
	m := regexp.MustCompile(`\bDROP (?:INDEX|KEY) (UK_\w+)`).FindAllStringSubmatch(stmt, -1)
	if len(m) == 0 || regexp.MustCompile(`\bDROP (TABLE|COLUMN)\b|\bRENAME\b|\bCHANGE\b|\bMODIFY\b|\bTRUNCATE\b`).MatchString(stmt) {
		return false
	}
	upper := strings.ToUpper(stripComments(up))
	for _, drop := range m {
		named := false
		for _, w := range marked {
			named = named || strings.EqualFold(w[1], drop[1])
		}
		remade := regexp.MustCompile(`\b(UNIQUE KEY|CREATE UNIQUE INDEX) ` + drop[1] + `\b`).MatchString(upper)
		if !named || !remade {
			return false
		}
	}
	return true
}

// contractMarker declares a contract step; it must say what and since when.
var contractMarker = regexp.MustCompile(`(?m)^\s*--\s*contract:\s*\S.{10,}`)

var addColumn = regexp.MustCompile(`^(ALTER TABLE \S+ )?ADD (COLUMN )?`)

// forbidden are the statements that take away or rename something the
// previous release may still use.
var forbidden = []struct {
	re  *regexp.Regexp
	why string
}{
	{regexp.MustCompile(`\bDROP TABLE\b`), "drops a table"},
	{regexp.MustCompile(`\bDROP (COLUMN\b|\S+ *($|,))`), "drops a column"},
	{regexp.MustCompile(`\bRENAME (TABLE|COLUMN|TO|AS|INDEX|KEY)\b`), "renames"},
	{regexp.MustCompile(`^ALTER TABLE \S+ RENAME\b`), "renames"},
	{regexp.MustCompile(`\bCHANGE (COLUMN )?\S+ \S+`), "changes (renames or retypes) a column"},
	{regexp.MustCompile(`\bMODIFY (COLUMN )?\S+`), "retypes a column (narrowing breaks the previous release's writes)"},
	{regexp.MustCompile(`\bTRUNCATE\b`), "empties a table"},
	{regexp.MustCompile(`\bDROP (INDEX|KEY) UK_`), "drops a unique key the previous release relies on to refuse duplicates"},
}

// stripComments removes "-- ..." comments (the migrations put no "--"
// inside string literals).
func stripComments(sql string) string {
	lines := strings.Split(sql, "\n")
	for i, l := range lines {
		if j := strings.Index(l, "--"); j >= 0 {
			lines[i] = l[:j]
		}
	}
	return strings.Join(lines, "\n")
}

// splitTopLevel splits an ALTER TABLE statement into its clauses at the
// commas outside parentheses, the first clause without "ALTER TABLE t".
func splitTopLevel(stmt string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range stmt {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(stmt[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(stmt[start:]))
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

func TestMigrationsAreExpandOnly(t *testing.T) {
	files, err := fs.Glob(migrations, "migrations/*/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for _, f := range files {
		raw, err := fs.ReadFile(migrations, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkMigration(string(raw)) {
			t.Errorf("%s: %s (a contract step ships one release after the code stopped using it, with a \"-- contract: ...\" marker; docs/operations.md, \"Upgrades\")", f, p)
		}
	}
}

// The checker itself: what it must refuse and what it must let through.
func TestMigrationPolicyChecker(t *testing.T) {
	refused := []string{
		"-- +goose Up\nDROP TABLE members;\n",
		"-- +goose Up\nALTER TABLE members DROP COLUMN phone;\n",
		"-- +goose Up\nALTER TABLE members\n  ADD COLUMN x INT NULL,\n  DROP phone;\n",
		"-- +goose Up\nALTER TABLE members RENAME COLUMN phone TO mobile;\n",
		"-- +goose Up\nRENAME TABLE members TO people;\n",
		"-- +goose Up\nALTER TABLE members RENAME TO people;\n",
		"-- +goose Up\nALTER TABLE members CHANGE phone mobile VARCHAR(20) NOT NULL DEFAULT '';\n",
		"-- +goose Up\nALTER TABLE members MODIFY COLUMN phone VARCHAR(8) NOT NULL;\n",
		"-- +goose Up\nALTER TABLE members ADD COLUMN level INT NOT NULL;\n",
		"-- +goose Up\nALTER TABLE members\n  ADD COLUMN a DECIMAL(10,2) NULL,\n  ADD COLUMN b INT NOT NULL;\n",
		"-- +goose Up\nALTER TABLE campaign_deliveries DROP INDEX uk_deliveries;\n",
		"-- +goose Up\nTRUNCATE members;\n",
		"-- +goose Up\n-- contract: later\nDROP TABLE members;\n", // a marker must say what and since when
		// A widened unique key must be made again under its name, and say so.
		"-- +goose Up\n-- widens: uk_deliveries with x (default 0): the old rows all hold 0\nALTER TABLE campaign_deliveries DROP INDEX uk_deliveries;\n",
		"-- +goose Up\nALTER TABLE d ADD COLUMN x INT NOT NULL DEFAULT 0, DROP INDEX uk_deliveries, ADD UNIQUE KEY uk_deliveries (a, b, x);\n",
		"-- +goose Up\n-- widens: uk_other with x (default 0): the old rows all hold 0\nALTER TABLE d DROP INDEX uk_deliveries, ADD UNIQUE KEY uk_deliveries (a, b, x);\n",
		"-- +goose Up\n-- widens: uk_deliveries with x (default 0): the old rows all hold 0\nALTER TABLE d DROP INDEX uk_deliveries, DROP COLUMN y, ADD UNIQUE KEY uk_deliveries (a, b, x);\n",
	}
	for _, src := range refused {
		if len(checkMigration(src)) == 0 {
			t.Errorf("not refused:\n%s", src)
		}
	}
	allowed := []string{
		"-- +goose Up\nCREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT, n DECIMAL(10,2) NOT NULL, PRIMARY KEY (id));\n-- +goose Down\nDROP TABLE t;\n",
		"-- +goose Up\nALTER TABLE members\n  ADD COLUMN a INT NOT NULL DEFAULT 0,\n  ADD COLUMN b DATETIME(3) NULL;\n",
		"-- +goose Up\nALTER TABLE points_ledger DROP INDEX idx_points_ledger_time;\n",
		"-- +goose Up\n-- the old name was dropped before; DROP TABLE in a comment is fine\nCREATE INDEX i ON t (a);\n",
		"-- +goose Up\n-- contract: drops members.legacy_phone; unused since release 2026.10\nALTER TABLE members DROP COLUMN legacy_phone;\n",
		"-- +goose Up\n-- widens: uk_deliveries with x (default 0): the old rows all hold 0\nALTER TABLE d ADD COLUMN x INT NOT NULL DEFAULT 0, DROP INDEX uk_deliveries, ADD UNIQUE KEY uk_deliveries (a, b, x);\n",
		"-- +goose Up\n-- widens: uk_deliveries with x (default 0): the old rows all hold 0\nDROP INDEX uk_deliveries;\nCREATE UNIQUE INDEX uk_deliveries ON d (a, b, x);\n",
	}
	for _, src := range allowed {
		if p := checkMigration(src); len(p) != 0 {
			t.Errorf("refused %v:\n%s", p, src)
		}
	}
}
