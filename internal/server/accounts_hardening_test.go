package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestSignInThrottleHoldsUnderRace sends 30 sign-ins for one account at once,
// 29 wrong and 1 right, through two replicas on one database. The throttle
// allows 5 failures per (email, IP): no more than 5 wrong passwords may be
// checked, whatever the interleaving, and once they have been the right
// password is refused too.
func TestSignInThrottleHoldsUnderRace(t *testing.T) {
	t.Parallel()
	one := start(t, testConfig())
	two := startWithDB(t, testConfig(), one.dbURL)
	const email = "raced@example.com"
	_, userID := mustSignUp(t, one, email)
	signedInBefore := countEvents(t, one, userID, "SIGN_IN")

	const attempts = 30
	codes := make([]string, attempts)
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	ready.Add(attempts)
	for i := range attempts {
		s := one
		if i%2 == 1 {
			s = two
		}
		pw := fmt.Sprint("wrong guess ", i)
		if i == attempts/2 {
			pw = goodPassword
		}
		c := s.client(t)
		wg.Go(func() {
			ready.Done()
			<-gate
			codes[i] = c.do(signInMutation, map[string]any{"email": email, "password": pw}).code()
		})
	}
	ready.Wait()
	close(gate)
	wg.Wait()

	wrongChecked, limited := 0, 0
	for i, code := range codes {
		switch {
		case code == "INVALID_CREDENTIALS":
			wrongChecked++
		case code == "RATE_LIMITED":
			limited++
		case code == "" && i == attempts/2:
		default:
			t.Errorf("attempt %d: got code %q, want INVALID_CREDENTIALS or RATE_LIMITED", i, code)
		}
	}
	rightIn := 0
	if codes[attempts/2] == "" {
		rightIn = 1
	}
	if wrongChecked+rightIn > 5 {
		t.Errorf("%d passwords were checked (%d wrong), want at most 5 (%d refused)", wrongChecked+rightIn, wrongChecked, limited)
	}
	// What the server recorded agrees with what the clients saw.
	failed := countEvents(t, one, userID, "SIGN_IN_FAILED")
	signedIn := countEvents(t, one, userID, "SIGN_IN") - signedInBefore
	if failed != wrongChecked || signedIn != rightIn {
		t.Errorf("recorded %d SIGN_IN_FAILED and %d SIGN_IN, want %d and %d", failed, signedIn, wrongChecked, rightIn)
	}
	t.Logf("password checks: %d wrong + %d right, %d refused", wrongChecked, signedIn, limited)

	// Every check took a slot; fill the window up, then the right password
	// is refused on both replicas.
	for n := wrongChecked + rightIn; n < 5; n++ {
		one.client(t).fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": email, "password": "still wrong"})
	}
	for _, s := range []*testServer{one, two} {
		s.client(t).fails("RATE_LIMITED", signInMutation, map[string]any{"email": email, "password": goodPassword})
	}
}

// TestPasswordChecksOfASessionAreThrottled: a session (perhaps a stolen one)
// must not guess its account's password through changePassword or
// changeEmail without bound.
func TestPasswordChecksOfASessionAreThrottled(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "guessed@example.com")
	changePw := `mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { user { email } } }`
	changeEmail := `mutation($e: String!, $p: String!) { changeEmail(input: {newEmail: $e, password: $p}) { message } }`

	const attempts = 12
	codes := make([]string, attempts)
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			if i%2 == 0 {
				codes[i] = me.do(changePw, map[string]any{"c": fmt.Sprint("guess number ", i), "n": "a fresh passphrase here"}).code()
			} else {
				codes[i] = me.do(changeEmail, map[string]any{"e": "thief@example.com", "p": fmt.Sprint("guess number ", i)}).code()
			}
		})
	}
	wg.Wait()
	checked := 0
	for i, code := range codes {
		switch code {
		case "INVALID_CREDENTIALS":
			checked++
		case "RATE_LIMITED":
		default:
			t.Errorf("attempt %d: got code %q, want INVALID_CREDENTIALS or RATE_LIMITED", i, code)
		}
	}
	if checked > 5 {
		t.Errorf("%d wrong current passwords were checked, want at most 5", checked)
	}
	me.fails("RATE_LIMITED", changePw, map[string]any{"c": goodPassword, "n": "a fresh passphrase here"})
}

// TestSecuringTheAccountVoidsOpenLinks: once the owner changes the password
// or the address, links emailed before stop working.
func TestSecuringTheAccountVoidsOpenLinks(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	const email = "secure@example.com"
	me, _ := mustSignUp(t, s, email)
	anon := s.client(t)
	askReset := `mutation($e: String!) { requestPasswordReset(input: {email: $e}) { message } }`
	reset := `mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { message } }`
	changePw := `mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { user { email } } }`
	changeEmail := `mutation($e: String!, $p: String!) { changeEmail(input: {newEmail: $e, password: $p}) { message } }`
	confirm := `mutation($t: String!) { confirmEmailChange(input: {token: $t}) { user { email } } }`

	// A reset link and an email change asked before the password changes.
	anon.must(askReset, map[string]any{"e": email}, nil)
	resetLink := s.linkToken(t, email, "password_reset")
	me.must(changeEmail, map[string]any{"e": "elsewhere@example.com", "p": goodPassword}, nil)
	changeLink := s.linkToken(t, "elsewhere@example.com", "email_change")
	me.must(changePw, map[string]any{"c": goodPassword, "n": "the owner's new passphrase"}, nil)
	anon.fails("TOKEN_INVALID", reset, map[string]any{"t": resetLink, "p": "an attacker's passphrase"})
	anon.fails("TOKEN_INVALID", confirm, map[string]any{"t": changeLink})

	// An email change asked, then the password reset: the change is void.
	s.forgetRateLimits(t)
	me.must(changeEmail, map[string]any{"e": "elsewhere@example.com", "p": "the owner's new passphrase"}, nil)
	changeLink = s.linkToken(t, "elsewhere@example.com", "email_change")
	anon.must(askReset, map[string]any{"e": email}, nil)
	anon.must(reset, map[string]any{"t": s.linkToken(t, email, "password_reset"), "p": "a reset passphrase"}, nil)
	anon.fails("TOKEN_INVALID", confirm, map[string]any{"t": changeLink})

	// A reset link sent to the old address, then the address changes.
	me, _ = signIn(t, s, email, "a reset passphrase")
	s.forgetRateLimits(t)
	anon.must(askReset, map[string]any{"e": email}, nil)
	oldAddressLink := s.linkToken(t, email, "password_reset")
	me.must(changeEmail, map[string]any{"e": "moved@example.com", "p": "a reset passphrase"}, nil)
	anon.must(confirm, map[string]any{"t": s.linkToken(t, "moved@example.com", "email_change")}, nil)
	anon.fails("TOKEN_INVALID", reset, map[string]any{"t": oldAddressLink, "p": "an attacker's passphrase"})
	_, userID := signIn(t, s, "moved@example.com", "a reset passphrase")

	// A suspension voids the links too; unsuspending does not revive them.
	s.forgetRateLimits(t)
	anon.must(askReset, map[string]any{"e": "moved@example.com"}, nil)
	suspendedLink := s.linkToken(t, "moved@example.com", "password_reset")
	admin, _ := mustSignUp(t, s, "admin@example.com")
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'"); err != nil {
		t.Fatal(err)
	}
	admin.must(`mutation($id: ID!) { suspendUser(input: {userId: $id, reason: "investigating"}) { user { status } } }`, map[string]any{"id": userID}, nil)
	admin.must(`mutation($id: ID!) { unsuspendUser(input: {userId: $id}) { user { status } } }`, map[string]any{"id": userID}, nil)
	anon.fails("TOKEN_INVALID", reset, map[string]any{"t": suspendedLink, "p": "an attacker's passphrase"})
}

// TestThrottledSignInsWriteBoundedEvents hammers sign-in for an email that is
// already throttled, with a 60 KB User-Agent: what the database and the log
// keep must stay small, and the User-Agent is stored cut short.
func TestThrottledSignInsWriteBoundedEvents(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	const email = "flood@example.com"
	mustSignUp(t, s, email)
	ua := strings.Repeat("A", 60<<10) + "\xff"
	c := s.client(t)
	c.header.Set("User-Agent", ua)
	for i := range 5 {
		c.fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": email, "password": fmt.Sprint("wrong ", i)})
	}
	type usage struct{ rows, bytes int64 }
	measure := func() usage {
		t.Helper()
		var u usage
		if err := s.db.NewRaw(`SELECT count(*), coalesce(sum(octet_length(user_agent) + octet_length(ip) + octet_length(detail::text)), 0)
			FROM security_events`).Scan(context.Background(), &u.rows, &u.bytes); err != nil {
			t.Fatal(err)
		}
		return u
	}
	before := measure()
	logBefore := len(s.logs.String())

	const n = 200
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for range n / 8 {
				if code := c.do(signInMutation, map[string]any{"email": email, "password": fmt.Sprint("wrong ", w)}).code(); code != "RATE_LIMITED" {
					t.Errorf("got code %q, want RATE_LIMITED", code)
					return
				}
			}
		})
	}
	wg.Wait()
	after := measure()
	grown := usage{after.rows - before.rows, after.bytes - before.bytes}
	t.Logf("%d throttled sign-ins wrote %d security events, %d bytes; the log grew %d bytes", n, grown.rows, grown.bytes, len(s.logs.String())-logBefore)
	if grown.rows > 1 || grown.bytes > 1024 {
		t.Errorf("%d throttled sign-ins wrote %d security events of %d bytes, want at most 1 of at most 1 KB", n, grown.rows, grown.bytes)
	}
	if perRequest := (len(s.logs.String()) - logBefore) / n; perRequest > 2048 {
		t.Errorf("the log grew %d bytes per throttled sign-in, want at most 2 KB", perRequest)
	}

	// Stored user agents are cut short, as valid text; sessions' too.
	mustSignUp(t, s, "fresh@example.com")
	c.must(signInMutation, map[string]any{"email": "fresh@example.com", "password": goodPassword}, nil)
	var longest int
	if err := s.db.NewRaw(`SELECT max(octet_length(user_agent)) FROM (
		SELECT user_agent FROM security_events UNION ALL SELECT user_agent FROM sessions) AS t`).
		Scan(context.Background(), &longest); err != nil {
		t.Fatal(err)
	}
	if longest == 0 || longest > 512 {
		t.Errorf("longest stored user agent is %d bytes, want 1–512", longest)
	}

	// A client cannot mint metric series with made-up methods.
	for i := range 3 {
		req, _ := http.NewRequest(fmt.Sprint("BREW", i), s.URL+"/graphql", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if m := scrape(t, s.URL); strings.Contains(m, "BREW") {
		t.Error("/metrics has a series for a made-up method")
	}
}

// countEvents counts userID's security events of kind.
func countEvents(t *testing.T, s *testServer, userID, kind string) int {
	t.Helper()
	var n int
	if err := s.db.NewRaw("SELECT count(*) FROM security_events WHERE user_id = ? AND kind = ?", uuidOfGlobal(t, userID), kind).
		Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}
