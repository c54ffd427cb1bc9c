package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// maxSamples bounds the latencies kept per operation; past it a reservoir
// keeps a uniform sample, so that an hour of 2,000 users stays in memory.
const maxSamples = 200_000

// recorder collects what the virtual users did, from many goroutines.
type recorder struct {
	mu  sync.Mutex
	ops map[string]*opStats
	// errors counts failures by "operation: code".
	errors     map[string]int
	iterations int
	done       int // operations finished, failed or not
	failed     int
}

type opStats struct {
	ok, failed, interrupted int
	seen                    int // samples offered to the reservoir
	samples                 []time.Duration
}

func newRecorder() *recorder {
	return &recorder{ops: map[string]*opStats{}, errors: map[string]int{}}
}

func (r *recorder) op(name string) *opStats {
	s := r.ops[name]
	if s == nil {
		s = &opStats{}
		r.ops[name] = s
	}
	return s
}

// ok records an operation that succeeded in d.
func (r *recorder) ok(name string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.op(name)
	s.ok++
	r.done++
	s.seen++
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, d)
	} else if i := rand.IntN(s.seen); i < maxSamples {
		s.samples[i] = d
	}
}

// fail records an operation that failed with code.
func (r *recorder) fail(name, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.op(name).failed++
	r.errors[name+": "+code]++
	r.done++
	r.failed++
}

// interrupted records an operation the end of the run cut short: neither a
// success nor the server's fault.
func (r *recorder) interrupted(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.op(name).interrupted++
}

func (r *recorder) iteration() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.iterations++
}

// counts returns the operations finished and failed so far.
func (r *recorder) counts() (done, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done, r.failed
}

// OpReport is one operation's line of the report.
type OpReport struct {
	Name        string  `json:"name"`
	Count       int     `json:"count"`
	Errors      int     `json:"errors"`
	Interrupted int     `json:"interrupted"`
	PerSecond   float64 `json:"perSecond"`
	P50Ms       float64 `json:"p50Ms"`
	P95Ms       float64 `json:"p95Ms"`
	P99Ms       float64 `json:"p99Ms"`
	MaxMs       float64 `json:"maxMs"`
}

// operations returns a report line per operation, in the order of names
// first (the flow's order), then any others by name.
func (r *recorder) operations(names []string, elapsed time.Duration) []OpReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	order := slices.Clone(names)
	var extra []string
	for name := range r.ops {
		if !slices.Contains(names, name) {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	order = append(order, extra...)
	var out []OpReport
	for _, name := range order {
		s := r.ops[name]
		if s == nil {
			s = &opStats{}
		}
		sorted := slices.Clone(s.samples)
		slices.Sort(sorted)
		out = append(out, OpReport{
			Name: name, Count: s.ok, Errors: s.failed, Interrupted: s.interrupted,
			PerSecond: perSecond(s.ok, elapsed),
			P50Ms:     ms(percentile(sorted, 50)), P95Ms: ms(percentile(sorted, 95)), P99Ms: ms(percentile(sorted, 99)),
			MaxMs: ms(percentile(sorted, 100)),
		})
	}
	return out
}

// percentile returns the nearest-rank p-th percentile of sorted (ascending):
// the smallest sample that at least p percent of the samples are at or
// below. Zero samples give zero.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
}

func perSecond(n int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return math.Round(float64(n)/elapsed.Seconds()*10) / 10
}
