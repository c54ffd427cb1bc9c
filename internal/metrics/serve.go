package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Serve answers on ln with AdminHandler until ctx ends; then it stops
// within a few seconds. It is the METRICS_ADDR listener, apart from the
// public API.
func Serve(ctx context.Context, ln net.Listener, r *prometheus.Registry, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           AdminHandler(r, log),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		// Longer than the 30 s CPU profile that go tool pprof asks for by
		// default, which pprof refuses when it would outlast the timeout.
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// AdminHandler is what the METRICS_ADDR listener serves, and only it: GET
// /metrics with r's metrics, and the runtime profiles of net/http/pprof
// under /debug/pprof/ (go tool pprof http://<METRICS_ADDR>/debug/pprof/heap).
// A profile shows the program's memory and call stacks, so it must never be
// reachable on the public port; the public handler has no such route.
// Anything else is 404.
func AdminHandler(r *prometheus.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(r, log))
	// Registered on this mux by hand: the package's own registration is on
	// http.DefaultServeMux, which nothing here serves.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
