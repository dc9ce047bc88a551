package wechattest

import (
	"net/http"
	"net/http/httptest"
)

// RoundTripper returns a transport that answers every request with the
// simulator, in this process, whatever host the request names: nothing is
// listening, so nothing of the simulator (its request log holds AppSecrets;
// its authorize page hands out codes) is reachable from the network. Use it
// as the SDK's transport (wechat.InstallHTTPClient) in sandbox mode.
func (s *Simulator) RoundTripper() http.RoundTripper { return inProcess{s} }

type inProcess struct{ sim *Simulator }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	// A server-side handler expects a non-nil body and must not share the
	// caller's request value.
	r := req.Clone(ctx)
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.sim.ServeHTTP(rec, r)
	closeBody(req)
	if err := ctx.Err(); err != nil {
		// A scripted hang or latency outlived the caller's deadline: fail
		// as a network call would, not with a half-written answer.
		return nil, err
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
