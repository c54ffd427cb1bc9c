package browsertest

import (
	"strings"
	"testing"
	"time"
)

// The account screen lists the user's sessions with this one marked, and
// signs another one out; the buy screen says plainly that payments are not
// set up on a server without them, and offers nothing to press.
func TestAccountAndBuyScreens(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{})
	svc.signUpVerified(t, "barbara@example.com", "Barbara Liskov")
	tb := openTab(t, svc)
	signIn(tb, "barbara@example.com")

	tb.click(`#nav a[href="#/account"]`)
	for _, sel := range []string{"#profile", "#sessions", "#security-events", "#api-keys", "#privacy", "#legal"} {
		tb.waitVisible(sel)
	}
	// The API's sign-in and the browser's: two sessions, this one marked.
	tb.waitFor("both sessions listed", `document.querySelectorAll("#sessions .session").length === 2`, 10*time.Second)
	if n := tb.count(`#sessions .session[data-current="true"]`); n != 1 {
		t.Errorf("%d sessions marked as this one, want 1", n)
	}
	if got := tb.text(`#sessions .session[data-current="true"]`); got == "" {
		t.Errorf("the current session's row shows no text")
	}
	if n := tb.count(`#sessions .session[data-current="true"] .revoke`); n != 0 {
		t.Errorf("the current session offers to revoke itself (%d buttons); signing out does that", n)
	}
	tb.screens("account")

	tb.click(`#sessions .session[data-current="false"] .revoke`)
	one := `document.querySelectorAll("#sessions .session").length === 1`
	confirmIfAsked(tb, one)
	tb.waitFor("the other session to leave the list", one, 10*time.Second)
	var revoked int
	svc.scan(t, `SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL`, nil, &revoked)
	if revoked != 1 {
		t.Errorf("%d sessions revoked in the database, want the other one", revoked)
	}

	tb.click(`#nav a[href="#/buy"]`)
	tb.waitFor("#payments-off with its sentence", visibleJS("#payments-off")+` && document.querySelector("#payments-off").innerText.trim() !== ""`, 10*time.Second)
	if got := tb.text("#payments-off"); !strings.Contains(strings.ToLower(got), "payment") {
		t.Errorf("#payments-off says %q, want it to say payments are not set up", got)
	}
	if n := eval[int](tb, `[...document.querySelectorAll("button.buy")].filter((b) => !b.disabled).length`); n != 0 {
		t.Errorf("%d .buy buttons can be pressed while payments are off, want none", n)
	}
	tb.screens("buy")
}
