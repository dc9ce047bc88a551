package main

import (
	"net"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/internal/dbtest"
)

func TestHealthcheckAsksTheLocalService(t *testing.T) {
	a := startAppOn(t, onBackend(t, dbtest.SQLite))
	_, port, err := net.SplitHostPort(strings.TrimPrefix(a.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	env := cliEnv(t)
	env["LOYALTY_HTTP_ADDR"] = "0.0.0.0:" + port // a container listens on every address
	code, out, errOut := runCLI(t, env, "healthcheck")
	if code != 0 || !strings.Contains(out, `"ok"`) {
		t.Fatalf("healthcheck: exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "healthcheck", "ready")
	if code != 0 || !strings.Contains(out, `"ready"`) {
		t.Fatalf("healthcheck ready: exit %d: %s %s", code, out, errOut)
	}

	// Nothing listening: exit 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env["LOYALTY_HTTP_ADDR"] = ln.Addr().String()
	_ = ln.Close()
	if code, _, errOut := runCLI(t, env, "healthcheck"); code != 1 || !strings.Contains(errOut, "healthcheck") {
		t.Fatalf("no service: exit %d: %s", code, errOut)
	}
	if code, _, _ := runCLI(t, env, "healthcheck", "bogus"); code != 2 {
		t.Fatalf("bad argument: exit %d", code)
	}
}
