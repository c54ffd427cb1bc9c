package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const contactMutation = `mutation($in: ContactSupportInput!) { contactSupport(input: $in) { message receivedAt } }`

type supportRow struct {
	UserID  *string
	Email   string
	Subject string
	Message string
}

func supportRows(t *testing.T, s *testServer) []supportRow {
	t.Helper()
	var rows []supportRow
	if err := s.db.NewRaw("SELECT user_id::text, email, subject, message FROM support_messages ORDER BY id").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestContactSupport(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Privacy.SupportEmail = "help@fastimage.example"
	s := start(t, cfg)
	ada, adaID := mustSignUp(t, s, "ada@example.com")

	// Signed in: the account's address answers, whatever email says.
	var out struct{ ContactSupport struct{ Message string } }
	ada.must(contactMutation, map[string]any{"in": map[string]any{
		"subject": "Refund?", "message": "My generation failed.\nCan I get my credits back?", "email": "someone-else@example.com",
	}}, &out)
	if !strings.Contains(out.ContactSupport.Message, "ada@example.com") {
		t.Errorf("answer %q does not say where support answers", out.ContactSupport.Message)
	}
	rows := supportRows(t, s)
	if len(rows) != 1 || rows[0].UserID == nil || *rows[0].UserID != uuidOfGlobal(t, adaID).String() || rows[0].Email != "ada@example.com" ||
		rows[0].Subject != "Refund?" || rows[0].Message != "My generation failed.\nCan I get my credits back?" {
		t.Fatalf("stored %+v", rows)
	}
	msg, err := s.outbox.Latest(context.Background(), "help@fastimage.example", "support_message")
	if err != nil {
		t.Fatal(err)
	}
	if msg.ReplyTo != "ada@example.com" || !strings.Contains(msg.Text, "ada@example.com") || !strings.Contains(msg.Text, "Can I get my credits back?") ||
		!strings.Contains(msg.Subject, "Refund?") {
		t.Errorf("support mail: reply-to %q, subject %q, text %q", msg.ReplyTo, msg.Subject, msg.Text)
	}

	// Signed out: an email address is required, then it goes through.
	anon := s.client(t)
	anon.fails("VALIDATION", contactMutation, map[string]any{"in": map[string]any{"subject": "Hi", "message": "Hello"}})
	anon.fails("VALIDATION", contactMutation, map[string]any{"in": map[string]any{"subject": "Hi", "message": "Hello", "email": "not an address"}})
	anon.fails("VALIDATION", contactMutation, map[string]any{"in": map[string]any{"subject": "", "message": "Hello", "email": "bob@example.com"}})
	anon.fails("VALIDATION", contactMutation, map[string]any{"in": map[string]any{"subject": "Hi\r\nBcc: x@example.com", "message": "Hello", "email": "bob@example.com"}})
	anon.fails("VALIDATION", contactMutation, map[string]any{"in": map[string]any{"subject": "Hi", "message": strings.Repeat("x", 10_001), "email": "bob@example.com"}})
	anon.must(contactMutation, map[string]any{"in": map[string]any{"subject": "Question", "message": "Do you have an API?", "email": "Bob@Example.com"}}, nil)
	rows = supportRows(t, s)
	if len(rows) != 2 || rows[1].UserID != nil || rows[1].Email != "bob@example.com" {
		t.Fatalf("stored %+v", rows)
	}
	if msg, err := s.outbox.Latest(context.Background(), "help@fastimage.example", "support_message"); err != nil || msg.ReplyTo != "bob@example.com" {
		t.Errorf("support mail for Bob: %+v, %v", msg, err)
	}

	// Five messages in ten minutes per IP signed out, then RATE_LIMITED.
	for range 4 {
		anon.must(contactMutation, map[string]any{"in": map[string]any{"subject": "Again", "message": "Hello", "email": "bob@example.com"}}, nil)
	}
	e := anon.fails("RATE_LIMITED", contactMutation, map[string]any{"in": map[string]any{"subject": "Again", "message": "Hello", "email": "bob@example.com"}})
	if ra, _ := e.Extensions["retryAfter"].(float64); ra < 1 {
		t.Errorf("RATE_LIMITED without retryAfter: %+v", e)
	}
	// The signed-in user has an allowance of their own: four more.
	for range 4 {
		ada.must(contactMutation, map[string]any{"in": map[string]any{"subject": "More", "message": "Hello"}}, nil)
	}
	ada.fails("RATE_LIMITED", contactMutation, map[string]any{"in": map[string]any{"subject": "More", "message": "Hello"}})
	if got := len(supportRows(t, s)); got != 2+4+4 {
		t.Errorf("%d messages stored, want 10", got)
	}
}

// supportCaptcha is a Turnstile siteverify peer: "good-support" passes for
// the support form's action.
func supportCaptcha(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		resp := map[string]any{"success": false, "error-codes": []string{"invalid-input-response"}}
		if r.PostForm.Get("response") == "good-support" {
			resp = map[string]any{"success": true, "hostname": "localhost", "action": "support", "challenge_ts": time.Now().Format(time.RFC3339)}
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestContactSupportNeedsCaptchaWhenSignedOut(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Captcha.Provider = "turnstile"
	cfg.Captcha.Secret = "test-secret"
	cfg.Captcha.Hostnames = []string{"localhost"}
	cfg.Captcha.VerifyURL = supportCaptcha(t)
	cfg.Captcha.Timeout = time.Second
	s := start(t, cfg)
	anon := s.client(t)
	in := func(token string) map[string]any {
		return map[string]any{"in": map[string]any{"subject": "Hi", "message": "Hello", "email": "bob@example.com", "captchaToken": token}}
	}
	anon.fails("CAPTCHA_REQUIRED", contactMutation, in(""))
	anon.fails("CAPTCHA_FAILED", contactMutation, in("forged"))
	if got := len(supportRows(t, s)); got != 0 {
		t.Fatalf("%d messages stored without a CAPTCHA, want 0", got)
	}
	anon.must(contactMutation, in("good-support"), nil)
	if rows := supportRows(t, s); len(rows) != 1 || rows[0].Email != "bob@example.com" {
		t.Fatalf("stored %+v", rows)
	}
	// The default support address is at the public URL's host.
	if _, err := s.outbox.Latest(context.Background(), "support@localhost", "support_message"); err != nil {
		t.Error(err)
	}
}
