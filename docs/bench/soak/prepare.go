package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

const (
	welcomeTemplateID = "TPL_SOAK_WELCOME"
	// leaseWait is the delivery engine's lease (2 minutes) and time to
	// send what it frees.
	leaseWait = 2*time.Minute + 20*time.Second
)

// campaignRun is the campaign under test and its audience.
type campaignRun struct {
	id      uint64
	members map[string]uint64 // openid -> member id: every one is eligible
}

// prepare sets the merchant up through the admin API (no quiet hours, an
// API key for the POS, a welcome care rule, a tag and a campaign to it)
// and seeds the campaign's members straight into the database, as an
// import would.
func (s *soak) prepare() (*load, *campaignRun, error) {
	l := &load{base: "http://" + s.proxy.addr, merchant: s.merchant, run: fmt.Sprintf("%x", time.Now().Unix()),
		sim: s.sim, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}},
		rec: newRecorder(), callbacks: map[string]bool{},
		ep: wechattest.Endpoint{URL: fmt.Sprintf("http://%s/wechat/%d/callback", s.proxy.addr, s.merchant), AppID: oaAppID, Token: cbToken}}
	s.sim.AddTemplate(oaAppID, welcomeTemplateID)

	call := func(method, path, token string, body any, out any) error {
		var b []byte
		if body != nil {
			b = mustJSON(body)
		}
		st, resp := l.do("setup", method, path, token, b, nil)
		if st/100 != 2 {
			return fmt.Errorf("%s %s: %d %s", method, path, st, resp)
		}
		if out != nil {
			return json.Unmarshal(resp, out)
		}
		return nil
	}
	var session struct{ Token string }
	if err := call("POST", "/api/admin/v1/login", "", map[string]string{"username": owner, "password": ownerPass}, &session); err != nil {
		return nil, nil, err
	}
	tok := session.Token
	// No quiet hours: the campaign sends whatever the hour.
	if err := call("PATCH", "/api/admin/v1/settings", tok, map[string]any{"quiet_hours": map[string]string{"start": "00:00", "end": "00:00"}}, nil); err != nil {
		return nil, nil, err
	}
	var key struct{ Key string }
	if err := call("POST", "/api/admin/v1/api-keys", tok, map[string]any{"name": "pos", "scopes": []string{"orders:write", "points:read"}}, &key); err != nil {
		return nil, nil, err
	}
	l.apiKey = key.Key
	if err := call("POST", "/api/admin/v1/care-rules", tok, map[string]any{"kind": "welcome", "name": "Welcome", "channel": "template",
		"template_id": welcomeTemplateID, "message": map[string]any{"fields": map[string]string{"first": "Welcome, {{name}}", "keyword1": "soak"}}}, nil); err != nil {
		return nil, nil, err
	}
	var tag struct{ ID uint64 }
	if err := call("POST", "/api/admin/v1/tags", tok, map[string]string{"name": "soak-" + l.run}, &tag); err != nil {
		return nil, nil, err
	}

	camp := &campaignRun{members: map[string]uint64{}}
	start := time.Now()
	if err := s.seedMembers(l.run, tag.ID, camp); err != nil {
		return nil, nil, err
	}
	for openid, id := range camp.members {
		s.sim.Follow(oaAppID, openid, "")
		l.members = append(l.members, id)
	}
	log.Printf("soak: seeded %d campaign members in %.1f s", len(camp.members), time.Since(start).Seconds())

	var c struct{ ID uint64 }
	if err := call("POST", "/api/admin/v1/campaigns", tok, map[string]any{"name": "soak " + l.run, "channel": "template", "template_id": templateID,
		"message":  map[string]any{"fields": map[string]string{"first": "Hello {{name}}", "keyword1": "soak sale"}},
		"target":   map[string]any{"tag_ids": []uint64{tag.ID}},
		"schedule": map[string]string{"kind": "now"}}, &c); err != nil {
		return nil, nil, err
	}
	camp.id = c.ID
	l.adminToken = tok
	return l, camp, nil
}

// seedMembers inserts the campaign's followers and tags them.
func (s *soak) seedMembers(run string, tagID uint64, camp *campaignRun) error {
	const batch = 2000
	prefix := "o_camp_" + run + "_"
	for i := 0; i < s.o.members; i += batch {
		var sb strings.Builder
		args := make([]any, 0, batch)
		sb.WriteString("INSERT INTO members (merchant_id, oa_openid, name, source, follow_status, created_at, updated_at) VALUES ")
		for j := i; j < min(s.o.members, i+batch); j++ {
			if j > i {
				sb.WriteString(",")
			}
			sb.WriteString("(?, ?, 'm', 'oa_follow', 'following', NOW(3), NOW(3))")
			args = append(args, s.merchant, fmt.Sprintf("%s%d", prefix, j))
		}
		if _, err := s.db.Exec(sb.String(), args...); err != nil {
			return fmt.Errorf("seed members: %w", err)
		}
	}
	if _, err := s.db.Exec(`INSERT INTO member_tags (merchant_id, tag_id, member_id, created_at)
		SELECT merchant_id, ?, id, NOW(3) FROM members WHERE merchant_id = ? AND oa_openid LIKE ?`, tagID, s.merchant, prefix+"%"); err != nil {
		return fmt.Errorf("tag members: %w", err)
	}
	rows, err := s.db.Query("SELECT id, oa_openid FROM members WHERE merchant_id = ? AND oa_openid LIKE ?", s.merchant, prefix+"%")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id uint64
		var openid string
		if err := rows.Scan(&id, &openid); err != nil {
			return err
		}
		camp.members[openid] = id
	}
	return rows.Err()
}

// runLoad schedules the campaign, runs the load and the faults for the
// run's duration, and waits for the load's calls in flight.
func (s *soak) runLoad(l *load, camp *campaignRun) (time.Time, time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.duration)
	defer cancel()
	monitors, stopMonitors := context.WithCancel(context.Background())
	defer stopMonitors()
	go s.proxy.watch(monitors)
	every := 5 * time.Second
	if s.o.duration > 10*time.Minute {
		every = 30 * time.Second
	}
	go s.sampleMemory(monitors, every)

	start := time.Now()
	log.Printf("soak: load for %v; campaign %d to %d members", s.o.duration, camp.id, len(camp.members))
	if st, body := l.do("setup", "POST", fmt.Sprintf("/api/admin/v1/campaigns/%d/schedule", camp.id), l.adminToken, nil, nil); st != http.StatusOK {
		log.Printf("soak: scheduling the campaign: %d %s", st, body)
	}
	var wg sync.WaitGroup
	pace(ctx, &wg, s.o.callbacks, 32, l.callback)
	pace(ctx, &wg, s.o.logins, 8, l.login)
	pace(ctx, &wg, s.o.orders, 16, l.shop)
	var fwg sync.WaitGroup
	fwg.Add(1)
	go func() { defer fwg.Done(); s.runFaults(ctx, start) }()
	<-ctx.Done()
	end := time.Now()
	fwg.Wait()
	wg.Wait()
	log.Printf("soak: load stopped; calls in flight done after %.1f s", time.Since(end).Seconds())
	return start, end
}

// drain waits until the campaign has no row left to send or in flight and
// the inbox has no event left to apply, at most -drain. It reports
// whether everything settled.
func (s *soak) drain(camp *campaignRun) bool {
	start := time.Now()
	monitors, stop := context.WithCancel(context.Background())
	defer stop()
	go s.proxy.watch(monitors)
	// Rows a killed instance or database left claimed or sending settle
	// only when their 2-minute lease runs out: wait for that at least.
	wait := s.o.drain
	for _, f := range s.faults {
		if strings.HasPrefix(f.name, "kill -9 instance") || strings.HasPrefix(f.name, "kill -9 mariadb") {
			wait = max(wait, time.Until(f.ended.Add(leaseWait)))
		}
	}
	settled := waitFor(wait, func() bool {
		var open, inbox int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM campaign_deliveries WHERE campaign_id = ? AND status IN ('pending','claimed','sending')`, camp.id).Scan(&open); err != nil {
			return false
		}
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM wechat_events WHERE merchant_id = ? AND processed_at IS NULL`, s.merchant).Scan(&inbox); err != nil {
			return false
		}
		var planned int
		_ = s.db.QueryRow(`SELECT COUNT(*) FROM campaign_deliveries WHERE campaign_id = ?`, camp.id).Scan(&planned)
		return open == 0 && inbox == 0 && planned > 0
	})
	log.Printf("soak: drain %v after %.1f s (most %.0f s)", map[bool]string{true: "settled", false: "timed out"}[settled],
		time.Since(start).Seconds(), wait.Seconds())
	return settled
}
