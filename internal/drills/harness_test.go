package drills

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastimage/api/internal/proctest"
)

// full is true under `make drills` (DRILLS_FULL=1): the drills run at the
// sizes the issue names. Otherwise they run small enough for `make test`.
var full = os.Getenv("DRILLS_FULL") == "1"

// size picks the short or the full figure.
func size(short, long int) int {
	if full {
		return long
	}
	return short
}

// span picks the short or the full duration.
func span(short, long time.Duration) time.Duration {
	if full {
		return long
	}
	return short
}

// outcome is one row of the summary table.
type outcome struct {
	drill    string
	lost     int
	what     string
	recovery time.Duration
	ok       bool
}

var (
	summaryMu sync.Mutex
	summary   []outcome
)

// report records what a drill lost and how long recovery took; the row is
// added when the test ends, so that it says whether the test passed. Lost
// anything is a failure.
func report(t *testing.T, drill string, lost int, what string, recovery time.Duration) {
	t.Helper()
	t.Logf("%s: lost %d (%s); recovered in %v", drill, lost, what, recovery.Round(time.Millisecond))
	if lost > 0 {
		t.Errorf("%s lost %d: %s", drill, lost, what)
	}
	t.Cleanup(func() {
		summaryMu.Lock()
		defer summaryMu.Unlock()
		summary = append(summary, outcome{drill, lost, what, recovery, !t.Failed() && lost == 0})
	})
}

func printSummary() {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if len(summary) == 0 {
		return
	}
	mode := "short"
	if full {
		mode = "full"
	}
	fmt.Printf("\nfault drills (%s):\n%-44s %5s %10s %4s  %s\n", mode, "drill", "lost", "recovery", "ok", "checked")
	for _, o := range summary {
		ok := "yes"
		if !o.ok {
			ok = "NO"
		}
		fmt.Printf("%-44s %5d %10s %4s  %s\n", o.drill, o.lost, o.recovery.Round(10*time.Millisecond), ok, o.what)
	}
}

func TestMain(m *testing.M) {
	// The 10,000-socket drill holds that many descriptors on each side.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	code := m.Run()
	printSummary()
	proctest.Cleanup()
	os.Exit(code)
}

// proc is one running fastimage process.
type proc struct {
	name string
	cmd  *exec.Cmd
	url  string // serve: the API's base URL
	logs *logBuffer
	done chan struct{}
}

// settings are the flags every drill's processes share: lenient per-user
// and per-IP limits (the drills are one user on one address, playing many),
// plenty of credits, and a short job lease so that takeovers are quick.
func settings(storageDir string, extra ...string) []string {
	return append([]string{
		"--storage-dir", storageDir,
		// Few connections each: the drills share the test PostgreSQL
		// with every other test running.
		"--db-max-open-conns", "8",
		"--db-max-idle-conns", "4",
		"--signup-bonus-credits", "1000000",
		"--job-lease", "2s",
		"--user-running-limit", "64",
		"--queue-cap", "100000",
		"--max-streams-per-ip", "20000",
		"--max-subscriptions-per-user", "100000",
		"--cost-limit-key-size", "0",
		"--cost-limit-session-size", "0",
		"--cost-limit-anonymous-size", "0",
	}, extra...)
}

// startServe starts `fastimage serve` and waits for it to listen.
func startServe(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	began := time.Now()
	p := start(t, name, env, append([]string{"serve", "--http-addr", "127.0.0.1:0"}, args...))
	defer func() { t.Logf("%s listening after %v", name, time.Since(began).Round(time.Millisecond)) }()
	select {
	case <-p.logs.ready:
	case <-p.done:
		t.Fatalf("%s exited before listening:\n%s", name, p.logs.tail())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, p.logs.tail())
	}
	return p
}

// startWorker starts `fastimage worker` and waits for it to run.
func startWorker(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	began := time.Now()
	p := start(t, name, env, append([]string{"worker"}, args...))
	defer func() { t.Logf("%s running after %v", name, time.Since(began).Round(time.Millisecond)) }()
	select {
	case <-p.logs.ready:
	case <-p.done:
		t.Fatalf("%s exited before running:\n%s", name, p.logs.tail())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, p.logs.tail())
	}
	return p
}

var listening = regexp.MustCompile(`GraphQL:\s+(http://\S+)/graphql`)

func start(t *testing.T, name string, env, args []string) *proc {
	t.Helper()
	cmd := exec.Command(proctest.Binary(t), args...)
	cmd.Env = append(os.Environ(), append([]string{"LOG_FORMAT=json"}, env...)...)
	p := &proc{name: name, cmd: cmd, logs: newLogBuffer("FastImage workers running"), done: make(chan struct{})}
	cmd.Stderr = p.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				p.url = m[1]
				p.logs.markReady()
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() && p.cmd.Process != nil {
			// SIGQUIT makes a Go process print every goroutine's stack:
			// where whatever the drill found stuck is waiting.
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
		p.kill()
		if t.Failed() {
			// The whole log, for whoever looks into the failure.
			f, err := os.CreateTemp("", "fastimage-drill-*.log")
			if err == nil {
				_, _ = f.WriteString(p.logs.all())
				f.Close()
				t.Logf("%s's log: %s", name, f.Name())
			}
		}
		if strings.Contains(p.logs.all(), `"level":"ERROR"`) || strings.Contains(p.logs.all(), "panic:") {
			t.Logf("%s logged errors (expected while something is broken):\n%s", name, p.logs.errors())
		}
		if strings.Contains(p.logs.all(), "panic:") {
			t.Errorf("%s panicked:\n%s", name, p.logs.tail())
		}
	})
	return p
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would,
// and waits for it.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// rss is the process's resident memory in bytes, from /proc.
func (p *proc) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("%s: read its memory: %v", p.name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: VmRSS %q: %v", p.name, v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("%s: no VmRSS in /proc/%d/status", p.name, p.cmd.Process.Pid)
	return 0
}

// logBuffer keeps the last few megabytes of a process's stderr, and
// closes ready when a line holding marker arrives.
type logBuffer struct {
	mu     sync.Mutex
	buf    []byte
	marker []byte
	ready  chan struct{}
	once   sync.Once
}

const logKeep = 4 << 20

func newLogBuffer(marker string) *logBuffer {
	return &logBuffer{marker: []byte(marker), ready: make(chan struct{})}
}

func (b *logBuffer) markReady() { b.once.Do(func() { close(b.ready) }) }

func (b *logBuffer) Write(p []byte) (int, error) {
	if bytes.Contains(p, b.marker) {
		b.markReady()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > logKeep {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-logKeep/2:]...)
	}
	return len(p), nil
}

func (b *logBuffer) all() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func (b *logBuffer) tail() string {
	s := b.all()
	if len(s) > 8<<10 {
		s = "…" + s[len(s)-8<<10:]
	}
	return s
}

// errors returns the first few error lines.
func (b *logBuffer) errors() string {
	var out []string
	for _, line := range strings.Split(b.all(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, "panic") {
			out = append(out, line)
			if len(out) == 10 {
				out = append(out, "…")
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// timeout; it returns how long it waited.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	started := time.Now()
	for !cond() {
		if time.Since(started) > timeout {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(started)
}

// eventually polls cond every 50 ms until it holds or timeout passes, and
// says which; for waits whose failure the drill then explains itself.
func eventually(timeout time.Duration, cond func() bool) bool {
	for end := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// errStopped is the cause of contexts the drills cancel themselves.
var errStopped = errors.New("drill stopped")

// stopper returns a context for the load a drill runs, and its cancel.
func stopper(t *testing.T) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(errStopped) })
	return ctx, func() { cancel(errStopped) }
}
