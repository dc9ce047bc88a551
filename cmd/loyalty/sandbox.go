package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/wechat"
)

// sandboxAPIPath is where the in-process WeChat simulator is mounted in
// sandbox mode.
const sandboxAPIPath = "/sandbox/wechat-api"

// sandboxMode decides whether to run against the built-in simulator, and
// says why. auto means yes only when nothing points at a real WeChat: no
// credentials in the configuration, no API base, and no real merchant in
// the database.
func sandboxMode(ctx context.Context, cfg configs.Config, gdb *gorm.DB) (bool, string, error) {
	switch cfg.WeChat.Sandbox {
	case configs.SandboxOn:
		return true, "wechat.sandbox is on", nil
	case configs.SandboxOff:
		return false, "wechat.sandbox is off", nil
	}
	if cfg.WeChat.Merchant.Configured() {
		return false, "WeChat credentials are configured", nil
	}
	if cfg.WeChat.APIBase != "" {
		return false, "wechat.api_base is set", nil
	}
	var real int64
	if err := gdb.WithContext(ctx).Model(&admin.Merchant{}).Where("sandbox = ?", false).Count(&real).Error; err != nil {
		return false, "", fmt.Errorf("count merchants: %w", err)
	}
	if real > 0 {
		return false, "the database holds real merchants", nil
	}
	return true, "no WeChat credentials configured", nil
}

// sandboxEndpoint points the browser-facing WeChat URLs (OAuth authorize,
// QR code images) at the simulator mounted on this service. API calls do
// not use it: they reach the simulator in process (Simulator.RoundTripper).
func sandboxEndpoint(publicURL string) (wechat.Endpoint, error) {
	browser, err := url.Parse(publicURL + sandboxAPIPath)
	if err != nil {
		return wechat.Endpoint{}, err
	}
	return wechat.Endpoint{Browser: browser}, nil
}

// sandboxOwner is the staff account of the demo merchant.
const sandboxOwner = "demo"

// bootstrapSandbox makes sure a demo merchant with a mini-program and an
// owner account exists, registers the sandbox merchants' apps with the
// simulator (only theirs: it would otherwise hand out codes for a real
// merchant's apps), gives the owner a fresh password, and prints how to use
// it all, with a warning when LOYALTY_SANDBOX=on meets a real merchant.
// sandboxNoticeTemplates are the simulator templates a sandbox merchant's
// notice kinds start with.
var sandboxNoticeTemplates = map[campaign.NoticeKind]string{
	campaign.NoticePointsEarned: "TPL_POINTS_CHANGED", campaign.NoticePointsRedeemed: "TPL_POINTS_REDEEMED",
	campaign.NoticePointsReversed: "TPL_POINTS_CHANGED", campaign.NoticeTierUp: "TPL_TIER_CHANGED",
	campaign.NoticeTierDown: "TPL_TIER_CHANGED", campaign.NoticeCouponIssued: "TPL_COUPON_ISSUED",
	campaign.NoticeCouponExpiring: "TPL_COUPON_EXPIRING", campaign.NoticePointsExpiring: "TPL_EXPIRING_POINTS",
}

func (a *App) bootstrapSandbox(ctx context.Context) error {
	m, found, err := a.merchants.FirstSandbox(ctx)
	if err != nil {
		return err
	}
	if !found {
		m, err = a.merchants.Create(ctx, admin.MerchantInput{Name: "Sandbox Coffee", Sandbox: true,
			Credentials: admin.NewSandboxCredentials()})
		if err != nil {
			return fmt.Errorf("sandbox merchant: %w", err)
		}
	}
	ids, err := a.merchants.SandboxIDs(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := a.sandbox.Register(ctx, id); err != nil {
			return err
		}
		// Service notices work out of the box, on the simulator's
		// templates (each kind its own, so a test can tell them apart).
		if err := a.notices.EnsureDefaults(ctx, id, sandboxNoticeTemplates); err != nil {
			return err
		}
	}
	if !found {
		// A new merchant's account opens the member centre from its menu.
		if err := a.accounts.SetMenu(ctx, m.ID, admin.DefaultMenu(a.cfg.HTTP.PublicURL, m.ID)); err != nil {
			return fmt.Errorf("sandbox merchant's menu: %w", err)
		}
	}
	password := admin.GeneratePassword()
	if err := a.staffs.SetPassword(ctx, m.ID, sandboxOwner, password); err != nil {
		if _, err := a.staffs.Create(ctx, m.ID, sandboxOwner, password, admin.RoleOwner); err != nil {
			return fmt.Errorf("sandbox owner: %w", err)
		}
	}
	realID, err := a.sandbox.RealMerchant(ctx) // logs the warning
	if err != nil {
		return err
	}
	if realID != 0 {
		fmt.Fprintf(a.bannerOut, `
  WARNING: LOYALTY_SANDBOX=on, and the database holds a real merchant (%d).
  Every WeChat call goes to the simulator, which plays WeChat for sandbox
  merchants only: the real merchant's WeChat features fail. The simulator's
  API is not served over HTTP and the sandbox tools serve sandbox merchants
  only. Set LOYALTY_SANDBOX=auto (or off) to serve real merchants.
`, realID)
	}
	base := a.cfg.HTTP.PublicURL
	a.log.Info("sandbox ready", "merchant_id", m.ID, "username", sandboxOwner, "password", password,
		"login", fmt.Sprintf(`curl -s -X POST %s/api/admin/v1/login -d '{"username":"%s","password":"%s"}'`, base, sandboxOwner, password),
		"simulate_follower", fmt.Sprintf(`curl -s -X POST %s/api/admin/v1/sandbox/follow -H "Authorization: Bearer $TOKEN" -d '{"scene":"spring-poster"}'`, base),
		"callback_url", fmt.Sprintf("%s/wechat/%d/callback", base, m.ID))
	fmt.Fprintf(a.bannerOut, `
  Sandbox mode: WeChat is simulated in-process (no credentials configured).
  Demo merchant %d, owner %q, password %q (new at every start).

  Admin panel: %[4]s/admin/

  Log in with curl:
    TOKEN=$(curl -s -X POST %[4]s/api/admin/v1/login -d '{"username":"%[2]s","password":"%[3]s"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  Simulate a follower (scanning a channel QR code):
    curl -s -X POST %[4]s/api/admin/v1/sandbox/follow -H "Authorization: Bearer $TOKEN" -d '{"scene":"spring-poster"}'
  Simulate a mini-program login:
    CODE=$(curl -s -X POST %[4]s/api/admin/v1/sandbox/mp-login-code -H "Authorization: Bearer $TOKEN" -d '{}' | sed 's/.*"code":"\([^"]*\)".*/\1/')
    curl -s -X POST %[4]s/api/mp/v1/%[1]d/login -d "{\"code\":\"$CODE\"}"

`, m.ID, sandboxOwner, password, base)
	return nil
}

// ensureConfiguredMerchant creates or updates the merchant whose
// credentials are in the configuration.
func ensureConfiguredMerchant(ctx context.Context, merchants *admin.Merchants, m configs.Merchant, log *slog.Logger, publicURL string) error {
	got, created, err := merchants.Ensure(ctx, admin.MerchantInput{Name: m.Name, TimeZone: m.TimeZone, Credentials: m.Credentials()})
	if err != nil {
		return fmt.Errorf("configured merchant: %w", err)
	}
	log.Info("configured merchant ready", "merchant_id", got.ID, "created", created,
		"callback_url", fmt.Sprintf("%s/wechat/%d/callback", publicURL, got.ID))
	return nil
}
