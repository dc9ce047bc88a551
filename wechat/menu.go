package wechat

import (
	"context"
	"errors"

	"github.com/silenceper/wechat/v2/officialaccount/menu"
)

// MenuButton is one button of the official account's custom menu: a top
// button with SubButtons opens them; otherwise Type says what it does
// (view: open URL; click: push Key to the callback; miniprogram: open
// PagePath of AppID, URL for old clients).
type MenuButton struct {
	Type       string       `json:"type,omitempty"`
	Name       string       `json:"name"`
	Key        string       `json:"key,omitempty"`
	URL        string       `json:"url,omitempty"`
	AppID      string       `json:"appid,omitempty"`
	PagePath   string       `json:"pagepath,omitempty"`
	SubButtons []MenuButton `json:"sub_buttons,omitempty"`
}

func toSDKButtons(in []MenuButton) []*menu.Button {
	out := make([]*menu.Button, 0, len(in))
	for _, b := range in {
		out = append(out, &menu.Button{Type: b.Type, Name: b.Name, Key: b.Key, URL: b.URL, AppID: b.AppID,
			PagePath: b.PagePath, SubButtons: toSDKButtons(b.SubButtons)})
	}
	return out
}

func fromSDKButtons(in []menu.Button) []MenuButton {
	out := make([]MenuButton, 0, len(in))
	for _, b := range in {
		sub := make([]menu.Button, 0, len(b.SubButtons))
		for _, s := range b.SubButtons {
			sub = append(sub, *s)
		}
		mb := MenuButton{Type: b.Type, Name: b.Name, Key: b.Key, URL: b.URL, AppID: b.AppID, PagePath: b.PagePath}
		if len(sub) > 0 {
			mb.SubButtons = fromSDKButtons(sub)
		}
		out = append(out, mb)
	}
	return out
}

// SetMenu replaces the official account's custom menu.
func (a *Account) SetMenu(ctx context.Context, buttons []MenuButton) error {
	bs := toSDKButtons(buttons)
	return a.do(ctx, "menu_create", a.oaToken, func() error { return a.menu.SetMenu(bs) })
}

// errcodeNoMenu is WeChat's "menu no exist".
const errcodeNoMenu = 46003

// Menu returns the official account's custom menu (empty when it has
// none).
func (a *Account) Menu(ctx context.Context) ([]MenuButton, error) {
	var res menu.ResMenu
	err := a.do(ctx, "menu_get", a.oaToken, func() error {
		var err error
		res, err = a.menu.GetMenu()
		return err
	})
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == errcodeNoMenu {
		return []MenuButton{}, nil
	}
	if err != nil {
		return nil, err
	}
	return fromSDKButtons(res.Menu.Button), nil
}

// SetMenu calls Account.SetMenu for the merchant.
func (r *Accounts) SetMenu(ctx context.Context, merchantID uint64, buttons []MenuButton) error {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return err
	}
	return a.SetMenu(ctx, buttons)
}

// Menu calls Account.Menu for the merchant.
func (r *Accounts) Menu(ctx context.Context, merchantID uint64) ([]MenuButton, error) {
	a, err := r.Get(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	return a.Menu(ctx)
}
