package billing

import (
	"fmt"
	"log/slog"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/ratelimit"
)

// FromConfig returns the billing service the settings describe: the catalog
// from cfg.Payments.CatalogFile (the built-in one when empty) and Stripe's
// settings. A catalog file that cannot be read or is invalid is a
// *config.Error naming the setting and every problem in the file.
func FromConfig(bdb *bun.DB, cfg *config.Serve, log *slog.Logger, opts ...Option) (*Service, error) {
	catalog, err := LoadCatalog(cfg.Payments.CatalogFile)
	if err != nil {
		return nil, &config.Error{Problems: []string{fmt.Sprintf(
			"--billing-catalog-file / BILLING_CATALOG_FILE: %v (the README's Payments section shows the format)", err)}}
	}
	return New(bdb, catalog, Config{
		SecretKey:       cfg.Payments.SecretKey,
		WebhookSecret:   cfg.Payments.WebhookSecret,
		APIBase:         cfg.Payments.APIBase,
		Tax:             cfg.Payments.Tax,
		PublicURL:       cfg.PublicURL,
		AllowedOrigins:  cfg.AllowedOrigins,
		WebhookMaxBytes: cfg.Payments.WebhookMaxBytes,
	}, log, opts...), nil
}

// Option sets what the service takes from the process beside the
// settings.
type Option func(*Config)

// WithClock tells the service the time by clk.
func WithClock(clk clock.Clock) Option { return func(c *Config) { c.Clock = clk } }

// WithLimiter bounds the Stripe sessions each user can start.
func WithLimiter(l *ratelimit.Limiter) Option { return func(c *Config) { c.Limiter = l } }
