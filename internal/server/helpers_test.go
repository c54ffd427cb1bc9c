package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/generate/provider/openai"
	"github.com/fastimage/api/internal/logging"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/storage/local"
	"github.com/fastimage/api/internal/work"
)

const testOrigin = "http://localhost:8080"

// testConfig is what `fastimage serve` would use by default, with short
// WebSocket timings so that tests finish quickly.
func testConfig() *config.Serve {
	public, _ := url.Parse(testOrigin)
	return &config.Serve{
		Env:                 config.Development,
		HTTPAddr:            "127.0.0.1:0",
		PublicURL:           public,
		AllowedOrigins:      []string{testOrigin, "https://partner.example"},
		ShutdownTimeout:     5 * time.Second,
		MaxBodyBytes:        64 << 10,
		MaxUploadBytes:      1 << 20,
		MaxQueryComplexity:  10_000,
		MaxQueryDepth:       12,
		WSInitTimeout:       2 * time.Second,
		WSWriteTimeout:      2 * time.Second,
		WSPingInterval:      5 * time.Second,
		WSMaxMessage:        64 << 10,
		Streams:             config.Streams{PerIP: 100, PerSocket: 100, PerUser: 100},
		Credits:             config.Credits{SignupBonus: 25},
		MaintenanceInterval: time.Minute,

		MaxMutationsPerOperation: 10,
		WSMaxOperations:          8,
		PasswordHashConcurrency:  2,
		Generate: config.Generate{
			Workers: 2, Lease: 2 * time.Second, MaxAttempts: 3, UserRunningLimit: 2, QueueCap: 100,
			Provider: "local", LocalStepDelay: 5 * time.Millisecond,
		},
		Works: config.Works{
			MaxPixels: 40_000_000, QuotaBytes: 50 << 20, URLTTL: time.Hour, Retention: 7 * 24 * time.Hour,
		},
		Accounts: config.Accounts{
			SessionIdleTimeout: time.Hour,
			SessionLifetime:    24 * time.Hour,
			SessionRecheck:     time.Minute, // revocations must end subscriptions through the doorbell
			VerifyLinkTTL:      time.Hour,
			EmailChangeLinkTTL: time.Hour,
		},
		HTTPReadHeaderTimeout: 10 * time.Second,
		HTTPReadTimeout:       10 * time.Second,
		HTTPMinBodyRate:       8 << 10,
		HTTPIdleTimeout:       2 * time.Minute,
	}
}

type testServer struct {
	URL     string
	stop    func() error // shuts down as SIGTERM would; safe to call twice
	db      *bun.DB
	outbox  *mail.Outbox
	logs    *logBuffer
	secrets *secretSet
	gallery *work.Service
	bucket  *local.Bucket
	queries *queryCounter
	jobs    *generate.Service
	dbURL   string
	// clock is the server's Go-side time (URL expiry and the like); it
	// stands still until a test advances it. Postgres's now() stays real.
	clock *clock.Fake
}

// queryCounter counts the SQL statements the server runs, except the
// session lookup that authenticates each request: n those it runs for
// requests (their context carries a request id), so that counts do not
// depend on when background workers, pollers and maintenance happen to
// run; all every one.
type queryCounter struct{ n, all atomic.Int64 }

func (q *queryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (q *queryCounter) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	if strings.Contains(e.Query, `"sessions"`) || strings.Contains(e.Query, "sessions AS") {
		return
	}
	q.all.Add(1)
	if logging.RequestID(ctx) != "" {
		q.n.Add(1)
	}
}

// logBuffer collects log output written from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
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

// start runs a server over a fresh migrated database; it stops with the
// test, gracefully, through the same path SIGTERM takes.
func start(t testing.TB, cfg *config.Serve) *testServer {
	t.Helper()
	return startWithDB(t, cfg, dbtest.NewURL(t))
}

func startWithDB(t testing.TB, cfg *config.Serve, dbURL string) *testServer {
	t.Helper()
	return startWithListener(t, cfg, dbURL, func(ln net.Listener) net.Listener { return ln })
}

func startWithListener(t testing.TB, cfg *config.Serve, dbURL string, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bdb, err := db.Open(ctx, dbtest.Config(dbURL), "server-test")
	if err != nil {
		t.Fatal(err)
	}
	queries := &queryCounter{}
	bdb.AddQueryHook(queries)
	m, err := db.NewMigrator(bdb)
	if err != nil {
		t.Fatal(err)
	}
	// Every line the server logs is kept, so that tests can check that no
	// secret ever reaches the log.
	logs := &logBuffer{}
	var out io.Writer = logs
	// A fuzz target's server outlives the calls of its fuzz function, where
	// the *testing.F must not log.
	if _, fuzz := t.(*testing.F); testing.Verbose() && !fuzz {
		out = io.MultiWriter(logs, &testWriter{t})
	}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	outbox := mail.NewOutbox(bdb)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	clk := clock.NewFake(time.Now())
	// Blobs live in a folder of the test's, served by this server.
	bucket, err := local.New(local.Config{
		Dir: t.TempDir(), SigningKey: []byte("test-signing-key-0123456789abcdef"),
		BaseURL: "http://" + addr + "/blobs", MaxPutBytes: cfg.MaxUploadBytes, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Mail stays in the outbox, even in production, so that tests can read
	// it; unless the test configures an SMTP server to deliver it.
	var mailer mail.Mailer = outbox
	if cfg.Mail.SMTPURL != "" {
		mailer = nil
	}
	a, err := app.New(ctx, cfg, bdb, log, app.Overrides{
		Bucket:         bucket,
		Provider:       providerFor(t, cfg.Generate),
		Mailer:         mailer,
		WorkerID:       "test-" + addr,
		PollInterval:   2 * time.Second,
		ProgressEvery:  10 * time.Millisecond,
		Clock:          clk,
		WebhookBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		ln.Close()
		bdb.Close()
		cancel()
		t.Fatal(err)
	}
	srv := a.Server(m, "test-1")
	stopBackground := a.Background(ctx)
	ln = wrap(ln)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var (
		once    sync.Once
		stopErr error
	)
	stop := func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
			stopBackground()
			_ = a.Close()
			bdb.Close()
		})
		return stopErr
	}
	ts := &testServer{URL: "http://" + addr, stop: stop, db: bdb, outbox: outbox, logs: logs, secrets: &secretSet{}, gallery: a.Gallery, bucket: bucket, queries: queries, jobs: a.Jobs, dbURL: dbURL, clock: clk}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("server did not shut down cleanly: %v", err)
		}
		ts.secrets.checkLogs(t, logs.String())
	})
	return ts
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gqlResponse is a GraphQL response as clients see it.
type gqlResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     []gqlError      `json:"errors"`
	Extensions map[string]any  `json:"extensions"`
	HasData    bool            `json:"-"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// post sends body to /graphql and decodes the answer.
func post(t *testing.T, baseURL, accept, contentType, body string) (*http.Response, gqlResponse) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+"/graphql", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (*http.Response, gqlResponse) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not JSON (status %d): %s", resp.StatusCode, raw)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(raw, &keys)
	_, out.HasData = keys["data"]
	return resp, out
}

func query(t *testing.T, baseURL, q string) gqlResponse {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"query": q})
	resp, out := post(t, baseURL, "", "application/json", string(b))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d for %s", resp.StatusCode, q)
	}
	return out
}

// wsDial opens a WebSocket to /graphql with one subprotocol.
func wsDial(t *testing.T, baseURL, subprotocol, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: 5 * time.Second}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(baseURL, "http")+"/graphql", h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func wsSend(t *testing.T, c *websocket.Conn, m wsMessage) {
	t.Helper()
	if err := c.WriteJSON(m); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

// wsNext reads the next message that is not a keep-alive or ping.
func wsNext(t *testing.T, c *websocket.Conn, timeout time.Duration) wsMessage {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		var m wsMessage
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("websocket read: %v", err)
		}
		switch m.Type {
		case "ka", "ping", "pong":
			continue
		}
		return m
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// emptyDB returns a fresh database with no migrations applied.
func emptyDB(t *testing.T) string { return dbtest.NewEmptyURL(t) }

// smallBuffers makes every accepted connection's kernel send buffer tiny, as
// on a slow mobile link, so that a client that stops reading blocks the
// server's writes within a few messages instead of megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// uuidOfGlobal returns the UUID inside a global id.
func uuidOfGlobal(t testing.TB, id string) uuid.UUID {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := strings.Cut(string(raw), ":")
	u, err := uuid.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// providerFor returns the OpenAI-compatible client cfg names with quick
// retries, so that tests of a flaky provider finish fast; nil (the
// configured provider, as `fastimage serve` builds it) otherwise.
func providerFor(t testing.TB, cfg config.Generate) provider.Provider {
	t.Helper()
	if cfg.Provider != "openai" {
		return nil
	}
	c, err := openai.New(openai.Config{
		BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIKey, Model: cfg.OpenAIModel,
		Timeout: cfg.OpenAITimeout, PartialImages: cfg.OpenAIPartials, MaxAttempts: 3, Backoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func dbtestURL(t testing.TB) string { return dbtest.NewURL(t) }
