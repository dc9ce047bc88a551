package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/db"
)

func TestBackupRestoresToTheDataItHeld(t *testing.T) {
	env := cliEnv(t)
	if code, _, errOut := runCLI(t, env, validFlags...); code != 0 {
		t.Fatalf("merchant create: exit %d: %s", code, errOut)
	}

	// The service holds the database open while the backup runs.
	cfg, err := configs.Load("", envList(env))
	if err != nil {
		t.Fatal(err)
	}
	live, err := openDB(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(live) }()
	var before int64
	if err := live.Table("merchants").Count(&before).Error; err != nil || before != 1 {
		t.Fatalf("merchants before the backup: %d, %v", before, err)
	}

	target := filepath.Join(t.TempDir(), "loyalty-backup.db")
	code, out, errOut := runCLI(t, env, "backup", target)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	var rep backupReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("stdout is not one JSON object: %q", out)
	}
	_, latest, err := db.SchemaVersion(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Backup != target || rep.Bytes != info.Size() || rep.Bytes == 0 || rep.SchemaVersion != latest {
		t.Fatalf("report %+v, file %d bytes, latest schema %d", rep, info.Size(), latest)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(target), "*"))
	if len(leftovers) != 1 {
		t.Fatalf("the backup left other files beside it: %v", leftovers)
	}

	// A later change is not in the backup.
	second := append([]string{}, validFlags...)
	for i, v := range map[string]string{"--name": "Second Shop", "--wechat-app-id": "wx1111111111111111",
		"--mp-app-id": "wx2222222222222222", "--owner": "second"} {
		second[indexOf(second, i)+1] = v
	}
	if code, _, errOut := runCLI(t, env, second...); code != 0 {
		t.Fatalf("second merchant: exit %d: %s", code, errOut)
	}

	// A second backup never overwrites the first.
	if code, _, errOut := runCLI(t, env, "backup", target); code != 2 || !strings.Contains(errOut, "exists") {
		t.Fatalf("backup over an existing file: exit %d: %s", code, errOut)
	}
	if after, _ := os.Stat(target); after.Size() != info.Size() || !after.ModTime().Equal(info.ModTime()) {
		t.Fatal("the existing backup was changed")
	}

	// Restore: the backup file becomes the database of a new data directory.
	restored := cliEnv(t)
	restored["LOYALTY_SECRET_KEY"] = env["LOYALTY_SECRET_KEY"]
	raw, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored["LOYALTY_DATA_DIR"], "loyalty.db"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, restored, "migrate")
	if code != 0 || !strings.Contains(out, "schema version") {
		t.Fatalf("migrate on the restored database: exit %d: %s %s", code, out, errOut)
	}
	rcfg, err := configs.Load("", envList(restored))
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := openCurrentDB(context.Background(), rcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(rdb) }()
	var names []string
	if err := rdb.Table("merchants").Order("id").Pluck("name", &names).Error; err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "Tea House" {
		t.Fatalf("restored merchants %v, want the one that existed at the backup", names)
	}
	if _, _, err := admin.NewStaffs(rdb, clock, nil).Login(context.Background(), "boss", "correct horse"); err != nil {
		t.Fatalf("the owner cannot log in to the restored database: %v", err)
	}
	keys, err := loadKeys(rcfg, false)
	if err != nil {
		t.Fatal(err)
	}
	var id uint64
	rdb.Table("merchants").Select("id").Scan(&id)
	creds, err := admin.NewMerchants(rdb, keys, clock, nil).WeChatCredentials(context.Background(), id)
	if err != nil {
		t.Fatalf("restored merchant: %v", err)
	}
	if creds.AppSecret != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("the restored merchant's secret decrypts to %q", creds.AppSecret)
	}
}

func TestBackupRefusesWhatItCannotDo(t *testing.T) {
	env := cliEnv(t)
	if code, _, errOut := runCLI(t, env, "backup"); code != 2 || !strings.Contains(errOut, "usage: loyalty backup FILE") {
		t.Fatalf("no file: exit %d: %s", code, errOut)
	}
	target := filepath.Join(t.TempDir(), "b.db")
	if code, _, errOut := runCLI(t, env, "backup", target); code != 1 || !strings.Contains(errOut, "LOYALTY_DB_DSN") {
		t.Fatalf("no database yet: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a failed backup left %s", target)
	}
	env["LOYALTY_DB_DRIVER"], env["LOYALTY_DB_DSN"] = "mysql", "u:p@tcp(127.0.0.1:1)/x"
	if code, _, errOut := runCLI(t, env, "backup", target); code != 2 || !strings.Contains(errOut, "mysqldump --single-transaction") {
		t.Fatalf("mysql: exit %d: %s", code, errOut)
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	panic(s + " not in the list")
}
