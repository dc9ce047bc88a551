package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wxloyalty/loyalty/configs"
)

// healthcheckCommand runs `loyalty healthcheck [ready]`: it asks the
// service listening on LOYALTY_HTTP_ADDR for /healthz (or /readyz) and
// exits 0 when it answers 200. Container images without a shell or curl
// (deploy/Dockerfile) use it for their HEALTHCHECK.
func healthcheckCommand(ctx context.Context, cfg configs.Config, args []string, stdout io.Writer) error {
	path := "/healthz"
	switch {
	case len(args) == 1 && args[0] == "ready":
		path = "/readyz"
	case len(args) != 0:
		return usageError{errors.New("usage: loyalty healthcheck [ready]")}
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("healthcheck: http.addr (LOYALTY_HTTP_ADDR): %w", err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // listening on every address: ask on loopback
	}
	url := "http://" + net.JoinHostPort(host, port) + path
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", url, resp.StatusCode, body)
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return nil
}
