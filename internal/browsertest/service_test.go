package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/app"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/storage/local"
)

// password is the password of every account the tests make.
const password = "correct horse battery staple"

// service is the whole FastImage service, running in this process on a real
// 127.0.0.1 listener over a fresh database, as `fastimage serve` runs it in
// development: mail stays in the outbox (/dev/outbox lists it), images come
// from the built-in generator, blobs live in a folder and are served at
// /blobs/.
type service struct {
	URL    string // http://127.0.0.1:port, also the public URL in emailed links
	DB     *bun.DB
	outbox *mail.Outbox
	bucket *local.Bucket
	conns  *connTracker
}

// serviceOptions are the few settings a test chooses.
type serviceOptions struct {
	// stepDelay is the built-in generator's pause between its 8 progress
	// steps: long enough that a user (and a test) sees progress.
	stepDelay time.Duration
}

// config is what `fastimage serve` runs in development, with short
// WebSocket timings so that a dropped connection is noticed quickly.
func (o serviceOptions) config(public *url.URL) *config.Serve {
	delay := o.stepDelay
	if delay == 0 {
		delay = 40 * time.Millisecond
	}
	return &config.Serve{
		Env:                 config.Development,
		HTTPAddr:            public.Host,
		PublicURL:           public,
		AllowedOrigins:      []string{public.Scheme + "://" + public.Host},
		ShutdownTimeout:     5 * time.Second,
		MaxBodyBytes:        1 << 20,
		MaxUploadBytes:      20 << 20,
		MaxQueryComplexity:  10_000,
		MaxQueryDepth:       12,
		WSInitTimeout:       5 * time.Second,
		WSWriteTimeout:      5 * time.Second,
		WSPingInterval:      5 * time.Second,
		WSMaxMessage:        64 << 10,
		Streams:             config.Streams{PerIP: 100, PerSocket: 100, PerUser: 100},
		Credits:             config.Credits{SignupBonus: 25},
		MaintenanceInterval: time.Minute,

		MaxMutationsPerOperation: 10,
		WSMaxOperations:          8,
		PasswordHashConcurrency:  2,
		Generate: config.Generate{
			Workers: 2, Lease: 5 * time.Second, MaxAttempts: 3, UserRunningLimit: 2, QueueCap: 100,
			Provider: "local", LocalStepDelay: delay,
		},
		Works: config.Works{
			MaxPixels: 40_000_000, QuotaBytes: 50 << 20, URLTTL: time.Hour, Retention: 7 * 24 * time.Hour,
		},
		Accounts: config.Accounts{
			SessionIdleTimeout: time.Hour,
			SessionLifetime:    24 * time.Hour,
			SessionRecheck:     time.Minute,
			VerifyLinkTTL:      time.Hour,
			EmailChangeLinkTTL: time.Hour,
		},
		HTTPReadHeaderTimeout: 10 * time.Second,
		HTTPReadTimeout:       10 * time.Second,
		HTTPMinBodyRate:       8 << 10,
		HTTPIdleTimeout:       2 * time.Minute,
	}
}

// startService runs the service until the test ends, then stops it the way
// SIGTERM does.
func startService(t *testing.T, opts serviceOptions) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	cfg := opts.config(public)
	bdb, err := db.Open(ctx, dbtest.Config(dbtest.NewURL(t)), "browser-test")
	if err != nil {
		t.Fatal(err)
	}
	m, err := db.NewMigrator(bdb)
	if err != nil {
		t.Fatal(err)
	}
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = testLog{t}
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	bucket, err := local.New(local.Config{
		Dir: t.TempDir(), SigningKey: []byte("browser-test-signing-key-0123456"),
		BaseURL: public.String() + "/blobs", MaxPutBytes: cfg.MaxUploadBytes,
	})
	if err != nil {
		t.Fatal(err)
	}
	outbox := mail.NewOutbox(bdb)
	a, err := app.New(ctx, cfg, bdb, log, app.Overrides{
		Bucket:        bucket,
		Mailer:        outbox,
		WorkerID:      "browser-" + public.Host,
		PollInterval:  time.Second,
		ProgressEvery: 10 * time.Millisecond,
	})
	if err != nil {
		cancel()
		ln.Close()
		bdb.Close()
		t.Fatal(err)
	}
	conns := &connTracker{Listener: ln, open: map[net.Conn]struct{}{}}
	srv := a.Server(m, "browser-test")
	stopBackground := a.Background(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conns) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service did not stop cleanly: %v", err)
		}
		stopBackground()
		_ = a.Close()
		bdb.Close()
	})
	return &service{URL: public.String(), DB: bdb, outbox: outbox, bucket: bucket, conns: conns}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// connTracker is the service's listener; it remembers the connections it
// accepted so that a test can cut them all, as a network that goes away
// does (a browser's offline emulation leaves open WebSockets open).
type connTracker struct {
	net.Listener
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open[c] = struct{}{}
	l.mu.Unlock()
	return &trackedConn{Conn: c, l: l}, nil
}

// dropAll closes every open connection and says how many there were.
func (l *connTracker) dropAll() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.open)
	for c := range l.open {
		_ = c.Close()
		delete(l.open, c)
	}
	return n
}

type trackedConn struct {
	net.Conn
	l    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c.Conn)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// gql sends one GraphQL operation as a program would (no browser headers)
// and decodes its data into out; token, when set, is a session token.
func (s *service) gql(t *testing.T, token, query string, vars map[string]any, out any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest("POST", s.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	s.send(t, req, token, out)
}

// upload sends an image through the GraphQL multipart request protocol and
// returns the new work's id.
func (s *service) upload(t *testing.T, token, filename string, data []byte, title string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{
		"query":     `mutation($file: Upload!, $title: String) { uploadImage(input: {file: $file, title: $title}) { work { id } } }`,
		"variables": map[string]any{"file": nil, "title": title},
	})
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0": ["variables.file"]}`)
	fw, _ := mw.CreateFormFile("0", filename)
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, err := http.NewRequest("POST", s.URL+"/graphql", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var out struct {
		UploadImage struct{ Work struct{ ID string } }
	}
	s.send(t, req, token, &out)
	return out.UploadImage.Work.ID
}

func (s *service) send(t *testing.T, req *http.Request, token string, out any) {
	t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Data   json.RawMessage
		Errors []struct {
			Message    string
			Extensions struct{ Code string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("GraphQL answer (HTTP %d) is not JSON: %v", resp.StatusCode, err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("GraphQL error %s: %s", res.Errors[0].Extensions.Code, res.Errors[0].Message)
	}
	if out != nil {
		if err := json.Unmarshal(res.Data, out); err != nil {
			t.Fatalf("decode GraphQL data: %v", err)
		}
	}
}

var tokenInLink = regexp.MustCompile(`token=([A-Za-z0-9_-]+)`)

// signUpVerified makes an account whose email is verified, through the API,
// for tests about what comes after signing up; it returns a session token
// for API calls of the test's own (the browser signs in by itself).
func (s *service) signUpVerified(t *testing.T, email, name string) (token string) {
	t.Helper()
	s.gql(t, "", `mutation($email: String!, $name: String!, $password: String!) {
		signUp(input: {email: $email, name: $name, password: $password}) { message } }`,
		map[string]any{"email": email, "name": name, "password": password}, nil)
	msg, err := s.outbox.Latest(context.Background(), email, "verify_email")
	if err != nil {
		t.Fatalf("no verification email to %s: %v", email, err)
	}
	m := tokenInLink.FindStringSubmatch(msg.Text)
	if m == nil {
		t.Fatalf("the verification email has no link with a token:\n%s", msg.Text)
	}
	s.gql(t, "", `mutation($token: String!) { verifyEmail(input: {token: $token}) { user { id } } }`,
		map[string]any{"token": m[1]}, nil)
	var out struct{ SignIn struct{ Token string } }
	s.gql(t, "", `mutation($email: String!, $password: String!) { signIn(input: {email: $email, password: $password}) { token } }`,
		map[string]any{"email": email, "password": password}, &out)
	// The API's own sign-in counted against the address's sign-in limit:
	// forget it, so that the browser's sign-in is the user's first.
	s.exec(t, "DELETE FROM rate_events")
	return out.SignIn.Token
}

// exec runs a statement on the service's database.
func (s *service) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := s.DB.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// scan runs a query that returns one row and scans it into dst.
func (s *service) scan(t *testing.T, query string, args []any, dst ...any) {
	t.Helper()
	if err := s.DB.QueryRowContext(context.Background(), query, args...).Scan(dst...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (s *service) String() string { return fmt.Sprintf("service at %s", s.URL) }
