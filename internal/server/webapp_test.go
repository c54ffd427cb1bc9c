package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The editor's page is served at / and at the paths emailed links open,
// always with a Content-Security-Policy that allows no inline script or
// style and no eval.
func TestWebEditorPage(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	for _, path := range []string{"/", "/verify-email?token=abc", "/reset-password?token=abc", "/confirm-email?token=abc"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("GET %s: %d %q, want 200 text/html", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(string(body), `<script type="module" src="/static/js/app.js"></script>`) {
			t.Errorf("GET %s: the page does not load the editor's module", path)
		}
		for _, inline := range []string{"<style", " style=", " onclick=", " onload=", "<script>"} {
			if strings.Contains(string(body), inline) {
				t.Errorf("GET %s: the page has inline code or style (%q), which its CSP refuses", path, inline)
			}
		}
		checkCSP(t, path, resp.Header.Get("Content-Security-Policy"))
		if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q, want no-referrer (links carry tokens)", path, got)
		}
		if resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q, want an ETag and no-cache", path, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
		}
	}
}

func checkCSP(t *testing.T, path, csp string) {
	t.Helper()
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for _, name := range []string{"default-src", "script-src", "style-src", "img-src", "connect-src", "frame-ancestors", "base-uri"} {
		if _, ok := directives[name]; !ok {
			t.Errorf("GET %s: CSP %q lacks %s", path, csp, name)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
		t.Errorf("GET %s: CSP %q allows inline code, eval or any host", path, csp)
	}
	if directives["script-src"] != "'self'" || directives["style-src"] != "'self'" || directives["frame-ancestors"] != "'none'" {
		t.Errorf("GET %s: CSP %q, want script-src and style-src 'self', frame-ancestors 'none'", path, csp)
	}
}

// The editor's files are served with their types, a CSP, an ETag that
// answers 304, and a coded 404 for a file that does not exist.
func TestWebEditorFiles(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	for path, want := range map[string]string{
		"/static/app.css":     "text/css; charset=utf-8",
		"/static/js/app.js":   "text/javascript; charset=utf-8",
		"/static/js/api.js":   "text/javascript; charset=utf-8",
		"/static/js/live.js":  "text/javascript; charset=utf-8",
		"/static/favicon.svg": "image/svg+xml",
	} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != want || len(body) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), want)
			continue
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
		checkCSP(t, path, resp.Header.Get("Content-Security-Policy"))
		etag := resp.Header.Get("ETag")
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		req.Header.Set("If-None-Match", etag)
		again, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if etag == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q: %d, want 304", path, etag, again.StatusCode)
		}
	}
	for _, path := range []string{"/static/js/nothing.js", "/static/", "/static/index.html", "/static/../go.mod", "/nothing"} {
		resp, out := do(t, mustRequest(t, http.MethodGet, s.URL+path))
		if resp.StatusCode != http.StatusNotFound || out.code() != "NOT_FOUND" {
			t.Errorf("GET %s: %d %q, want 404 NOT_FOUND", path, resp.StatusCode, out.code())
		}
	}
	// Programs still find their way from /api.
	resp, err := http.Get(s.URL + "/api")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /api: %d %q, want the JSON index", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
