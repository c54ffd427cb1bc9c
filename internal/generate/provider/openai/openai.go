// Package openai is a Provider that calls an OpenAI-compatible Images API —
// OpenAI's own or a compatible gateway's — to generate and edit images. It
// streams partial images as previews when the model offers them, retries
// with backoff while the provider is busy, and turns the provider's
// failures into the codes users see.
package openai

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fastimage/api/internal/generate/provider"
)

// Defaults for Config's zero values.
const (
	DefaultBaseURL     = "https://api.openai.com"
	DefaultModel       = "gpt-image-1"
	DefaultTimeout     = 120 * time.Second
	DefaultMaxAttempts = 4
	DefaultBackoff     = time.Second
	// DefaultMaxRetryWait caps one wait between attempts, whether it comes
	// from the backoff or from the provider's Retry-After: a job holds a
	// lease and a user is watching, so waiting minutes is worse than
	// failing.
	DefaultMaxRetryWait = 30 * time.Second
	// MaxPartialImages is the most partial images the API streams.
	MaxPartialImages = 3
)

// Config configures New.
type Config struct {
	// BaseURL is the API's root, e.g. https://api.openai.com (a trailing
	// /v1 is accepted too); empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token. It is required and never appears
	// in errors.
	APIKey string
	// Model is the image model, e.g. "gpt-image-1" or "dall-e-3"; empty
	// means DefaultModel.
	Model string
	// Timeout bounds one attempt, the whole response included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is how many times one request is tried while the
	// provider is busy or unreachable; zero means DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled for each one
	// after it; zero means DefaultBackoff.
	Backoff time.Duration
	// MaxRetryWait caps one wait between attempts; zero means
	// DefaultMaxRetryWait.
	MaxRetryWait time.Duration
	// PartialImages, 1–MaxPartialImages, asks a model that can stream
	// (the gpt-image family) for that many partial images per image, which
	// are reported as previews; 0 turns streaming off.
	PartialImages int
	// HTTPClient sends the requests; nil means a client of our own using
	// http.DefaultTransport. Its own Timeout, if any, also applies.
	HTTPClient *http.Client
}

// Client is a Provider backed by an OpenAI-compatible Images API. It is safe
// for concurrent use.
type Client struct {
	base       string // scheme://host[/path], without a trailing slash or /v1
	key        string
	model      string
	timeout    time.Duration
	attempts   int
	backoff    time.Duration
	maxWait    time.Duration
	partials   int
	http       *http.Client
	gptImage   bool // the gpt-image family: always b64_json, can stream
	maxPerCall int  // the most images one API call may ask for
}

var _ provider.Provider = (*Client)(nil)

// New returns a Client for cfg. It reports every problem in cfg at once: an
// unusable BaseURL, an empty APIKey, a negative duration or attempt count,
// or PartialImages out of range.
func New(cfg Config) (*Client, error) {
	var problems []error
	c := &Client{
		base:     cfg.BaseURL,
		key:      strings.TrimSpace(cfg.APIKey),
		model:    strings.TrimSpace(cfg.Model),
		timeout:  cfg.Timeout,
		attempts: cfg.MaxAttempts,
		backoff:  cfg.Backoff,
		maxWait:  cfg.MaxRetryWait,
		partials: cfg.PartialImages,
		http:     cfg.HTTPClient,
	}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	c.base = strings.TrimSuffix(strings.TrimRight(c.base, "/"), "/v1")
	if u, err := url.Parse(c.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Errorf("base URL %q is not an absolute http(s) URL", cfg.BaseURL))
	}
	if c.key == "" {
		problems = append(problems, errors.New("API key is empty"))
	}
	if c.model == "" {
		c.model = DefaultModel
	}
	defaultDuration := func(name string, d *time.Duration, def time.Duration) {
		switch {
		case *d < 0:
			problems = append(problems, fmt.Errorf("%s %v is negative", name, *d))
		case *d == 0:
			*d = def
		}
	}
	defaultDuration("timeout", &c.timeout, DefaultTimeout)
	defaultDuration("backoff", &c.backoff, DefaultBackoff)
	defaultDuration("max retry wait", &c.maxWait, DefaultMaxRetryWait)
	switch {
	case c.attempts < 0:
		problems = append(problems, fmt.Errorf("max attempts %d is negative", c.attempts))
	case c.attempts == 0:
		c.attempts = DefaultMaxAttempts
	}
	if c.partials < 0 || c.partials > MaxPartialImages {
		problems = append(problems, fmt.Errorf("partial images %d is not between 0 and %d", c.partials, MaxPartialImages))
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	c.gptImage = strings.HasPrefix(c.model, "gpt-image")
	c.maxPerCall = 10
	if c.model == "dall-e-3" {
		c.maxPerCall = 1
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("openai config: %w", errors.Join(problems...))
	}
	return c, nil
}

// Name returns "openai".
func (c *Client) Name() string { return "openai" }

// streams reports whether requests ask for partial images.
func (c *Client) streams() bool { return c.partials > 0 && c.gptImage }

// redact removes the API key from text that came from the provider or the
// network, in case either ever echoes it.
func (c *Client) redact(s string) string {
	return strings.ReplaceAll(s, c.key, "[redacted]")
}
