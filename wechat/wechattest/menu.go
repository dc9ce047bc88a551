package wechattest

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"
)

// simButton is a custom-menu button as WeChat's menu API spells it.
type simButton struct {
	Type       string      `json:"type,omitempty"`
	Name       string      `json:"name"`
	Key        string      `json:"key,omitempty"`
	URL        string      `json:"url,omitempty"`
	AppID      string      `json:"appid,omitempty"`
	PagePath   string      `json:"pagepath,omitempty"`
	SubButtons []simButton `json:"sub_button,omitempty"`
}

// checkButtons applies WeChat's menu rules: 1 to 3 top buttons of at most
// 16 bytes, 0 to 5 sub-buttons of at most 60 bytes, a view button with a
// URL, a click button with a key.
func checkButtons(bs []simButton, top bool) int {
	maxN, maxName := 5, 60
	if top {
		maxN, maxName = 3, 16
		if len(bs) == 0 {
			return 40016
		}
	}
	if len(bs) > maxN {
		return map[bool]int{true: 40016, false: 40017}[top]
	}
	for _, b := range bs {
		if b.Name == "" || len(b.Name) > maxName || !utf8.ValidString(b.Name) {
			return 40018
		}
		if top && len(b.SubButtons) > 0 {
			if code := checkButtons(b.SubButtons, false); code != 0 {
				return code
			}
			continue
		}
		switch b.Type {
		case "view":
			if b.URL == "" || len(b.URL) > 1024 {
				return 40055
			}
		case "click":
			if b.Key == "" || len(b.Key) > 128 {
				return 40019
			}
		case "miniprogram":
			if b.AppID == "" || b.PagePath == "" || b.URL == "" {
				return 40027
			}
		default:
			return 40017
		}
	}
	return 0
}

// handleMenuCreate serves /cgi-bin/menu/create: the account's menu is
// replaced when the buttons follow WeChat's rules.
func (s *Simulator) handleMenuCreate(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		return errReply(43002)
	}
	var req struct {
		Button []simButton `json:"button"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return errReply(47001)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, _, code := s.authLocked(r, kindOA)
	if code != 0 {
		return errReply(code)
	}
	if code := checkButtons(req.Button, true); code != 0 {
		return errReply(code)
	}
	s.menus[appID] = req.Button
	return okReply()
}

// handleMenuGet serves /cgi-bin/menu/get.
func (s *Simulator) handleMenuGet(r *http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, _, code := s.authLocked(r, kindOA)
	if code != 0 {
		return errReply(code)
	}
	bs, ok := s.menus[appID]
	if !ok {
		return errReply(46003)
	}
	return reply{json: map[string]any{"menu": map[string]any{"button": bs}}}
}

// MenuJSON returns the official account's menu as WeChat holds it (JSON
// of its buttons), if one was set.
func (s *Simulator) MenuJSON(appID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, ok := s.menus[appID]
	if !ok {
		return "", false
	}
	raw, _ := json.Marshal(bs)
	return string(raw), true
}
