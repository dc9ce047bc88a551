package main

import (
	"net/http"
	"testing"

	"github.com/wxloyalty/loyalty/internal/apicontract"
)

// contractClient is an HTTP client whose answers are checked against
// docs/openapi.yaml (internal/apicontract): the suites' helpers (call, raw,
// get, send...) use it, so a handler that drifts from its documentation
// fails the test that called it.
func contractClient(t testing.TB) *http.Client { return apicontract.Client(t) }

// client is the testApp's contract-checked HTTP client.
func (a *testApp) client() *http.Client { return contractClient(a.t) }
