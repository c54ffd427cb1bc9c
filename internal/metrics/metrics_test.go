package metrics_test

import (
	"strings"
	"testing"

	"github.com/fastimage/api/internal/metrics"
)

func TestTextFormat(t *testing.T) {
	r := metrics.NewRegistry()
	c := r.Counter("http_requests_total", "Requests.", "route", "status")
	h := r.Histogram("latency_seconds", "Latency.", []float64{0.1, 1}, "route")
	g := r.Gauge("open_sockets", "Sockets.")
	c.Inc("/graphql", "200")
	c.Inc("/graphql", "200")
	c.Inc(`/a"b`, "404")
	h.Observe(0.05, "/graphql")
	h.Observe(0.5, "/graphql")
	h.Observe(5, "/graphql")
	g.Add(3)
	g.Add(-1)

	var b strings.Builder
	r.WriteText(&b)
	got := b.String()
	for _, want := range []string{
		"# TYPE http_requests_total counter",
		`http_requests_total{route="/graphql",status="200"} 2`,
		`http_requests_total{route="/a\"b",status="404"} 1`,
		`latency_seconds_bucket{route="/graphql",le="0.1"} 1`,
		`latency_seconds_bucket{route="/graphql",le="1"} 2`,
		`latency_seconds_bucket{route="/graphql",le="+Inf"} 3`,
		`latency_seconds_count{route="/graphql"} 3`,
		`latency_seconds_sum{route="/graphql"} 5.55`,
		"open_sockets 2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics output lacks %q; got:\n%s", want, got)
		}
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := metrics.NewRegistry().Counter("x", "x", "route", "method", "status")
	b.ReportAllocs()
	for b.Loop() {
		c.Inc("/graphql", "POST", "200")
	}
}
