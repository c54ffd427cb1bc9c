package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured; -json writes it as it is.
type Report struct {
	Target      string  `json:"target"`
	Users       int     `json:"users"`
	Started     int     `json:"started"` // users the ramp started before the end
	Joined      int     `json:"joined"`  // users that signed in and opened their socket
	ElapsedSec  float64 `json:"elapsedSeconds"`
	Think       string  `json:"think"`
	Iterations  int     `json:"iterations"`
	Operations  int     `json:"operations"`
	PerSecond   float64 `json:"operationsPerSecond"`
	ErrorsTotal int     `json:"errorsTotal"`
	Interrupted int     `json:"interrupted"`
	// Errors counts failures by "operation: code", the code being the
	// GraphQL error's extensions.code, "HTTP <status>" or "transport: …".
	Errors map[string]int `json:"errors"`
	Ops    []OpReport     `json:"ops"`
	Server *ServerReport  `json:"server,omitempty"`
}

// ServerReport is the server's memory and goroutines, from its /metrics.
type ServerReport struct {
	RSSStartBytes   int64 `json:"rssStartBytes"`
	RSSEndBytes     int64 `json:"rssEndBytes"`
	RSSPeakBytes    int64 `json:"rssPeakBytes"`
	GoroutinesStart int   `json:"goroutinesStart"`
	GoroutinesEnd   int   `json:"goroutinesEnd"`
	GoroutinesPeak  int   `json:"goroutinesPeak"`
	Samples         int   `json:"samples"`
}

func (r *runner) report(elapsed time.Duration, s *serverStats) *Report {
	ops := r.rec.operations(flowOps, elapsed)
	rep := &Report{
		Target: r.base.String(), Users: r.opt.users, Started: int(r.started.Load()), Joined: int(r.joined.Load()),
		ElapsedSec: math.Round(elapsed.Seconds()*10) / 10, Think: r.opt.think.String(),
		Errors: map[string]int{}, Ops: ops,
	}
	r.rec.mu.Lock()
	rep.Iterations = r.rec.iterations
	maps.Copy(rep.Errors, r.rec.errors)
	r.rec.mu.Unlock()
	for _, o := range ops {
		rep.Operations += o.Count
		rep.ErrorsTotal += o.Errors
		rep.Interrupted += o.Interrupted
	}
	rep.PerSecond = perSecond(rep.Operations, elapsed)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples > 0 {
		rep.Server = &ServerReport{
			RSSStartBytes: int64(s.first.RSSBytes), RSSEndBytes: int64(s.last.RSSBytes), RSSPeakBytes: int64(s.peak.RSSBytes),
			GoroutinesStart: int(s.first.Goroutines), GoroutinesEnd: int(s.last.Goroutines), GoroutinesPeak: int(s.peak.Goroutines),
			Samples: s.samples,
		}
	}
	return rep
}

// writeTable prints the report for people.
func (rep *Report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\n%d users (%d started, %d joined) against %s for %.1fs, think %s: %d rounds, %d operations (%.1f/s), %d errors",
		rep.Users, rep.Started, rep.Joined, rep.Target, rep.ElapsedSec, rep.Think, rep.Iterations, rep.Operations, rep.PerSecond, rep.ErrorsTotal)
	if rep.Interrupted > 0 {
		fmt.Fprintf(w, ", %d cut short by the end of the run", rep.Interrupted)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\terrors\tper s\tp50 ms\tp95 ms\tp99 ms\tmax ms\t")
	for _, o := range rep.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", o.Name, o.Count, o.Errors, o.PerSecond, o.P50Ms, o.P95Ms, o.P99Ms, o.MaxMs)
	}
	_ = tw.Flush()
	if len(rep.Errors) > 0 {
		fmt.Fprint(w, "\nerrors by code:\n")
		for _, k := range slices.Sorted(maps.Keys(rep.Errors)) {
			fmt.Fprintf(w, "  %6d  %s\n", rep.Errors[k], k)
		}
	}
	if s := rep.Server; s != nil {
		fmt.Fprintf(w, "\nserver: RSS %s → %s (peak %s), goroutines %d → %d (peak %d); first reading before the run, last %s after it, %d in all\n",
			mib(s.RSSStartBytes), mib(s.RSSEndBytes), mib(s.RSSPeakBytes), s.GoroutinesStart, s.GoroutinesEnd, s.GoroutinesPeak, settle, s.Samples)
	} else {
		fmt.Fprint(w, "\nserver: no metrics (see -metrics-url)\n")
	}
}

func mib(b int64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(b)/(1<<20)), ".0") + " MiB"
}
