package redisx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis's complaints reach the service's log as JSON records: here a
// client whose server is gone, which go-redis reports from its pool.
func TestGoRedisLogsAreStructured(t *testing.T) {
	var buf bytes.Buffer
	UseLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	_ = rdb.Ping(context.Background()).Err()
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(buf.Bytes()) == 0 {
		t.Fatal("go-redis logged nothing about the failed dials")
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("not a JSON record: %q", line)
		}
		msg, _ := rec["msg"].(string)
		if rec["level"] != "WARN" || rec["component"] != "go-redis" || !strings.Contains(msg, "failed to dial") {
			t.Fatalf("record %v", rec)
		}
	}
}
