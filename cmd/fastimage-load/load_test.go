package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/proctest"
)

// TestLoadAgainstTheRealServer builds `fastimage`, runs `serve` as `make run`
// does (development, mail kept in the outbox, the local provider) on a
// fresh database, and plays a few users against it for a few seconds: every
// operation of the flow must be counted, none may fail, and the server's
// memory and goroutines must be read from its own metrics listener.
func TestLoadAgainstTheRealServer(t *testing.T) {
	srv := startServer(t)
	var progress syncBuffer
	opt := testOptions(t, srv)
	rep, err := run(t.Context(), opt, &progress)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	var table bytes.Buffer
	rep.writeTable(&table)
	t.Log("\n" + table.String())
	if rep.ErrorsTotal != 0 || len(rep.Errors) != 0 {
		t.Errorf("errors: %d %v, want none\nserver log:\n%s", rep.ErrorsTotal, rep.Errors, srv.log.String())
	}
	if rep.Started != opt.users || rep.Joined != opt.users {
		t.Errorf("%d users started and %d joined, want %d", rep.Started, rep.Joined, opt.users)
	}
	counts := map[string]int{}
	for _, o := range rep.Ops {
		counts[o.Name] = o.Count
		if o.Count > 0 && (o.P50Ms <= 0 || o.P50Ms > o.P95Ms || o.P95Ms > o.P99Ms || o.P99Ms > o.MaxMs) {
			t.Errorf("%s: p50 %v, p95 %v, p99 %v, max %v: want positive and ordered", o.Name, o.P50Ms, o.P95Ms, o.P99Ms, o.MaxMs)
		}
	}
	// Each user joins once, makes as many images as the sign-up bonus pays
	// for (25 credits, 4 an image: 6), then opens an earlier one instead.
	const paid = 6
	want := map[string]int{
		opSignUp: opt.users, opOutbox: opt.users, opVerify: opt.users, opSignIn: opt.users, opConnect: opt.users, opEstimate: opt.users,
		opList: opt.users * opt.iterations, opGenerate: opt.users * paid, opFollow: opt.users * paid, opDownload: opt.users * paid,
		opGallery: opt.users * (opt.iterations - paid),
	}
	for _, name := range flowOps {
		if counts[name] != want[name] {
			t.Errorf("%s counted %d times, want %d", name, counts[name], want[name])
		}
	}
	if rep.Iterations < opt.users*opt.iterations {
		t.Errorf("%d rounds, want %d", rep.Iterations, opt.users*opt.iterations)
	}
	if s := rep.Server; s == nil || s.RSSPeakBytes <= 0 || s.GoroutinesPeak <= 0 {
		t.Errorf("server metrics: %+v, want RSS and goroutines read", rep.Server)
	}
	if !strings.Contains(progress.String(), "users joined 3 of 3 started") {
		t.Errorf("progress lines:\n%s\nwant one per second naming the users", progress.String())
	}
	// The JSON report carries the same numbers.
	path := filepath.Join(t.TempDir(), "report.json")
	if err := writeJSON(path, rep); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Operations != rep.Operations || len(back.Ops) != len(rep.Ops) || back.Server == nil {
		t.Errorf("JSON report %+v, want the table's numbers", back)
	}
}

// TestLoadRefusesAServerWithoutTheOutbox: a production server offers no
// outbox to sign up through; the run says so and plays nobody.
func TestLoadRefusesAServerWithoutTheOutbox(t *testing.T) {
	// No mail server listens at the SMTP URL: the run must stop before any
	// user would need one.
	srv := startServer(t, "--env", "production", "--storage-signing-key", strings.Repeat("k", 32), "--smtp-url", "smtp://127.0.0.1:1?from=no-reply%40example.com")
	opt := testOptions(t, srv)
	_, err := run(t.Context(), opt, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "development outbox") {
		t.Errorf("run against production: %v, want a refusal naming the development outbox", err)
	}
}

// TestLoadCancelsWhatTheEndCutsShort: a round the end of the run catches
// is reported as cut short, not as an error, and its generation is
// canceled rather than left running for nobody.
func TestLoadCancelsWhatTheEndCutsShort(t *testing.T) {
	// 8 steps of 10 s: the generation is still running when the run ends.
	srv := startServer(t, "--local-step-delay", "10s")
	opt, err := parseOptions([]string{
		"-url", srv.url, "-metrics-url", srv.metrics,
		"-users", "1", "-duration", "20s", "-grace", "0", "-ramp", "0", "-size", "64",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run(t.Context(), opt, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var follow OpReport
	for _, o := range rep.Ops {
		if o.Name == opFollow {
			follow = o
		}
	}
	if rep.ErrorsTotal != 0 || rep.Joined != 1 || follow.Interrupted != 1 || follow.Count != 0 {
		t.Fatalf("report: %d errors %v, %d joined, followEvents %+v; want no error, one user, one follow cut short", rep.ErrorsTotal, rep.Errors, rep.Joined, follow)
	}
	bdb, err := db.Open(t.Context(), dbtest.Config(srv.dbURL), "load-test")
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var status string
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := bdb.NewRaw("SELECT status FROM generations").Scan(t.Context(), &status); err != nil {
			t.Fatal(err)
		}
		if status != "queued" && status != "running" {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status != "canceled" {
		t.Errorf("the cut-short generation is %s, want canceled", status)
	}
}

func testOptions(t *testing.T, srv *server) options {
	t.Helper()
	opt, err := parseOptions([]string{
		"-url", srv.url, "-metrics-url", srv.metrics,
		"-users", "3", "-iterations", "7", "-duration", "0", "-ramp", "300ms", "-think", "50ms", "-size", "64",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

type server struct {
	url, metrics, dbURL string
	log                 *syncBuffer
}

// startServer runs `fastimage serve` on free loopback ports; the public
// URL names the real port, since image URLs are built from it.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	bin := proctest.Binary(t)
	port, metricsPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, append([]string{"serve", "--migrate",
		"--http-addr", "127.0.0.1:" + port, "--public-url", "http://127.0.0.1:" + port,
		"--metrics-addr", "127.0.0.1:" + metricsPort,
		"--storage-dir", t.TempDir(), "--local-step-delay", "10ms"}, args...)...)
	s := &server{log: &syncBuffer{}, dbURL: dbtest.NewURL(t)}
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.dbURL, "LOG_FORMAT=json")
	cmd.Stderr = s.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		banner := regexp.MustCompile(`Metrics:\s+(http://\S+)`)
		for sc.Scan() {
			if m := banner.FindStringSubmatch(sc.Text()); m != nil {
				s.url, s.metrics = "http://127.0.0.1:"+port, m[1]
				up <- true
			}
		}
		close(up)
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("serve exited before listening:\n%s", s.log.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start:\n%s", s.log.String())
	}
	return s
}

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// syncBuffer collects output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
