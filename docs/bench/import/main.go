// Command import measures `loyalty members import` on MySQL/MariaDB: it
// writes a CSV of -rows members (openid, unionid, phone, name, birthday,
// wedding anniversary, tier, opening points, tags; one row in 10,000
// malformed), builds the service's binary, creates a merchant with it
// (`loyalty merchant create`) and a tier and three tags, then runs the
// real command: a dry run, the import, and the import again (which must
// change nothing). For each it reports the time, the rate and the
// command's peak RSS, with the machine's load average before and after.
//
//	go run ./docs/bench/import                  # 1,000,000 rows
//	go run ./docs/bench/import -rows 100000
//	go run ./docs/bench/import -workers 1       # the command's -workers
//
// It creates (and drops, unless -keep) the database loyalty_bench_import.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wxloyalty/loyalty/docs/bench/benchdb"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

const dbName = "loyalty_bench_import"

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MySQL server DSN (no database)")
	rows := flag.Int("rows", 1000000, "rows in the file")
	workers := flag.Int("workers", 0, "the command's -workers (0: its default)")
	bin := flag.String("bin", "", "a built loyalty binary (default: go build ./cmd/loyalty)")
	keep := flag.Bool("keep", false, "keep the database")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "loyalty-import-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		*bin = filepath.Join(dir, "loyalty")
		build := exec.Command("go", "build", "-o", *bin, "./cmd/loyalty")
		build.Dir, build.Stdout, build.Stderr = moduleRoot(), os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("go build ./cmd/loyalty: %v", err)
		}
	}
	gdb, drop, err := benchdb.Fresh(ctx, *dsn, dbName, 2, *keep)
	if err != nil {
		log.Fatal(err)
	}
	defer drop()
	env := append(os.Environ(), "LOYALTY_DB_DRIVER=mysql", "LOYALTY_DB_DSN="+*dsn+dbName,
		"LOYALTY_SECRET_KEY="+strings.Repeat("k", 40), "LOYALTY_DATA_DIR="+dir, "LOYALTY_SANDBOX=off", "LOYALTY_LOG_LEVEL=warn")
	out, _, err := loyalty(*bin, env, "merchant", "create", "--name", "import bench", "--wechat-app-id", "wx00000000b0e4c4a2",
		"--wechat-app-secret", strings.Repeat("a", 32), "--wechat-token", "benchtoken",
		"--owner", "bench-owner", "--owner-password", "bench-owner-password-1")
	if err != nil {
		log.Fatal(err)
	}
	var m struct {
		MerchantID uint64 `json:"merchant_id"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.MerchantID == 0 {
		log.Fatalf("merchant create said %q", out)
	}
	now := time.Now().UTC()
	if err := gdb.Create(&points.Tier{MerchantID: m.MerchantID, Name: "Gold", Level: 1, Threshold: 100000, MultiplierPct: 100,
		Benefits: "[]", CreatedAt: now, UpdatedAt: now}).Error; err != nil {
		log.Fatal(err)
	}
	for _, tag := range []string{"VIP", "Tea", "Coffee"} {
		if err := gdb.Create(&member.Tag{MerchantID: m.MerchantID, Name: tag, CreatedAt: now, UpdatedAt: now}).Error; err != nil {
			log.Fatal(err)
		}
	}

	path := filepath.Join(dir, "members.csv")
	size := writeFile(path, *rows)
	log.Printf("file: %d rows, %.1f MB; load average %s", *rows, float64(size)/1e6, loadAvg())
	args := []string{"members", "import", "-merchant", strconv.FormatUint(m.MerchantID, 10)}
	if *workers > 0 {
		args = append(args, "-workers", strconv.Itoa(*workers))
	}
	var state [2]string
	for i, run := range []string{"dry run", "import", "again"} {
		a := args
		if i == 0 {
			a = append(a, "-dry-run")
		}
		start := time.Now()
		out, rss, err := loyalty(*bin, env, append(a, path)...)
		if err != nil {
			log.Fatal(err)
		}
		d := time.Since(start)
		log.Printf("%s: %s in %s (%.0f rows/s), peak RSS %d MB; load average %s", run, firstLine(out),
			d.Round(time.Millisecond), float64(*rows)/d.Seconds(), rss, loadAvg())
		if i > 0 {
			var n struct{ Members, Entries, Tags, Lots int64 }
			gdb.Raw(`SELECT (SELECT COUNT(*) FROM members) AS members, (SELECT COUNT(*) FROM points_ledger) AS entries,
				(SELECT COUNT(*) FROM member_tags) AS tags, (SELECT COUNT(*) FROM points_lots) AS lots`).Scan(&n)
			state[i-1] = fmt.Sprintf("%d members, %d ledger entries, %d lots, %d member tags", n.Members, n.Entries, n.Lots, n.Tags)
			log.Printf("  database: %s", state[i-1])
		}
	}
	if state[0] != state[1] {
		log.Fatalf("the second import changed the database: %s, then %s", state[0], state[1])
	}
}

// loyalty runs a command of the service's binary and returns its stdout
// and its peak RSS in MB.
func loyalty(bin string, env []string, args ...string) (string, int64, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), 0, fmt.Errorf("loyalty %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss / 1024
	}
	return out.String(), rss, nil
}

// writeFile writes the CSV and returns its size.
func writeFile(path string, rows int) int64 {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "openid,unionid,phone,name,birthday,wedding_anniversary,tier,points,tags")
	tags := []string{"", "VIP", "Tea|Coffee", "vip|tea"}
	for i := 1; i <= rows; i++ {
		phone := fmt.Sprintf("1%010d", 3000000000+i)
		if i%10000 == 0 {
			phone = "bad-phone"
		}
		tier := ""
		if i%10 == 0 {
			tier = "Gold"
		}
		wedding := ""
		if i%5 == 0 {
			wedding = fmt.Sprintf("20%02d-%02d-%02d", 10+i%14, 1+i%12, 1+i%28)
		}
		fmt.Fprintf(w, "o_bench_%d,u_bench_%d,%s,%s,%d-%02d-%02d,%s,%s,%d,%s\n", i, i, phone,
			strings.Repeat("n", 1+i%12), 1960+i%45, 1+i%12, 1+i%28, wedding, tier, (i%50)*10, tags[i%4])
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	st, _ := f.Stat()
	_ = f.Close()
	return st.Size()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			log.Fatal(errors.New("run it inside the module (go.mod not found)"))
		}
		dir = parent
	}
}
