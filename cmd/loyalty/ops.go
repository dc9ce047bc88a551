package main

import (
	"errors"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofMux serves Go's pprof profiles under /debug/pprof/.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// opsHandler serves what is for operators and never for the public: the
// metrics and the profiles, on the metrics listener (http.metrics_addr).
func (a *App) opsHandler() http.Handler {
	mux := pprofMux()
	mux.Handle("/metrics", a.metrics.Handler())
	return mux
}

// serveOps serves the metrics listener, if one is configured, until the
// returned stop is called.
func (a *App) serveOps() (stop func()) {
	if a.opsLn == nil {
		return func() {}
	}
	// No write timeout: a CPU profile or trace takes as long as it is asked
	// to (pprof refuses durations beyond a server's write timeout).
	srv := &http.Server{Handler: a.opsHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(a.opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics listener", "error", err)
		}
	}()
	a.log.Info("metrics listening", "addr", a.opsLn.Addr().String())
	return func() {
		_ = srv.Close()
		<-done
	}
}
