package server_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/db/dbtest"
)

// turnstile is an httptest peer that speaks Cloudflare Turnstile's siteverify
// API: "good-<action>" tokens pass for that action, "slow" never answers in
// time, anything else fails.
func turnstile(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("secret") != "test-secret" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		token := r.PostForm.Get("response")
		if token == "slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		resp := map[string]any{"success": false, "error-codes": []string{"invalid-input-response"}}
		if action, ok := map[string]string{"good-signup": "signup", "good-signin": "signin"}[token]; ok {
			resp = map[string]any{"success": true, "hostname": "localhost", "action": action, "challenge_ts": time.Now().Format(time.RFC3339)}
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCaptcha(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Captcha.Provider = "turnstile"
	cfg.Captcha.Secret = "test-secret"
	cfg.Captcha.Hostnames = []string{"localhost"}
	cfg.Captcha.VerifyURL = turnstile(t)
	cfg.Captcha.Timeout = 300 * time.Millisecond
	s := start(t, cfg)
	c := s.client(t)

	var info struct {
		ServerInfo struct {
			Integrations struct {
				Captcha struct {
					Enabled  bool
					Provider string
				}
			}
		}
	}
	c.must(`{ serverInfo { integrations { captcha { enabled provider } } } }`, nil, &info)
	if got := info.ServerInfo.Integrations.Captcha; !got.Enabled || got.Provider != "turnstile" {
		t.Errorf("serverInfo captcha = %+v", got)
	}

	vars := func(token string) map[string]any {
		return map[string]any{"email": "human@example.com", "password": goodPassword, "captcha": token}
	}
	c.fails("CAPTCHA_FAILED", signUpMutation, vars(""))
	c.fails("CAPTCHA_FAILED", signUpMutation, vars("forged"))
	c.fails("CAPTCHA_FAILED", signUpMutation, vars("good-signin")) // the wrong action
	started := time.Now()
	c.fails("CAPTCHA_FAILED", signUpMutation, vars("slow"))
	if waited := time.Since(started); waited > 3*time.Second {
		t.Errorf("a verifier that does not answer held the request %v", waited)
	}
	c.must(signUpMutation, vars("good-signup"), nil)
	c.must(verifyMutation, map[string]any{"token": s.linkToken(t, "human@example.com", "verify_email")}, nil)

	// Sign-in needs no CAPTCHA until five failures, then it does.
	for range 5 {
		c.fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": "human@example.com", "password": "wrong guess!"})
	}
	c.fails("CAPTCHA_REQUIRED", signInMutation, map[string]any{"email": "human@example.com", "password": goodPassword})
	c.fails("CAPTCHA_FAILED", signInMutation, map[string]any{"email": "human@example.com", "password": goodPassword, "captcha": "forged"})
	c.must(signInMutation, map[string]any{"email": "human@example.com", "password": goodPassword, "captcha": "good-signin"}, nil)

	var failed int
	if err := s.db.NewRaw("SELECT count(*) FROM security_events WHERE kind = 'CAPTCHA_FAILED'").Scan(t.Context(), &failed); err != nil {
		t.Fatal(err)
	}
	if failed < 5 {
		t.Errorf("%d CAPTCHA failures recorded, want at least 5", failed)
	}
}

func TestTrustedProxyForwardedFor(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	s := start(t, cfg)
	c := s.client(t)
	// The client wrote the first entry itself; the proxy appended the real one.
	c.header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
	c.must(signUpMutation, map[string]any{"email": "proxied@example.com", "password": goodPassword}, nil)
	var ip string
	if err := s.db.NewRaw("SELECT ip FROM security_events WHERE kind = 'SIGN_UP'").Scan(t.Context(), &ip); err != nil {
		t.Fatal(err)
	}
	if ip != "203.0.113.9" {
		t.Errorf("client IP behind a trusted proxy = %q, want 203.0.113.9", ip)
	}
}

func TestSessionIdleAndLifetime(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	idle, _ := mustSignUp(t, s, "idle@example.com")
	old, _ := signIn(t, s, "idle@example.com", goodPassword)
	fresh, _ := signIn(t, s, "idle@example.com", goodPassword)
	ctx := t.Context()
	if _, err := s.db.ExecContext(ctx, "UPDATE sessions SET last_seen_at = now() - interval '2 hours' WHERE token_hash = sha256(?::bytea)", idle.token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = sha256(?::bytea)", old.token); err != nil {
		t.Fatal(err)
	}
	idle.fails("UNAUTHENTICATED", viewerQuery, nil)
	old.fails("UNAUTHENTICATED", viewerQuery, nil)
	fresh.must(viewerQuery, nil, nil)
}

func TestDevOutboxPageOnlyInDevelopment(t *testing.T) {
	t.Parallel()
	dev := start(t, testConfig())
	mustSignUp(t, dev, "outbox@example.com")
	resp, err := http.Get(dev.URL + "/dev/outbox")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("development /dev/outbox: %d", resp.StatusCode)
	}
	prodCfg := testConfig()
	prodCfg.Env = "production"
	prod := start(t, prodCfg)
	for _, path := range []string{"/dev/outbox", "/dev/outbox.json"} {
		resp, err = http.Get(prod.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("production %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestDevOutboxOnlyOnThisMachine: APP_ENV defaults to development, so a
// server deployed under a public name without APP_ENV=production (and
// without SMTP) would otherwise list everyone's reset links to anyone:
// requestPasswordReset for a victim, then /dev/outbox.json?to=victim.
// The outbox is served only when the public URL is on this machine.
func TestDevOutboxOnlyOnThisMachine(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	public, _ := url.Parse("https://fastimage.example")
	cfg.PublicURL = public
	s := start(t, cfg)
	mustSignUp(t, s, "exposed@example.com")
	for _, path := range []string{"/dev/outbox", "/dev/outbox.json?to=exposed%40example.com"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("development server at %s: %s answered %d, want 404", public, path, resp.StatusCode)
		}
	}
}

// TestDevOutboxOnlyToThisMachine: a development server made reachable from
// elsewhere (HTTP_ADDR=0.0.0.0:8080, PUBLIC_URL left at localhost) shows
// the outbox only to requests from this machine.
func TestDevOutboxOnlyToThisMachine(t *testing.T) {
	t.Parallel()
	far := &net.TCPAddr{IP: net.ParseIP("203.0.113.50"), Port: 40000}
	s := startWithListener(t, testConfig(), dbtest.NewURL(t), func(ln net.Listener) net.Listener { return peerListener{ln, far} })
	mustSignUp(t, s, "far@example.com")
	for _, path := range []string{"/dev/outbox", "/dev/outbox.json?to=far%40example.com"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s from %s answered %d, want 404", path, far, resp.StatusCode)
		}
	}
}

// peerListener's connections say they come from addr.
type peerListener struct {
	net.Listener
	addr net.Addr
}

func (l peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return peerConn{c, l.addr}, nil
}

type peerConn struct {
	net.Conn
	addr net.Addr
}

func (c peerConn) RemoteAddr() net.Addr { return c.addr }

// TestDevOutboxJSON: programs read the development outbox as JSON, all of
// it or only one address's mail, newest first, within bounds.
func TestDevOutboxJSON(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	mustSignUp(t, s, "json-a@example.com")
	mustSignUp(t, s, "json-b@example.com")
	type message struct {
		Kind, To, Subject, Text string
		CreatedAt               time.Time
	}
	get := func(query string) (int, []message) {
		t.Helper()
		resp, err := http.Get(s.URL + "/dev/outbox.json" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return resp.StatusCode, nil
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q, want JSON", ct)
		}
		var body struct{ Messages []message }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body.Messages
	}
	_, all := get("")
	seen := map[string]bool{}
	for i, m := range all {
		seen[m.To] = true
		if i > 0 && m.CreatedAt.After(all[i-1].CreatedAt) {
			t.Errorf("message %d is newer than message %d: want newest first", i, i-1)
		}
	}
	if !seen["json-a@example.com"] || !seen["json-b@example.com"] {
		t.Fatalf("all mail went to %v, want both addresses", seen)
	}
	_, one := get("?to=json-a@example.com")
	var link bool
	for _, m := range one {
		if m.To != "json-a@example.com" {
			t.Errorf("?to=json-a@example.com listed mail to %s", m.To)
		}
		link = link || (m.Kind == "verify_email" && strings.Contains(m.Text, "/verify-email?token="))
	}
	if !link {
		t.Errorf("json-a's mail: %+v, want its verification link", one)
	}
	if _, limited := get("?limit=1"); len(limited) != 1 || limited[0] != all[0] {
		t.Errorf("limit=1: %+v, want the newest message only (%+v)", limited, all[0])
	}
	for _, bad := range []string{"?limit=0", "?limit=501", "?limit=x"} {
		if status, _ := get(bad); status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, status)
		}
	}
}
