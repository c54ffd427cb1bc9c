package browsertest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The page is sent with a Content-Security-Policy that allows no inline
// script and no eval, and the browser holds to it: a script or an event
// handler injected into the page does not run, and the violation is
// reported.
func TestContentSecurityPolicyHolds(t *testing.T) {
	t.Parallel()
	svc := startService(t, serviceOptions{})
	tb := openTab(t, svc)

	resp, err := chromedp.Run(tb.ctx, chromedp.NavigateResponse(svc.URL+"/"))
	if err != nil {
		tb.fatalf("load /: %v", err)
	}
	var csp string
	for k, v := range resp.Headers {
		if strings.EqualFold(k, "Content-Security-Policy") {
			csp = fmt.Sprint(v)
		}
	}
	t.Logf("Content-Security-Policy: %s", csp)
	if csp == "" {
		t.Fatalf("the page at / has no Content-Security-Policy header")
	}
	directives := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			directives[strings.ToLower(f[0])] = f[1:]
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "unsafe-hashes") {
		t.Errorf("the CSP allows inline code or eval: %s", csp)
	}
	scripts, ok := directives["script-src"]
	if !ok {
		scripts, ok = directives["default-src"]
	}
	if !ok {
		t.Errorf("the CSP limits no script source (neither script-src nor default-src): %s", csp)
	}
	for _, s := range scripts {
		if s != "'self'" && !strings.HasPrefix(s, "'nonce-") && !strings.HasPrefix(s, "'sha") && s != "'strict-dynamic'" {
			t.Errorf("script-src allows %s; want only 'self' (or nonces/hashes)", s)
		}
	}
	if got := directives["frame-ancestors"]; len(got) != 1 || got[0] != "'none'" {
		t.Errorf("frame-ancestors is %v, want 'none' (the editor is never framed)", got)
	}
	tb.waitVisible("#signin-form")

	eval[bool](tb, `(() => {
		window.__violations = [];
		document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective));
		return true;
	})()`)
	reported := tb.expectProblems(regexp.MustCompile(`Content Security Policy`))
	eval[bool](tb, `(() => {
		const s = document.createElement("script");
		s.textContent = "window.__injected = true;";
		document.body.append(s);
		const b = document.createElement("button");
		b.setAttribute("onclick", "window.__clicked = true;");
		document.body.append(b);
		b.click();
		return true;
	})()`)
	tb.waitFor("two CSP violations (the script and the handler)", `window.__violations.length >= 2`, 5*time.Second)
	if ran := eval[bool](tb, `window.__injected === true || window.__clicked === true`); ran {
		t.Errorf("injected inline code ran despite the CSP")
	}
	violations := eval[[]string](tb, `window.__violations`)
	for _, v := range violations {
		if !strings.HasPrefix(v, "script-src") {
			t.Errorf("violated directive %q, want script-src (script-src-elem / script-src-attr)", v)
		}
	}
	msgs := reported()
	if len(msgs) == 0 {
		t.Errorf("the browser reported no CSP violation in the console")
	}
	for _, m := range msgs {
		t.Logf("reported: %s", m)
	}
}
