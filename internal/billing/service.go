// Package billing sells credits and plans through Stripe, and turns money
// into credits exactly once, whatever order, delay or repetition Stripe's
// webhooks arrive in.
//
// How it stays exact:
//
//   - Credits are granted only from Stripe's word (a signed webhook, or the
//     reconcile job reading Stripe's API), never from the browser's return.
//   - Every webhook's event id is recorded in the transaction of its effects
//     (stripe_events): a repeat, sequential or concurrent, changes nothing.
//   - What Stripe tells about a payment is merged into facts that only grow:
//     a purchase's status moves forward only, a charge's refunded amount only
//     rises, a dispute once closed stays closed, a subscription keeps what
//     the newest observation said. A purchase's credits (granted, clawed
//     back, owed, frozen) are then derived from those facts by settle, so
//     any order of arrival ends in the same balances, lots and states.
//
// Users act through entry points that take the actor (see internal/actor);
// webhook and reconcile paths are internal, acting for Stripe.
package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/ratelimit"
)

// PaymentsDisabled is the code of a payment call on a deployment without
// Stripe settings.
const PaymentsDisabled apperr.Code = "PAYMENTS_DISABLED"

// Config is what the billing service needs from the settings.
type Config struct {
	// SecretKey turns payments on; WebhookSecret verifies webhooks.
	SecretKey     string
	WebhookSecret string
	// APIBase replaces Stripe's API address (stripe-mock, a test server).
	APIBase string
	Tax     bool
	// PublicURL is where users reach the editor; return paths resolve
	// against it. AllowedOrigins may also be returned to.
	PublicURL      *url.URL
	AllowedOrigins []string
	// WebhookMaxBytes caps a webhook's body.
	WebhookMaxBytes int64
	// Tolerance is how old a webhook's signature may be (default 300 s).
	Tolerance time.Duration
	// HTTPClient calls Stripe (default: a client with a 30 s timeout).
	HTTPClient *http.Client
	Clock      clock.Clock
	// Limiter bounds how many Stripe sessions one user can make; nil: no
	// bound (tests of other things).
	Limiter *ratelimit.Limiter
}

// Each checkout and portal session is a call to Stripe on our account's
// rate limit, and each checkout a row: a user gets a few an hour.
var (
	checkoutLimits = []ratelimit.Window{{Max: 10, Period: time.Hour}, {Max: 30, Period: 24 * time.Hour}}
	portalLimits   = []ratelimit.Window{{Max: 20, Period: time.Hour}}
)

// allow takes one of the user's Stripe sessions of kind, or refuses with
// RATE_LIMITED.
func (s *Service) allow(ctx context.Context, kind string, userID fmt.Stringer, windows []ratelimit.Window) error {
	if s.cfg.Limiter == nil {
		return nil
	}
	d, err := s.cfg.Limiter.Take(ctx, "billing-"+kind+":"+userID.String(), windows...)
	if err != nil {
		return err
	}
	if !d.Allowed {
		return apperr.Errorf(apperr.RateLimited, "Too many %s sessions started; try again in %d seconds.", kind, d.RetryAfterSeconds()).
			With("retryAfter", d.RetryAfterSeconds())
	}
	return nil
}

// Service is the billing domain.
type Service struct {
	db      *bun.DB
	api     *client.API // nil when payments are off
	catalog *Catalog
	cfg     Config
	log     *slog.Logger
	clock   clock.Clock
}

// New returns the billing service over catalog. Without cfg.SecretKey it
// still answers the catalog and users' records, and refuses payment calls
// with PAYMENTS_DISABLED.
func New(bdb *bun.DB, catalog *Catalog, cfg Config, log *slog.Logger, opts ...Option) *Service {
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.WebhookMaxBytes <= 0 {
		cfg.WebhookMaxBytes = 256 << 10
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = 300 * time.Second
	}
	s := &Service{db: bdb, catalog: catalog, cfg: cfg, log: log, clock: clock.Or(cfg.Clock)}
	if cfg.SecretKey != "" {
		s.api = NewStripeClient(cfg.SecretKey, cfg.APIBase, cfg.HTTPClient)
	}
	return s
}

// NewStripeClient returns a stripe-go client for key, at base (empty:
// Stripe's own API). It retries network failures twice (stripe-go sends
// the same idempotency key on each retry) and logs nothing itself: request
// bodies may carry personal data.
func NewStripeClient(key, base string, hc *http.Client) *client.API {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	cfg := &stripe.BackendConfig{
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(2),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if base != "" {
		cfg.URL = stripe.String(strings.TrimRight(base, "/"))
	}
	backends := &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, cfg),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg),
	}
	return client.New(key, backends)
}

// Enabled says whether payments are configured.
func (s *Service) Enabled() bool { return s.api != nil }

// TaxEnabled says whether Checkout collects tax through Stripe Tax.
func (s *Service) TaxEnabled() bool { return s.api != nil && s.cfg.Tax }

// Catalog returns what is on sale.
func (s *Service) Catalog() *Catalog { return s.catalog }

// disabledMessage is PAYMENTS_DISABLED's sentence.
const disabledMessage = "Payments are not enabled on this server: the operator sets STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET (or --stripe-secret-key and --stripe-webhook-secret) to turn them on."

// DisabledMessage is the sentence payment calls answer with on a server
// without payments, for clients to show before anyone tries; "" when
// payments are enabled.
func (s *Service) DisabledMessage() string {
	if s.api != nil {
		return ""
	}
	return disabledMessage
}

func (s *Service) requireEnabled() error {
	if s.api == nil {
		return apperr.Errorf(PaymentsDisabled, "%s", disabledMessage)
	}
	return nil
}

// stripeError turns a failed Stripe call into an error for the user: the
// card and request errors Stripe explains are passed on in its words, the
// rest is UNAVAILABLE (and the details go to the log).
func (s *Service) stripeError(ctx context.Context, what string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) && se.Type == stripe.ErrorTypeIdempotency {
		return apperr.Errorf(apperr.Conflict, "This idempotency key was used for a different request; use a new key.").With("field", "idempotencyKey")
	}
	if errors.As(err, &se) && se.Type == stripe.ErrorTypeInvalidRequest && se.HTTPStatusCode == http.StatusBadRequest {
		s.log.WarnContext(ctx, "stripe refused a request", "what", what, "code", se.Code, "param", se.Param, "request_id", se.RequestID)
		return apperr.Errorf(apperr.Unavailable, "The payment provider refused to %s; please try again later or contact support.", what)
	}
	s.log.ErrorContext(ctx, "stripe call failed", "what", what, "err", err)
	return apperr.Errorf(apperr.Unavailable, "The payment provider could not %s just now; please try again in a minute.", what)
}
