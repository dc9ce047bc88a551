package wechattest

import (
	"net/http"
	"time"
)

// jsapiTicketTTL is how long a jsapi_ticket lasts, as at WeChat.
const jsapiTicketTTL = 2 * time.Hour

type jsapiTicket struct {
	ticket  string
	expires time.Time
}

// handleJSAPITicket serves /cgi-bin/ticket/getticket?type=jsapi: the
// official account's current ticket, a new one once it has expired (like
// WeChat, which answers the same ticket while it lasts).
func (s *Simulator) handleJSAPITicket(r *http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	appID, _, code := s.authLocked(r, kindOA)
	if code != 0 {
		return errReply(code)
	}
	if r.URL.Query().Get("type") != "jsapi" {
		return errReply(40097)
	}
	now := s.now()
	t := s.jsapi[appID]
	if t == nil || !now.Before(t.expires) {
		t = &jsapiTicket{ticket: "kgt8ON7yVITDhtdwci0qe" + randHex(16), expires: now.Add(jsapiTicketTTL)}
		s.jsapi[appID] = t
	}
	return reply{json: map[string]any{"errcode": 0, "errmsg": "ok", "ticket": t.ticket,
		"expires_in": int64(t.expires.Sub(now) / time.Second)}}
}

// JSAPITicket returns the official account's current jsapi_ticket (for
// tests checking a JS-SDK signature), if one was issued.
func (s *Simulator) JSAPITicket(appID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.jsapi[appID]
	if t == nil {
		return "", false
	}
	return t.ticket, true
}
