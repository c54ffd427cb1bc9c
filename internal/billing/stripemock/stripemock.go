// Package stripemock runs stripe-mock, Stripe's API mock, as a real process for
// tests: one per test binary, started on first use, and gives tests its URL and
// stripe-go clients pointed at it.
//
// The binary is STRIPE_MOCK_BIN when set (`make test` sets it), else the one
// the repository's .ci/ensure-stripe-mock prints, which installs the pinned
// version once. A test that asks for stripe-mock fails when it cannot be
// installed or started: it never passes without one.
//
// stripe-mock answers from fixtures and keeps no state: a created customer
// cannot be retrieved with the fields it was created with. Tests that need
// Stripe state that changes run their own httptest server beside it.
package stripemock

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// TestKey is the secret key the clients made here send; stripe-mock accepts
// any key of the right shape.
const TestKey = "sk_test_123"

// startTimeout bounds stripe-mock's start, from exec to answering a first
// request (installing it comes before and is not counted): it loads a spec of
// several megabytes, slowly on a busy machine.
const startTimeout = 60 * time.Second

var (
	startOnce sync.Once
	baseURL   string
	startErr  error
)

// URL returns the base URL (http://127.0.0.1:port) of the stripe-mock process
// shared by every test of this test binary, starting it on first use. The
// process dies with the test binary. URL fails the test when stripe-mock
// cannot be found, installed or started.
func URL(t testing.TB) string {
	t.Helper()
	startOnce.Do(func() { baseURL, startErr = start() })
	if startErr != nil {
		t.Fatalf("stripemock: %v", startErr)
	}
	return baseURL
}

// Backends returns stripe-go backends that send every request to the
// stripe-mock at url: no retries (a failure shows at once) and no logging.
func Backends(url string) *stripe.Backends {
	config := func() *stripe.BackendConfig {
		// A fresh config per backend: GetBackendWithConfig fills in defaults.
		return &stripe.BackendConfig{
			URL:               stripe.String(url),
			MaxNetworkRetries: stripe.Int64(0),
			LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
			EnableTelemetry:   stripe.Bool(false),
		}
	}
	return &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, config()),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, config()),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, config()),
	}
}

// Client returns a stripe-go client with TestKey whose requests go to the
// shared stripe-mock (see URL).
func Client(t testing.TB) *client.API {
	t.Helper()
	api := &client.API{}
	api.Init(TestKey, Backends(URL(t)))
	return api
}

// start runs stripe-mock and returns its URL once it answers requests.
func start() (string, error) {
	bin, err := binary()
	if err != nil {
		return "", err
	}
	// Port 0 lets the kernel choose a free port, so test binaries running in
	// parallel never collide; stripe-mock prints the address it got. It also
	// serves HTTPS on a fixed default port unless -http or -http-port is given
	// (-http-addr does not count), so HTTPS gets a free loopback port too.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	output, outputWriter, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("pipe for stripe-mock's output: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outputWriter, outputWriter
	cmd.SysProcAttr = sysProcAttr()

	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		// On Linux the child is killed when the thread that started it ends
		// (Pdeathsig), not when the process does. Go ends a thread only when
		// a goroutine locked to it returns, so this goroutine holds its thread
		// until the child has exited; no other goroutine can end it earlier.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	err = <-started
	outputWriter.Close() // the child holds its own copy
	if err != nil {
		output.Close()
		return "", fmt.Errorf("cannot run stripe-mock %s: %w", bin, err)
	}

	printed := &outputTail{}
	addr := make(chan string, 1)
	outputRead := make(chan struct{})
	go func() {
		defer close(outputRead)
		readOutput(output, printed, addr)
	}()
	// lastWords lets the reader catch up with what a process that exited
	// printed last, usually why it exited.
	lastWords := func() *outputTail {
		select {
		case <-outputRead:
		case <-time.After(time.Second):
		}
		return printed
	}

	timeout := time.NewTimer(startTimeout)
	defer timeout.Stop()
	var listening string
	select {
	case listening = <-addr:
	case err := <-exited:
		return "", fmt.Errorf("stripe-mock %s exited before listening (%v); its output:\n%s", bin, err, lastWords())
	case <-timeout.C:
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("stripe-mock %s printed no HTTP address within %s; its output:\n%s", bin, startTimeout, printed)
	}
	url := "http://" + listening
	for {
		if answers(url) {
			return url, nil
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("stripe-mock %s exited before answering on %s (%v); its output:\n%s", bin, url, err, lastWords())
		case <-timeout.C:
			_ = cmd.Process.Kill()
			return "", fmt.Errorf("stripe-mock %s did not answer on %s within %s; its output:\n%s", bin, url, startTimeout, printed)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// answers reports whether stripe-mock at url serves a request.
func answers(url string) bool {
	req, err := http.NewRequest(http.MethodGet, url+"/v1/customers/cus_ready", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+TestKey)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("Stripe-Mock-Version") != ""
}

// readOutput sends the HTTP address stripe-mock prints to addr, keeps the
// rest for error messages, and drains the pipe until the process ends so that
// its request log never blocks it.
func readOutput(output *os.File, printed *outputTail, addr chan<- string) {
	defer output.Close()
	lines := bufio.NewScanner(output)
	for lines.Scan() {
		line := lines.Text()
		if a, ok := strings.CutPrefix(line, "Listening for HTTP at address: "); ok {
			select {
			case addr <- strings.TrimSpace(a):
			default:
			}
			continue
		}
		printed.add(line)
	}
	_, _ = io.Copy(io.Discard, output) // after a line longer than the scanner takes
}

// outputTail keeps the last lines stripe-mock printed.
type outputTail struct {
	mu    sync.Mutex
	lines []string
}

const outputTailLines = 20

func (o *outputTail) add(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lines = append(o.lines, line)
	if len(o.lines) > outputTailLines {
		o.lines = o.lines[len(o.lines)-outputTailLines:]
	}
}

func (o *outputTail) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.lines) == 0 {
		return "(nothing)"
	}
	return strings.Join(o.lines, "\n")
}

// binary returns the path of the stripe-mock to run: STRIPE_MOCK_BIN, else
// what .ci/ensure-stripe-mock prints (installing it the first time).
func binary() (string, error) {
	if bin := os.Getenv("STRIPE_MOCK_BIN"); bin != "" {
		info, err := os.Stat(bin)
		if err != nil {
			return "", fmt.Errorf("STRIPE_MOCK_BIN=%s: %w. Unset it to let .ci/ensure-stripe-mock install the pinned stripe-mock", bin, err)
		}
		if info.IsDir() || info.Mode()&0o111 == 0 {
			return "", fmt.Errorf("STRIPE_MOCK_BIN=%s is not an executable file. Unset it to let .ci/ensure-stripe-mock install the pinned stripe-mock", bin)
		}
		return bin, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, ".ci", "ensure-stripe-mock")
	var stderr strings.Builder
	cmd := exec.Command(script)
	cmd.Dir = root
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s could not provide stripe-mock (%v):\n%s", script, err, strings.TrimSpace(stderr.String()))
	}
	bin := strings.TrimSpace(string(out))
	if bin == "" {
		return "", fmt.Errorf("%s printed no path", script)
	}
	return bin, nil
}

// repoRoot returns the nearest folder at or above the working directory (the
// package being tested) that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory, so no .ci/ensure-stripe-mock to install stripe-mock with; set STRIPE_MOCK_BIN to a stripe-mock binary")
		}
		dir = parent
	}
}
