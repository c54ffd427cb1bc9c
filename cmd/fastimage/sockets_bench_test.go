package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// socketSteps are the socket counts at which BenchmarkIdleSockets reads the
// server's memory; the sockets of one step stay open through the next.
var socketSteps = []int{1_000, 5_000, 10_000}

// pingInterval is the server's WebSocket ping period in the benchmark, and
// pingSettle how long the sockets of each step idle before they are
// measured: long enough for every one of them to have been pinged, and to
// have answered, twice.
const (
	pingInterval = 5 * time.Second
	pingSettle   = 2*pingInterval + time.Second
)

// BenchmarkIdleSockets measures what an idle graphql-transport-ws socket
// with one viewerEvents subscription costs a real `fastimage serve` process:
// its resident memory (VmRSS, which counts goroutine stacks, buffers and
// the heap's slack as well as live objects) and its goroutines, at 1,000,
// 5,000 and 10,000 sockets over loopback. Each socket is an editor tab of
// a user of its own, with a session of its own: what a process holds per
// user (its feed's followers, its session's watch) counts in full. Nothing
// is forced (no GC): the process is read as it is once it has gone quiet.
func BenchmarkIdleSockets(b *testing.B) {
	total := socketSteps[len(socketSteps)-1]
	dbURL := dbtest.NewURL(b)
	args := []string{"--workers", "0", "--metrics-addr", "127.0.0.1:0",
		"--max-streams-per-ip", strconv.Itoa(total + 100),
		// Pings come often enough that every socket has answered some
		// before it is measured: an idle socket's steady state includes
		// them (see pingSettle).
		"--ws-ping-interval", pingInterval.String()}
	// One account signs up through the API, in another process: hashing a
	// password takes tens of MiB that the measured process would give back
	// to the system only slowly, during the run, and the sockets would seem
	// to cost less than nothing. The others are copies of it made in SQL,
	// each signed in once: ten thousand password hashes would take longer
	// than the benchmark.
	signups := startServe(b, dbURL, args...)
	bdb := openDB(b, signups)
	signUpToken(b, signups.url, bdb, "socket-bench@example.com")
	signups.stop(b)
	tokens := cloneSignedIn(b, bdb, "socket-bench@example.com", total)

	p := startServe(b, dbURL, args...)
	pid := p.cmd.Process.Pid
	waitQuiet(b, pid)
	baseRSS, baseG := rssKiB(b, pid), metric(b, p.metrics, "go_goroutines")
	baseStack, baseHeap := metric(b, p.metrics, "go_memstats_stack_inuse_bytes"), metric(b, p.metrics, "go_memstats_heap_inuse_bytes")

	fleet := &socketFleet{url: "ws" + strings.TrimPrefix(p.url, "http") + "/graphql", tokens: tokens}
	b.Cleanup(fleet.closeAll)
	for _, n := range socketSteps {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) {
			if err := fleet.grow(n); err != nil {
				b.Fatalf("%v; the server logged:\n%s", err, complaints(p.stderr.String()))
			}
			waitFor(b, 60*time.Second, func() bool {
				return metric(b, p.metrics, "fastimage_graphql_active_subscriptions") == float64(n)
			}, "every subscription running")
			time.Sleep(pingSettle)
			waitQuiet(b, pid)
			var rss float64
			for b.Loop() {
				rss = rssKiB(b, pid)
			}
			g := metric(b, p.metrics, "go_goroutines")
			b.ReportMetric((rss-baseRSS)/float64(n), "KiB/socket")
			b.ReportMetric((g-baseG)/float64(n), "goroutines/socket")
			b.ReportMetric(rss/1024, "MiB-RSS")
			// Where the resident memory goes: goroutine stacks, and heap
			// spans in use (live objects and what the GC has yet to free).
			b.ReportMetric((metric(b, p.metrics, "go_memstats_stack_inuse_bytes")-baseStack)/1024/float64(n), "stack-KiB/socket")
			b.ReportMetric((metric(b, p.metrics, "go_memstats_heap_inuse_bytes")-baseHeap)/1024/float64(n), "heap-KiB/socket")
			saveProfiles(b, p.metrics, n)
		})
	}
}

// socketFleet is the client side: sockets, the i-th signed in with
// tokens[i], each running one subscription and reading whatever comes.
type socketFleet struct {
	url    string
	tokens []string
	mu     sync.Mutex
	conns  []*websocket.Conn
}

const feedSubscription = `subscription { viewerEvents { seq kind } }`

// grow opens sockets until n are open.
func (f *socketFleet) grow(n int) error {
	dialer := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 30 * time.Second,
		ReadBufferSize: 512, WriteBufferSize: 512}
	start := len(f.conns)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
	)
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				c, err := f.open(&dialer, f.tokens[i], i)
				if err != nil {
					errOnce.Do(func() { failure = fmt.Errorf("socket %d: %w", i, err) })
					continue
				}
				f.mu.Lock()
				f.conns = append(f.conns, c)
				f.mu.Unlock()
			}
		})
	}
	for i := start; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return failure
}

// complaints returns the warnings and errors in a JSON log.
func complaints(log string) string {
	var out []string
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	if len(out) > 20 {
		out = out[len(out)-20:]
	}
	return strings.Join(out, "\n")
}

// open dials one socket, signs it in, starts its subscription, and leaves a
// goroutine reading it (which also answers the server's pings).
func (f *socketFleet) open(d *websocket.Dialer, token string, i int) (*websocket.Conn, error) {
	c, resp, err := d.Dial(f.url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	send := func(v any) error {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return c.WriteJSON(v)
	}
	if err := send(map[string]any{"type": "connection_init", "payload": map[string]any{"token": token}}); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		c.Close()
		return nil, fmt.Errorf("no connection_ack: %q, %v", ack.Type, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	if err := send(map[string]any{"id": strconv.Itoa(i), "type": "subscribe", "payload": map[string]any{"query": feedSubscription}}); err != nil {
		c.Close()
		return nil, err
	}
	go func() {
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
		}
	}()
	return c, nil
}

func (f *socketFleet) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}

func openDB(b *testing.B, p *process) *bun.DB {
	b.Helper()
	dbURL := ""
	for _, kv := range p.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
			dbURL = v
		}
	}
	bdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "socket-bench")
	if err != nil {
		b.Fatalf("open the server's database: %v", err)
	}
	b.Cleanup(func() { _ = bdb.Close() })
	return bdb
}

// cloneSignedIn makes n accounts like the one of email (verified, with its
// password hash), each with a session of its own, and returns their
// session tokens.
func cloneSignedIn(b *testing.B, bdb *bun.DB, email string, n int) []string {
	b.Helper()
	ctx := context.Background()
	tokens := make([]string, n)
	hashes := make([][]byte, n)
	for i := range tokens {
		var raw [32]byte
		_, _ = rand.Read(raw[:])
		tokens[i] = base64.RawURLEncoding.EncodeToString(raw[:])
		h := sha256.Sum256([]byte(tokens[i])) // as account.hashToken
		hashes[i] = h[:]
	}
	_, err := bdb.ExecContext(ctx, `
		WITH template AS (SELECT password_hash, email_verified_at FROM users WHERE email = ?),
		clones AS (
			INSERT INTO users (email, name, password_hash, email_verified_at)
			SELECT 'socket-bench-' || i || '@example.com', 'Bench', t.password_hash, t.email_verified_at
			FROM template t, generate_series(1, ?) AS i
			RETURNING id, email)
		INSERT INTO sessions (user_id, token_hash, expires_at)
		SELECT c.id, (?::bytea[])[substring(c.email FROM 'socket-bench-([0-9]+)@')::int], now() + interval '1 day'
		FROM clones c`, email, n, pgdialect.Array(hashes))
	if err != nil {
		b.Fatalf("copy the benchmark's account: %v", err)
	}
	return tokens
}

const benchPassword = "correct horse battery staple"

var benchTokenInLink = regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`)

// signUpToken signs an account up through the API, verifies its address
// with the link from the development outbox, signs it in, and returns the
// session token.
func signUpToken(b *testing.B, url string, bdb *bun.DB, email string) string {
	b.Helper()
	ctx := context.Background()
	forget := func() {
		if _, err := bdb.ExecContext(ctx, "DELETE FROM rate_events"); err != nil {
			b.Fatal(err)
		}
	}
	forget()
	gql(b, url, `mutation($e: String!, $p: String!) { signUp(input: {email: $e, name: "Bench", password: $p}) { message } }`,
		map[string]any{"e": email, "p": benchPassword}, nil)
	var text string
	waitFor(b, 10*time.Second, func() bool {
		err := bdb.NewRaw("SELECT text_body FROM mail_outbox WHERE to_address = ? AND kind = 'verify_email' ORDER BY created_at DESC LIMIT 1", email).Scan(ctx, &text)
		return err == nil
	}, "the verification email")
	m := benchTokenInLink.FindStringSubmatch(text)
	if m == nil {
		b.Fatalf("verification email has no link with a token:\n%s", text)
	}
	gql(b, url, `mutation($t: String!) { verifyEmail(input: {token: $t}) { user { id } } }`, map[string]any{"t": m[1]}, nil)
	forget()
	var out struct{ SignIn struct{ Token string } }
	gql(b, url, `mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { token } }`,
		map[string]any{"e": email, "p": benchPassword}, &out)
	return out.SignIn.Token
}

// gql runs one operation over HTTP and fails b on any error.
func gql(b *testing.B, url, query string, vars map[string]any, into any) {
	b.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post(url+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   json.RawMessage
		Errors []json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		b.Fatalf("decode answer (HTTP %d): %v", resp.StatusCode, err)
	}
	if len(out.Errors) > 0 {
		b.Fatalf("%s: %s", query, out.Errors[0])
	}
	if into != nil {
		if err := json.Unmarshal(out.Data, into); err != nil {
			b.Fatal(err)
		}
	}
}

// rssKiB reads the resident set of process pid, in KiB.
func rssKiB(b *testing.B, pid int) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kib
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// cpuTicks reads the CPU time process pid has used, in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}

// waitQuiet waits until process pid has used (almost) no CPU for half a
// second, or 20 seconds have passed.
func waitQuiet(b *testing.B, pid int) {
	b.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := cpuTicks(b, pid)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		now := cpuTicks(b, pid)
		if now-last <= 2 {
			return
		}
		last = now
	}
}

// metric reads one unlabelled sample from a Prometheus text page.
func metric(b *testing.B, url, name string) float64 {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatalf("%s has no %s", url, name)
	return 0
}

func waitFor(b *testing.B, d time.Duration, ok func() bool, what string) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// saveProfiles writes the server's heap and goroutine profiles, at n
// sockets, into the folder SOCKET_BENCH_PROFILES names (nothing without
// it), for `go tool pprof` to say where a socket's memory goes. The heap
// profile is taken after a collection, so that it shows what is live and
// not what the last collection before it saw; the next step's numbers then
// start from a collected heap.
func saveProfiles(b *testing.B, metricsURL string, n int) {
	dir := os.Getenv("SOCKET_BENCH_PROFILES")
	if dir == "" {
		return
	}
	base := strings.TrimSuffix(metricsURL, "/metrics")
	for name, path := range map[string]string{"heap": "/debug/pprof/heap?gc=1", "goroutine.txt": "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %v %s", path, err, resp.Status)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.%s", strings.TrimSuffix(name, ".txt"), n, map[bool]string{true: "txt", false: "pb.gz"}[strings.HasSuffix(name, ".txt")])), body, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
