package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// settle is how long after the users are done the server's last reading
// is taken.
const settle = 2 * time.Second

// runner holds what every virtual user of a run shares.
type runner struct {
	opt       options
	base      *url.URL
	id        string // tells this run's accounts apart from earlier runs'
	rec       *recorder
	authSlots chan struct{}
	sources   []net.IP // each user's source address; nil: the system's choice
	stop      chan struct{}
	stopOnce  sync.Once
	started   atomic.Int64 // users that began
	joined    atomic.Int64 // users signed in with their socket open

	logMu  sync.Mutex
	logged map[string]bool
	log    io.Writer
}

func (r *runner) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

func (r *runner) stopNow() { r.stopOnce.Do(func() { close(r.stop) }) }

// logFirst prints the first error of each kind, so that a failing run says
// why without a line per failure.
func (r *runner) logFirst(op string, err error) {
	key := op + ": " + codeOf(err)
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.logged[key] {
		return
	}
	r.logged[key] = true
	fmt.Fprintf(r.log, "first %s error: %v\n", op, err)
}

// dialer returns user n's dial function: from its own loopback address
// when the run spreads sources.
func (r *runner) dialer(n int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if r.sources == nil {
		return d.DialContext
	}
	d.LocalAddr = &net.TCPAddr{IP: r.sources[n]}
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp4", addr)
	}
}

// loopbackSources picks n distinct addresses in 127.0.0.0/8 other than
// 127.0.0.1, at random so that runs in the same hour rarely share one (the
// server counts sign-ups per IP per hour).
func loopbackSources(n int) []net.IP {
	seen := map[[3]byte]bool{{0, 0, 1}: true}
	out := make([]net.IP, 0, n)
	for len(out) < n {
		b := [3]byte{byte(1 + mrand.IntN(254)), byte(mrand.IntN(256)), byte(1 + mrand.IntN(254))}
		if seen[b] {
			continue
		}
		seen[b] = true
		out = append(out, net.IPv4(127, b[0], b[1], b[2]))
	}
	return out
}

// run plays the users and returns the report. It fails without playing
// anyone when the server is not there or not in development.
func run(ctx context.Context, opt options, log io.Writer) (*Report, error) {
	base, err := checkLoopback(opt.target)
	if err != nil {
		return nil, err
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	r := &runner{
		opt: opt, base: base, id: hex.EncodeToString(id[:]), rec: newRecorder(),
		authSlots: make(chan struct{}, opt.authConcurrency), stop: make(chan struct{}),
		logged: map[string]bool{}, log: log,
	}
	if opt.spreadIPs {
		if spreadsSources(base.Hostname()) {
			r.sources = loopbackSources(opt.users)
		} else {
			fmt.Fprintf(log, "note: %s has one loopback address; every user connects from it\n", base.Hostname())
		}
	}
	probe := newClient(base, r.dialerOrDefault())
	defer probe.close()
	if err := r.preflight(ctx, probe); err != nil {
		return nil, err
	}
	before, err := scrapeMetrics(ctx, probe.http, opt.metricsURL)
	if err != nil {
		fmt.Fprintf(log, "note: server metrics unavailable: %v\n", err)
	}
	sampler := &serverStats{}
	sampler.add(before, err)

	started := time.Now()
	hard, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-time.After(opt.duration):
		case <-ctx.Done():
		}
		r.stopNow()
		select {
		case <-time.After(opt.grace):
		case <-ctx.Done():
		}
		cancel()
	}()

	var wg sync.WaitGroup
	for n := range opt.users {
		delay := time.Duration(0)
		if opt.users > 1 {
			delay = opt.ramp * time.Duration(n) / time.Duration(opt.users)
		}
		wg.Go(func() {
			select {
			case <-time.After(delay):
			case <-r.stop:
				return
			}
			u := &user{n: n, run: r, c: newClient(base, r.dialer(n))}
			r.started.Add(1)
			u.live(hard)
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	// The progress lines keep reading the server's metrics after the hard
	// stop, while the last rounds wind down: they read under ctx, not hard.
	r.progress(ctx, finished, started, probe.http, sampler)
	elapsed := time.Since(started)
	r.stopNow()

	// The server closes the users' sockets and subscriptions as they go;
	// the last reading is taken once that has settled.
	select {
	case <-time.After(settle):
	case <-ctx.Done():
	}
	after, err := scrapeMetrics(context.WithoutCancel(ctx), probe.http, opt.metricsURL)
	sampler.add(after, err)
	return r.report(elapsed, sampler), nil
}

func (r *runner) dialerOrDefault() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if r.sources == nil {
		return (&net.Dialer{Timeout: 30 * time.Second}).DialContext
	}
	return r.dialer(0)
}

// preflight checks that a server is there and offers the development
// outbox, before any user starts.
func (r *runner) preflight(ctx context.Context, c *client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var health map[string]any
	if err := c.getJSON(ctx, "/healthz", &health); err != nil {
		return fmt.Errorf("no FastImage API answers at %s (%v): start one with `make run`, or give its address with -url", r.base, err)
	}
	var box struct{ Messages []any }
	if err := c.getJSON(ctx, "/dev/outbox.json?limit=1", &box); err != nil {
		return fmt.Errorf("%s/dev/outbox.json: %v. Users sign up through the development outbox: run the server with APP_ENV=development and no SMTP_URL, as `make run` does", r.base, err)
	}
	return nil
}

// progress prints a line a second until the users are done, sampling the
// server's metrics as it goes.
func (r *runner) progress(ctx context.Context, finished <-chan struct{}, started time.Time, hc *http.Client, sampler *serverStats) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	terminal := isTerminal(r.log)
	lastDone := 0
	line := func(end string) {
		done, failed := r.rec.counts()
		s, err := scrapeMetrics(ctx, hc, r.opt.metricsURL)
		sampler.add(s, err)
		server := ""
		if err == nil {
			server = fmt.Sprintf("  server %.0f MiB, %.0f goroutines", s.RSSBytes/(1<<20), s.Goroutines)
		}
		phase := ""
		if r.stopping() {
			phase = "  (finishing rounds under way)"
		}
		fmt.Fprintf(r.log, "%s%5.0fs  users joined %d of %d started  ops %d  errors %d  rate %d/s%s%s%s",
			clearLine(terminal), time.Since(started).Seconds(), r.joined.Load(), r.started.Load(), done, failed, done-lastDone, server, phase, end)
		lastDone = done
	}
	for {
		select {
		case <-finished:
			line("\n")
			return
		case <-tick.C:
			if terminal {
				line("")
			} else {
				line("\n")
			}
		}
	}
}

func clearLine(terminal bool) string {
	if terminal {
		return "\r\033[K"
	}
	return ""
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// serverStats keeps the server's first, last and highest readings.
type serverStats struct {
	mu                sync.Mutex
	first, last, peak serverSample
	samples, failures int
	firstErr          error
}

func (s *serverStats) add(v serverSample, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures++
		if s.firstErr == nil {
			s.firstErr = err
		}
		return
	}
	if s.samples == 0 {
		s.first = v
	}
	s.samples++
	s.last = v
	s.peak.RSSBytes = math.Max(s.peak.RSSBytes, v.RSSBytes)
	s.peak.Goroutines = math.Max(s.peak.Goroutines, v.Goroutines)
}
