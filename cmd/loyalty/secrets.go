package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/db"
)

// secretsCommand runs `loyalty secrets rotate`: every stored WeChat secret
// not yet under the current key (LOYALTY_SECRET_KEY) in the current format
// is decrypted, with any key of LOYALTY_SECRET_KEYS_OLD, and re-encrypted.
// It runs while the service serves (one merchant at a time, each in its own
// transaction) and may be run again: values already current are left
// alone. It prints one JSON object and fails (exit status 1) when some
// merchant's secrets could not be decrypted.
func secretsCommand(ctx context.Context, cfg configs.Config, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "rotate" {
		return usageError{errors.New("usage: loyalty secrets rotate")}
	}
	gdb, err := openCurrentDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	keys, err := loadKeys(cfg, false)
	if err != nil {
		return err
	}
	rep, err := admin.NewMerchants(gdb, keys, clock, nil).RotateSecrets(ctx)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		return err
	}
	if len(rep.Failed) > 0 {
		return fmt.Errorf("the secrets of merchants %v could not be decrypted with LOYALTY_SECRET_KEY or LOYALTY_SECRET_KEYS_OLD "+
			"(a missing old key, or a value copied from another merchant); they were left as they are", rep.Failed)
	}
	return nil
}
