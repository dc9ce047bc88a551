package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/wechat"
)

// merchantFlags maps validation field names to the flags that set them, so
// errors name what the operator typed.
var merchantFlags = map[string]string{
	"name": "--name", "time_zone": "--time-zone", "app_id": "--wechat-app-id", "app_secret": "--wechat-app-secret",
	"token": "--wechat-token", "aes_key": "--wechat-aes-key", "mp_app_id": "--mp-app-id",
	"mp_app_secret": "--mp-app-secret", "username": "--owner", "password": "--owner-password",
}

// createMerchant implements `loyalty merchant create`: it creates the
// merchant and optionally its owner account, and prints one JSON object.
func createMerchant(ctx context.Context, cfg configs.Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("merchant create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var in admin.MerchantInput
	var c wechat.Credentials
	var owner, ownerPassword string
	fs.StringVar(&in.Name, "name", "", "merchant name (required)")
	fs.StringVar(&in.TimeZone, "time-zone", admin.DefaultTimeZone, "IANA time zone")
	fs.StringVar(&c.AppID, "wechat-app-id", "", "official account AppID (required)")
	fs.StringVar(&c.AppSecret, "wechat-app-secret", "", "official account AppSecret (required)")
	fs.StringVar(&c.Token, "wechat-token", "", "callback token (required)")
	fs.StringVar(&c.EncodingAESKey, "wechat-aes-key", "", "EncodingAESKey for safe mode")
	fs.StringVar(&c.MPAppID, "mp-app-id", "", "mini-program AppID")
	fs.StringVar(&c.MPAppSecret, "mp-app-secret", "", "mini-program AppSecret")
	fs.StringVar(&owner, "owner", "", "username of the owner account to create")
	fs.StringVar(&ownerPassword, "owner-password", "", "owner password (generated and printed when omitted)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("merchant create: unexpected argument %q", fs.Arg(0))}
	}
	if ownerPassword != "" && owner == "" {
		return usageError{errors.New("merchant create: --owner-password needs --owner")}
	}
	in.Credentials = c

	gdb, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	if err := db.Migrate(ctx, gdb, log); err != nil {
		return err
	}
	keys, err := loadKeys(cfg, false)
	if err != nil {
		return err
	}
	out := map[string]any{}
	generated := false
	if owner != "" && ownerPassword == "" {
		ownerPassword, generated = admin.GeneratePassword(), true
	}
	// Create the merchant and its owner in one transaction: a bad owner
	// name must not leave a merchant without an owner behind.
	err = gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		m, err := admin.NewMerchants(tx, keys, clock, nil).Create(ctx, in)
		if err != nil {
			return err
		}
		out["merchant_id"], out["name"] = m.ID, m.Name
		out["callback_url"] = fmt.Sprintf("%s/wechat/%d/callback", cfg.HTTP.PublicURL, m.ID)
		if owner != "" {
			st, err := admin.NewStaffs(tx, clock, nil).Create(ctx, m.ID, owner, ownerPassword, admin.RoleOwner)
			if err != nil {
				return err
			}
			out["owner"] = st.Username
			if generated {
				out["owner_password"] = ownerPassword
			}
		}
		return nil
	})
	if err != nil {
		var v *apperr.Validation
		if errors.As(apperr.RenameFields(err, merchantFlags), &v) {
			return usageError{fmt.Errorf("merchant create: %w", v)}
		}
		var ae *apperr.Error
		if errors.As(err, &ae) {
			return usageError{fmt.Errorf("merchant create: %s", ae.Msg)}
		}
		return err
	}
	enc := json.NewEncoder(stdout)
	return enc.Encode(out)
}
