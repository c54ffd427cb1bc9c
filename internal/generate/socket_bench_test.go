package generate_test

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
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/proctest"
	"github.com/fastimage/api/internal/relay"
	"github.com/fastimage/api/internal/storage/local"
)

// BenchmarkFanOutWebSocket measures commit → client latency end to end:
// `fastimage serve` runs as its own process on loopback, real
// graphql-transport-ws sockets (one subscription each, like editor tabs)
// follow generationEvents, and this process appends progress events the way
// the worker does (generate.AppendEvent in a transaction, NOTIFY at commit),
// noting the time right after each commit. Every delivered event's latency
// is its arrival at the client minus that time, on the same clock.
func BenchmarkFanOutWebSocket(b *testing.B) {
	raiseFileLimit(b)
	bin := proctest.Binary(b)
	for _, shape := range []struct {
		name             string
		gens, subsPerGen int
	}{{"1gen-1000subs", 1, 1000}, {"1000gens-10000subs", 1000, 10}} {
		b.Run(shape.name, func(b *testing.B) {
			f := newSocketFanOut(b, bin, shape.gens, shape.subsPerGen)
			var lat []time.Duration
			cpuBefore := processCPU(b, f.serverPID)
			for b.Loop() {
				lat = append(lat, f.round(b)...)
			}
			cpu := processCPU(b, f.serverPID) - cpuBefore
			slices.Sort(lat)
			p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(p(0.50), "p50-ms")
			b.ReportMetric(p(0.95), "p95-ms")
			b.ReportMetric(p(0.99), "p99-ms")
			b.ReportMetric(float64(len(lat)), "deliveries")
			// The server's CPU time per delivery: what a busy machine does
			// not blur, unlike the latencies.
			b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "server-cpu-µs/delivery")
		})
	}
}

// raiseFileLimit lifts RLIMIT_NOFILE to its hard limit, for this process's
// sockets and, inherited, the server's.
func raiseFileLimit(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < 11000 {
		b.Fatalf("RLIMIT_NOFILE hard limit is %d; the benchmark needs about 11,000 descriptors per process", lim.Cur)
	}
}

// socketFanOut is one scenario: the server process, the generations, and
// the sockets following them.
type socketFanOut struct {
	db        *bun.DB
	serverPID int
	gens      []uuid.UUID
	subs      int // sockets per generation

	// committed[g][seq] is when event seq of generation g was committed.
	mu        sync.Mutex
	committed []map[int]time.Time
	arrivals  []arrival // this round's, appended by the readers
	seen      atomic.Int64
	want      atomic.Int64
	done      chan struct{}
}

type arrival struct {
	gen, seq int
	at       time.Time
}

func newSocketFanOut(b *testing.B, bin string, gens, subsPerGen int) *socketFanOut {
	ctx := context.Background()
	url := dbtest.NewURL(b)
	bdb, err := db.Open(ctx, dbtest.Config(url), "fastimage-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bdb.Close() })
	svc, ledger := benchServices(b, bdb)

	f := &socketFanOut{db: bdb, subs: subsPerGen, done: make(chan struct{}, 1), gens: make([]uuid.UUID, gens)}
	tokens := make([]string, gens)
	var eg errgroup.Group
	eg.SetLimit(8)
	for i := range gens {
		f.committed = append(f.committed, map[int]time.Time{})
		eg.Go(func() error {
			var user uuid.UUID
			if err := bdb.NewRaw("INSERT INTO users (email, password_hash, email_verified_at) VALUES (?, 'x', now()) RETURNING id",
				fmt.Sprintf("fan%d@example.com", i)).Scan(ctx, &user); err != nil {
				return err
			}
			if _, err := ledger.Post(ctx, credit.Posting{UserID: user, Amount: 1000, Kind: credit.Purchase, IdempotencyKey: "bench-" + user.String()}); err != nil {
				return err
			}
			g, err := svc.Submit(ctx, actor.Actor{UserID: user, Verified: true}, generate.Request{Kind: generate.KindGenerate, Prompt: "fan-out", Width: 64, Height: 64})
			if err != nil {
				return err
			}
			f.gens[i] = g.ID
			tokens[i], err = sessionToken(bdb, user)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}

	base, pid := startServer(b, bin, url, gens*subsPerGen)
	f.serverPID = pid
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/graphql"
	start := time.Now()
	eg.SetLimit(16)
	for gi := range gens {
		for range subsPerGen {
			eg.Go(func() error {
				// Under a heavy machine load the server may fail to check a
				// token in time and close with 4401 (it cannot tell that
				// from a session that ended): try again, a few times.
				var err error
				for range 3 {
					if err = f.follow(b, wsURL, tokens[gi], gi); err == nil {
						return nil
					}
					time.Sleep(time.Second)
				}
				return err
			})
		}
	}
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d sockets subscribed in %v", gens*subsPerGen, time.Since(start).Round(time.Millisecond))
	return f
}

// benchServices builds the service graph in this process, without workers
// or background, to make generations and write their events.
func benchServices(b *testing.B, bdb *bun.DB) (*generate.Service, *credit.Ledger) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bucket, err := local.New(local.Config{Dir: b.TempDir(), SigningKey: []byte("bench-signing-key-0123456789abcdef"), BaseURL: "http://localhost/blobs", MaxPutBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.ParseServe([]string{"--workers", "0", "--storage-dir", b.TempDir()}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, bdb, log, app.Overrides{Bucket: bucket, WorkerID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	return a.Jobs, a.Ledger
}

// sessionToken opens a session for user the way a sign-in stores it (only
// the token's SHA-256 is kept), without paying for a password hash.
func sessionToken(bdb *bun.DB, user uuid.UUID) (string, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(token))
	if _, err := bdb.NewRaw("INSERT INTO sessions (user_id, token_hash, ip, user_agent, expires_at) VALUES (?, ?, '127.0.0.1', 'bench', now() + interval '1 day')",
		user, sum[:]).Exec(context.Background()); err != nil {
		return "", err
	}
	return token, nil
}

// startServer runs `fastimage serve` (bin) on the database at url, without
// workers, allowing subs subscriptions from one IP and one user; it returns
// the server's base URL and process id.
func startServer(b *testing.B, bin, url string, subs int) (string, int) {
	dir := b.TempDir()
	limit := strconv.Itoa(subs + 100)
	cmd := osexec.Command(bin, "serve", "--http-addr", "127.0.0.1:0", "--storage-dir", filepath.Join(dir, "blobs"), "--workers", "0",
		"--max-streams-per-ip", limit, "--max-subscriptions-per-user", limit)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "LOG_LEVEL=warn")
	// A benchmark that is killed takes its server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`GraphQL:\s+(http://\S+)/graphql`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			b.Fatalf("serve exited before listening; stderr:\n%s", stderr.String())
		}
		return u, cmd.Process.Pid
	case <-time.After(60 * time.Second):
		b.Fatalf("serve did not start; stderr:\n%s", stderr.String())
	}
	return "", 0
}

// processCPU returns the CPU time (user and system) process pid has used.
func processCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command may hold spaces; the fields after it are numbers.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf.Len() > 1<<20 {
		return len(p), nil // enough to tell what went wrong
	}
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

const fanOutSubscription = `subscription($id: ID!, $after: Int) { generationEvents(id: $id, afterSeq: $after) {
	seq kind generationId createdAt fraction step totalSteps message previewUrl } }`

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// follow opens one socket following generation gi, waits until the
// subscription has replayed the QUEUED event, then records every later
// event's arrival until the socket closes.
func (f *socketFanOut) follow(b *testing.B, wsURL, token string, gi int) error {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	c, _, err := d.Dial(wsURL, nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	b.Cleanup(func() { _ = c.Close() })
	send := func(m wsMessage) error { return c.WriteJSON(m) }
	init, _ := json.Marshal(map[string]any{"token": token})
	if err := send(wsMessage{Type: "connection_init", Payload: init}); err != nil {
		return err
	}
	var m wsMessage
	if err := c.ReadJSON(&m); err != nil || m.Type != "connection_ack" {
		return fmt.Errorf("connection_init: %v %s %s", err, m.Type, m.Payload)
	}
	sub, _ := json.Marshal(map[string]any{"query": fanOutSubscription, "variables": map[string]any{"id": relay.ID("Generation", f.gens[gi].String()), "after": 0}})
	if err := send(wsMessage{ID: "1", Type: "subscribe", Payload: sub}); err != nil {
		return err
	}
	if _, err := readEvent(c); err != nil { // QUEUED
		return fmt.Errorf("first event: %w", err)
	}
	go func() {
		for {
			seq, err := readEvent(c)
			if err != nil {
				return
			}
			f.arrive(arrival{gen: gi, seq: seq, at: time.Now()})
		}
	}()
	return nil
}

// readEvent returns the seq of the next event on c, skipping the
// protocol's pings and pongs (the server pings every 25 s).
func readEvent(c *websocket.Conn) (int, error) {
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return 0, err
		}
		var m struct {
			Type    string
			Payload struct {
				Data   struct{ GenerationEvents struct{ Seq int } }
				Errors []json.RawMessage
			}
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return 0, err
		}
		if m.Type == "ping" || m.Type == "pong" {
			continue
		}
		if m.Type != "next" || len(m.Payload.Errors) > 0 {
			return 0, fmt.Errorf("got %s", data)
		}
		return m.Payload.Data.GenerationEvents.Seq, nil
	}
}

func (f *socketFanOut) arrive(a arrival) {
	f.mu.Lock()
	f.arrivals = append(f.arrivals, a)
	f.mu.Unlock()
	if f.seen.Add(1) == f.want.Load() {
		f.done <- struct{}{}
	}
}

// round commits one progress event to every generation, as a burst from a
// few writers, waits until every socket has it, and returns the latencies.
func (f *socketFanOut) round(b *testing.B) []time.Duration {
	ctx := context.Background()
	f.mu.Lock()
	f.arrivals = f.arrivals[:0]
	f.mu.Unlock()
	f.seen.Store(0)
	f.want.Store(int64(len(f.gens) * f.subs))

	var eg errgroup.Group
	eg.SetLimit(8)
	for gi, id := range f.gens {
		eg.Go(func() error {
			var ev *generate.Event
			err := f.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				var err error
				ev, err = generate.AppendEvent(ctx, tx, id, generate.Progress{Fraction: 0.5, Step: 1, TotalSteps: 2, Message: "denoising"})
				return err
			})
			if err != nil {
				return err
			}
			at := time.Now()
			f.mu.Lock()
			f.committed[gi][ev.Seq] = at
			f.mu.Unlock()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(5 * time.Minute): // a machine busy with other work is slow, not wrong
		b.Fatalf("round: %d of %d events arrived within five minutes", f.seen.Load(), f.want.Load())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lat := make([]time.Duration, 0, len(f.arrivals))
	for _, a := range f.arrivals {
		at, ok := f.committed[a.gen][a.seq]
		if !ok {
			b.Fatalf("generation %d: event %d arrived but was never committed this round", a.gen, a.seq)
		}
		lat = append(lat, a.at.Sub(at))
	}
	return lat
}
