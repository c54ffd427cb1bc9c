// Package app builds the whole FastImage service graph once — mail, CAPTCHA,
// storage, the AI provider, and the account, credit, gallery, generation
// and event services wired to one another — and runs what goes on beside
// requests. `fastimage serve` and `fastimage worker`, every end-to-end test
// and every benchmark build through New, tests replacing a few parts with
// Overrides; no second copy of the wiring exists.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/graph"
	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apikey"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/captcha"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/legal"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/password"
	"github.com/fastimage/api/internal/persisted"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/ratelimit"
	"github.com/fastimage/api/internal/server"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/local"
	"github.com/fastimage/api/internal/support"
	"github.com/fastimage/api/internal/throttle"
	"github.com/fastimage/api/internal/usage"
	"github.com/fastimage/api/internal/usage/endpoint"
	"github.com/fastimage/api/internal/webhook"
	"github.com/fastimage/api/internal/work"
)

// Overrides replaces parts that New would otherwise build from the
// configuration. The zero value builds exactly what `fastimage serve` runs;
// tests and benchmarks set the few fields they need.
type Overrides struct {
	// Bucket replaces the configured storage backend. A *local.Bucket is
	// also served at /blobs/. The App closes it if it is an io.Closer.
	Bucket storage.Bucket
	// Provider replaces the configured AI provider.
	Provider provider.Provider
	// Mailer replaces the transport the mail worker delivers the outbox
	// through (the SMTP server). A *mail.Outbox keeps the mail in that outbox
	// instead, undelivered, where tests read it (and /dev/outbox lists it
	// in development), as when no SMTP server is configured.
	Mailer mail.Mailer
	// WorkerID names this process's generation workers in the leases they
	// hold; empty means host:pid. Several Apps in one process that share a
	// database need different names.
	WorkerID string
	// PollInterval and ProgressEvery replace generate's defaults (the
	// safety-net poll behind the NOTIFY wake-up, also of the feeds and the
	// mail worker, and the PROGRESS throttle).
	PollInterval  time.Duration
	ProgressEvery time.Duration
	// Clock replaces the machine's clock where the works service and the
	// maintenance tasks decide by Go's time: signed-URL expiry (also in the
	// configured local bucket), restorable-until, upload URLs, and the
	// sweeps of expired holds and rate-limit events. A test moves a
	// clock.Fake rather than sleeping. The database's now() stays real, and
	// so do accounts (sessions, tokens, sign-in limits). An Overrides.Bucket
	// gets no clock from here: give it the same one.
	Clock clock.Clock
	// WebhookBackoff replaces the webhook worker's first pause between
	// tries (30 s), so that tests see retries quickly.
	WebhookBackoff time.Duration
}

// App is every service of the process, wired. Its fields are set by New and
// are read-only afterwards.
type App struct {
	Config *config.Serve
	DB     *bun.DB
	Log    *slog.Logger

	Accounts *account.Service
	Ledger   *credit.Ledger
	Limiter  *ratelimit.Limiter
	Bucket   storage.Bucket
	// Blobs serves the local storage backend's signed URLs; nil with GCS.
	Blobs   http.Handler
	Gallery *work.Service
	Jobs    *generate.Service
	Feed    *feed.Service
	Bus     *events.Bus
	// Billing sells credits and plans through Stripe (payments are off
	// without STRIPE_SECRET_KEY; the catalog is still served).
	Billing *billing.Service
	// Privacy keeps users' privacy requests; its workers run exports and
	// deletions.
	Privacy *privacy.Service
	// Usage records usage events (only with ANALYTICS_ENABLED); Forwarder
	// sends them to ANALYTICS_FORWARD_URL, and is nil without one.
	Usage     *usage.Recorder
	Forwarder *usage.Forwarder
	// Support takes messages to support; Legal serves the privacy policy
	// and terms and records their acceptance.
	Support *support.Service
	Legal   *legal.Service
	// APIKeys holds the keys partner apps call the API with.
	APIKeys *apikey.Service
	// Outbox is where every flow enqueues its mail; Mail delivers it
	// through SMTP, and is nil when mail stays in the outbox (no SMTP server
	// configured).
	Outbox *mail.Outbox
	// Metrics is the process's Prometheus registry (see newMetrics).
	Metrics *prometheus.Registry
	// Passwords hashes every password of the process, a bounded number at
	// once.
	Passwords *password.Hasher
	Mail      *mail.Worker
	// PersistedQueries are the operations of PERSISTED_QUERIES_FILE, nil
	// without one.
	PersistedQueries *persisted.Manifest
	// Costs charges GraphQL operations' costs against leaky buckets.
	Costs *throttle.Limiter
	// Webhooks registers partners' endpoints and sends their deliveries.
	Webhooks *webhook.Service

	workerID string
	clock    clock.Clock
}

// New builds every service from cfg over bdb, replacing what o names.
// Settings that cannot work (production without SMTP, bad CAPTCHA or
// OpenAI settings) are returned as *config.Error.
func New(ctx context.Context, cfg *config.Serve, bdb *bun.DB, log *slog.Logger, o Overrides) (*App, error) {
	transport := o.Mailer
	if transport == nil {
		var err error
		if transport, err = newMailer(cfg, bdb); err != nil {
			return nil, err
		}
	}
	outbox, keep := transport.(*mail.Outbox)
	if !keep {
		outbox = mail.NewOutbox(bdb)
	}
	verifier, err := newCaptcha(cfg)
	if err != nil {
		return nil, err
	}
	p := o.Provider
	if p == nil {
		if p, err = newProvider(cfg.Generate, cfg.Works.MaxDecodeBytes); err != nil {
			return nil, err
		}
	}
	clk := clock.Or(o.Clock)
	bucket := o.Bucket
	if bucket == nil {
		if bucket, err = newBucket(ctx, cfg, log, clk); err != nil {
			return nil, err
		}
	}
	workerID := o.WorkerID
	if workerID == "" {
		host, _ := os.Hostname()
		workerID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}

	a := &App{
		Config: cfg, DB: bdb, Log: log,
		Ledger:   credit.New(bdb),
		Limiter:  ratelimit.New(bdb, clk),
		Costs:    throttle.New(bdb),
		Bucket:   bucket,
		Bus:      events.New(bdb, log),
		Outbox:   outbox,
		workerID: workerID,
		clock:    clk,
	}
	a.Metrics = newMetrics(bdb, a.Bus)
	a.Passwords = password.NewHasher(password.HasherConfig{
		Params: password.DefaultParams, Concurrency: cfg.PasswordHashConcurrency, Queue: cfg.PasswordHashQueue,
	})
	if !keep {
		a.Mail = mail.NewWorker(bdb, transport, a.Bus, log, mail.WorkerConfig{Poll: o.PollInterval})
	}
	if a.Legal, err = newLegal(cfg, bdb, clk); err != nil {
		return nil, err
	}
	a.Accounts = account.New(bdb, accountConfig(cfg, a.Passwords, a.Legal), outbox, verifier, log)
	a.Gallery = work.New(bdb, bucket, work.Config{
		MaxUploadBytes: cfg.MaxUploadBytes, MaxPixels: cfg.Works.MaxPixels, QuotaBytes: cfg.Works.QuotaBytes,
		URLTTL: cfg.Works.URLTTL, Retention: cfg.Works.Retention, Clock: clk,
		MaxDecodeBytes: cfg.Works.MaxDecodeBytes, MaxConcurrentDecodes: cfg.Works.MaxConcurrentDecodes,
	})
	if lb, ok := bucket.(*local.Bucket); ok {
		// Signed PUTs are direct uploads: they store only while theirs is open.
		a.Blobs = lb.HandlerAccepting(a.Gallery.AcceptsPut)
	}
	a.Webhooks = webhook.New(bdb, a.Bus, log, webhook.Config{
		Development: cfg.Env == config.Development, Backoff: o.WebhookBackoff, Poll: o.PollInterval,
	})
	a.Jobs = generate.New(bdb, generate.Config{
		Workers: cfg.Generate.Workers, Lease: cfg.Generate.Lease, MaxAttempts: cfg.Generate.MaxAttempts,
		UserRunningLimit: cfg.Generate.UserRunningLimit, QueueCap: cfg.Generate.QueueCap,
		PollInterval: o.PollInterval, ProgressEvery: o.ProgressEvery,
		OnEnd: generationWebhooks(cfg.Credits.LowThreshold), CheckWebhookURL: a.Webhooks.CheckURL,
	}, a.Bus, a.Gallery, p, log)
	a.Feed = feed.New(bdb, a.Bus, log, o.PollInterval)
	linkKey, err := exportLinkKey(cfg, o.Bucket == nil)
	if err != nil {
		return nil, err
	}
	a.Privacy = privacy.New(bdb, outbox, a.Bus, log, privacy.Config{
		PublicURL: cfg.PublicURL, Lease: cfg.Generate.Lease, PollInterval: o.PollInterval, Clock: clk,
		Bucket: bucket, ExportTTL: cfg.Exports.TTL, LinkKey: linkKey,
	})
	a.Privacy.Handle(privacy.KindExport, a.Privacy.Export)
	a.Usage = usage.New(bdb, log, usage.Config{Enabled: cfg.Privacy.AnalyticsEnabled, Clock: clk})
	registerUsageMetrics(a.Metrics, a.Usage)
	if cfg.Privacy.AnalyticsForwarding() {
		a.Forwarder = usage.NewForwarder(bdb, endpoint.New(cfg.Privacy.AnalyticsForwardURL, 0), 0, 0)
	}
	a.Support = support.New(bdb, outbox, verifier, a.Limiter, log, support.Config{Address: supportAddress(cfg)})
	// A revoked key's webhook endpoints stop with it, in its transaction.
	a.APIKeys = apikey.New(bdb, log, func(ctx context.Context, tx bun.Tx, keyID uuid.UUID) error {
		_, err := webhook.DisableKeyEndpointsTx(ctx, tx, keyID)
		return err
	})
	if a.Billing, err = billing.FromConfig(bdb, cfg, log, billing.WithClock(clk), billing.WithLimiter(a.Limiter)); err != nil {
		return nil, err
	}
	a.Privacy.Handle(privacy.KindDeletion, a.Privacy.Eraser(privacy.Erasure{Bucket: bucket, Customers: a.Billing}))
	if f := cfg.PersistedQueries.File; f != "" {
		// Checked against the schema now: a stale manifest stops the start.
		if a.PersistedQueries, err = persisted.LoadManifest(f, graph.NewExecutableSchema(graph.Config{}).Schema()); err != nil {
			return nil, &config.Error{Problems: []string{"--persisted-queries-file / PERSISTED_QUERIES_FILE: " + err.Error()}}
		}
	}
	return a, nil
}

// Server returns the HTTP API over the App's services. migrator answers the
// readiness probe; version is reported by it and in the logs.
func (a *App) Server(migrator *db.Migrator, version string) *server.Server {
	local := a.Outbox
	if a.Mail != nil {
		local = nil
	}
	return server.New(server.Deps{
		Config: a.Config, DB: a.DB, Migrator: migrator, Log: a.Log, Version: version,
		Accounts: a.Accounts, Passwords: a.Passwords, Ledger: a.Ledger, Gallery: a.Gallery, Jobs: a.Jobs, Feed: a.Feed, Billing: a.Billing, Privacy: a.Privacy, Bus: a.Bus,
		Usage: a.Usage, Support: a.Support, Legal: a.Legal, APIKeys: a.APIKeys, Webhooks: a.Webhooks,
		Blobs: a.Blobs, Outbox: local, Metrics: a.Metrics, PersistedQueries: a.PersistedQueries, Costs: a.Costs,
	})
}

// Close releases what the App opened (the GCS client). It does not close
// the database, which the caller opened. Stop Background first.
func (a *App) Close() error {
	if c, ok := a.Bucket.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// newMailer returns the SMTP mailer when SMTP_URL is set, else the local
// outbox, which keeps the mail.
func newMailer(cfg *config.Serve, bdb *bun.DB) (mail.Mailer, error) {
	if cfg.Mail.SMTPURL == "" {
		if cfg.Env == config.Production {
			return nil, &config.Error{Problems: []string{"SMTP_URL is required in production: without it no email would reach users"}}
		}
		return mail.NewOutbox(bdb), nil
	}
	sc, err := mail.ParseSMTPURL(cfg.Mail.SMTPURL)
	if err != nil {
		return nil, &config.Error{Problems: []string{"--smtp-url / SMTP_URL: " + err.Error()}}
	}
	m, err := mail.NewSMTP(sc)
	if err != nil {
		return nil, &config.Error{Problems: []string{"--smtp-url / SMTP_URL: " + err.Error()}}
	}
	return m, nil
}

// newCaptcha returns the configured verifier, or nil when CAPTCHA is off.
func newCaptcha(cfg *config.Serve) (captcha.Verifier, error) {
	c := cfg.Captcha
	if c.Provider == "" {
		return nil, nil
	}
	v, err := captcha.New(captcha.Config{
		Provider: captcha.Provider(c.Provider), Secret: c.Secret, SiteKey: c.SiteKey,
		VerifyURL: c.VerifyURL, Hostnames: c.Hostnames, Timeout: c.Timeout,
	})
	if err != nil {
		return nil, &config.Error{Problems: []string{"CAPTCHA settings: " + err.Error()}}
	}
	return v, nil
}

// newLegal returns the legal documents service of LEGAL_DOCUMENTS_FILE, or
// of the built-in versions.
func newLegal(cfg *config.Serve, bdb *bun.DB, clk clock.Clock) (*legal.Service, error) {
	docs := legal.BuiltIn(cfg.PublicURL)
	if f := cfg.Privacy.LegalDocumentsFile; f != "" {
		var err error
		if docs, err = legal.LoadFile(f); err != nil {
			return nil, &config.Error{Problems: []string{"--legal-documents-file / LEGAL_DOCUMENTS_FILE: " + err.Error()}}
		}
	}
	return legal.New(bdb, docs, clk), nil
}

// supportAddress is SUPPORT_EMAIL, or support@ the public URL's host.
func supportAddress(cfg *config.Serve) string {
	if cfg.Privacy.SupportEmail != "" {
		return cfg.Privacy.SupportEmail
	}
	return "support@" + cfg.PublicURL.Hostname()
}

// accountConfig is the account settings, with the sign-up bonus granted in
// the transaction that verifies a user's email, and the legal documents in
// effect accepted in the one that signs up.
func accountConfig(cfg *config.Serve, passwords *password.Hasher, docs *legal.Service) account.Config {
	return account.Config{
		PublicURL:           cfg.PublicURL,
		SessionIdleTimeout:  cfg.Accounts.SessionIdleTimeout,
		SessionLifetime:     cfg.Accounts.SessionLifetime,
		VerifyTokenTTL:      cfg.Accounts.VerifyLinkTTL,
		EmailChangeTokenTTL: cfg.Accounts.EmailChangeLinkTTL,
		Passwords:           passwords,
		OnEmailVerified: func(ctx context.Context, tx bun.Tx, userID uuid.UUID) error {
			return credit.GrantSignupBonus(ctx, tx, userID, cfg.Credits.SignupBonus)
		},
		OnSignUp: func(ctx context.Context, tx bun.Tx, userID uuid.UUID) error {
			return docs.AcceptCurrent(ctx, tx, userID)
		},
	}
}

// generationWebhooks enqueues the webhooks of a generation's end in the
// transaction that records it: the generation's own, and credits.low when
// its charge took the user's available credits below lowThreshold.
func generationWebhooks(lowThreshold int64) func(ctx context.Context, tx bun.Tx, e generate.Ending) error {
	return func(ctx context.Context, tx bun.Tx, e generate.Ending) error {
		g := e.Generation
		ended := webhook.GenerationEnded{
			GenerationID: g.ID, UserID: g.UserID, WorkID: g.WorkID, Status: string(e.Status),
			ImageIDs: e.ImageIDs, Cost: e.Cost,
		}
		if e.Failure != nil {
			ended.ErrorCode, ended.ErrorMessage = string(e.Failure.Code), e.Failure.Message
		}
		if g.WebhookURL != nil {
			ended.WebhookURL = *g.WebhookURL
		}
		if err := webhook.GenerationEndedTx(ctx, tx, ended); err != nil {
			return err
		}
		if lowThreshold <= 0 || e.Cost <= 0 {
			return nil
		}
		var available int64
		if err := tx.NewRaw("SELECT balance - held FROM credit_accounts WHERE user_id = ?", g.UserID).Scan(ctx, &available); err != nil {
			return fmt.Errorf("read available credits: %w", err)
		}
		if available < lowThreshold && available+int64(e.Cost) >= lowThreshold { // this charge crossed it
			return webhook.CreditsLowTx(ctx, tx, g.UserID, available, lowThreshold)
		}
		return nil
	}
}
