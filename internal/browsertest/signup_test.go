package browsertest

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// A new user signs up, finds the verification email in the development
// outbox, follows its link, confirms with the button, signs in and lands in
// the editor with the sign-up bonus — without reading any docs.
func TestSignUpThroughTheOutboxLink(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{})
	tb := openTab(t, svc)

	tb.goTo("/")
	tb.waitVisible("#signin-form") // signed out: / is the sign-in screen
	tb.screens("signin")
	tb.click(`a[href="#/signup"]`)
	tb.waitVisible("#signup-form")
	tb.waitFor("the legal documents to link from the accept box", `document.querySelectorAll("#signup-form label a").length > 0`, 5*time.Second)
	tb.screens("signup")
	tb.typeInto("#signup-name", "Ada Lovelace")
	tb.typeInto("#signup-email", "ada@example.com")
	tb.typeInto("#signup-password", password)
	tb.click("#signup-accept")
	tb.click("#signup-form button[type=submit]")
	tb.waitVisible("#signup-done")
	tb.screens("signup-done")
	if got := tb.text("#signup-done"); !regexp.MustCompile(`(?i)inbox|email`).MatchString(got) {
		t.Errorf("#signup-done says %q, want it to tell the user to check their email", got)
	}

	// In development the notice links to the outbox, where the mail is.
	tb.click(`#signup-done a[href="/dev/outbox"]`)
	tb.waitFor("the verification email in the outbox", `document.querySelector('a[href*="/verify-email?token="]')`, 10*time.Second)
	tb.screens("outbox")
	if got := tb.text("body"); !strings.Contains(got, "ada@example.com") {
		t.Errorf("the outbox does not show the mail to ada@example.com:\n%s", got)
	}
	tb.click(`a[href*="/verify-email?token="]`)

	// Opening the link uses nothing; the button does.
	tb.waitVisible("#verify-form")
	tb.screens("verify")
	var verified bool
	svc.scan(t, `SELECT email_verified_at IS NOT NULL FROM users WHERE email = 'ada@example.com'`, nil, &verified)
	if verified {
		t.Errorf("opening the link verified the address; only pressing the button may")
	}
	tb.click("#verify-form button[type=submit]")
	tb.waitFor("#verify-result to say the email is confirmed", `document.querySelector('#verify-result[data-ok="true"]')`, 10*time.Second)
	tb.screens("verified")
	svc.scan(t, `SELECT email_verified_at IS NOT NULL FROM users WHERE email = 'ada@example.com'`, nil, &verified)
	if !verified {
		t.Errorf("the button did not verify the address")
	}

	tb.click("#verify-result a")
	tb.waitVisible("#signin-form")
	tb.typeInto("#signin-email", "ada@example.com")
	tb.typeInto("#signin-password", password)
	tb.click("#signin-form button[type=submit]")
	tb.waitVisible("#generate-form")
	tb.waitVisible("#nav")
	if got := balance(tb); got != 25 {
		t.Errorf("credits badge shows %d after sign-up, want the 25 credits of the sign-up bonus", got)
	}
	tb.screens("editor")
}
