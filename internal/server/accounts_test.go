package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastimage/api/internal/password"
)

func TestSignUpVerifySignInFlow(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := s.client(t)
	const email = "ada@example.com"
	c.must(signUpMutation, map[string]any{"email": "  Ada@Example.COM ", "password": goodPassword}, nil)

	// Unverified users may sign in and look around.
	anon := s.client(t)
	resp, out := anon.raw(signInMutation, map[string]any{"email": email, "password": goodPassword})
	if len(out.Errors) > 0 {
		t.Fatalf("sign in before verifying: %v", out.Errors)
	}
	var first signedIn
	json.Unmarshal(out.Data, &first)
	if first.SignIn.User.EmailVerified || first.SignIn.User.Email != email || !first.SignIn.Session.Current {
		t.Errorf("signed in user = %+v", first.SignIn)
	}
	cookie := sessionCookieOf(t, resp)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Value != first.SignIn.Token {
		t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Lax, the token", cookie)
	}

	// Opening the emailed link opens the editor's page (which sends the
	// token only when the person presses its button) and consumes nothing.
	token := s.linkToken(t, email, "verify_email")
	page, err := http.Get(s.URL + "/verify-email?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(body), `src="/static/js/app.js"`) || page.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("link page: %d, Referrer-Policy %q", page.StatusCode, page.Header.Get("Referrer-Policy"))
	}
	c.must(verifyMutation, map[string]any{"token": token}, nil)
	c.fails("TOKEN_USED", verifyMutation, map[string]any{"token": token})

	// The cookie alone authenticates browsers; the token authenticates API clients.
	byCookie := s.client(t)
	byCookie.header.Set("Cookie", cookie.Name+"="+cookie.Value)
	var v struct {
		Viewer struct {
			Email, Role, Status string
			EmailVerified       bool
		}
	}
	byCookie.must(viewerQuery, nil, &v)
	if v.Viewer.Email != email || !v.Viewer.EmailVerified || v.Viewer.Role != "USER" || v.Viewer.Status != "ACTIVE" {
		t.Errorf("viewer by cookie = %+v", v.Viewer)
	}
	var anonV struct{ Viewer *struct{ ID string } }
	anon.must(viewerQuery, nil, &anonV)
	if anonV.Viewer != nil {
		t.Errorf("anonymous viewer = %+v, want null", anonV.Viewer)
	}
}

func sessionCookieOf(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "fastimage_session" {
			return c
		}
	}
	t.Fatal("no session cookie set")
	return nil
}

// Whether an address has an account must not show in sign-up, reset or
// sign-in answers.
func TestAnswersDoNotRevealAccounts(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	mustSignUp(t, s, "known@example.com")
	c := s.client(t)

	known := c.do(signUpMutation, map[string]any{"email": "known@example.com", "password": "another long passphrase"})
	unknown := c.do(signUpMutation, map[string]any{"email": "unknown@example.com", "password": "another long passphrase"})
	if string(known.Data) != string(unknown.Data) || len(known.Errors)+len(unknown.Errors) > 0 {
		t.Errorf("sign-up answers differ: %s / %s", known.Data, unknown.Data)
	}
	if _, err := s.outbox.Latest(context.Background(), "known@example.com", "sign_up_existing"); err != nil {
		t.Errorf("the owner of the existing account was not told: %v", err)
	}
	var users int
	if err := s.db.NewRaw("SELECT count(*) FROM users WHERE email = 'known@example.com'").Scan(context.Background(), &users); err != nil {
		t.Fatal(err)
	}
	if users != 1 {
		t.Errorf("%d accounts for one address", users)
	}

	s.forgetRateLimits(t)
	reset := `mutation($e: String!) { requestPasswordReset(input: {email: $e}) { message } }`
	a := c.do(reset, map[string]any{"e": "known@example.com"})
	b := c.do(reset, map[string]any{"e": "nobody@example.com"})
	if string(a.Data) != string(b.Data) || len(a.Errors)+len(b.Errors) > 0 {
		t.Errorf("reset answers differ: %s / %s", a.Data, b.Data)
	}

	wrong := c.fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": "known@example.com", "password": "not the password"})
	missing := c.fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": "nobody@example.com", "password": "not the password"})
	if wrong.Message != missing.Message {
		t.Errorf("sign-in messages differ: %q / %q", wrong.Message, missing.Message)
	}
}

func TestPasswordResetFlow(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	const email = "reset@example.com"
	user, _ := mustSignUp(t, s, email)
	second, _ := signIn(t, s, email, goodPassword)
	anon := s.client(t)

	ask := `mutation { requestPasswordReset(input: {email: "reset@example.com"}) { message } }`
	anon.must(ask, nil, nil)
	older := s.linkToken(t, email, "password_reset")
	s.forgetRateLimits(t)
	anon.must(ask, nil, nil)
	token := s.linkToken(t, email, "password_reset")
	if token == older {
		t.Fatal("the second request sent the same token")
	}
	resetM := `mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { message } }`
	anon.fails("TOKEN_INVALID", resetM, map[string]any{"t": older, "p": "a brand new passphrase"})
	anon.fails("PASSWORD_WEAK", resetM, map[string]any{"t": token, "p": "password1"})

	// 20 racing requests with one token: exactly one wins.
	var ok, used atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			out := anon.do(resetM, map[string]any{"t": token, "p": "a brand new passphrase"})
			switch out.code() {
			case "":
				ok.Add(1)
			case "TOKEN_USED":
				used.Add(1)
			default:
				t.Errorf("racing reset: %v", out.Errors)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || used.Load() != 19 {
		t.Fatalf("%d resets succeeded and %d saw TOKEN_USED, want 1 and 19", ok.Load(), used.Load())
	}
	// Every session ended; the reset did not sign anyone in.
	user.fails("UNAUTHENTICATED", viewerQuery, nil)
	second.fails("UNAUTHENTICATED", viewerQuery, nil)
	anon.fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": email, "password": goodPassword})
	signIn(t, s, email, "a brand new passphrase")

	// An expired link says so.
	s.forgetRateLimits(t)
	anon.must(ask, nil, nil)
	expired := s.linkToken(t, email, "password_reset")
	if _, err := s.db.ExecContext(context.Background(), "UPDATE email_tokens SET expires_at = now() - interval '1 second' WHERE kind = 'password_reset' AND used_at IS NULL AND voided_at IS NULL"); err != nil {
		t.Fatal(err)
	}
	anon.fails("TOKEN_EXPIRED", resetM, map[string]any{"t": expired, "p": "yet another passphrase"})
	anon.fails("TOKEN_INVALID", resetM, map[string]any{"t": "not-a-token", "p": "yet another passphrase"})
}

func TestSessionsListAndRevoke(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	alice, _ := mustSignUp(t, s, "alice@example.com")
	aliceLaptop, _ := signIn(t, s, "alice@example.com", goodPassword)
	bob, _ := mustSignUp(t, s, "bob@example.com")

	var list struct {
		Viewer struct {
			Sessions []struct {
				ID, IP, UserAgent string
				Current           bool
			}
		}
	}
	aliceLaptop.must(`{ viewer { sessions { id ip userAgent current } } }`, nil, &list)
	if len(list.Viewer.Sessions) != 2 {
		t.Fatalf("alice has %d sessions listed, want 2", len(list.Viewer.Sessions))
	}
	var laptopID, phoneID string
	for _, ss := range list.Viewer.Sessions {
		if ss.IP != "127.0.0.1" || ss.UserAgent == "" {
			t.Errorf("session %+v lacks its IP or user agent", ss)
		}
		if ss.Current {
			laptopID = ss.ID
		} else {
			phoneID = ss.ID
		}
	}
	if laptopID == "" || phoneID == "" {
		t.Fatalf("current flags wrong: %+v", list.Viewer.Sessions)
	}

	revoke := `mutation($id: ID!) { revokeSession(input: {sessionId: $id}) { revokedSessionId } }`
	bob.fails("NOT_FOUND", revoke, map[string]any{"id": phoneID})
	var node struct{ Node *struct{ ID string } }
	bob.must(`query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": phoneID}, &node)
	if node.Node != nil {
		t.Errorf("bob can fetch alice's session through node(): %+v", node.Node)
	}
	alice.must(`{ viewer { id } }`, nil, nil)
	aliceLaptop.must(revoke, map[string]any{"id": phoneID}, nil)
	alice.fails("UNAUTHENTICATED", `{ viewer { id } }`, nil)
	aliceLaptop.must(`{ viewer { id } }`, nil, nil)

	third, _ := signIn(t, s, "alice@example.com", goodPassword)
	var n struct{ RevokeOtherSessions struct{ RevokedCount int } }
	aliceLaptop.must(`mutation { revokeOtherSessions { revokedCount } }`, nil, &n)
	if n.RevokeOtherSessions.RevokedCount != 1 {
		t.Errorf("revoked %d other sessions, want 1", n.RevokeOtherSessions.RevokedCount)
	}
	third.fails("UNAUTHENTICATED", `{ viewer { id } }`, nil)
	aliceLaptop.must(`mutation { signOut { clientMutationId } }`, nil, nil)
	aliceLaptop.fails("UNAUTHENTICATED", `{ viewer { id } }`, nil)
}

// A subscription opened with a session ends within seconds of the session's
// revocation.
func TestRevokedSessionEndsSubscriptions(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	phone, _ := mustSignUp(t, s, "sub@example.com")
	laptop, _ := signIn(t, s, "sub@example.com", goodPassword)

	c, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": phone.token})})
	if m := wsNext(t, c, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %s, want connection_ack", m.Type)
	}
	wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
	wsNext(t, c, 5*time.Second)

	var list struct {
		Viewer struct {
			Sessions []struct {
				ID      string
				Current bool
			}
		}
	}
	laptop.must(`{ viewer { sessions { id current } } }`, nil, &list)
	for _, ss := range list.Viewer.Sessions {
		if !ss.Current {
			laptop.must(`mutation($id: ID!) { revokeSession(input: {sessionId: $id}) { revokedSessionId } }`, map[string]any{"id": ss.ID}, nil)
		}
	}
	revoked := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatal("the subscription outlived its revoked session by 5s")
			}
			break
		}
	}
	t.Logf("subscription ended %v after the revocation", time.Since(revoked).Round(time.Millisecond))

	// A bad token in connection_init is refused at once.
	bad, _, err := wsDial(t, s.URL, "graphql-transport-ws", "")
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, bad, wsMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"token": phone.token})})
	_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m wsMessage
		if err := bad.ReadJSON(&m); err != nil {
			if !strings.Contains(err.Error(), "4401") {
				t.Errorf("revoked token in connection_init: %v, want close 4401", err)
			}
			break
		}
		if m.Type == "connection_ack" {
			t.Fatal("a revoked token was accepted in connection_init")
		}
	}
}

func TestPasswordPolicyAndHash(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := s.client(t)
	for _, tc := range []struct{ pw, reason string }{
		{"short", "TOO_SHORT"},
		{strings.Repeat("x", 129), "TOO_LONG"},
		{"password123", "COMMON"},
		{"policy@example.com", "CONTAINS_EMAIL"},
	} {
		e := c.fails("PASSWORD_WEAK", signUpMutation, map[string]any{"email": "policy@example.com", "password": tc.pw})
		if e.Extensions["reason"] != tc.reason || e.Message == "" {
			t.Errorf("password %.10q: reason %v (%q), want %s", tc.pw, e.Extensions["reason"], e.Message, tc.reason)
		}
	}

	_, id := mustSignUp(t, s, "hash@example.com")
	var stored string
	if err := s.db.NewRaw("SELECT password_hash FROM users WHERE email = 'hash@example.com'").Scan(context.Background(), &stored); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(stored, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" || parts[3] != "m=19456,t=2,p=1" {
		t.Fatalf("stored hash %q is not argon2id m=19456,t=2,p=1", stored)
	}
	if salt, err := base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) != 16 {
		t.Errorf("salt is %d bytes, want 16", len(salt))
	}

	// A hash with older parameters is upgraded at the next sign-in.
	weak, _ := password.Hash(goodPassword, password.Params{Memory: 8192, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET password_hash = ? WHERE email = 'hash@example.com'", weak); err != nil {
		t.Fatal(err)
	}
	signIn(t, s, "hash@example.com", goodPassword)
	if err := s.db.NewRaw("SELECT password_hash FROM users WHERE email = 'hash@example.com'").Scan(context.Background(), &stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("after sign-in the hash is %q, want the current parameters", stored)
	}
	_ = id
}

func TestChangePasswordEmailAndProfile(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "change@example.com")
	other, _ := signIn(t, s, "change@example.com", goodPassword)

	changePw := `mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { user { email } } }`
	me.fails("INVALID_CREDENTIALS", changePw, map[string]any{"c": "wrong password", "n": "a fresh passphrase here"})
	me.fails("PASSWORD_WEAK", changePw, map[string]any{"c": goodPassword, "n": "qwerty123"})
	me.must(changePw, map[string]any{"c": goodPassword, "n": "a fresh passphrase here"}, nil)
	other.fails("UNAUTHENTICATED", viewerQuery, nil)
	me.must(viewerQuery, nil, nil)

	changeEmail := `mutation($e: String!, $p: String!) { changeEmail(input: {newEmail: $e, password: $p}) { message } }`
	me.fails("INVALID_CREDENTIALS", changeEmail, map[string]any{"e": "new@example.com", "p": goodPassword})
	me.must(changeEmail, map[string]any{"e": "new@example.com", "p": "a fresh passphrase here"}, nil)
	if _, err := s.outbox.Latest(context.Background(), "change@example.com", "email_change_notice"); err != nil {
		t.Errorf("the old address was not told: %v", err)
	}
	var v struct{ Viewer struct{ Email, Name string } }
	me.must(viewerQuery, nil, &v)
	if v.Viewer.Email != "change@example.com" {
		t.Fatalf("email changed before the link was used: %s", v.Viewer.Email)
	}
	token := s.linkToken(t, "new@example.com", "email_change")
	s.client(t).must(`mutation($t: String!) { confirmEmailChange(input: {token: $t}) { user { email } } }`, map[string]any{"t": token}, nil)
	me.must(viewerQuery, nil, &v)
	if v.Viewer.Email != "new@example.com" {
		t.Fatalf("email after confirming: %s", v.Viewer.Email)
	}

	me.must(`mutation { updateProfile(input: {name: "  Grace Hopper "}) { user { name } } }`, nil, nil)
	me.must(viewerQuery, nil, &v)
	if v.Viewer.Name != "Grace Hopper" {
		t.Errorf("name = %q", v.Viewer.Name)
	}
	me.fails("VALIDATION", `mutation($n: String!) { updateProfile(input: {name: $n}) { user { name } } }`, map[string]any{"n": strings.Repeat("n", 101)})
	s.client(t).fails("UNAUTHENTICATED", `mutation { updateProfile(input: {name: "x"}) { user { name } } }`, nil)
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := s.client(t)
	mustSignUp(t, s, "limited@example.com")

	resend := `mutation($e: String) { resendVerification(input: {email: $e}) { message } }`
	c.must(resend, map[string]any{"e": "someone@example.com"}, nil)
	e := c.fails("RATE_LIMITED", resend, map[string]any{"e": "someone@example.com"})
	if ra, _ := e.Extensions["retryAfter"].(float64); ra < 1 || ra > 60 {
		t.Errorf("retryAfter = %v, want 1–60 seconds", e.Extensions["retryAfter"])
	}
	c.must(resend, map[string]any{"e": "someone-else@example.com"}, nil) // another address is not blocked

	for i := range 5 {
		c.fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": "limited@example.com", "password": fmt.Sprint("wrong ", i)})
	}
	e = c.fails("RATE_LIMITED", signInMutation, map[string]any{"email": "limited@example.com", "password": goodPassword})
	if ra, _ := e.Extensions["retryAfter"].(float64); ra < 800 || ra > 900 {
		t.Errorf("sign-in block retryAfter = %v, want about 15 minutes", e.Extensions["retryAfter"])
	}
	// The block is for this (email, IP): another user signs in fine.
	mustSignUp(t, s, "unaffected@example.com")
}

func TestSecurityEvents(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "events@example.com")
	s.client(t).fails("INVALID_CREDENTIALS", signInMutation, map[string]any{"email": "events@example.com", "password": "wrong wrong wrong"})

	q := `query($after: String) { viewer { securityEvents(first: 2, after: $after) {
		totalCount pageInfo { hasNextPage endCursor } edges { cursor node { kind ip userAgent createdAt } } } } }`
	var kinds []string
	var after any
	for range 10 {
		var page struct {
			Viewer struct {
				SecurityEvents struct {
					TotalCount int
					PageInfo   struct {
						HasNextPage bool
						EndCursor   string
					}
					Edges []struct{ Node struct{ Kind, IP string } }
				}
			}
		}
		me.must(q, map[string]any{"after": after}, &page)
		ev := page.Viewer.SecurityEvents
		for _, e := range ev.Edges {
			kinds = append(kinds, e.Node.Kind)
			if e.Node.IP != "127.0.0.1" {
				t.Errorf("event %s has IP %q", e.Node.Kind, e.Node.IP)
			}
		}
		if ev.TotalCount != 4 {
			t.Errorf("totalCount = %d, want 4", ev.TotalCount)
		}
		if !ev.PageInfo.HasNextPage {
			break
		}
		after = ev.PageInfo.EndCursor
	}
	want := "SIGN_IN_FAILED,SIGN_IN,EMAIL_VERIFIED,SIGN_UP"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("events newest first = %s, want %s", got, want)
	}
	me.fails("VALIDATION", `{ viewer { securityEvents(first: 1000) { totalCount } } }`, nil)
}

func TestSuspension(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	admin, _ := mustSignUp(t, s, "admin@example.com")
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'"); err != nil {
		t.Fatal(err)
	}
	user, userID := mustSignUp(t, s, "user@example.com")
	other, _ := mustSignUp(t, s, "other@example.com")

	suspend := `mutation($id: ID!) { suspendUser(input: {userId: $id, reason: "spam"}) { user { status } } }`
	other.fails("FORBIDDEN", suspend, map[string]any{"id": userID})
	var out struct {
		SuspendUser struct{ User struct{ Status string } }
	}
	admin.must(suspend, map[string]any{"id": userID}, &out)
	if out.SuspendUser.User.Status != "SUSPENDED" {
		t.Fatalf("status %q", out.SuspendUser.User.Status)
	}
	user.fails("ACCOUNT_SUSPENDED", viewerQuery, nil)
	s.client(t).fails("ACCOUNT_SUSPENDED", signInMutation, map[string]any{"email": "user@example.com", "password": goodPassword})
	admin.must(`mutation($id: ID!) { unsuspendUser(input: {userId: $id}) { user { status } } }`, map[string]any{"id": userID}, nil)
	user.fails("UNAUTHENTICATED", viewerQuery, nil) // its sessions ended with the suspension
	signIn(t, s, "user@example.com", goodPassword)
	other.must(viewerQuery, nil, nil)
}

func TestClientIPBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := start(t, cfg)
	c := s.client(t)
	c.header.Set("X-Forwarded-For", "203.0.113.9")
	c.must(signUpMutation, map[string]any{"email": "ip@example.com", "password": goodPassword}, nil)
	var ip string
	if err := s.db.NewRaw("SELECT ip FROM security_events WHERE kind = 'SIGN_UP'").Scan(context.Background(), &ip); err != nil {
		t.Fatal(err)
	}
	if ip != "127.0.0.1" {
		t.Errorf("X-Forwarded-For from an untrusted peer was believed: %s", ip)
	}
}
