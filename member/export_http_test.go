//go:build unix

package member_test

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// socketBuffer is the size asked for the test connections' kernel buffers:
// small, so the server's writes wait for the client to read, as they do
// with a slow client on a real network.
const socketBuffer = 4096

// smallSendBuffers gives accepted connections small send buffers.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(socketBuffer)
	}
	return c, err
}

// serveExports serves the admin routes on a real listener, as the owner,
// with the server's read and write timeouts set to timeout (the service
// sets both), and returns a client whose connections have small receive
// buffers (set before connecting, so the window stays small).
func (a *adminAPI) serveExports(t *testing.T, timeout time.Duration) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.engine.ServeHTTP(w, r.WithContext(authz.WithPrincipal(r.Context(), a.owner())))
	}))
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	t.Cleanup(srv.Close)
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, socketBuffer)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)
	return srv.URL + adminPrefix, client
}

// addMembers inserts n members of the fixture's merchant.
func (a *adminAPI) addMembers(n int) {
	a.t.Helper()
	rows := make([]member.Member, n)
	for i := range rows {
		rows[i] = member.Member{MerchantID: a.merchantID, Name: fmt.Sprintf("member number %06d", i),
			Source: member.SourceOAFollow, FollowStatus: member.FollowFollowing, CreatedAt: a.clock.Now(), UpdatedAt: a.clock.Now()}
	}
	if err := a.db.CreateInBatches(rows, 500).Error; err != nil {
		a.t.Fatal(err)
	}
}

// A large export to a slow client that keeps reading is complete, however
// long the download takes beyond the server's write timeout: the body is
// every member, once, and ends with the X-Export-Rows trailer.
func TestAdminExportCSVToASlowReader(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		const timeout = time.Second
		const n = 3000 // about 280 kB of CSV
		a := newAdminAPI(t, gdb, member.AdminOptions{ExportBatch: 100, ExportWriteWindow: timeout})
		a.addMembers(n)
		base, client := a.serveExports(t, timeout)
		resp, err := client.Get(base + "/members/export.csv")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// At most 2 kB every 10 ms: the pauses alone add up to more than
		// the server's write timeout.
		start := time.Now()
		var body strings.Builder
		chunk := make([]byte, 2048)
		for {
			k, err := resp.Body.Read(chunk)
			body.Write(chunk[:k])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("the export was cut after %d bytes and %v: %v", body.Len(), time.Since(start), err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if took := time.Since(start); took <= timeout {
			t.Fatalf("the download took %v, not longer than the server's timeout: nothing was tested", took)
		}
		records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body.String(), "\ufeff"))).ReadAll()
		if err != nil || len(records) != n+1 {
			t.Fatalf("%d records, %v", len(records), err)
		}
		seen := map[string]bool{}
		for _, r := range records[1:] {
			if seen[r[0]] {
				t.Fatalf("member %s twice", r[0])
			}
			seen[r[0]] = true
		}
		if got := resp.Trailer.Get("X-Export-Rows"); got != strconv.Itoa(n) {
			t.Fatalf("X-Export-Rows trailer %q, want %d", got, n)
		}
	})
}

// A client that stops reading makes the export fail after the write
// window, and the client sees the download fail: an error instead of a
// clean end of the body, and no X-Export-Rows trailer.
func TestAdminExportCSVAbortedIsAnError(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		const timeout = 300 * time.Millisecond
		const n = 3000
		a := newAdminAPI(t, gdb, member.AdminOptions{ExportBatch: 100, ExportWriteWindow: timeout})
		a.addMembers(n)
		base, client := a.serveExports(t, timeout)
		resp, err := client.Get(base + "/members/export.csv")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		head := make([]byte, 16<<10)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * timeout) // the client stops reading for longer than the window
		rest, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Fatalf("an aborted export ended like a complete one (%d bytes)", len(head)+len(rest))
		}
		if resp.Trailer.Get("X-Export-Rows") != "" {
			t.Fatalf("an aborted export has the trailer of a complete one: %v", resp.Trailer)
		}
		if lines := strings.Count(string(head)+string(rest), "\n"); lines >= n+1 {
			t.Fatalf("the aborted export holds all %d lines", lines)
		}
	})
}
