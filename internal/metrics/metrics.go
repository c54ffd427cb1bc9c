// Package metrics keeps the service's counters, gauges and histograms and
// writes them in the Prometheus text exposition format.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// maxLabels bounds the labels of one metric so that label sets can be array
// map keys: recording a sample then allocates nothing once the series exists.
const maxLabels = 4

type labelValues [maxLabels]string

// Registry holds metrics in the order they were made.
type Registry struct {
	mu      sync.Mutex
	writers []func(io.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(w func(io.Writer)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writers = append(r.writers, w)
}

// WriteText writes every metric in the Prometheus text format.
func (r *Registry) WriteText(w io.Writer) {
	r.mu.Lock()
	writers := slices.Clone(r.writers)
	r.mu.Unlock()
	for _, write := range writers {
		write(w)
	}
}

// Handler serves the metrics at GET.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteText(w)
	})
}

func header(w io.Writer, name, help, kind string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func formatLabels(names []string, values labelValues, extra ...string) string {
	if len(names) == 0 && len(extra) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escape(values[i]))
		b.WriteByte('"')
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(extra[i])
		b.WriteString(`="`)
		b.WriteString(extra[i+1])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escape(s string) string { return escaper.Replace(s) }

func key(names []string, values []string) labelValues {
	if len(values) != len(names) {
		panic(fmt.Sprintf("metrics: got %d label values for labels %v", len(values), names))
	}
	var k labelValues
	copy(k[:], values)
	return k
}

func checkLabels(labels []string) {
	if len(labels) > maxLabels {
		panic("metrics: too many labels")
	}
}

// CounterVec is a counter per label set.
type CounterVec struct {
	labels []string
	series sync.Map // labelValues → *atomic.Uint64
}

// Counter registers a counter with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	checkLabels(labels)
	c := &CounterVec{labels: labels}
	r.add(func(w io.Writer) {
		header(w, name, help, "counter")
		for _, s := range sortedSeries(&c.series) {
			fmt.Fprintf(w, "%s%s %d\n", name, formatLabels(c.labels, s.key), s.value.(*atomic.Uint64).Load())
		}
	})
	return c
}

// Inc adds one to the series with the given label values.
func (c *CounterVec) Inc(values ...string) {
	k := key(c.labels, values)
	v, ok := c.series.Load(k)
	if !ok {
		v, _ = c.series.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

// Gauge registers a gauge.
func (r *Registry) Gauge(name, help string) *Gauge {
	g := &Gauge{}
	r.add(func(w io.Writer) {
		header(w, name, help, "gauge")
		fmt.Fprintf(w, "%s %d\n", name, g.v.Load())
	})
	return g
}

// Add adds d (which may be negative) to the gauge.
func (g *Gauge) Add(d int64) { g.v.Add(d) }

// Value returns the gauge's current value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// GaugeFunc registers a gauge whose value is read from f at each scrape.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.add(func(w io.Writer) {
		header(w, name, help, "gauge")
		fmt.Fprintf(w, "%s %s\n", name, formatFloat(f()))
	})
}

// CounterFunc registers a counter whose value is read from f at each scrape.
func (r *Registry) CounterFunc(name, help string, f func() float64) {
	r.add(func(w io.Writer) {
		header(w, name, help, "counter")
		fmt.Fprintf(w, "%s %s\n", name, formatFloat(f()))
	})
}

// HistogramVec is a histogram per label set.
type HistogramVec struct {
	labels  []string
	buckets []float64
	series  sync.Map // labelValues → *histogram
}

type histogram struct {
	mu     sync.Mutex
	counts []uint64 // one per bucket, not cumulative
	count  uint64
	sum    float64
}

// DefaultLatencyBuckets suit HTTP request durations in seconds.
var DefaultLatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram registers a histogram with the given upper bucket bounds.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	checkLabels(labels)
	h := &HistogramVec{labels: labels, buckets: buckets}
	r.add(func(w io.Writer) {
		header(w, name, help, "histogram")
		for _, s := range sortedSeries(&h.series) {
			hs := s.value.(*histogram)
			hs.mu.Lock()
			var cum uint64
			for i, ub := range h.buckets {
				cum += hs.counts[i]
				fmt.Fprintf(w, "%s_bucket%s %d\n", name, formatLabels(h.labels, s.key, "le", formatFloat(ub)), cum)
			}
			fmt.Fprintf(w, "%s_bucket%s %d\n", name, formatLabels(h.labels, s.key, "le", "+Inf"), hs.count)
			fmt.Fprintf(w, "%s_sum%s %s\n", name, formatLabels(h.labels, s.key), formatFloat(hs.sum))
			fmt.Fprintf(w, "%s_count%s %d\n", name, formatLabels(h.labels, s.key), hs.count)
			hs.mu.Unlock()
		}
	})
	return h
}

// Observe records v in the series with the given label values.
func (h *HistogramVec) Observe(v float64, values ...string) {
	k := key(h.labels, values)
	s, ok := h.series.Load(k)
	if !ok {
		s, _ = h.series.LoadOrStore(k, &histogram{counts: make([]uint64, len(h.buckets))})
	}
	hs := s.(*histogram)
	i := sort.SearchFloat64s(h.buckets, v)
	hs.mu.Lock()
	if i < len(hs.counts) {
		hs.counts[i]++
	}
	hs.count++
	hs.sum += v
	hs.mu.Unlock()
}

type seriesEntry struct {
	key   labelValues
	value any
}

func sortedSeries(m *sync.Map) []seriesEntry {
	var out []seriesEntry
	m.Range(func(k, v any) bool {
		out = append(out, seriesEntry{k.(labelValues), v})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		for n := range maxLabels {
			if out[i].key[n] != out[j].key[n] {
				return out[i].key[n] < out[j].key[n]
			}
		}
		return false
	})
	return out
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
