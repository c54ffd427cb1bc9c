// Command fastimage-load plays N editor users against a FastImage API
// running on this machine: each signs up through the development outbox,
// verifies and signs in, then lists My Works, generates an image, follows
// its progress over graphql-transport-ws to the final event and downloads
// it, over and over, for a fixed time or count. It prints a progress line
// every second and, at the end, throughput, latency percentiles per
// operation, errors by code and the server's memory and goroutines, as a
// table and, with -json, as JSON.
//
//	go run ./cmd/fastimage-load -users 200 -duration 60s
//
// It refuses targets that are not on this machine, more than 2,000 users
// and runs longer than an hour. It exits 1 when any operation failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// The bounds of a run.
const (
	maxUsers      = 2000
	maxDuration   = time.Hour
	maxIterations = 10_000
	maxThink      = 10 * time.Minute
	maxGrace      = 5 * time.Minute
	maxRamp       = 10 * time.Minute
)

// options are the settings of a run.
type options struct {
	target, metricsURL string
	users              int
	duration           time.Duration
	iterations         int // per user; 0: until duration
	ramp               time.Duration
	think              time.Duration
	grace              time.Duration
	size               int
	authConcurrency    int
	spreadIPs          bool
	jsonPath           string
}

func parseOptions(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fastimage-load", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: fastimage-load [flags]\n\nPlays editor users against a FastImage API on this machine (start one with `make run`).\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.target, "url", "http://127.0.0.1:8080", "the server's base URL (loopback only)")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "the server's /metrics, when served on its own listener (METRICS_ADDR); default <url>/metrics")
	fs.IntVar(&o.users, "users", 10, fmt.Sprintf("virtual users, 1 to %d", maxUsers))
	fs.DurationVar(&o.duration, "duration", 30*time.Second, fmt.Sprintf("how long users start new rounds (at most %s); 0 with -iterations: until every user is done", maxDuration))
	fs.IntVar(&o.iterations, "iterations", 0, fmt.Sprintf("rounds per user, at most %d (0: as many as -duration allows)", maxIterations))
	fs.DurationVar(&o.ramp, "ramp", 10*time.Second, "users start evenly over this long")
	fs.DurationVar(&o.think, "think", 5*time.Second, "a user's pause between rounds, on average (each pause is 0.5 to 1.5 times it)")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "after -duration, how long rounds under way may take to finish; what is still running then is reported as interrupted")
	fs.IntVar(&o.size, "size", 256, "width and height of the generated images, 64 to 2048")
	fs.IntVar(&o.authConcurrency, "auth-concurrency", 8, "users signing up and in at once (sign-up and sign-in each hash a password; the server queues 32 per hash slot and refuses more with UNAVAILABLE)")
	fs.BoolVar(&o.spreadIPs, "spread-ips", true, "give each user its own loopback source address (127.x.y.z), as real users each have their own IP, so that per-IP limits apply per user; false sends every user from one address")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file (- for standard output)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var problems []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			problems = append(problems, fmt.Errorf(format, args...))
		}
	}
	if _, err := checkLoopback(o.target); err != nil {
		problems = append(problems, fmt.Errorf("-url %w", err))
	}
	if o.metricsURL == "" {
		o.metricsURL = o.target + "/metrics"
	} else if _, err := checkLoopback(o.metricsURL); err != nil {
		problems = append(problems, fmt.Errorf("-metrics-url %w", err))
	}
	check(o.users >= 1 && o.users <= maxUsers, "-users must be between 1 and %d, not %d", maxUsers, o.users)
	check(o.duration >= 0 && o.duration <= maxDuration, "-duration must be between 0 and %s, not %s", maxDuration, o.duration)
	check(o.iterations >= 0 && o.iterations <= maxIterations, "-iterations must be between 0 and %d, not %d", maxIterations, o.iterations)
	check(o.duration > 0 || o.iterations > 0, "give -duration or -iterations: a run must end")
	check(o.ramp >= 0 && o.ramp <= maxRamp, "-ramp must be between 0 and %s", maxRamp)
	check(o.think >= 0 && o.think <= maxThink, "-think must be between 0 and %s", maxThink)
	check(o.grace >= 0 && o.grace <= maxGrace, "-grace must be between 0 and %s", maxGrace)
	check(o.size >= 64 && o.size <= 2048, "-size must be between 64 and 2048, not %d", o.size)
	check(o.authConcurrency >= 1 && o.authConcurrency <= 256, "-auth-concurrency must be between 1 and 256")
	if o.duration == 0 {
		o.duration = maxDuration // -iterations alone still ends within the bound
	}
	return o, errors.Join(problems...)
}

func main() {
	opt, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fastimage-load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, opt, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fastimage-load:", err)
		os.Exit(2)
	}
	rep.writeTable(os.Stdout)
	if opt.jsonPath != "" {
		if err := writeJSON(opt.jsonPath, rep); err != nil {
			fmt.Fprintln(os.Stderr, "fastimage-load:", err)
			os.Exit(2)
		}
	}
	if rep.ErrorsTotal > 0 {
		os.Exit(1)
	}
}

func writeJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
