package server_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpStub is an SMTP server on 127.0.0.1 that, by mode, takes every
// message ("accept"), accepts connections and never says a word ("hang"),
// or is not there at all ("refuse").
type smtpStub struct {
	port int

	mu   sync.Mutex
	got  []string // the DATA of each message taken
	rcpt []string
}

func startSMTPStub(t *testing.T, mode string) *smtpStub {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpStub{port: ln.Addr().(*net.TCPAddr).Port}
	if mode == "refuse" {
		ln.Close()
		return s
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				<-done
				conn.Close()
			})
			if mode == "accept" {
				wg.Go(func() { s.serve(conn) })
			}
		}
	})
	return s
}

func (s *smtpStub) serve(conn net.Conn) {
	r := bufio.NewReader(conn)
	fmt.Fprint(conn, "220 stub ready\r\n")
	var rcpt string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			fmt.Fprint(conn, "250-stub\r\n250 8BITMIME\r\n")
		case "RCPT":
			rcpt = strings.Trim(strings.TrimPrefix(arg, "TO:"), "<>")
			fmt.Fprint(conn, "250 ok\r\n")
		case "DATA":
			fmt.Fprint(conn, "354 go on\r\n")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			s.mu.Lock()
			s.got, s.rcpt = append(s.got, data.String()), append(s.rcpt, rcpt)
			s.mu.Unlock()
			fmt.Fprint(conn, "250 queued\r\n")
		case "QUIT":
			fmt.Fprint(conn, "221 bye\r\n")
			return
		default:
			fmt.Fprint(conn, "250 ok\r\n")
		}
	}
}

// mailTo returns the DATA of the messages taken for addr.
func (s *smtpStub) mailTo(addr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i, r := range s.rcpt {
		if r == addr {
			out = append(out, s.got[i])
		}
	}
	return out
}

// smtpTimeout is the SMTP server's time-out in these tests: far longer than
// any answer may take.
const smtpTimeout = 20 * time.Second

func (s *smtpStub) url() string {
	return fmt.Sprintf("smtp://127.0.0.1:%d?from=no-reply%%40fastimage.example&tls=none&timeout=%s", s.port, smtpTimeout)
}

// TestMailNeverHoldsUpTheAnswer asks for sign-ups, password resets and
// verification links, for addresses with and without an account, while the
// SMTP server hangs or refuses connections: every answer comes at once and
// is the same either way, since mail leaves later from the outbox.
func TestMailNeverHoldsUpTheAnswer(t *testing.T) {
	t.Parallel()
	// Far below smtpTimeout, far above what a request takes on a busy
	// machine.
	const quick = 3 * time.Second
	reset := `mutation($e: String!) { requestPasswordReset(input: {email: $e}) { message } }`
	resend := `mutation($e: String) { resendVerification(input: {email: $e}) { message } }`
	for _, mode := range []string{"hang", "refuse"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Mail.SMTPURL = startSMTPStub(t, mode).url()
			s := start(t, cfg)
			c := s.client(t)
			timed := func(query string, vars map[string]any) gqlResponse {
				t.Helper()
				start := time.Now()
				out := c.do(query, vars)
				if d := time.Since(start); d > quick {
					t.Errorf("%s %v took %v, want under %v", firstLine(query), vars, d, quick)
				}
				if len(out.Errors) > 0 {
					t.Errorf("%s %v: got errors %+v, want none", firstLine(query), vars, out.Errors)
				}
				return out
			}
			pw := "another long passphrase"
			timed(signUpMutation, map[string]any{"email": "known@example.com", "password": pw})
			for i, tc := range []struct {
				query string
				vars  func(email string) map[string]any
			}{
				{signUpMutation, func(e string) map[string]any { return map[string]any{"email": e, "password": pw} }},
				{reset, func(e string) map[string]any { return map[string]any{"e": e} }},
				{resend, func(e string) map[string]any { return map[string]any{"e": e} }},
			} {
				s.forgetRateLimits(t)
				known := timed(tc.query, tc.vars("known@example.com"))
				unknown := timed(tc.query, tc.vars(fmt.Sprintf("unknown%d@example.com", i)))
				if string(known.Data) != string(unknown.Data) {
					t.Errorf("%s: answers differ: %s / %s", firstLine(tc.query), known.Data, unknown.Data)
				}
			}
		})
	}
}

// TestMailIsDeliveredFromTheOutbox configures an SMTP server: the mail
// worker started with the app delivers a reset link, which works.
func TestMailIsDeliveredFromTheOutbox(t *testing.T) {
	t.Parallel()
	smtp := startSMTPStub(t, "accept")
	cfg := testConfig()
	cfg.Mail.SMTPURL = smtp.url()
	s := start(t, cfg)
	c := s.client(t)
	const email = "deliver@example.com"
	c.must(signUpMutation, map[string]any{"email": email, "password": goodPassword}, nil)
	s.forgetRateLimits(t)
	c.must(`mutation { requestPasswordReset(input: {email: "deliver@example.com"}) { message } }`, nil, nil)

	var token string
	for end := time.Now().Add(10 * time.Second); token == ""; time.Sleep(10 * time.Millisecond) {
		for _, data := range smtp.mailTo(email) {
			// The body is quoted-printable: long lines are wrapped with a
			// final "=", and "=" itself is "=3D".
			flat := strings.ReplaceAll(strings.ReplaceAll(data, "=\r\n", ""), "=3D", "=")
			if strings.Contains(flat, "reset-password") {
				if m := tokenInLink.FindStringSubmatch(flat); m != nil {
					token = m[1]
				}
			}
		}
		if token == "" && time.Now().After(end) {
			t.Fatalf("no reset mail reached the SMTP server; it took %d messages for %s", len(smtp.mailTo(email)), email)
		}
	}
	s.secrets.add(token)
	c.must(`mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { message } }`,
		map[string]any{"t": token, "p": "a brand new passphrase"}, nil)
	signIn(t, s, email, "a brand new passphrase")

	// A message sent keeps no body in the outbox: its link is a secret.
	msg, err := s.outbox.Latest(t.Context(), email, "password_reset")
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); msg.SentAt == nil || msg.Text != ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the reset mail is not recorded as sent with its body dropped: sent at %v, %d bytes of text", msg.SentAt, len(msg.Text))
		}
		if msg, err = s.outbox.Latest(t.Context(), email, "password_reset"); err != nil {
			t.Fatal(err)
		}
	}
}
