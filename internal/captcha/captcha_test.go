package captcha_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/captcha"
)

const (
	testSecret  = "0xTEST-secret-do-not-leak"
	testSiteKey = "10000000-ffff-ffff-ffff-000000000001"
	testToken   = "XXXX.TEST.TOKEN.XXXX"
	testHost    = "fastimage.app"
)

// siteverify fakes a provider's siteverify endpoint: it checks the request
// the way the provider would need it, records the form, and lets reply
// write the answer.
type siteverify struct {
	URL   string
	calls atomic.Int32

	mu   sync.Mutex
	form url.Values
}

func newSiteverify(t *testing.T, p captcha.Provider, reply http.HandlerFunc) *siteverify {
	t.Helper()
	sv := &siteverify{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sv.calls.Add(1)
		if r.Method != http.MethodPost {
			t.Errorf("method: got %v, want POST", r.Method)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type: got %v, want application/x-www-form-urlencoded", ct)
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		if got := r.PostForm.Get("secret"); got != testSecret {
			t.Errorf("secret: got %q, want %q", got, testSecret)
		}
		if got := r.PostForm.Get("response"); got != testToken {
			t.Errorf("response: got %q, want %q", got, testToken)
		}
		wantSiteKey := ""
		if p == captcha.HCaptcha {
			wantSiteKey = testSiteKey
		}
		if got := r.PostForm.Get("sitekey"); got != wantSiteKey {
			t.Errorf("sitekey: got %q, want %q", got, wantSiteKey)
		}
		sv.mu.Lock()
		sv.form = r.PostForm
		sv.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	sv.URL = srv.URL
	return sv
}

func (sv *siteverify) remoteIP() string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.form.Get("remoteip")
}

// answer replies with status and body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hang never answers; it returns once the client gives up so that the
// server can close.
func hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// okAnswer is a successful answer as provider p writes it; hCaptcha has no
// action.
func okAnswer(p captcha.Provider, hostname, action string) string {
	if p == captcha.HCaptcha {
		return fmt.Sprintf(`{"success":true,"challenge_ts":"2026-01-02T03:04:05Z","hostname":%q,"credit":false,"error-codes":[]}`, hostname)
	}
	return fmt.Sprintf(`{"success":true,"challenge_ts":"2026-01-02T03:04:05.678Z","hostname":%q,"error-codes":[],"action":%q,"cdata":""}`, hostname, action)
}

func newVerifier(t *testing.T, p captcha.Provider, verifyURL string, timeout time.Duration) captcha.Verifier {
	t.Helper()
	v, err := captcha.New(captcha.Config{
		Provider:  p,
		Secret:    testSecret,
		SiteKey:   testSiteKey,
		VerifyURL: verifyURL,
		Hostnames: []string{"other.example", testHost},
		Timeout:   timeout,
	})
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	return v
}

// wantFailed fails the test unless err is an *apperr.Error with code Failed
// whose text does not reveal the secret.
func wantFailed(t *testing.T, err error) {
	t.Helper()
	var e *apperr.Error
	if !errors.As(err, &e) {
		t.Fatalf("error: got %v (%T), want an *apperr.Error", err, err)
	}
	if e.Code != captcha.Failed {
		t.Errorf("code: got %v, want %v", e.Code, captcha.Failed)
	}
	if e.Message == "" {
		t.Errorf("message: got empty, want a sentence for the user")
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Errorf("error text: got %q, want it without the secret", err.Error())
	}
}

func TestVerify(t *testing.T) {
	type verifyCase struct {
		name     string
		provider captcha.Provider
		token    string
		remoteIP string
		action   string
		reply    http.HandlerFunc

		wantOK       bool
		wantCalls    int32
		wantRemoteIP string
	}
	var cases []verifyCase
	for _, p := range []captcha.Provider{captcha.Turnstile, captcha.HCaptcha} {
		ok := answer(http.StatusOK, okAnswer(p, testHost, "signup"))
		for _, c := range []verifyCase{
			{name: "success", token: testToken, remoteIP: "203.0.113.7", reply: ok,
				wantOK: true, wantCalls: 1, wantRemoteIP: "203.0.113.7"},
			{name: "hostname differs only in case", token: testToken, reply: answer(http.StatusOK, okAnswer(p, "FastImage.APP", "signup")),
				wantOK: true, wantCalls: 1},
			{name: "remote address with port", token: testToken, remoteIP: "[2001:db8::1]:52100", reply: ok,
				wantOK: true, wantCalls: 1, wantRemoteIP: "2001:db8::1"},
			{name: "remote address not an IP is left out", token: testToken, remoteIP: "unknown", reply: ok,
				wantOK: true, wantCalls: 1, wantRemoteIP: ""},
			{name: "refused with error-codes", token: testToken, reply: answer(http.StatusOK, `{"success":false,"hostname":"fastimage.app","action":"signup","error-codes":["timeout-or-duplicate"]}`),
				wantCalls: 1},
			{name: "refused for a bad secret", token: testToken, reply: answer(http.StatusOK, `{"success":false,"hostname":"fastimage.app","action":"signup","error-codes":["invalid-input-secret"]}`),
				wantCalls: 1},
			{name: "hostname not allowed", token: testToken, reply: answer(http.StatusOK, okAnswer(p, "evil.example", "signup")),
				wantCalls: 1},
			{name: "hostname missing", token: testToken, reply: answer(http.StatusOK, okAnswer(p, "", "signup")),
				wantCalls: 1},
			{name: "status 500", token: testToken, reply: answer(http.StatusInternalServerError, `{"success":false}`),
				wantCalls: 1},
			{name: "status 502 with a success body", token: testToken, reply: answer(http.StatusBadGateway, okAnswer(p, testHost, "signup")),
				wantCalls: 1},
			{name: "garbage JSON", token: testToken, reply: answer(http.StatusOK, `<html>502 Bad Gateway</html>`),
				wantCalls: 1},
			{name: "JSON null", token: testToken, reply: answer(http.StatusOK, `null`),
				wantCalls: 1},
			{name: "answer too large", token: testToken, reply: answer(http.StatusOK,
				okAnswer(p, testHost, "signup")+strings.Repeat(" ", 70<<10)),
				wantCalls: 1},
			{name: "empty token", token: "", reply: ok, wantCalls: 0},
			{name: "blank token", token: "  ", reply: ok, wantCalls: 0},
			{name: "oversized token", token: strings.Repeat("x", 17<<10), reply: ok, wantCalls: 0},
		} {
			c.name = string(p) + "/" + c.name
			c.provider = p
			c.action = "signup"
			cases = append(cases, c)
		}
	}
	cases = append(cases,
		verifyCase{name: "turnstile/action mismatch", provider: captcha.Turnstile, token: testToken, action: "signup",
			reply: answer(http.StatusOK, okAnswer(captcha.Turnstile, testHost, "login")), wantCalls: 1},
		verifyCase{name: "turnstile/action missing", provider: captcha.Turnstile, token: testToken, action: "signup",
			reply: answer(http.StatusOK, okAnswer(captcha.Turnstile, testHost, "")), wantCalls: 1},
		verifyCase{name: "turnstile/any action when none expected", provider: captcha.Turnstile, token: testToken, action: "",
			reply: answer(http.StatusOK, okAnswer(captcha.Turnstile, testHost, "login")), wantOK: true, wantCalls: 1},
		verifyCase{name: "hcaptcha/expected action ignored", provider: captcha.HCaptcha, token: testToken, action: "checkout",
			reply: answer(http.StatusOK, okAnswer(captcha.HCaptcha, testHost, "")), wantOK: true, wantCalls: 1},
	)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sv := newSiteverify(t, tc.provider, tc.reply)
			v := newVerifier(t, tc.provider, sv.URL, 0)

			err := v.Verify(t.Context(), tc.token, tc.remoteIP, tc.action)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("Verify: got %v, want nil", err)
				}
			} else {
				wantFailed(t, err)
			}
			if got := sv.calls.Load(); got != tc.wantCalls {
				t.Errorf("calls to siteverify: got %v, want %v", got, tc.wantCalls)
			}
			if tc.wantCalls > 0 {
				if got := sv.remoteIP(); got != tc.wantRemoteIP {
					t.Errorf("remoteip: got %q, want %q", got, tc.wantRemoteIP)
				}
			}
		})
	}
}

func TestVerifyGivesUpOnSlowProvider(t *testing.T) {
	tests := []struct {
		name       string
		provider   captcha.Provider
		timeout    time.Duration // the verifier's own
		ctxTimeout time.Duration // the caller's; 0 for none
	}{
		{"turnstile/own timeout", captcha.Turnstile, 200 * time.Millisecond, 0},
		{"hcaptcha/own timeout", captcha.HCaptcha, 200 * time.Millisecond, 0},
		{"turnstile/caller deadline", captcha.Turnstile, 5 * time.Second, 200 * time.Millisecond},
		{"hcaptcha/caller deadline", captcha.HCaptcha, 5 * time.Second, 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sv := newSiteverify(t, tc.provider, hang)
			v := newVerifier(t, tc.provider, sv.URL, tc.timeout)
			ctx := t.Context()
			if tc.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
				defer cancel()
			}

			start := time.Now()
			err := v.Verify(ctx, testToken, "", "signup")
			elapsed := time.Since(start)

			wantFailed(t, err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("cause: got %v, want context.DeadlineExceeded in the chain", err)
			}
			if elapsed > 2*time.Second {
				t.Errorf("Verify took %v, want about 200ms", elapsed)
			}
		})
	}
}

func TestVerifyProviderUnreachable(t *testing.T) {
	for _, p := range []captcha.Provider{captcha.Turnstile, captcha.HCaptcha} {
		t.Run(string(p), func(t *testing.T) {
			srv := httptest.NewServer(http.NotFoundHandler())
			srv.Close() // nothing listens at srv.URL any more
			v := newVerifier(t, p, srv.URL, time.Second)

			wantFailed(t, v.Verify(t.Context(), testToken, "203.0.113.7", "signup"))
		})
	}
}

// roundTripFunc lets a test see the request without a network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewDefaultVerifyURL(t *testing.T) {
	tests := []struct {
		provider captcha.Provider
		want     string
	}{
		{captcha.Turnstile, "https://challenges.cloudflare.com/turnstile/v0/siteverify"},
		{captcha.HCaptcha, "https://api.hcaptcha.com/siteverify"},
	}
	for _, tc := range tests {
		t.Run(string(tc.provider), func(t *testing.T) {
			var got string
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = r.URL.String()
				return &http.Response{
					StatusCode: http.StatusOK,
					Header:     http.Header{"Content-Type": {"application/json"}},
					Body:       io.NopCloser(strings.NewReader(okAnswer(tc.provider, testHost, "signup"))),
					Request:    r,
				}, nil
			})}
			v, err := captcha.New(captcha.Config{
				Provider:   tc.provider,
				Secret:     testSecret,
				SiteKey:    testSiteKey,
				Hostnames:  []string{testHost},
				HTTPClient: client,
			})
			if err != nil {
				t.Fatalf("New: got %v, want nil", err)
			}
			if err := v.Verify(t.Context(), testToken, "", "signup"); err != nil {
				t.Fatalf("Verify: got %v, want nil", err)
			}
			if got != tc.want {
				t.Errorf("verify URL: got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	valid := func(p captcha.Provider) captcha.Config {
		return captcha.Config{Provider: p, Secret: testSecret, SiteKey: testSiteKey, Hostnames: []string{testHost}}
	}
	tests := []struct {
		name    string
		edit    func(*captcha.Config)
		base    captcha.Provider
		wantErr bool
	}{
		{"turnstile", func(*captcha.Config) {}, captcha.Turnstile, false},
		{"hcaptcha", func(*captcha.Config) {}, captcha.HCaptcha, false},
		{"turnstile without site key", func(c *captcha.Config) { c.SiteKey = "" }, captcha.Turnstile, false},
		{"several hostnames", func(c *captcha.Config) { c.Hostnames = []string{"a.example", " B.example "} }, captcha.Turnstile, false},
		{"custom verify URL", func(c *captcha.Config) { c.VerifyURL = "http://127.0.0.1:8080/siteverify" }, captcha.HCaptcha, false},
		{"unknown provider", func(c *captcha.Config) { c.Provider = "recaptcha" }, captcha.Turnstile, true},
		{"no provider", func(c *captcha.Config) { c.Provider = "" }, captcha.Turnstile, true},
		{"empty secret", func(c *captcha.Config) { c.Secret = "" }, captcha.Turnstile, true},
		{"blank secret", func(c *captcha.Config) { c.Secret = " \n" }, captcha.HCaptcha, true},
		{"hcaptcha without site key", func(c *captcha.Config) { c.SiteKey = "" }, captcha.HCaptcha, true},
		{"no hostnames", func(c *captcha.Config) { c.Hostnames = nil }, captcha.Turnstile, true},
		{"blank hostname", func(c *captcha.Config) { c.Hostnames = []string{testHost, ""} }, captcha.Turnstile, true},
		{"hostname as URL", func(c *captcha.Config) { c.Hostnames = []string{"https://fastimage.app"} }, captcha.Turnstile, true},
		{"hostname with port", func(c *captcha.Config) { c.Hostnames = []string{"fastimage.app:443"} }, captcha.HCaptcha, true},
		{"negative timeout", func(c *captcha.Config) { c.Timeout = -time.Second }, captcha.Turnstile, true},
		{"relative verify URL", func(c *captcha.Config) { c.VerifyURL = "/siteverify" }, captcha.Turnstile, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid(tc.base)
			tc.edit(&cfg)
			v, err := captcha.New(cfg)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("New error: got %v, want error %v", err, tc.wantErr)
			}
			if err == nil && v == nil {
				t.Errorf("New: got nil Verifier, want one")
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Errorf("New error: got %q, want it without the secret", err)
			}
		})
	}
}
