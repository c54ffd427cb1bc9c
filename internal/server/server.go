// Package server is the HTTP face of the service: the router and its
// middleware (request id, logging, metrics, recovery, CORS, body caps), the
// GraphQL handler with its transports (HTTP, WebSocket, SSE), health checks,
// metrics and the GraphiQL page, and graceful shutdown.
package server

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apikey"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/legal"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/metrics"
	"github.com/fastimage/api/internal/password"
	"github.com/fastimage/api/internal/persisted"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/processor"
	"github.com/fastimage/api/internal/support"
	"github.com/fastimage/api/internal/throttle"
	"github.com/fastimage/api/internal/usage"
	"github.com/fastimage/api/internal/webhook"
	"github.com/fastimage/api/internal/work"
)

// Deps are what the server needs from its caller.
type Deps struct {
	Config   *config.Serve
	DB       *bun.DB
	Migrator *db.Migrator
	Log      *slog.Logger
	Version  string
	Accounts *account.Service
	Ledger   *credit.Ledger
	Gallery  *work.Service
	Jobs     *generate.Service
	Feed     *feed.Service
	Billing  *billing.Service
	Privacy  *privacy.Service
	Bus      *events.Bus
	// Usage records a usage event per GraphQL operation of a signed-in
	// user (it does nothing unless analytics is on); nil records none.
	Usage   *usage.Recorder
	Support *support.Service
	Legal   *legal.Service
	APIKeys *apikey.Service
	// Webhooks registers partners' webhook endpoints and lists deliveries.
	Webhooks *webhook.Service
	// Blobs serves the local storage backend's signed URLs at /blobs/; nil
	// with GCS, whose URLs point at Google.
	Blobs http.Handler
	// Outbox, when mail stays local, is listed at /dev/outbox (and, for
	// programs, /dev/outbox.json) in development.
	Outbox *mail.Outbox
	// Metrics is the process's registry, to which the server adds its HTTP
	// metrics; nil makes one.
	Metrics *prometheus.Registry
	// Passwords is the process's password hasher, whose hashes in flight
	// are reported in /metrics.
	Passwords *password.Hasher
	// PersistedQueries are the operations registered at start (nil: none).
	PersistedQueries *persisted.Manifest
	// Costs charges operations' costs against the callers' buckets; nil
	// makes one on DB.
	Costs *throttle.Limiter
}

// Server serves the API.
type Server struct {
	cfg      *config.Serve
	db       *bun.DB
	migrator *db.Migrator
	log      *slog.Logger
	version  string
	accounts *account.Service
	ledger   *credit.Ledger
	gallery  *work.Service
	jobs     *generate.Service
	feed     *feed.Service
	billing  *billing.Service
	privacy  *privacy.Service
	bus      *events.Bus
	usage    *usage.Recorder
	support  *support.Service
	legal    *legal.Service
	keys     *apikey.Service
	webhooks *webhook.Service
	blobs    http.Handler
	outbox   *mail.Outbox
	costs    *throttle.Limiter

	metrics       *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	subscriptions prometheus.Gauge

	persisted *persisted.Manifest

	origins  *originList
	ws       *wsAcceptor
	limits   *streamLimits
	sessions *sessionWatcher
	handler  http.Handler
	web      *webApp

	// streams ends SSE streams at shutdown; WebSockets are closed through ws.
	streams     context.Context
	stopStreams context.CancelFunc
}

// New builds the server and its routes.
func New(d Deps) *Server {
	s := &Server{
		cfg:      d.Config,
		db:       d.DB,
		migrator: d.Migrator,
		log:      d.Log,
		version:  d.Version,
		accounts: d.Accounts,
		ledger:   d.Ledger,
		gallery:  d.Gallery,
		jobs:     d.Jobs,
		feed:     d.Feed,
		billing:  d.Billing,
		privacy:  d.Privacy,
		bus:      d.Bus,
		usage:    d.Usage,
		support:  d.Support,
		legal:    d.Legal,
		keys:     d.APIKeys,
		webhooks: d.Webhooks,
		blobs:    d.Blobs,
		outbox:   d.Outbox,
		metrics:  d.Metrics,
		origins:  newOriginList(d.Config.AllowedOrigins),
		costs:    d.Costs,
	}
	if s.costs == nil {
		s.costs = throttle.New(d.DB)
	}
	s.persisted = d.PersistedQueries
	if s.metrics == nil {
		s.metrics = metrics.NewRegistry()
	}
	if s.keys == nil {
		s.keys = apikey.New(d.DB, d.Log, nil)
	}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.sessions = newSessionWatcher(d.Config.Accounts.SessionRecheck, s.accounts.StillValidSessions, s.keys.StillValidKeys, s.bus, s.log)
	reg := promauto.With(s.metrics)
	s.requests = reg.NewCounterVec(prometheus.CounterOpts{Name: "fastimage_http_requests_total", Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"})
	s.latency = reg.NewHistogramVec(prometheus.HistogramOpts{Name: "fastimage_http_request_duration_seconds", Help: "Time to answer HTTP requests (streams excluded).", Buckets: metrics.LatencyBuckets()}, []string{"route", "method"})
	wsOpen := reg.NewGauge(prometheus.GaugeOpts{Name: "fastimage_websocket_connections", Help: "Open WebSocket connections."})
	s.subscriptions = reg.NewGauge(prometheus.GaugeOpts{Name: "fastimage_graphql_active_subscriptions", Help: "GraphQL subscriptions running now, over WebSocket or SSE."})
	if d.Passwords != nil {
		reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_password_hashes_in_flight", Help: "Password hashes (argon2id) running now."}, func() float64 { return float64(d.Passwords.InFlight()) })
		reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_password_hashes_waiting", Help: "Sign-ins and password changes waiting for a hash slot."}, func() float64 { return float64(d.Passwords.Waiting()) })
		reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_password_hash_slots", Help: "Password hashes allowed to run at once."}, func() float64 { return float64(d.Passwords.Concurrency()) })
	}
	s.limits = newStreamLimits(d.Config.Streams, reg)
	s.ws = newWSAcceptor(s.origins, d.Config.WSInitTimeout, d.Config.WSWriteTimeout, d.Config.WSPingInterval, wsOpen, d.Log)
	var public string
	if u := d.Config.PublicURL; u != nil {
		public = u.Scheme + "://" + u.Host
	}
	s.web = mustNewWebApp(webOrigins(public, d.Config.Storage.Backend == "gcs"))
	s.handler = s.routes()
	return s
}

// Handler returns the root HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern, route string, h http.Handler) {
		mux.Handle(pattern, s.observe(route, s.limitBodyTime(h)))
	}
	handle("/graphql", "/graphql", s.cors(s.checkUpgradeOrigin(s.limitBody(s.limitStreams(s.authenticate(s.graphqlHandler()))))))
	handle("GET "+SchemaPath, SchemaPath, s.schemaFileHandler())
	for _, p := range webAppPaths {
		handle("GET "+p, p, http.HandlerFunc(s.web.servePage))
	}
	handle("GET "+webStaticPrefix, webStaticPrefix, http.HandlerFunc(s.web.serveStatic))
	if s.blobs != nil {
		handle("/blobs/", "/blobs", s.blobs)
	}
	if s.servesDevOutbox() {
		handle("GET /dev/outbox", "/dev/outbox", onlyFromThisMachine(http.HandlerFunc(s.devOutbox)))
		handle("GET /dev/outbox.json", "/dev/outbox.json", onlyFromThisMachine(http.HandlerFunc(s.devOutboxJSON)))
	}
	// Stripe signs its webhooks: no session, no CORS; the handler reads the
	// raw body itself, up to its own cap.
	handle("/webhooks/stripe", "/webhooks/stripe", s.billing.WebhookHandler())
	if s.privacy != nil {
		// The signed token in the link is the credential: no session, no CORS.
		handle("GET "+privacy.ExportPath+"{id}", privacy.ExportPath, s.withClient(s.privacy.ExportDownloadHandler()))
	}
	handle("GET /graphiql", "/graphiql", s.graphiqlHandler())
	handle("GET /healthz", "/healthz", http.HandlerFunc(s.healthz))
	handle("GET /readyz", "/readyz", http.HandlerFunc(s.readyz))
	if s.cfg.MetricsAddr == "" { // otherwise served there alone (metrics.Serve)
		handle("GET /metrics", "/metrics", metrics.Handler(s.metrics, s.log))
	}
	s.sitePages(handle)
	handle("GET /api", "/api", http.HandlerFunc(s.index))
	handle("GET /{$}", "/", http.HandlerFunc(s.web.servePage))
	handle("/", "other", http.HandlerFunc(notFound))
	return s.recoverHTTP(s.withRequestID(securityHeaders(mux)))
}

func (s *Server) serverInfo() *model.ServerInfo {
	captcha := &model.Integration{}
	if s.cfg.Captcha.Provider != "" {
		captcha = &model.Integration{Enabled: true, Provider: &s.cfg.Captcha.Provider}
	}
	storage := &model.Integration{}
	if s.gallery != nil {
		storage = &model.Integration{Enabled: true, Provider: ptr(s.gallery.Bucket().Name())}
	}
	ai := &model.Integration{}
	if s.jobs != nil {
		ai = &model.Integration{Enabled: true, Provider: ptr(s.jobs.ProviderName())}
	}
	payments := &model.Integration{Message: ptr(s.billing.DisabledMessage())}
	if s.billing.Enabled() {
		payments = &model.Integration{Enabled: true, Provider: ptr("stripe")}
	}
	email := &model.Integration{Enabled: true, Provider: ptr("outbox")}
	if s.outbox == nil {
		email.Provider = ptr("smtp")
	}
	analytics := &model.Integration{}
	if p := s.cfg.Privacy; p.AnalyticsEnabled {
		// Kept in our own database unless forwarded.
		analytics = &model.Integration{Enabled: true, Provider: ptr("internal")}
		if u, err := url.Parse(p.AnalyticsForwardURL); err == nil && p.AnalyticsForwarding() {
			analytics.Provider = ptr(u.Hostname())
		}
	}
	liveChat := &model.LiveChat{}
	if p := s.cfg.Privacy; p.LiveChatEnabled() {
		liveChat = &model.LiveChat{Enabled: true, Provider: ptr(p.LiveChatProvider), WidgetID: ptr(p.LiveChatWidgetID)}
	}
	processors := processor.List(s.cfg)
	return &model.ServerInfo{
		Version: s.version,
		Integrations: &model.Integrations{
			// Each integration reports itself here as its issue lands.
			Storage:    storage,
			AiProvider: ai,
			Payments:   payments,
			Email:      email,
			Captcha:    captcha,
			Analytics:  analytics,
			LiveChat:   liveChat,
		},
		Processors: processors,
		Limits: &model.Limits{
			MaxUploadBytes:     int(s.cfg.MaxUploadBytes),
			MaxRequestBytes:    int(s.cfg.MaxBodyBytes),
			MaxQueryComplexity: s.cfg.MaxQueryComplexity,
			MaxQueryDepth:      s.cfg.MaxQueryDepth,

			MaxStreamsPerIP:           s.cfg.Streams.PerIP,
			MaxSubscriptionsPerSocket: s.cfg.Streams.PerSocket,
			MaxSubscriptionsPerUser:   s.cfg.Streams.PerUser,

			APIKeyCostBucket:    costBucket(s.cfg.Costs.Keys),
			SessionCostBucket:   costBucket(s.cfg.Costs.Sessions),
			AnonymousCostBucket: costBucket(s.cfg.Costs.Anonymous),
		},
	}
}

func ptr[T any](v T) *T { return &v }

// costBucket is a bucket setting as serverInfo shows it: all 0 when off.
func costBucket(b config.CostBucket) *model.CostBucket {
	if !throttle.Bucket(b).Enabled() {
		return &model.CostBucket{}
	}
	return &model.CostBucket{MaximumAvailable: float64(b.Size), RestoreRate: float64(b.RestoreRate)}
}

// Serve answers requests on ln until ctx ends, then shuts down gracefully:
// it stops accepting, closes WebSockets with 1001 and ends SSE streams, and
// waits for in-flight requests up to the shutdown timeout.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// No ReadTimeout: one fixed time for a whole request cannot fit both a
	// slow 20 MiB upload and a trickling attacker; limitBodyTime bounds
	// bodies by their rate instead.
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cmp.Or(s.cfg.HTTPReadHeaderTimeout, 10*time.Second),
		IdleTimeout:       cmp.Or(s.cfg.HTTPIdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.ws.closeAll()
	s.stopStreams()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return errors.Join(errors.New("requests still running at the shutdown timeout were cut off"), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
