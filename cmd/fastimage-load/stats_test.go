package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, c := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 50, 0},
		{"one sample is every percentile", ms(7), 1, 7 * time.Millisecond},
		{"one sample p99", ms(7), 99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p95 of four is the last", ms(1, 2, 3, 4), 95, 4 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p95 of 1..100", ms(hundred...), 95, 95 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 1000), 99, 1000 * time.Millisecond},
		{"p0 is the min", ms(3, 4), 0, 3 * time.Millisecond},
	} {
		if got := percentile(c.sorted, c.p); got != c.want {
			t.Errorf("%s: percentile(p%v) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestRecorderCountsAndOrders(t *testing.T) {
	r := newRecorder()
	for i := 1; i <= 10; i++ {
		r.ok(opList, time.Duration(i)*time.Millisecond)
	}
	r.fail(opList, "RATE_LIMITED")
	r.fail(opSignIn, "HTTP 503")
	r.interrupted(opFollow)
	r.ok("other", time.Millisecond)
	ops := r.operations([]string{opSignIn, opList, opFollow}, 2*time.Second)
	names := []string{}
	for _, o := range ops {
		names = append(names, o.Name)
	}
	if got := strings.Join(names, ","); got != "signIn,listWorks,followEvents,other" {
		t.Errorf("order %s, want the flow's then the rest", got)
	}
	list := ops[1]
	if list.Count != 10 || list.Errors != 1 || list.PerSecond != 5 || list.P50Ms != 5 || list.P95Ms != 10 || list.MaxMs != 10 {
		t.Errorf("listWorks %+v, want 10 ok at 5/s, 1 error, p50 5 ms, p95 and max 10 ms", list)
	}
	if ops[2].Interrupted != 1 || ops[2].Errors != 0 {
		t.Errorf("followEvents %+v, want 1 interrupted, no error", ops[2])
	}
	if r.errors["listWorks: RATE_LIMITED"] != 1 || r.errors["signIn: HTTP 503"] != 1 {
		t.Errorf("errors by code %v", r.errors)
	}
	if done, failed := r.counts(); done != 13 || failed != 2 {
		t.Errorf("counts %d done, %d failed; want 13, 2", done, failed)
	}
}

func TestRecorderKeepsABoundedSample(t *testing.T) {
	r := newRecorder()
	for range maxSamples + 1000 {
		r.ok(opList, time.Millisecond)
	}
	if s := r.ops[opList]; len(s.samples) != maxSamples || s.ok != maxSamples+1000 {
		t.Errorf("%d samples kept of %d, want %d", len(s.samples), s.ok, maxSamples)
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
go_goroutines_other 7
process_resident_memory_bytes 5.24288e+07
http_requests_total{route="/graphql"} 3
`
	s, err := parseMetrics(strings.NewReader(in))
	if err != nil || s.Goroutines != 42 || s.RSSBytes != 52428800 {
		t.Errorf("parseMetrics: %+v, %v; want 42 goroutines and 50 MiB", s, err)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines 1\n")); err == nil {
		t.Error("metrics without RSS accepted")
	}
}
