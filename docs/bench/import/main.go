// Command import measures the member import on MySQL/MariaDB: it writes a
// CSV of -rows members (openid, unionid, phone, name, birthday, wedding
// anniversary, tier, opening points, tags; one row in 10,000 malformed),
// then imports it as `loyalty members import` does, and reports the time,
// the rate and the process's peak RSS. A second run of the same file is
// timed too (it must change nothing).
//
//	go run ./docs/bench/import                  # 1,000,000 rows
//	go run ./docs/bench/import -rows 100000
//
// It creates (and drops, unless -keep) the database loyalty_bench_import.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wxloyalty/loyalty/docs/bench/benchdb"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MySQL server DSN (no database)")
	rows := flag.Int("rows", 1000000, "rows in the file")
	keep := flag.Bool("keep", false, "keep the database")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()

	gdb, drop, err := benchdb.Fresh(ctx, *dsn, "loyalty_bench_import", 10, *keep)
	if err != nil {
		log.Fatal(err)
	}
	defer drop()
	const merchantID = 1
	now := clock()
	if err := gdb.Create(&points.Tier{MerchantID: merchantID, Name: "Gold", Level: 1, Threshold: 100000, MultiplierPct: 100,
		Benefits: "[]", CreatedAt: now, UpdatedAt: now}).Error; err != nil {
		log.Fatal(err)
	}
	for _, tag := range []string{"VIP", "Tea", "Coffee"} {
		if err := gdb.Create(&member.Tag{MerchantID: merchantID, Name: tag, CreatedAt: now, UpdatedAt: now}).Error; err != nil {
			log.Fatal(err)
		}
	}

	dir, err := os.MkdirTemp("", "loyalty-import-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "members.csv")
	hash, size := writeFile(path, *rows)
	log.Printf("file: %d rows, %.1f MB", *rows, float64(size)/1e6)

	im := member.NewImporter(gdb, points.NewService(gdb, nil, nil, clock, nil), clock)
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	for run := 1; run <= 2; run++ {
		start := time.Now()
		job, err := im.Import(ctx, merchantID, "members.csv", hash, open)
		if err != nil {
			log.Fatal(err)
		}
		d := time.Since(start)
		log.Printf("run %d: %s in %s (%.0f rows/s): %d created, %d existing, %d rejected; peak RSS %d MB",
			run, job.Status, d.Round(time.Millisecond), float64(*rows)/d.Seconds(), job.Created, job.Existing, job.Rejected, maxRSS())
		if run == 1 {
			im = member.NewImporter(gdb, points.NewService(gdb, nil, nil, clock, nil), clock)
		}
	}
	var n struct{ Members, Entries int64 }
	gdb.Raw("SELECT (SELECT COUNT(*) FROM members) AS members, (SELECT COUNT(*) FROM points_ledger) AS entries").Scan(&n)
	log.Printf("database: %d members, %d ledger entries", n.Members, n.Entries)
}

// writeFile writes the CSV and returns its SHA-256 and size.
func writeFile(path string, rows int) (string, int64) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
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
	return hex.EncodeToString(h.Sum(nil)), st.Size()
}

func maxRSS() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss / 1024
}

func clock() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
