package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

const goodPassword = "correct horse battery staple"

// client is a GraphQL caller with an optional session token.
type client struct {
	t      testing.TB
	s      *testServer
	token  string
	header http.Header
}

func (s *testServer) client(t testing.TB) *client {
	return &client{t: t, s: s, header: http.Header{}}
}

func (c *client) as(token string) *client {
	cp := *c
	cp.token = token
	cp.header = c.header.Clone()
	return &cp
}

// raw sends one operation and returns the HTTP response and decoded body.
func (c *client) raw(query string, vars map[string]any) (*http.Response, gqlResponse) {
	c.t.Helper()
	for _, v := range vars {
		if str, ok := v.(string); ok && len(str) >= 8 && !strings.Contains(str, "@") {
			c.s.secrets.add(str) // passwords and tokens
		}
	}
	if c.token != "" {
		c.s.secrets.add(c.token)
	}
	body := mustJSON(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest("POST", c.s.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return do(c.t, req)
}

func (c *client) do(query string, vars map[string]any) gqlResponse {
	c.t.Helper()
	_, out := c.raw(query, vars)
	return out
}

// must runs an operation that must succeed and decodes its data into dst.
func (c *client) must(query string, vars map[string]any, dst any) {
	c.t.Helper()
	out := c.do(query, vars)
	if len(out.Errors) > 0 {
		c.t.Fatalf("%s: unexpected errors %+v", firstLine(query), out.Errors)
	}
	if dst != nil {
		if err := json.Unmarshal(out.Data, dst); err != nil {
			c.t.Fatal(err)
		}
	}
}

// fails runs an operation that must fail with code and returns the error.
func (c *client) fails(code, query string, vars map[string]any) gqlError {
	c.t.Helper()
	out := c.do(query, vars)
	if out.code() != code {
		c.t.Fatalf("%s: got code %q (%+v), want %s", firstLine(query), out.code(), out.Errors, code)
	}
	return out.Errors[0]
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

const (
	signUpMutation = `mutation($email: String!, $password: String!, $captcha: String) {
		signUp(input: {email: $email, name: "Test User", password: $password, captchaToken: $captcha}) { message } }`
	signInMutation = `mutation($email: String!, $password: String!, $captcha: String) {
		signIn(input: {email: $email, password: $password, captchaToken: $captcha}) { token session { id current } user { id email emailVerified } } }`
	verifyMutation = `mutation($token: String!) { verifyEmail(input: {token: $token}) { user { email emailVerified } } }`
	viewerQuery    = `{ viewer { id email name emailVerified role status } }`
)

var tokenInLink = regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`)

// linkToken returns the token of the newest email of kind sent to addr.
func (s *testServer) linkToken(t testing.TB, addr, kind string) string {
	t.Helper()
	msg, err := s.outbox.Latest(context.Background(), addr, kind)
	if err != nil {
		t.Fatalf("no %s email to %s: %v", kind, addr, err)
	}
	m := tokenInLink.FindStringSubmatch(msg.Text)
	if m == nil {
		t.Fatalf("%s email has no link with a token:\n%s", kind, msg.Text)
	}
	s.secrets.add(m[1])
	return m[1]
}

type signedIn struct {
	SignIn struct {
		Token   string
		Session struct {
			ID      string
			Current bool
		}
		User struct {
			ID            string
			Email         string
			EmailVerified bool
		}
	}
}

// mustSignUp creates and verifies an account and signs it in; it returns a
// client carrying the session and the user's id.
func mustSignUp(t testing.TB, s *testServer, email string) (*client, string) {
	t.Helper()
	c := s.client(t)
	c.must(signUpMutation, map[string]any{"email": email, "password": goodPassword}, nil)
	c.must(verifyMutation, map[string]any{"token": s.linkToken(t, email, "verify_email")}, nil)
	s.forgetRateLimits(t)
	c, id := signIn(t, s, email, goodPassword)
	s.forgetRateLimits(t) // the sign-in's own password check counted too
	return c, id
}

func signIn(t testing.TB, s *testServer, email, pw string) (*client, string) {
	t.Helper()
	var out signedIn
	s.client(t).must(signInMutation, map[string]any{"email": email, "password": pw}, &out)
	s.secrets.add(out.SignIn.Token)
	return s.client(t).as(out.SignIn.Token), out.SignIn.User.ID
}

// secretSet is every password and token a test sent or received; when the
// server stops, none of them may appear in what it logged.
type secretSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *secretSet) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[v] = true
}

// checkLogs fails t if a secret appears in logs.
func (s *secretSet) checkLogs(t testing.TB, logs string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for secret := range s.seen {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret (%.4s…) appears in the server log", secret)
		}
	}
}

// forgetRateLimits clears every rate-limit count, as if a quiet hour passed,
// so that a test can send a second email to one address.
func (s *testServer) forgetRateLimits(t testing.TB) {
	t.Helper()
	if _, err := s.db.ExecContext(context.Background(), "DELETE FROM rate_events"); err != nil {
		t.Fatal(err)
	}
}
