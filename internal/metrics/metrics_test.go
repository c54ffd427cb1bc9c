package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fastimage/api/internal/metrics"
)

func TestHandler(t *testing.T) {
	r := metrics.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests."}, []string{"route", "status"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "latency_seconds", Help: "Latency.", Buckets: []float64{0.1, 1}}, []string{"route"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open_sockets", Help: "Sockets."})
	r.MustRegister(c, h, g)
	c.WithLabelValues("/graphql", "200").Inc()
	c.WithLabelValues("/graphql", "200").Inc()
	c.WithLabelValues(`/a"b`, "404").Inc()
	h.WithLabelValues("/graphql").Observe(0.05)
	h.WithLabelValues("/graphql").Observe(0.5)
	h.WithLabelValues("/graphql").Observe(5)
	g.Add(3)
	g.Add(-1)

	srv := httptest.NewServer(metrics.Handler(r, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	got := string(body)
	for _, want := range []string{
		"# HELP http_requests_total Requests.",
		"# TYPE http_requests_total counter",
		`http_requests_total{route="/graphql",status="200"} 2`,
		`http_requests_total{route="/a\"b",status="404"} 1`,
		`latency_seconds_bucket{route="/graphql",le="0.1"} 1`,
		`latency_seconds_bucket{route="/graphql",le="1"} 2`,
		`latency_seconds_bucket{route="/graphql",le="+Inf"} 3`,
		`latency_seconds_count{route="/graphql"} 3`,
		`latency_seconds_sum{route="/graphql"} 5.55`,
		"open_sockets 2",
		"# TYPE go_goroutines gauge",
		"# TYPE process_resident_memory_bytes gauge",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics output lacks %q; got:\n%s", want, got)
		}
	}
}

func TestLatencyBuckets(t *testing.T) {
	b := metrics.LatencyBuckets()
	b[0] = 99 // a caller's copy is its own
	if got := metrics.LatencyBuckets()[0]; got != .005 {
		t.Errorf("first bucket = %v, want 0.005", got)
	}
}

// BenchmarkCounterInc is the hot path of every HTTP request: a counter with
// three labels whose series already exists.
func BenchmarkCounterInc(b *testing.B) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x", Help: "x"}, []string{"route", "method", "status"})
	metrics.NewRegistry().MustRegister(c)
	b.ReportAllocs()
	for b.Loop() {
		c.WithLabelValues("/graphql", "POST", "200").Inc()
	}
}

// BenchmarkHistogramObserve is the other half of the hot path.
func BenchmarkHistogramObserve(b *testing.B) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x", Help: "x", Buckets: metrics.LatencyBuckets()}, []string{"route", "method"})
	metrics.NewRegistry().MustRegister(h)
	b.ReportAllocs()
	for b.Loop() {
		h.WithLabelValues("/graphql", "POST").Observe(0.042)
	}
}

// The admin listener serves the runtime profiles beside /metrics.
func TestServeProfiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.Serve(ctx, ln, metrics.NewRegistry(), slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/debug/pprof/", http.StatusOK, "goroutine"},
		{"/debug/pprof/heap?debug=1", http.StatusOK, "heap profile"},
		{"/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{"/debug/pprof/cmdline", http.StatusOK, ""},
		{"/debug/pprof/profile?seconds=1", http.StatusOK, ""},
		{"/metrics", http.StatusOK, "go_goroutines"},
		{"/other", http.StatusNotFound, ""},
	} {
		resp, err := http.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("GET %s: got %d with %d bytes, want %d holding %q", c.path, resp.StatusCode, len(body), c.status, c.want)
		}
	}
}
