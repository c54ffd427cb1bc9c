package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/proctest"
)

// binary is the fastimage command built once for the tests that run it as a
// real process.
func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

type process struct {
	cmd     *exec.Cmd
	url     string
	metrics string // the URL of /metrics the banner names
	stderr  *logBuffer
}

// startServe runs `fastimage serve` with args and waits for it to print its
// address.
func startServe(t testing.TB, dbURL string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(proctest.Binary(t), append([]string{"serve", "--http-addr", "127.0.0.1:0", "--storage-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_FORMAT=json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &logBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`GraphQL:\s+(http://\S+)/graphql`)
		metrics := regexp.MustCompile(`Metrics:\s+(http://\S+)`)
		var u string
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				u = m[1]
			}
			if m := metrics.FindStringSubmatch(sc.Text()); m != nil {
				found <- [2]string{u, m[1]}
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("serve exited before listening; stderr:\n%s", p.stderr)
		}
		p.url, p.metrics = u[0], u[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start; stderr:\n%s", p.stderr)
	}
	return p
}

// stop ends the process as an operator would (SIGTERM) and waits for it.
func (p *process) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("serve did not stop within 30s of SIGTERM; stderr:\n%s", p.stderr)
	}
}

// logBuffer collects a process's stderr while the test reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Two replicas started together against one new database: the migrations
// are applied once, both become ready, and both stop cleanly on SIGTERM.
func TestTwoReplicasMigrateOnce(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewEmptyURL(t)
	proctest.Binary(t)
	var (
		wg    sync.WaitGroup
		procs [2]*process
	)
	for i := range procs {
		wg.Go(func() { procs[i] = startServe(t, dbURL, "--migrate") })
	}
	wg.Wait()
	for _, p := range procs {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("replica %s not ready: %d", p.url, resp.StatusCode)
		}
	}

	bdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var rows int
	if err := bdb.NewRaw("SELECT count(*) FROM bun_migrations").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	m, err := db.NewMigrator(bdb)
	if err != nil {
		t.Fatal(err)
	}
	status, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(status) {
		t.Fatalf("bun_migrations has %d rows for %d migrations: applied more than once", rows, len(status))
	}
	applied := 0
	for _, p := range procs {
		if strings.Contains(p.stderr.String(), `"msg":"applied migrations"`) {
			applied++
		}
	}
	if applied != 1 {
		t.Errorf("%d replicas report applying migrations, want exactly 1", applied)
	}

	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("replica exited with %v after SIGTERM; stderr:\n%s", err, p.stderr)
			}
		case <-time.After(25 * time.Second):
			t.Fatal("replica did not stop within the shutdown timeout")
		}
	}
}

func TestServeRefusesPendingMigrations(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--database-url", dbtest.NewEmptyURL(t)}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "pending migration") || !strings.Contains(stderr.String(), "_foundation") {
		t.Fatalf("exit %d, stderr %q; want 1 and the pending migrations named", code, stderr.String())
	}
}

func TestBadSettingsAreAllReported(t *testing.T) {
	t.Setenv("HTTP_ADDR", "nonsense")
	t.Setenv("DB_STATEMENT_TIMEOUT", "soon")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--public-url", "ftp://x", "--max-query-depth", "1"}, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"HTTP_ADDR", "DB_STATEMENT_TIMEOUT", "PUBLIC_URL", "--max-query-depth"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr.String())
		}
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, env := range []string{"DATABASE_URL", "HTTP_ADDR", "PUBLIC_URL", "ALLOWED_ORIGINS", "MIGRATE", "DB_STATEMENT_TIMEOUT", "DB_MAX_OPEN_CONNS", "INTROSPECTION", "GRAPHIQL", "METRICS_ADDR"} {
		if !strings.Contains(stderr.String(), "env "+env) {
			t.Errorf("serve --help does not document %s", env)
		}
	}
	// The flag package names a flag's value after the first `quoted` word of
	// its usage: a usage must not quote words, or --help shows nonsense
	// such as "-metrics-addr worker" instead of the value's type.
	for _, line := range strings.Split(stderr.String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "-") && !slices.Contains([]string{"string", "int", "duration", "value"}, f[1]) {
			t.Errorf("serve --help shows %q: the value of %s is not a type", strings.TrimSpace(line), f[0])
		}
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewEmptyURL(t)
	runOK := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"migrate", "--database-url", dbURL}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("migrate %v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String()
	}
	if out := runOK("status"); !strings.Contains(out, "pending") {
		t.Errorf("status on a new database: %q", out)
	}
	if out := runOK("up"); !strings.Contains(out, "applied") {
		t.Errorf("up: %q", out)
	}
	if out := runOK("status"); strings.Contains(out, "pending") {
		t.Errorf("status after up: %q", out)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"migrate", "--env", "production", "--database-url", dbURL, "down"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "forward-only") {
		t.Errorf("down in production: exit %d, %q; want refused", code, stderr.String())
	}
	if out := runOK("down"); !strings.Contains(out, "rolled back") {
		t.Errorf("down in development: %q", out)
	}
}

// `fastimage worker` runs workers without the HTTP API and stops cleanly on
// SIGTERM; it refuses to run with no workers.
func TestWorkerCommand(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewURL(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"worker", "--database-url", dbURL, "--workers", "0"}, &stdout, &stderr); code != 2 {
		t.Fatalf("worker --workers 0: exit %d (%s), want 2", code, stderr.String())
	}
	cmd := exec.Command(proctest.Binary(t), "worker", "--workers", "1", "--storage-dir", t.TempDir(), "--metrics-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_FORMAT=json")
	logs := &logBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "FastImage workers running") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("worker did not start: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A worker serves its metrics on METRICS_ADDR too.
	m := regexp.MustCompile(`"metrics":"(http://[^"]+)"`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Errorf("the worker names no metrics URL: %s", logs.String())
	} else if body := getOK(t, m[1]); !strings.Contains(body, "\nfastimage_db_open_connections ") || !strings.Contains(body, "\ngo_goroutines ") {
		t.Errorf("the worker's metrics lack the database pool or the Go runtime:\n%s", body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v: %s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("worker did not stop on SIGTERM")
	}
}

// With METRICS_ADDR, /metrics is served there alone, not on the API's
// address.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	p := startServe(t, dbtest.NewEmptyURL(t), "--migrate", "--metrics-addr", "127.0.0.1:0")
	if strings.HasPrefix(p.metrics, p.url+"/") {
		t.Fatalf("metrics at %s, on the API's address %s", p.metrics, p.url)
	}
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the API's address: %d, want 404", resp.StatusCode)
	}
	body := getOK(t, p.metrics)
	for _, want := range []string{`fastimage_http_requests_total{method="GET",route="other",status="404"} 1`, "\nfastimage_db_open_connections ", "\ngo_goroutines "} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The runtime profiles are served beside the metrics, never on the
	// public port.
	admin := strings.TrimSuffix(p.metrics, "/metrics")
	if body := getOK(t, admin+"/debug/pprof/"); !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ on the metrics address lists no goroutine profile:\n%s", body)
	}
	wantNotFound(t, p.url, "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline")
}

// wantNotFound checks that each path on base answers 404.
func wantNotFound(t *testing.T, base string, paths ...string) {
	t.Helper()
	for _, path := range paths {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the API's address: %d, want 404", path, resp.StatusCode)
		}
	}
}

// Without METRICS_ADDR the API's address serves /metrics, but still no
// profiles.
func TestNoProfilesOnThePublicAddress(t *testing.T) {
	t.Parallel()
	p := startServe(t, dbtest.NewEmptyURL(t), "--migrate")
	if !strings.HasPrefix(p.metrics, p.url+"/") {
		t.Fatalf("metrics at %s, not on the API's address %s", p.metrics, p.url)
	}
	getOK(t, p.metrics)
	wantNotFound(t, p.url, "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1")
}

// getOK fetches url, which must answer 200, and returns its body.
func getOK(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b)
}
