package redisx

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// UseLogger sends go-redis's own log lines (a pool that cannot dial, a
// connection dropped) to log as structured warnings instead of its
// default plain lines on stderr, which a JSON log pipeline cannot parse.
// go-redis keeps one logger for the process: call it once, at start-up.
func UseLogger(log *slog.Logger) {
	redis.SetLogger(printfLogger{log})
}

// printfLogger adapts slog to go-redis's Printf-style logger.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
