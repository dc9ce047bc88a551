package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/internal/apicontract"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// The SDK has one process-wide HTTP client, so the package's tests share
// one simulator (set up in TestMain); each test registers its own apps.
var (
	sim      *wechattest.Simulator
	endpoint wechat.Endpoint
)

func init() { gin.SetMode(gin.ReleaseMode) }

func startSimulator() func() {
	sim = wechattest.New()
	srv := httptest.NewServer(sim)
	var err error
	if endpoint, err = wechat.ParseEndpoint(srv.URL); err != nil {
		panic(err)
	}
	wechat.InstallHTTPClient(wechat.NewHTTPClient(endpoint, 2*time.Second))
	return srv.Close
}

// figures is a fixed ChannelStats: what the member package would count.
type figures map[string]admin.ChannelFigures

func (f figures) ChannelFigures(_ context.Context, _ uint64, scenes []string) (map[string]admin.ChannelFigures, error) {
	out := map[string]admin.ChannelFigures{}
	for _, s := range scenes {
		out[s] = f[s]
	}
	return out, nil
}

// apiEnv is the admin API on a gin engine, as cmd/loyalty mounts it, over
// one database, with a merchant registered with the simulator.
type apiEnv struct {
	t         *testing.T
	db        *gorm.DB
	clock     *clock
	engine    *gin.Engine
	merchants *admin.Merchants
	staffs    *admin.Staffs
	passwords *admin.Passwords
	merchant  admin.Merchant
	creds     wechat.Credentials
	changed   []uint64
}

func newAPIEnv(t *testing.T, gdb *gorm.DB) *apiEnv {
	t.Helper()
	e := &apiEnv{t: t, db: gdb, clock: newClock()}
	e.merchants = admin.NewMerchants(gdb, keys(t), e.clock.Now, func(id uint64) { e.changed = append(e.changed, id) })
	// Two bcrypt slots, and requests wait for one as long as a test needs.
	e.passwords = admin.NewPasswords(admin.PasswordOptions{Cost: bcrypt.MinCost, Concurrency: 2, MaxWait: time.Minute})
	e.staffs = admin.NewStaffs(gdb, e.clock.Now, e.passwords)
	e.creds = admin.NewSandboxCredentials()
	sim.AddOfficialAccount(wechattest.App{AppID: e.creds.AppID, Secret: e.creds.AppSecret})
	sim.AddMiniProgram(wechattest.App{AppID: e.creds.MPAppID, Secret: e.creds.MPAppSecret})
	var err error
	if e.merchant, err = e.merchants.Create(context.Background(), admin.MerchantInput{Name: "Tea", Credentials: e.creds}); err != nil {
		t.Fatal(err)
	}
	accounts := wechat.NewAccounts(e.merchants, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	api := &admin.API{Staffs: e.staffs, Keys: admin.NewAPIKeys(gdb, e.clock.Now), Throttle: admin.NewThrottle(gdb, e.clock.Now),
		Merchants: e.merchants, Audit: audit.NewRecorder(gdb, e.clock.Now), Check: accounts,
		Channels: admin.NewChannels(gdb, accounts, figures{"store-1": {Followers: 7, Members: 5}}, e.clock.Now)}
	e.engine = gin.New()
	_ = e.engine.SetTrustedProxies(nil)
	g := e.engine.Group("/api/admin/v1")
	api.RegisterPublic(g)
	api.Register(g.Group("", api.Authenticate(), api.Audit.Track()))
	return e
}

// staff creates an account of the merchant and logs it in.
func (e *apiEnv) staff(role admin.Role) (id uint64, token string) {
	e.t.Helper()
	name := unique(string(role))
	st, err := e.staffs.Create(context.Background(), e.merchant.ID, name, "password-1", role)
	if err != nil {
		e.t.Fatal(err)
	}
	token, _, err = e.staffs.Login(context.Background(), name, "password-1")
	if err != nil {
		e.t.Fatal(err)
	}
	return st.ID, token
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, out any) {
	t.Helper()
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) errorField(t *testing.T, field string) string {
	t.Helper()
	var body struct {
		Error struct {
			Code   string
			Fields map[string]string
		}
	}
	r.json(t, &body)
	return body.Error.Fields[field]
}

func (e *apiEnv) do(method, path, token string, body any, ip ...string) response {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, "/api/admin/v1"+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.RemoteAddr = "192.0.2.10:4000"
	if len(ip) > 0 {
		req.RemoteAddr = ip[0] + ":4000"
	}
	rec := httptest.NewRecorder()
	e.engine.ServeHTTP(rec, req)
	apicontract.Recorded(e.t, req, rec.Code, rec.Header(), rec.Body.Bytes())
	return response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func (e *apiEnv) auditActions() []string {
	var actions []string
	e.db.Table("audit_log").Where("merchant_id = ?", e.merchant.ID).Order("id").Pluck("action", &actions)
	return actions
}

func TestLoginThrottle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		name := unique("cashier")
		if _, err := e.staffs.Create(context.Background(), e.merchant.ID, name, "right-password", admin.RoleViewer); err != nil {
			t.Fatal(err)
		}
		login := func(user, pass, ip string) response {
			return e.do("POST", "/login", "", map[string]string{"username": user, "password": pass}, ip)
		}
		// Addresses of this run alone: the throttle's state is in the
		// database, which the package's MySQL tests (and reruns) share.
		addr := func() string { return fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254)) }
		ip := addr()
		// The first five mistakes cost nothing.
		for i := range admin.UserThrottle.Free - 1 {
			if r := login(name, "wrong", ip); r.code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d %s", i+1, r.code, r.body)
			}
		}
		if r := login(name, "right-password", ip); r.code != http.StatusOK {
			t.Fatalf("right password after a few mistakes: %d", r.code)
		}
		// Success reset the username's count: five more free mistakes,
		// then the sixth locks the account for a second: even the right
		// password is refused until then; the next failure doubles it.
		for range admin.UserThrottle.Free + 1 {
			if r := login(name, "wrong", ip); r.code != http.StatusUnauthorized {
				t.Fatalf("want 401, got %d %s", r.code, r.body)
			}
		}
		r := login(strings.ToUpper(name), "right-password", ip)
		if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
			t.Fatalf("locked: %d Retry-After %q %s", r.code, r.header.Get("Retry-After"), r.body)
		}
		e.clock.Add(1100 * time.Millisecond)
		if r := login(name, "wrong", ip); r.code != http.StatusUnauthorized {
			t.Fatalf("after the first lock: %d", r.code)
		}
		r = login(name, "right-password", ip)
		if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
			t.Fatalf("locked: %d Retry-After %q %s", r.code, r.header.Get("Retry-After"), r.body)
		}
		// From another address the username is still locked.
		if r := login(name, "right-password", addr()); r.code != http.StatusTooManyRequests {
			t.Fatalf("other address: %d", r.code)
		}
		e.clock.Add(3 * time.Second)
		if r := login(name, "right-password", ip); r.code != http.StatusOK {
			t.Fatalf("after the lock: %d %s", r.code, r.body)
		}
		// The lock grows and is capped. (Waiting out each lock keeps the
		// failures within the window of each other.)
		other := addr()
		for i := range admin.UserThrottle.Free + 20 {
			e.clock.Add(admin.UserThrottle.MaxLock)
			if r := login(name, "wrong", other); r.code != http.StatusUnauthorized {
				t.Fatalf("failure %d after waiting out the lock: %d", i, r.code)
			}
		}
		r = login(name, "right-password", ip)
		if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") != strconv.Itoa(int(admin.UserThrottle.MaxLock.Seconds())) {
			t.Fatalf("capped lock: %d %q", r.code, r.header.Get("Retry-After"))
		}
		// Failures further apart than the window start over.
		e.clock.Add(admin.UserThrottle.Window + time.Second)
		if r := login(name, "wrong", ip); r.code != http.StatusUnauthorized {
			t.Fatal(r.code)
		}
		if r := login(name, "right-password", ip); r.code != http.StatusOK {
			t.Fatalf("after the window: %d", r.code)
		}

		// One address guessing many usernames is stopped too.
		guesser := addr()
		for i := range admin.IPThrottle.Free + 1 {
			if r := login(unique("ghost"), "x-password", guesser); r.code != http.StatusUnauthorized {
				t.Fatalf("guess %d: %d", i, r.code)
			}
		}
		if r := login(name, "right-password", guesser); r.code != http.StatusTooManyRequests {
			t.Fatalf("address lock: %d %s", r.code, r.body)
		}
		// Bad input is 400 and counts nothing.
		for _, body := range []string{`{"username":"` + name + `"}`, `{"username":1,"password":"x"}`, `[]`, `{"username":"a","password":"b","x":1}`} {
			if r := e.do("POST", "/login", "", body, ip); r.code != http.StatusBadRequest {
				t.Errorf("%s: %d", body, r.code)
			}
		}
	})
}

// fillPasswordSlots takes every bcrypt slot of the env; the returned
// function gives them back.
func (e *apiEnv) fillPasswordSlots() func() {
	e.t.Helper()
	var releases []func()
	for range 2 {
		r, err := e.passwords.Acquire(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		releases = append(releases, r)
	}
	return func() {
		for _, r := range releases {
			r()
		}
	}
}

// waitUntil polls cond (a state the test is waiting for, not a time).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

// The attack of the security review: a burst of parallel wrong guesses
// with the right password among them. Every attempt is counted before its
// password is checked, so at most Free+1 passwords are checked before the
// lock, the rest get 429 without a check, and the right password, checked
// in the middle of the burst, does not wipe the guesses' count.
func TestLoginThrottleParallelGuesses(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		name := unique("till")
		if _, err := e.staffs.Create(context.Background(), e.merchant.ID, name, "right-password", admin.RoleViewer); err != nil {
			t.Fatal(err)
		}
		ip := fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254))
		const guesses = 49
		type result struct {
			right bool
			code  int
		}
		results := make(chan result, guesses+1)
		login := func(pass string) {
			r := e.do("POST", "/login", "", map[string]string{"username": name, "password": pass}, ip)
			results <- result{pass == "right-password", r.code}
		}
		// The bcrypt slots are taken, so every attempt that gets past the
		// throttle waits at the password check: the burst is truly parallel
		// there. The right password comes first, and is still unchecked
		// when the guesses arrive.
		release := e.fillPasswordSlots()
		go login("right-password")
		waitUntil(t, "the right password to wait for its check", func() bool { return e.passwords.Waiting() == 1 })
		var answered []result
		for range guesses {
			go login("wrong-password")
		}
		waitUntil(t, "every guess to be answered or waiting", func() bool {
			for {
				select {
				case r := <-results:
					answered = append(answered, r)
					continue
				default:
				}
				return len(answered)+e.passwords.Waiting() == guesses+1
			}
		})
		release()
		for len(answered) < guesses+1 {
			answered = append(answered, <-results)
		}
		checked, wrong, locked := 0, 0, 0
		for _, r := range answered {
			switch {
			case r.right && r.code == http.StatusOK:
				checked++
			case !r.right && r.code == http.StatusUnauthorized:
				checked++
				wrong++
			case r.code == http.StatusTooManyRequests:
				locked++
			default:
				t.Errorf("right=%v: %d", r.right, r.code)
			}
		}
		if max := admin.UserThrottle.Free + 1; checked > max || checked+locked != guesses+1 {
			t.Fatalf("%d passwords checked (%d wrong), %d refused: want at most %d checked, the rest refused",
				checked, wrong, locked, max)
		}
		// The right password was checked (it came first) and did not reset
		// the guesses' count: the username is still locked, and the count
		// holds every wrong guess.
		var failures int
		gdb.Table("login_throttle").Where("throttle_key = ?", "user:"+name).Pluck("failures", &failures)
		if failures != wrong {
			t.Fatalf("%d failures stored after %d wrong guesses", failures, wrong)
		}
		if r := e.do("POST", "/login", "", map[string]string{"username": name, "password": "right-password"}, ip); r.code != http.StatusTooManyRequests {
			t.Fatalf("after the burst: %d, want 429", r.code)
		}
	})
}

// A stolen session must not turn /me/password into a free oracle for the
// account's password: wrong current passwords count like failed logins,
// on the same username counter, and lock both.
func TestPasswordChangeIsThrottled(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		id, token := e.staff(admin.RoleMarketer)
		name := e.usernameOf(id)
		ip := fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254))
		change := func(current string) response {
			return e.do("POST", "/me/password", token, map[string]string{"current_password": current, "new_password": "password-9"}, ip)
		}
		// Bad input is not a guess: it counts nothing.
		for range admin.UserThrottle.Free + 3 {
			if r := e.do("POST", "/me/password", token, map[string]string{"current_password": "x", "new_password": "short"}, ip); r.code != 400 || r.errorField(t, "new_password") == "" {
				t.Fatalf("bad new password: %d %s", r.code, r.body)
			}
		}
		for i := range admin.UserThrottle.Free + 1 {
			if r := change(fmt.Sprintf("guess-%d", i)); r.code != 400 || r.errorField(t, "current_password") == "" {
				t.Fatalf("guess %d: %d %s", i, r.code, r.body)
			}
		}
		r := change("password-1")
		if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("after %d wrong current passwords: %d %s, want 429", admin.UserThrottle.Free+1, r.code, r.body)
		}
		// The login of that username is locked too, from anywhere.
		if r := e.do("POST", "/login", "", map[string]string{"username": name, "password": "password-1"}, "192.0.2.99"); r.code != http.StatusTooManyRequests {
			t.Fatalf("login during the lock: %d", r.code)
		}
		// Once the lock is over the right password works, and resets.
		e.clock.Add(2 * time.Second)
		if r := change("password-1"); r.code != http.StatusNoContent {
			t.Fatalf("right current password after the lock: %d %s", r.code, r.body)
		}
		var failures int
		gdb.Table("login_throttle").Where("throttle_key = ?", "user:"+name).Pluck("failures", &failures)
		if failures != 0 {
			t.Fatalf("%d failures left after a successful change", failures)
		}
	})
}

func TestRolesAndStaffManagement(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		ownerID, owner := e.staff(admin.RoleOwner)
		adminID, adm := e.staff(admin.RoleAdmin)
		_, marketer := e.staff(admin.RoleMarketer)
		_, viewer := e.staff(admin.RoleViewer)

		for _, c := range []struct {
			token, method, path string
			want                int
		}{
			{viewer, "GET", "/staff", 403}, {marketer, "GET", "/staff", 403}, {adm, "GET", "/staff", 200},
			{marketer, "GET", "/audit", 403}, {viewer, "PATCH", "/settings", 403}, {viewer, "GET", "/settings", 200},
			{marketer, "POST", "/api-keys", 403}, {viewer, "POST", "/channels", 403}, {viewer, "GET", "/channels", 200},
			{"", "GET", "/me", 401}, {"lss_forged", "GET", "/me", 401}, {"Basic abc", "GET", "/me", 401},
		} {
			if r := e.do(c.method, c.path, c.token, "{}"); r.code != c.want {
				t.Errorf("%s %s as %.8s: %d, want %d (%s)", c.method, c.path, c.token, r.code, c.want, r.body)
			}
		}

		// An admin cannot make or touch owners, nobody changes themselves.
		if r := e.do("POST", "/staff", adm, map[string]any{"username": unique("boss"), "role": "owner"}); r.code != 403 {
			t.Fatalf("admin creates owner: %d", r.code)
		}
		if r := e.do("PATCH", fmt.Sprintf("/staff/%d", ownerID), adm, map[string]any{"disabled": true}); r.code != 403 {
			t.Fatalf("admin disables owner: %d", r.code)
		}
		if r := e.do("PATCH", fmt.Sprintf("/staff/%d", ownerID), owner, map[string]any{"role": "viewer"}); r.code != 403 {
			t.Fatalf("owner demotes self: %d", r.code)
		}

		// Create with a generated password, shown once; it works.
		name := unique("clerk")
		r := e.do("POST", "/staff", adm, map[string]any{"username": name, "role": "marketer"})
		var created struct {
			ID       uint64
			Password string
			Role     string
		}
		r.json(t, &created)
		if r.code != 201 || created.Password == "" || created.Role != "marketer" {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
		tok, _, err := e.staffs.Login(context.Background(), name, created.Password)
		if err != nil {
			t.Fatalf("generated password: %v", err)
		}
		if r := e.do("GET", "/staff", adm, nil); strings.Contains(string(r.body), created.Password) || strings.Contains(string(r.body), "$2") {
			t.Fatal("staff list shows a password or hash")
		}
		// Bad input changes nothing.
		before := e.auditActions()
		for _, body := range []any{map[string]any{"username": "x", "role": "marketer"}, map[string]any{"username": unique("u"), "role": "root"},
			map[string]any{"username": name, "role": "viewer"}, `{"username":`} {
			if r := e.do("POST", "/staff", adm, body); r.code != 400 && r.code != 409 {
				t.Errorf("create %v: %d", body, r.code)
			}
		}
		if after := e.auditActions(); len(after) != len(before) {
			t.Fatalf("failed calls were audited: %v", after[len(before):])
		}
		// Disabling ends the account's sessions at once.
		if r := e.do("PATCH", fmt.Sprintf("/staff/%d", created.ID), adm, map[string]any{"disabled": true}); r.code != 200 {
			t.Fatalf("disable: %d %s", r.code, r.body)
		}
		if r := e.do("GET", "/me", tok, nil); r.code != 401 {
			t.Fatalf("disabled staff still in: %d", r.code)
		}
		if r := e.do("PATCH", "/staff/999999999", adm, map[string]any{"disabled": true}); r.code != 404 {
			t.Fatalf("unknown staff: %d", r.code)
		}
		if r := e.do("PATCH", "/staff/abc", adm, map[string]any{"disabled": true}); r.code != 404 {
			t.Fatalf("malformed id: %d", r.code)
		}
		// Another merchant's staff is not found.
		other := newAPIEnv(t, gdb)
		otherID, _ := other.staff(admin.RoleViewer)
		if r := e.do("PATCH", fmt.Sprintf("/staff/%d", otherID), owner, map[string]any{"disabled": true}); r.code != 404 {
			t.Fatalf("foreign staff: %d", r.code)
		}

		// Password change: current password required, other sessions end,
		// this one stays.
		second, _, _ := e.staffs.Login(context.Background(), e.usernameOf(adminID), "password-1")
		if r := e.do("POST", "/me/password", adm, map[string]string{"current_password": "nope", "new_password": "password-2"}); r.code != 400 || r.errorField(t, "current_password") == "" {
			t.Fatalf("wrong current password: %d %s", r.code, r.body)
		}
		if r := e.do("POST", "/me/password", adm, map[string]string{"current_password": "password-1", "new_password": "password-2"}); r.code != 204 {
			t.Fatalf("change: %d %s", r.code, r.body)
		}
		if r := e.do("GET", "/me", second, nil); r.code != 401 {
			t.Fatal("other session survived the password change")
		}
		if r := e.do("GET", "/me", adm, nil); r.code != 200 {
			t.Fatal("current session ended by the password change")
		}
		if _, _, err := e.staffs.Login(context.Background(), e.usernameOf(adminID), "password-2"); err != nil {
			t.Fatal("new password does not work")
		}
		want := []string{"staff.create", "staff.update", "staff.password_change"}
		if got := e.auditActions(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("audit %v, want %v", got, want)
		}
	})
}

// Two owners demoting each other at the same moment: the second change
// finds its actor no longer an owner and is refused, so the merchant
// always keeps an owner. (Before, each change locked only its target and
// trusted the role read at authentication: both won and left no owner.)
func TestOwnersDemotingEachOtherKeepAnOwner(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		for round := range 8 {
			e := newAPIEnv(t, gdb)
			aID, a := e.staff(admin.RoleOwner)
			bID, b := e.staff(admin.RoleOwner)
			start := make(chan struct{})
			codes := make(chan int, 2)
			demote := func(token string, id uint64) {
				<-start
				codes <- e.do("PATCH", fmt.Sprintf("/staff/%d", id), token, map[string]any{"role": "admin"}).code
			}
			go demote(a, bID)
			go demote(b, aID)
			close(start)
			c1, c2 := <-codes, <-codes
			var owners int64
			gdb.Table("staff").Where("merchant_id = ? AND role = 'owner' AND disabled_at IS NULL", e.merchant.ID).Count(&owners)
			if owners != 1 || (c1 == 200) == (c2 == 200) {
				t.Fatalf("round %d: answers %d and %d, %d owners left; want one change refused and one owner", round, c1, c2, owners)
			}
			for _, c := range []int{c1, c2} {
				if c != 200 && c != http.StatusForbidden {
					t.Fatalf("round %d: answer %d", round, c)
				}
			}
		}
		// And never the last owner, however it is asked: an owner cannot
		// demote or disable itself, and an admin cannot touch owners.
		e := newAPIEnv(t, gdb)
		ownerID, owner := e.staff(admin.RoleOwner)
		_, adm := e.staff(admin.RoleAdmin)
		for _, body := range []map[string]any{{"role": "admin"}, {"disabled": true}} {
			if r := e.do("PATCH", fmt.Sprintf("/staff/%d", ownerID), owner, body); r.code != http.StatusForbidden {
				t.Fatalf("last owner changes itself %v: %d", body, r.code)
			}
			if r := e.do("PATCH", fmt.Sprintf("/staff/%d", ownerID), adm, body); r.code != http.StatusForbidden {
				t.Fatalf("admin changes the last owner %v: %d", body, r.code)
			}
		}
	})
}

// A staff change takes effect on the very next request, for the account's
// sessions and for the API keys it owns: a demotion cuts a key's scopes to
// the new role, a disable makes the key answer 401 until the account is
// enabled again or an owner moves the key to another account (audited).
func TestStaffChangesReachSessionsAndKeysAtOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		ownerID, owner := e.staff(admin.RoleOwner)
		admID, adm := e.staff(admin.RoleAdmin)
		_, other := e.staff(admin.RoleAdmin)
		viewerID, _ := e.staff(admin.RoleViewer)
		var key struct {
			ID           uint64
			Key          string
			OwnerStaffID uint64 `json:"owner_staff_id"`
		}
		r := e.do("POST", "/api-keys", adm, map[string]any{"name": "shop", "scopes": []string{"audit:read", "channels:write"}})
		r.json(t, &key)
		if r.code != 201 || key.OwnerStaffID != admID {
			t.Fatalf("create key: %d %s", r.code, r.body)
		}
		perms := func(token string) (int, string) {
			var me struct{ Permissions []string }
			r := e.do("GET", "/me", token, nil)
			if r.code == 200 {
				r.json(t, &me)
			}
			return r.code, strings.Join(me.Permissions, ",")
		}
		if code, p := perms(key.Key); code != 200 || p != "channels:write,audit:read" {
			t.Fatalf("fresh key: %d %q", code, p)
		}
		// Demoted to marketer: the session at once has the marketer's
		// permissions, and the key loses audit:read.
		if r := e.do("PATCH", fmt.Sprintf("/staff/%d", admID), owner, map[string]any{"role": "marketer"}); r.code != 200 {
			t.Fatalf("demote: %d %s", r.code, r.body)
		}
		if r := e.do("GET", "/staff", adm, nil); r.code != http.StatusForbidden {
			t.Fatalf("demoted session lists staff: %d", r.code)
		}
		if code, p := perms(key.Key); code != 200 || p != "channels:write" {
			t.Fatalf("key of a demoted owner: %d %q, want channels:write only", code, p)
		}
		if r := e.do("GET", "/audit", key.Key, nil); r.code != http.StatusForbidden {
			t.Fatalf("key reads the audit log after its owner lost audit:read: %d", r.code)
		}
		// Disabled: session and key answer 401 on the next request; the
		// key list says why.
		if r := e.do("PATCH", fmt.Sprintf("/staff/%d", admID), owner, map[string]any{"disabled": true}); r.code != 200 {
			t.Fatalf("disable: %d %s", r.code, r.body)
		}
		if r := e.do("GET", "/me", adm, nil); r.code != http.StatusUnauthorized {
			t.Fatalf("session of a disabled account: %d", r.code)
		}
		if r := e.do("GET", "/me", key.Key, nil); r.code != http.StatusUnauthorized {
			t.Fatalf("key of a disabled account: %d, want 401", r.code)
		}
		var list struct {
			APIKeys []struct {
				ID          uint64
				OwnerActive *bool `json:"owner_active"`
			} `json:"api_keys"`
		}
		e.do("GET", "/api-keys", owner, nil).json(t, &list)
		if len(list.APIKeys) != 1 || list.APIKeys[0].OwnerActive == nil || *list.APIKeys[0].OwnerActive {
			t.Fatalf("key list: %+v", list)
		}
		// Moving the key: owners only, to an enabled account of the
		// merchant holding every scope of the key; bad input changes
		// nothing.
		path := fmt.Sprintf("/api-keys/%d/owner", key.ID)
		if r := e.do("PUT", path, other, map[string]any{"staff_id": ownerID}); r.code != http.StatusForbidden {
			t.Fatalf("an admin moves a key: %d", r.code)
		}
		foreign, _ := newAPIEnv(t, gdb).staff(admin.RoleOwner)
		for _, body := range []any{map[string]any{"staff_id": viewerID}, map[string]any{"staff_id": admID},
			map[string]any{"staff_id": foreign}, map[string]any{}, `{"staff_id":"x"}`} {
			if r := e.do("PUT", path, owner, body); r.code != 400 {
				t.Errorf("move to %v: %d %s", body, r.code, r.body)
			}
		}
		if r := e.do("PUT", "/api-keys/999999999/owner", owner, map[string]any{"staff_id": ownerID}); r.code != 404 {
			t.Fatalf("unknown key: %d", r.code)
		}
		if r := e.do("GET", "/me", key.Key, nil); r.code != http.StatusUnauthorized {
			t.Fatalf("a refused move revived the key: %d", r.code)
		}
		r = e.do("PUT", path, owner, map[string]any{"staff_id": ownerID})
		r.json(t, &key)
		if r.code != 200 || key.OwnerStaffID != ownerID {
			t.Fatalf("move: %d %s", r.code, r.body)
		}
		if code, p := perms(key.Key); code != 200 || p != "channels:write,audit:read" {
			t.Fatalf("moved key: %d %q", code, p)
		}
		var after []string
		gdb.Table("audit_log").Where("merchant_id = ? AND action = 'api_key.reown'", e.merchant.ID).Pluck("after_json", &after)
		if len(after) != 1 || !strings.Contains(after[0], fmt.Sprintf(`"owner_staff_id":%d`, ownerID)) {
			t.Fatalf("audit of the move: %v", after)
		}
	})
}

func (e *apiEnv) usernameOf(id uint64) string {
	var name string
	e.db.Table("staff").Where("id = ?", id).Pluck("username", &name)
	return name
}

func TestAPIKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		_, owner := e.staff(admin.RoleOwner)
		_, viewer := e.staff(admin.RoleViewer)

		for _, body := range []any{
			map[string]any{"name": "pos", "scopes": []string{}},
			map[string]any{"name": "pos", "scopes": []string{"root"}},
			map[string]any{"name": "pos", "scopes": []string{"staff:manage"}},
			map[string]any{"name": "", "scopes": []string{"orders:write"}},
			map[string]any{"name": "pos", "scopes": []string{"orders:write"}, "expires_at": "2000-01-01T00:00:00Z"},
			map[string]any{"name": "pos", "scopes": "orders:write"},
		} {
			if r := e.do("POST", "/api-keys", owner, body); r.code != 400 {
				t.Errorf("create %v: %d %s", body, r.code, r.body)
			}
		}
		r := e.do("POST", "/api-keys", owner, map[string]any{"name": "POS 1", "scopes": []string{"orders:write", "members:read", "orders:write"}})
		var key struct {
			ID     uint64
			Key    string
			Prefix string
			Scopes []string
		}
		r.json(t, &key)
		if r.code != 201 || !strings.HasPrefix(key.Key, "lsk_") || !strings.HasPrefix(key.Key, key.Prefix) || len(key.Scopes) != 2 {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
		var stored int64
		gdb.Table("api_keys").Where("key_hash = ? OR prefix = ?", key.Key, key.Key).Count(&stored)
		if stored != 0 {
			t.Fatal("raw key stored")
		}
		if r := e.do("GET", "/api-keys", owner, nil); strings.Contains(string(r.body), key.Key) {
			t.Fatal("list shows the secret")
		}
		// The key works as a bearer token, within its scopes.
		var me struct {
			APIKeyID    uint64 `json:"api_key_id"`
			MerchantID  uint64 `json:"merchant_id"`
			Permissions []string
		}
		r = e.do("GET", "/me", key.Key, nil)
		r.json(t, &me)
		if r.code != 200 || me.APIKeyID != key.ID || me.MerchantID != e.merchant.ID || strings.Join(me.Permissions, ",") != "members:read,orders:write" {
			t.Fatalf("me with key: %d %s", r.code, r.body)
		}
		for _, c := range []struct{ method, path string }{{"GET", "/settings"}, {"GET", "/api-keys"}, {"POST", "/api-keys"}, {"POST", "/logout"}} {
			if r := e.do(c.method, c.path, key.Key, "{}"); r.code != 403 {
				t.Errorf("%s %s with key: %d", c.method, c.path, r.code)
			}
		}
		// A viewer cannot mint keys; an owner cannot give scopes it lacks
		// (none here: owners hold all), and keys cannot manage keys.
		if r := e.do("POST", "/api-keys", viewer, map[string]any{"name": "x", "scopes": []string{"members:read"}}); r.code != 403 {
			t.Fatalf("viewer creates key: %d", r.code)
		}
		// Revoke: the key stops working; revoking again is fine; a foreign
		// or unknown id is 404.
		if r := e.do("DELETE", fmt.Sprintf("/api-keys/%d", key.ID), owner, nil); r.code != 200 {
			t.Fatalf("revoke: %d", r.code)
		}
		if r := e.do("GET", "/me", key.Key, nil); r.code != 401 {
			t.Fatalf("revoked key works: %d", r.code)
		}
		if r := e.do("DELETE", fmt.Sprintf("/api-keys/%d", key.ID), owner, nil); r.code != 200 {
			t.Fatalf("revoke twice: %d", r.code)
		}
		other := newAPIEnv(t, gdb)
		_, otherOwner := other.staff(admin.RoleOwner)
		if r := other.do("DELETE", fmt.Sprintf("/api-keys/%d", key.ID), otherOwner, nil); r.code != 404 {
			t.Fatalf("foreign revoke: %d", r.code)
		}
		// Expiry.
		exp := e.clock.Now().Add(time.Hour)
		r = e.do("POST", "/api-keys", owner, map[string]any{"name": "temp", "scopes": []string{"members:read"}, "expires_at": exp})
		r.json(t, &key)
		if r := e.do("GET", "/me", key.Key, nil); r.code != 200 {
			t.Fatalf("fresh key: %d", r.code)
		}
		e.clock.Add(2 * time.Hour)
		if r := e.do("GET", "/me", key.Key, nil); r.code != 401 {
			t.Fatalf("expired key works: %d", r.code)
		}
		var actors []string
		gdb.Table("audit_log").Where("merchant_id = ? AND action LIKE 'api_key.%'", e.merchant.ID).Order("id").Pluck("action", &actors)
		if strings.Join(actors, ",") != "api_key.create,api_key.revoke,api_key.create" {
			t.Fatalf("audit: %v", actors)
		}
	})
}

func TestSettingsAndConnectionTest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		_, owner := e.staff(admin.RoleOwner)
		r := e.do("GET", "/settings", owner, nil)
		for _, secret := range []string{e.creds.AppSecret, e.creds.Token, e.creds.EncodingAESKey, e.creds.MPAppSecret} {
			if strings.Contains(string(r.body), secret) {
				t.Fatalf("settings show a secret: %s", r.body)
			}
		}
		var s admin.Settings
		r.json(t, &s)
		if s.TimeZone != "Asia/Shanghai" || s.QuietHours != (admin.QuietHours{Start: "21:00", End: "09:00"}) ||
			!s.WeChat.AppSecretSet || s.WeChat.AppID != e.creds.AppID || !s.WeChat.SafeMode {
			t.Fatalf("settings: %+v", s)
		}
		// Bad input: every field named, nothing written.
		r = e.do("PATCH", "/settings", owner, map[string]any{"time_zone": "Mars/Base", "quiet_hours": map[string]string{"start": "25:00", "end": "9"},
			"wechat": map[string]string{"app_secret": "short"}, "name": "Renamed",
			"crm": map[string]any{"buying_cadence": "weekly", "platinum_pct": 0, "gold_pct": 60}})
		if r.code != 400 || r.errorField(t, "time_zone") == "" || r.errorField(t, "quiet_hours.start") == "" ||
			r.errorField(t, "quiet_hours.end") == "" || r.errorField(t, "wechat.app_secret") == "" ||
			r.errorField(t, "crm.buying_cadence") == "" || r.errorField(t, "crm.platinum_pct") == "" || r.errorField(t, "crm.gold_pct") == "" {
			t.Fatalf("bad settings: %d %s", r.code, r.body)
		}
		if got, _ := e.merchants.Settings(context.Background(), e.merchant.ID); got.Name != "Tea" || len(e.changed) != 0 {
			t.Fatalf("bad input changed something: %+v", got)
		}
		// A good change, with a new secret: written, announced, audited
		// without the secret.
		newSecret := strings.Repeat("c", 32)
		if s.CRM != (admin.CRM{BuyingCadence: "medium", PlatinumPct: 5, GoldPct: 15}) {
			t.Fatalf("default CRM settings: %+v", s.CRM)
		}
		// Read (and cached) before the change: the change must replace it.
		if crm, _ := e.merchants.CRMSettings(context.Background(), e.merchant.ID); crm.Cadence != "medium" || crm.PlatinumPct != 5 {
			t.Fatalf("CRM settings before the change: %+v", crm)
		}
		r = e.do("PATCH", "/settings", owner, map[string]any{"time_zone": "Asia/Tokyo", "quiet_hours": map[string]string{"start": "22:30", "end": "08:00"},
			"wechat": map[string]string{"app_secret": newSecret, "aes_key": ""}, "crm": map[string]any{"buying_cadence": "high", "platinum_pct": 10, "gold_pct": 20}})
		r.json(t, &s)
		if r.code != 200 || s.TimeZone != "Asia/Tokyo" || s.QuietHours.Start != "22:30" || s.WeChat.SafeMode || len(e.changed) != 1 ||
			s.CRM.BuyingCadence != "high" {
			t.Fatalf("update: %d %s %v", r.code, r.body, e.changed)
		}
		if crm, _ := e.merchants.CRMSettings(context.Background(), e.merchant.ID); crm.Cadence != "high" || crm.PlatinumPct != 10 || crm.GoldPct != 20 {
			t.Fatalf("CRM settings not written: %+v", crm)
		}
		if c, _ := e.merchants.WeChatCredentials(context.Background(), e.merchant.ID); c.AppSecret != newSecret || c.EncodingAESKey != "" {
			t.Fatalf("credentials not written: %+v", c)
		}
		var after string
		gdb.Table("audit_log").Where("merchant_id = ? AND action = 'settings.update'", e.merchant.ID).Pluck("after_json", &after)
		if strings.Contains(after, newSecret) || !strings.Contains(after, "app_secret") {
			t.Fatalf("audit after: %s", after)
		}

		// The frequency cap: defaults 2 in 7 days; bounds checked, every
		// field named, nothing written; a good change read back.
		if s.FrequencyCap != (admin.FrequencyCap{Messages: 2, WindowDays: 7}) {
			t.Fatalf("default frequency cap: %+v", s.FrequencyCap)
		}
		r = e.do("PATCH", "/settings", owner, map[string]any{"frequency_cap": map[string]int{"messages": 0, "window_days": 91}})
		if r.code != 400 || r.errorField(t, "frequency_cap.messages") == "" || r.errorField(t, "frequency_cap.window_days") == "" {
			t.Fatalf("bad frequency cap: %d %s", r.code, r.body)
		}
		if n, d, _ := e.merchants.FrequencyCap(context.Background(), e.merchant.ID); n != 2 || d != 7 {
			t.Fatalf("a refused cap was written: %d in %d", n, d)
		}
		r = e.do("PATCH", "/settings", owner, map[string]any{"frequency_cap": map[string]int{"messages": 3, "window_days": 14}})
		r.json(t, &s)
		if r.code != 200 || s.FrequencyCap != (admin.FrequencyCap{Messages: 3, WindowDays: 14}) || s.TimeZone != "Asia/Tokyo" {
			t.Fatalf("frequency cap update: %d %s", r.code, r.body)
		}
		if n, d, _ := e.merchants.FrequencyCap(context.Background(), e.merchant.ID); n != 3 || d != 14 {
			t.Fatalf("frequency cap read back: %d in %d", n, d)
		}

		// The connection test calls WeChat with the stored credentials: the
		// secret now differs from the simulator's, so the official account
		// fails with 40125 in plain words while the mini-program passes.
		var check struct {
			OK      bool
			Results []struct {
				App     string
				OK      bool
				ErrCode int
				Message string
			}
		}
		r = e.do("POST", "/settings/wechat-test", owner, nil)
		r.json(t, &check)
		if r.code != 200 || check.OK || len(check.Results) != 2 || check.Results[0].ErrCode != 40125 ||
			!strings.Contains(check.Results[0].Message, "AppSecret") || !check.Results[1].OK {
			t.Fatalf("check: %d %s", r.code, r.body)
		}
		e.do("PATCH", "/settings", owner, map[string]any{"wechat": map[string]string{"app_secret": e.creds.AppSecret}})
		sim.Script("/cgi-bin/stable_token", wechattest.Fault{ErrCode: 40164})
		r = e.do("POST", "/settings/wechat-test", owner, nil)
		r.json(t, &check)
		if check.OK || check.Results[0].ErrCode != 40164 || !strings.Contains(check.Results[0].Message, "whitelist") {
			t.Fatalf("whitelist check: %s", r.body)
		}
		r = e.do("POST", "/settings/wechat-test", owner, nil)
		r.json(t, &check)
		if !check.OK {
			t.Fatalf("check with good credentials: %s", r.body)
		}
	})
}

func TestChannels(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		_, marketer := e.staff(admin.RoleMarketer)
		qrCalls := sim.CountRequests("/cgi-bin/qrcode/create")
		for _, body := range []any{
			map[string]any{"name": "", "scene": "store-1"},
			map[string]any{"name": "Store", "scene": "has space"},
			map[string]any{"name": "Store", "scene": strings.Repeat("s", 65)},
			map[string]any{"name": "Store", "scene": "s1", "expires_in_seconds": 10},
			map[string]any{"name": "Store", "scene": "s1", "permanent": true, "expires_in_seconds": 600},
		} {
			if r := e.do("POST", "/channels", marketer, body); r.code != 400 {
				t.Errorf("create %v: %d %s", body, r.code, r.body)
			}
		}
		if n := sim.CountRequests("/cgi-bin/qrcode/create") - qrCalls; n != 0 {
			t.Fatalf("bad input reached WeChat %d times", n)
		}
		r := e.do("POST", "/channels", marketer, map[string]any{"name": "Store 1 poster", "scene": "store-1", "expires_in_seconds": 86400})
		var ch struct {
			ID        uint64
			Scene     string
			URL       string
			ImageURL  string     `json:"image_url"`
			ExpiresAt *time.Time `json:"expires_at"`
		}
		r.json(t, &ch)
		if r.code != 201 || ch.URL == "" || ch.ExpiresAt == nil {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
		// The code really carries the scene.
		var ticket string
		gdb.Table("channels").Where("id = ?", ch.ID).Pluck("ticket", &ticket)
		if app, scene, ok := sim.QRScene(ticket); !ok || app != e.creds.AppID || scene != "store-1" {
			t.Fatalf("simulator ticket: %v %q %q", ok, app, scene)
		}
		if r := e.do("POST", "/channels", marketer, map[string]any{"name": "Again", "scene": "store-1"}); r.code != 409 {
			t.Fatalf("duplicate scene: %d", r.code)
		}
		// WeChat failures are reported in words and store nothing.
		sim.Script("/cgi-bin/qrcode/create", wechattest.Fault{ErrCode: 48001})
		r = e.do("POST", "/channels", marketer, map[string]any{"name": "Permanent", "scene": "table-9", "permanent": true})
		if r.code != 422 || !strings.Contains(string(r.body), "48001") {
			t.Fatalf("wechat failure: %d %s", r.code, r.body)
		}
		var list struct {
			Channels []struct {
				Scene     string
				Followers int64
				Members   int64
			}
		}
		r = e.do("GET", "/channels", marketer, nil)
		r.json(t, &list)
		if len(list.Channels) != 1 || list.Channels[0].Followers != 7 || list.Channels[0].Members != 5 {
			t.Fatalf("list: %s", r.body)
		}
	})
}

func TestAuditLog(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		ownerID, owner := e.staff(admin.RoleOwner)
		var ids []uint64
		for range 3 {
			r := e.do("POST", "/staff", owner, map[string]any{"username": unique("s"), "role": "viewer"})
			var st struct{ ID uint64 }
			r.json(t, &st)
			ids = append(ids, st.ID)
		}
		e.do("PATCH", fmt.Sprintf("/staff/%d", ids[1]), owner, map[string]any{"role": "marketer"})
		// Logout records nothing itself: the safety net records it.
		_, spare := e.staff(admin.RoleViewer)
		if r := e.do("POST", "/logout", spare, nil); r.code != 204 {
			t.Fatal(r.code)
		}
		type entries struct {
			Entries []struct {
				ID        uint64
				ActorType string `json:"actor_type"`
				ActorID   uint64 `json:"actor_id"`
				Action    string
				TargetIDs []uint64 `json:"target_ids"`
				Before    map[string]any
				After     map[string]any
				ClientIP  string `json:"client_ip"`
				RequestID string `json:"request_id"`
			}
			NextBefore *uint64 `json:"next_before"`
		}
		var got entries
		r := e.do("GET", "/audit?limit=2", owner, nil)
		r.json(t, &got)
		if r.code != 200 || len(got.Entries) != 2 || got.NextBefore == nil || got.Entries[0].Action != "POST /api/admin/v1/logout" ||
			got.Entries[1].Action != "staff.update" || got.Entries[1].ActorID != ownerID || got.Entries[1].ClientIP != "192.0.2.10" ||
			got.Entries[1].Before["role"] != "viewer" || got.Entries[1].After["role"] != "marketer" {
			t.Fatalf("page 1: %d %s", r.code, r.body)
		}
		r = e.do("GET", "/audit?limit=10&before="+strconv.FormatUint(*got.NextBefore, 10), owner, nil)
		r.json(t, &got)
		if len(got.Entries) != 3 || got.NextBefore != nil {
			t.Fatalf("page 2: %s", r.body)
		}
		r = e.do("GET", fmt.Sprintf("/audit?target_type=staff&target_id=%d", ids[1]), owner, nil)
		r.json(t, &got)
		if len(got.Entries) != 2 {
			t.Fatalf("by target: %s", r.body)
		}
		r = e.do("GET", "/audit?action=staff.", owner, nil)
		r.json(t, &got)
		if len(got.Entries) != 4 {
			t.Fatalf("by action prefix: %s", r.body)
		}
		for _, q := range []string{"limit=0", "limit=1000", "limit=x", "target_id=5", "since=yesterday", "actor_type=robot", "foo=1", "before=-1"} {
			if r := e.do("GET", "/audit?"+q, owner, nil); r.code != 400 {
				t.Errorf("%s: %d", q, r.code)
			}
		}
		// Another merchant sees none of it.
		other := newAPIEnv(t, gdb)
		_, otherOwner := other.staff(admin.RoleOwner)
		r = other.do("GET", "/audit", otherOwner, nil)
		r.json(t, &got)
		if len(got.Entries) != 0 {
			t.Fatalf("foreign audit: %s", r.body)
		}
	})
}

// The callback settings: the account's original id and the compatible-mode
// opt-in are merchant settings, validated, audited and announced like the
// credentials; the original id can also be learnt once from a verified
// callback, which never overrides one already known.
func TestCallbackSettings(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		_, owner := e.staff(admin.RoleOwner)
		var s admin.Settings
		r := e.do("GET", "/settings", owner, nil)
		r.json(t, &s)
		if s.WeChat.OriginalID != "" || s.WeChat.CompatibleMode || !s.WeChat.SafeMode {
			t.Fatalf("defaults: %+v", s.WeChat)
		}

		// Bad input: named, nothing written.
		r = e.do("PATCH", "/settings", owner, map[string]any{"wechat": map[string]any{"original_id": "wx_not_an_id", "compatible_mode": true, "aes_key": ""}})
		if r.code != 400 || r.errorField(t, "wechat.original_id") == "" || r.errorField(t, "wechat.compatible_mode") == "" {
			t.Fatalf("bad callback settings: %d %s", r.code, r.body)
		}
		if c, _ := e.merchants.WeChatCredentials(context.Background(), e.merchant.ID); c.OriginalID != "" || c.CompatibleMode || c.EncodingAESKey == "" || len(e.changed) != 0 {
			t.Fatalf("bad input changed something: %+v %v", c, e.changed)
		}

		// Compatible mode on, with the original id: written, announced (the
		// callback handler drops its cached account) and audited.
		r = e.do("PATCH", "/settings", owner, map[string]any{"wechat": map[string]any{"original_id": "gh_0123456789ab", "compatible_mode": true}})
		r.json(t, &s)
		if r.code != 200 || s.WeChat.OriginalID != "gh_0123456789ab" || !s.WeChat.CompatibleMode || len(e.changed) != 1 {
			t.Fatalf("update: %d %s %v", r.code, r.body, e.changed)
		}
		c, _ := e.merchants.WeChatCredentials(context.Background(), e.merchant.ID)
		if c.OriginalID != "gh_0123456789ab" || !c.CompatibleMode {
			t.Fatalf("credentials: %+v", c)
		}
		var before, after string
		row := gdb.Table("audit_log").Where("merchant_id = ? AND action = 'settings.update'", e.merchant.ID).Order("id DESC").Select("before_json, after_json").Row()
		if err := row.Scan(&before, &after); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(before, `"compatible_mode":false`) || !strings.Contains(after, `"compatible_mode":true`) ||
			!strings.Contains(after, `"original_id":"gh_0123456789ab"`) {
			t.Fatalf("audit: before %s after %s", before, after)
		}

		// A known id is never replaced by one learnt from a callback.
		if err := e.merchants.LearnOriginalID(context.Background(), e.merchant.ID, "gh_learnt"); err != nil {
			t.Fatal(err)
		}
		if c, _ := e.merchants.WeChatCredentials(context.Background(), e.merchant.ID); c.OriginalID != "gh_0123456789ab" || len(e.changed) != 1 {
			t.Fatalf("learning replaced a known id: %+v %v", c, e.changed)
		}

		// Removing the AES key switches compatible mode off with it; a new
		// AppID forgets the old account's original id.
		r = e.do("PATCH", "/settings", owner, map[string]any{"wechat": map[string]any{"aes_key": ""}})
		r.json(t, &s)
		if r.code != 200 || s.WeChat.CompatibleMode || s.WeChat.SafeMode {
			t.Fatalf("aes key removed: %d %s", r.code, r.body)
		}
		r = e.do("PATCH", "/settings", owner, map[string]any{"wechat": map[string]any{"app_id": "wx0000000000000abc"}})
		r.json(t, &s)
		if r.code != 200 || s.WeChat.OriginalID != "" {
			t.Fatalf("new app id: %d %s", r.code, r.body)
		}

		// Unknown, the id is learnt once, audited as the system's doing.
		for _, id := range []string{"gh_learnt", "gh_second"} {
			if err := e.merchants.LearnOriginalID(context.Background(), e.merchant.ID, id); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.merchants.LearnOriginalID(context.Background(), e.merchant.ID, "not-an-id"); err == nil {
			t.Fatal("learnt an id of the wrong shape")
		}
		if c, _ := e.merchants.WeChatCredentials(context.Background(), e.merchant.ID); c.OriginalID != "gh_learnt" {
			t.Fatalf("learnt %q, want gh_learnt", c.OriginalID)
		}
		var learnt []struct {
			ActorType string
			AfterJSON string
		}
		gdb.Table("audit_log").Where("merchant_id = ? AND action = 'settings.original_id_learnt'", e.merchant.ID).
			Select("actor_type, after_json").Scan(&learnt)
		if len(learnt) != 1 || learnt[0].ActorType != "system" || !strings.Contains(learnt[0].AfterJSON, "gh_learnt") {
			t.Fatalf("learning audit: %+v", learnt)
		}
	})
}

// A key's last use is written off the request's path, at most once a
// minute per key however many requests come at once.
func TestAPIKeyLastUse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAPIEnv(t, gdb)
		ownerID, _ := e.staff(admin.RoleOwner)
		keys := admin.NewAPIKeys(gdb, e.clock.Now)
		ctx := context.Background()
		k, secret, err := keys.Create(ctx, authz.Principal{MerchantID: e.merchant.ID, StaffID: ownerID, Role: admin.RoleOwner},
			admin.APIKeyInput{Name: "pos", Scopes: []authz.Perm{authz.OrdersWrite}})
		if err != nil {
			t.Fatal(err)
		}
		stored := func() *time.Time {
			t.Helper()
			keys.Wait()
			var got admin.APIKey
			if err := gdb.Where("id = ?", k.ID).Take(&got).Error; err != nil {
				t.Fatal(err)
			}
			if got.LastUsedAt != nil {
				u := got.LastUsedAt.UTC()
				return &u
			}
			return nil
		}
		if stored() != nil {
			t.Fatal("a new key has a last use")
		}
		first := e.clock.Now()
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := keys.Authenticate(ctx, secret); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got := stored(); got == nil || !got.Equal(first) {
			t.Fatalf("last use after the first requests: %v, want %v", got, first)
		}
		// Within the minute nothing is written.
		e.clock.Add(59 * time.Second)
		if _, err := keys.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if got := stored(); !got.Equal(first) {
			t.Fatalf("written again within the minute: %v", got)
		}
		// After it, the next request writes its time.
		e.clock.Add(2 * time.Second)
		later := e.clock.Now()
		if _, err := keys.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if got := stored(); !got.Equal(later) {
			t.Fatalf("last use a minute later: %v, want %v", got, later)
		}
	})
}
