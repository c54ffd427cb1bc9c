// Package captcha checks, on the server, the CAPTCHA tokens that browsers
// obtain from Cloudflare Turnstile or hCaptcha, and fails closed: anything
// short of a clear "yes" from the provider is a refusal.
package captcha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fastimage/api/internal/apperr"
)

// Failed is the code of every refusal Verify returns.
const Failed = apperr.CaptchaFailed

// Provider names a CAPTCHA service.
type Provider string

// The providers New accepts.
const (
	Turnstile Provider = "turnstile"
	HCaptcha  Provider = "hcaptcha"
)

// The providers' public siteverify endpoints, used when Config.VerifyURL is
// empty.
const (
	TurnstileVerifyURL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
	HCaptchaVerifyURL  = "https://api.hcaptcha.com/siteverify"
)

// DefaultTimeout bounds one verification when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Limits on what we send and read. Real tokens are a few KiB at most
// (Turnstile's are at most 2048 characters) and real answers a few hundred
// bytes; anything larger is not worth forwarding or parsing.
const (
	maxTokenBytes  = 16 << 10
	maxAnswerBytes = 64 << 10
)

// Messages shown to users. A token is single-use, so whatever went wrong the
// user needs a fresh one.
const (
	msgMissing     = "Complete the CAPTCHA, then submit again."
	msgRejected    = "The CAPTCHA was not accepted. Complete it again and resubmit."
	msgUnavailable = "We could not check the CAPTCHA just now. Complete it again and resubmit in a moment."
)

// Verifier checks a CAPTCHA token a browser obtained.
type Verifier interface {
	// Verify returns nil only when the provider confirms token for one of
	// the allowed hostnames (and, for Turnstile, for expectedAction when it
	// is not empty). remoteIP is the user's address, "" when unknown.
	// Every failure is an *apperr.Error with code Failed.
	Verify(ctx context.Context, token, remoteIP, expectedAction string) error
}

// Config configures New.
type Config struct {
	// Provider is Turnstile or HCaptcha.
	Provider Provider
	// Secret is the provider's secret key. It is sent only in the request
	// body and never appears in errors.
	Secret string
	// SiteKey is the public site key. hCaptcha requires it so that tokens
	// minted for another site key are refused; Turnstile ignores it.
	SiteKey string
	// VerifyURL overrides the provider's siteverify endpoint (for tests).
	VerifyURL string
	// Hostnames lists the bare host names (e.g. "fastimage.app") whose
	// tokens are accepted; comparison ignores case. A token solved on any
	// other site that embeds our site key is refused.
	Hostnames []string
	// Timeout bounds one verification; zero means DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the requests; nil means a client of our own using
	// http.DefaultTransport. Its own Timeout, if any, also applies.
	HTTPClient *http.Client
}

type verifier struct {
	provider  Provider
	secret    string
	siteKey   string
	verifyURL string
	hostnames []string // lower case
	timeout   time.Duration
	client    *http.Client
}

// New returns a Verifier for cfg. It reports every problem in cfg at once:
// an unknown provider, an empty secret, a missing hCaptcha site key, no (or
// malformed) hostnames, a negative timeout or an unusable VerifyURL.
func New(cfg Config) (Verifier, error) {
	var problems []error
	v := &verifier{
		provider:  cfg.Provider,
		secret:    strings.TrimSpace(cfg.Secret),
		siteKey:   strings.TrimSpace(cfg.SiteKey),
		verifyURL: cfg.VerifyURL,
		timeout:   cfg.Timeout,
		client:    cfg.HTTPClient,
	}

	switch cfg.Provider {
	case Turnstile:
		if v.verifyURL == "" {
			v.verifyURL = TurnstileVerifyURL
		}
	case HCaptcha:
		if v.verifyURL == "" {
			v.verifyURL = HCaptchaVerifyURL
		}
		if v.siteKey == "" {
			problems = append(problems, errors.New("hcaptcha needs a site key"))
		}
	default:
		problems = append(problems, fmt.Errorf("unknown provider %q (want %q or %q)", cfg.Provider, Turnstile, HCaptcha))
	}

	if v.secret == "" {
		problems = append(problems, errors.New("secret is empty"))
	}

	if u, err := url.Parse(v.verifyURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Errorf("verify URL %q is not an absolute http(s) URL", v.verifyURL))
	}

	for _, h := range cfg.Hostnames {
		h = strings.ToLower(strings.TrimSpace(h))
		// The provider reports a bare host name, so a URL or host:port here
		// would never match and every user would be refused.
		if h == "" || strings.ContainsAny(h, "/: ") {
			problems = append(problems, fmt.Errorf("hostname %q: want a bare host name such as example.com", h))
			continue
		}
		v.hostnames = append(v.hostnames, h)
	}
	if len(cfg.Hostnames) == 0 {
		problems = append(problems, errors.New("no hostnames: list the host names whose tokens to accept"))
	}

	switch {
	case v.timeout < 0:
		problems = append(problems, fmt.Errorf("timeout %v is negative", v.timeout))
	case v.timeout == 0:
		v.timeout = DefaultTimeout
	}

	if v.client == nil {
		v.client = &http.Client{}
	}

	if len(problems) > 0 {
		return nil, fmt.Errorf("captcha config: %w", errors.Join(problems...))
	}
	return v, nil
}

// answer is the JSON both providers return; hCaptcha never sets Action.
type answer struct {
	Success     bool     `json:"success"`
	Hostname    string   `json:"hostname"`
	ChallengeTS string   `json:"challenge_ts"`
	ErrorCodes  []string `json:"error-codes"`
	Action      string   `json:"action"`
}

// Verify asks the provider about token. It returns Failed when the token is
// empty or oversized (without calling the provider), when the provider
// refuses it, reports another hostname or (Turnstile) another action, and
// when the provider cannot be reached or answers with anything but a 2xx
// JSON answer within the timeout.
func (v *verifier) Verify(ctx context.Context, token, remoteIP, expectedAction string) error {
	if strings.TrimSpace(token) == "" {
		return apperr.Errorf(Failed, msgMissing)
	}
	if len(token) > maxTokenBytes {
		return apperr.Wrap(fmt.Errorf("token is %d bytes, over %d", len(token), maxTokenBytes), Failed, msgRejected)
	}

	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()

	ans, err := v.ask(ctx, token, remoteIP)
	if err != nil {
		return apperr.Wrap(err, Failed, msgUnavailable)
	}
	if err := v.check(ans, expectedAction); err != nil {
		return apperr.Wrap(err, Failed, msgRejected)
	}
	return nil
}

// ask posts the token to the siteverify endpoint and decodes the answer.
// Its errors never contain the secret: the secret travels only in the body.
func (v *verifier) ask(ctx context.Context, token, remoteIP string) (answer, error) {
	form := url.Values{}
	form.Set("secret", v.secret)
	form.Set("response", token)
	if ip, ok := cleanIP(remoteIP); ok {
		form.Set("remoteip", ip)
	}
	if v.provider == HCaptcha {
		form.Set("sitekey", v.siteKey)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.verifyURL, strings.NewReader(form.Encode()))
	if err != nil {
		return answer{}, fmt.Errorf("%s siteverify: build request: %w", v.provider, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := v.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s siteverify: %w", v.provider, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, fmt.Errorf("%s siteverify: read answer: %w", v.provider, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answer{}, fmt.Errorf("%s siteverify: status %d", v.provider, resp.StatusCode)
	}
	if len(body) > maxAnswerBytes {
		return answer{}, fmt.Errorf("%s siteverify: answer larger than %d bytes", v.provider, maxAnswerBytes)
	}
	var ans answer
	if err := json.Unmarshal(body, &ans); err != nil {
		return answer{}, fmt.Errorf("%s siteverify: decode answer: %w", v.provider, err)
	}
	return ans, nil
}

// check applies our own rules on top of the provider's verdict.
func (v *verifier) check(ans answer, expectedAction string) error {
	if !ans.Success {
		// Codes such as invalid-input-secret mean our setup is wrong, not
		// the user; keep them in the cause so the log shows them.
		return fmt.Errorf("%s siteverify: refused, error-codes %q", v.provider, ans.ErrorCodes)
	}
	if !slices.Contains(v.hostnames, strings.ToLower(ans.Hostname)) {
		return fmt.Errorf("%s siteverify: hostname %q is not allowed", v.provider, ans.Hostname)
	}
	// hCaptcha has no actions, so a caller may pass the same expectedAction
	// whichever provider is configured.
	if v.provider == Turnstile && expectedAction != "" && ans.Action != expectedAction {
		return fmt.Errorf("%s siteverify: action %q, want %q", v.provider, ans.Action, expectedAction)
	}
	return nil
}

// cleanIP returns the address in s, accepting "ip" or "ip:port" (as in
// http.Request.RemoteAddr). The address is only a hint to the provider, so a
// value that does not parse is left out rather than refused.
func cleanIP(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String(), true
	}
	return "", false
}
