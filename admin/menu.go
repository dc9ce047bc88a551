package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/wechat"
)

// Menus sets and reads an official account's custom menu;
// *wechat.Accounts satisfies it.
type Menus interface {
	SetMenu(ctx context.Context, merchantID uint64, buttons []wechat.MenuButton) error
	Menu(ctx context.Context, merchantID uint64) ([]wechat.MenuButton, error)
}

// DefaultMenu is the menu a new merchant's official account gets: the
// member centre (served by this service at <publicURL>/m/<merchant_id>/)
// and its pages.
func DefaultMenu(publicURL string, merchantID uint64) []wechat.MenuButton {
	base := fmt.Sprintf("%s/m/%d/", strings.TrimRight(publicURL, "/"), merchantID)
	view := func(name, page string) wechat.MenuButton {
		return wechat.MenuButton{Type: "view", Name: name, URL: base + page}
	}
	return []wechat.MenuButton{
		view("会员中心", ""),
		{Name: "我的", SubButtons: []wechat.MenuButton{
			view("会员码", "card"), view("积分", "points"), view("积分兑换", "rewards"),
			view("优惠券", "coupons"), view("我的资料", "profile"),
		}},
	}
}

var menuTypes = map[string]bool{"view": true, "click": true, "miniprogram": true}

// checkMenu applies WeChat's rules to a menu, naming the offending field:
// 1 to 3 buttons (names up to 16 bytes, 4 Chinese characters and then
// some), each either opening 1 to 5 sub-buttons (names up to 60 bytes) or
// doing one thing: view (an http(s) url), click (a key), miniprogram
// (appid, pagepath and a url for old clients).
func checkMenu(bs []wechat.MenuButton) error {
	v := &apperr.Validation{}
	if len(bs) < 1 || len(bs) > 3 {
		v.Add("buttons", "must have 1 to 3 buttons")
	}
	for i, b := range bs {
		f := fmt.Sprintf("buttons[%d]", i)
		checkButton(v, f, b, 16)
		if len(b.SubButtons) > 5 {
			v.Add(f+".sub_buttons", "must have at most 5 buttons")
		}
		for j, s := range b.SubButtons {
			sf := fmt.Sprintf("%s.sub_buttons[%d]", f, j)
			if len(s.SubButtons) > 0 {
				v.Add(sf+".sub_buttons", "only top buttons open sub-buttons")
			}
			checkButton(v, sf, s, 60)
		}
	}
	return v.Err()
}

func checkButton(v *apperr.Validation, f string, b wechat.MenuButton, maxName int) {
	if n := strings.TrimSpace(b.Name); n == "" || len(b.Name) > maxName {
		v.Add(f+".name", fmt.Sprintf("is required, at most %d bytes", maxName))
	}
	if len(b.SubButtons) > 0 {
		if b.Type != "" {
			v.Add(f+".type", "must be empty on a button that opens sub-buttons")
		}
		return
	}
	if !menuTypes[b.Type] {
		v.Add(f+".type", "must be view, click or miniprogram (or give sub_buttons)")
		return
	}
	switch b.Type {
	case "click":
		if b.Key == "" || len(b.Key) > 128 {
			v.Add(f+".key", "is required for click, at most 128 bytes")
		}
	case "miniprogram":
		if b.AppID == "" || b.PagePath == "" {
			v.Add(f+".appid", "appid and pagepath are required for miniprogram")
		}
	}
	if b.Type != "click" {
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(b.URL) > 1024 {
			v.Add(f+".url", "must be an absolute http(s) URL of at most 1024 characters")
		}
	}
}

type menuBody struct {
	Buttons []wechat.MenuButton `json:"buttons"`
}

// getMenu serves GET /settings/menu: the account's menu as WeChat holds it
// (empty when none), and the default menu for comparison.
func (a *API) getMenu(c *gin.Context) {
	p := authz.MustFrom(c)
	bs, err := a.Menus.Menu(c.Request.Context(), p.MerchantID)
	if err != nil {
		httpx.Fail(c, wechatFailure("read the menu", err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"buttons": bs, "default": DefaultMenu(a.PublicURL, p.MerchantID)})
}

// putMenu serves PUT /settings/menu {"buttons"}: replaces the account's
// menu (checked against WeChat's rules first: 400 naming the field).
func (a *API) putMenu(c *gin.Context) {
	var req menuBody
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := checkMenu(req.Buttons); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.setMenu(c, req.Buttons)
}

// resetMenu serves POST /settings/menu/default: the default menu.
func (a *API) resetMenu(c *gin.Context) {
	a.setMenu(c, DefaultMenu(a.PublicURL, authz.MustFrom(c).MerchantID))
}

func (a *API) setMenu(c *gin.Context, bs []wechat.MenuButton) {
	p := authz.MustFrom(c)
	if err := a.Menus.SetMenu(c.Request.Context(), p.MerchantID, bs); err != nil {
		httpx.Fail(c, wechatFailure("set the menu", err))
		return
	}
	c.JSON(http.StatusOK, menuBody{Buttons: bs})
}
