package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The legal documents the API lists (the built-in ones) are published where
// their URLs say, as pages without inline code or style, under a CSP that
// allows none; the privacy policy lists who receives data on this server.
func TestLegalPagesAreServedWhereTheDocumentsSay(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	var docs struct {
		LegalDocuments []struct{ Kind, Version, URL string }
	}
	res := query(t, s.URL, `{ legalDocuments { kind version url } }`)
	if len(res.Errors) > 0 {
		t.Fatalf("legalDocuments: %v", res.Errors)
	}
	if err := json.Unmarshal(res.Data, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs.LegalDocuments) != 2 {
		t.Fatalf("legalDocuments: %+v, want the privacy policy and the terms", docs.LegalDocuments)
	}
	want := map[string]string{
		"PRIVACY_POLICY": "This Privacy Policy explains how FastImage (localhost:8080) collects",
		"TERMS":          "These Terms of Service govern your use of FastImage (localhost:8080)",
	}
	for _, d := range docs.LegalDocuments {
		u, err := url.Parse(d.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(s.URL + u.Path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(raw)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("GET %s: %d %q, want 200 text/html", u.Path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(body, want[d.Kind]) {
			t.Errorf("GET %s: the %s text is not there", u.Path, d.Kind)
		}
		if !strings.Contains(body, `data-version="`+d.Version+`"`) {
			t.Errorf("GET %s: the page does not show version %s, the one legalDocuments lists", u.Path, d.Version)
		}
		for _, inline := range []string{"<style", " style=", "<script", " onclick=", " onload="} {
			if strings.Contains(body, inline) {
				t.Errorf("GET %s: the page has inline code or style (%q)", u.Path, inline)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
			!strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q, want default-src 'none', frame-ancestors 'none' and nothing unsafe", u.Path, csp)
		}
		if d.Kind == "PRIVACY_POLICY" {
			// The test server has no Stripe, SMTP or remote AI provider: the
			// list says so rather than naming them.
			_, list, _ := strings.Cut(body, `<ul id="processors">`)
			list, _, _ = strings.Cut(list, "</ul>")
			if !strings.Contains(list, "None") || strings.Contains(list, "Stripe") {
				t.Errorf("GET %s: processors %q, want none listed (this server sends data to nobody)", u.Path, list)
			}
		}
		// Its stylesheet is one of the editor's files, allowed by style-src 'self'.
		css, err := http.Get(s.URL + "/static/legal.css")
		if err != nil {
			t.Fatal(err)
		}
		css.Body.Close()
		if css.StatusCode != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
			t.Errorf("GET /static/legal.css: %d %q, want 200 text/css", css.StatusCode, css.Header.Get("Content-Type"))
		}
	}
}

// Stripe sends the browser back to paths (a return URL may not carry a
// fragment); they lead to the editor's screens, with the query, and
// nowhere else.
func TestCheckoutReturnPathsLeadToTheScreens(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]string{
		"/buy?checkout=success&session_id=cs_test_123": "/#/buy?checkout=success&session_id=cs_test_123",
		"/buy?checkout=canceled":                       "/#/buy?checkout=canceled",
		"/buy":                                         "/#/buy",
		"/account":                                     "/#/account",
		"/buy?next=//elsewhere.example/":               "/#/buy?next=%2F%2Felsewhere.example%2F",
		"/buy?" + strings.Repeat("a=1&", 300):          "/#/buy",
	} {
		resp, err := client.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("GET %.60s: %d to %q, want 303 to %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}
