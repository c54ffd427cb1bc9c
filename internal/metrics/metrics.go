// Package metrics builds the Prometheus registry a process exposes at
// /metrics: the Go runtime and process collectors, beside whatever the caller
// registers, served by client_golang.
package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry of its own (not client_golang's global one)
// holding the Go runtime and process collectors, so go_goroutines and
// process_resident_memory_bytes are exposed beside the caller's metrics.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// Handler serves the metrics of r in the format the scraper asks for
// (Prometheus text unless it asks otherwise). A collector that fails is
// logged and left out; the rest are still served.
func Handler(r *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// LatencyBuckets returns upper bucket bounds, in seconds, that suit HTTP
// request durations.
func LatencyBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}
