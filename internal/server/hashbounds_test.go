package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// signInFailures counts the SIGN_IN_FAILED events recorded: one for every
// sign-in that hashed a password and found it wrong.
func (s *testServer) signInFailures(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.db.NewRaw("SELECT count(*) FROM security_events WHERE kind = 'SIGN_IN_FAILED'").Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Each signIn hashes a password (19 MiB, tens of milliseconds): aliasing it
// must not run a hundred of them in one request. The operation is refused
// before anything runs.
func TestAliasedSignInsRefusedBeforeHashing(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := s.client(t)

	var b strings.Builder
	b.WriteString("mutation {")
	for i := range 100 {
		fmt.Fprintf(&b, ` s%d: signIn(input: {email: "nobody%d@example.com", password: "not the password"}) { token }`, i, i)
	}
	b.WriteString(" }")
	out := c.do(b.String(), nil)
	if out.code() != "QUERY_TOO_COMPLEX" || out.HasData {
		t.Errorf("100 aliased signIn: code %q, data present %v; want QUERY_TOO_COMPLEX and no data", out.code(), out.HasData)
	}
	if n := s.signInFailures(t); n != 0 {
		t.Errorf("sign-in failures recorded: got %d, want 0 (nothing may run)", n)
	}

	// Cheap mutations are capped by number, whatever they cost.
	b.Reset()
	b.WriteString("mutation {")
	for i := range 11 {
		fmt.Fprintf(&b, ` v%d: verifyEmail(input: {token: "t%d"}) { user { id } }`, i, i)
	}
	b.WriteString(" }")
	out = c.do(b.String(), nil)
	if out.code() != "QUERY_TOO_COMPLEX" || out.HasData {
		t.Errorf("11 aliased verifyEmail: code %q, data present %v; want QUERY_TOO_COMPLEX and no data", out.code(), out.HasData)
	}

	// One sign-in still works.
	one := c.do(`mutation { signIn(input: {email: "nobody@example.com", password: "not the password"}) { token } }`, nil)
	if one.code() != "INVALID_CREDENTIALS" {
		t.Errorf("one signIn: code %q, want INVALID_CREDENTIALS", one.code())
	}
	if n := s.signInFailures(t); n != 1 {
		t.Errorf("sign-in failures recorded: got %d, want 1", n)
	}
}

// gqlgen runs every WebSocket message's operation in a goroutine of its own:
// 40 signIn messages on one anonymous socket must neither run 40 password
// hashes at once nor 40 operations. Those past the socket's bound are
// refused with RATE_LIMITED and retryAfter; the hashes in flight, read from
// /metrics while they run, never exceed the process's bound.
func TestWebSocketSignInsBounded(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := start(t, cfg)
	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, wsMessage{Type: "connection_init"})
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", m.Type)
	}
	if got := metricValue(t, s.URL, "fastimage_password_hash_slots"); got != strconv.Itoa(cfg.PasswordHashConcurrency) {
		t.Fatalf("hash slots: got %s, want %d", got, cfg.PasswordHashConcurrency)
	}

	const sent = 40
	for i := range sent {
		// Distinct emails, so that the failed-sign-in limit of one address
		// does not refuse them before they hash.
		wsSend(t, c, wsMessage{ID: strconv.Itoa(i), Type: "subscribe", Payload: mustJSON(map[string]any{
			"query": fmt.Sprintf(`mutation { signIn(input: {email: "ws%d@example.com", password: "not the password"}) { token } }`, i),
		})})
	}

	type result struct {
		code       string
		retryAfter any
		err        error
	}
	results := make(chan result, sent)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for done := 0; done < sent; {
			var m wsMessage
			if err := c.ReadJSON(&m); err != nil {
				results <- result{err: err}
				return
			}
			switch m.Type {
			case "next":
				var resp gqlResponse
				if err := json.Unmarshal(m.Payload, &resp); err != nil {
					results <- result{err: err}
					return
				}
				r := result{code: resp.code()}
				if len(resp.Errors) > 0 {
					r.retryAfter = resp.Errors[0].Extensions["retryAfter"]
				}
				results <- r
			case "complete":
				done++
			case "error":
				results <- result{err: fmt.Errorf("error message: %s", m.Payload)}
				return
			}
		}
	}()

	peak := 0
	codes := map[string]int{}
	for got := 0; got < sent; {
		n, err := strconv.Atoi(metricValue(t, s.URL, "fastimage_password_hashes_in_flight"))
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, n)
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("after %d answers: %v", got, r.err)
			}
			got++
			codes[r.code]++
			if r.code == "RATE_LIMITED" && r.retryAfter == nil {
				t.Errorf("RATE_LIMITED without retryAfter")
			}
		default:
		}
	}
	if peak > cfg.PasswordHashConcurrency {
		t.Errorf("password hashes in flight: saw %d, want at most %d", peak, cfg.PasswordHashConcurrency)
	}
	ran := codes["INVALID_CREDENTIALS"]
	if ran < 1 || codes["RATE_LIMITED"] < 1 || ran+codes["RATE_LIMITED"]+codes["UNAVAILABLE"] != sent {
		t.Errorf("answers by code: %v; want some INVALID_CREDENTIALS, some RATE_LIMITED (past %d at once), nothing else but UNAVAILABLE", codes, cfg.WSMaxOperations)
	}
	if n := s.signInFailures(t); n != ran {
		t.Errorf("sign-in failures recorded: got %d, want %d (one per sign-in that ran)", n, ran)
	}
}
