// Package config reads the service's settings from command-line flags with
// environment-variable fallbacks, validates them all at once, and documents
// every one in --help. It is the only place that reads the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Environment names the kind of deployment. Production forbids reversing
// migrations.
type Environment string

// The environments the service knows.
const (
	Development Environment = "development"
	Production  Environment = "production"
)

// DB holds the database settings shared by every subcommand.
type DB struct {
	URL              string
	MaxOpenConns     int
	MaxIdleConns     int
	ConnMaxLifetime  time.Duration
	StatementTimeout time.Duration
}

// Log holds the logging settings.
type Log struct {
	Level  slog.Level
	Format string // "auto", "json" or "text"
}

// Serve holds the settings of `fastimage serve`.
type Serve struct {
	Env             Environment
	DB              DB
	Log             Log
	HTTPAddr        string
	PublicURL       *url.URL
	AllowedOrigins  []string // always includes the public URL's origin
	Migrate         bool
	ShutdownTimeout time.Duration

	MaxBodyBytes       int64
	MaxUploadBytes     int64
	MaxQueryComplexity int
	MaxQueryDepth      int

	WSInitTimeout  time.Duration
	WSWriteTimeout time.Duration
	WSPingInterval time.Duration
	WSMaxMessage   int64

	// Streams bounds the streams and subscriptions clients hold open.
	Streams Streams
	// Costs are the leaky buckets operations' costs are charged against.
	Costs Costs
	// HTTP connection timeouts. A request body must arrive within
	// HTTPReadTimeout plus one second per HTTPMinBodyRate bytes received:
	// uploads on a slow but steady link go through, a trickle is cut.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPMinBodyRate       int64 // bytes a second
	HTTPIdleTimeout       time.Duration
	// Bounds on the expensive work one client can start at once.
	MaxMutationsPerOperation int // root mutation fields of one operation
	WSMaxOperations          int // queries and mutations running at once on one WebSocket
	PasswordHashConcurrency  int // argon2id hashes running at once in the process; 0: as many as fit in 40 MiB, at most the CPUs
	PasswordHashQueue        int // callers that may wait for a hash slot; 0: 32 per slot

	// MaintenanceInterval is how often the periodic jobs run: releasing
	// expired credit holds, expiring lots, purging the bin, sweeping old
	// rate-limit events.
	MaintenanceInterval time.Duration

	Accounts Accounts
	Credits  Credits
	Storage  Storage
	Works    Works
	Generate Generate
	Mail     Mail
	Captcha  Captcha
	Payments Payments
	Exports  Exports
	// Privacy holds the settings of what the privacy policy promises:
	// usage analytics, support, live chat, legal documents and retention.
	Privacy Privacy
	// TrustedProxies are the networks whose X-Forwarded-For is believed when
	// working out the client IP.
	TrustedProxies []netip.Prefix

	// DisableIntrospection refuses __schema and __type (INTROSPECTION=false);
	// DisableGraphiQL stops serving /graphiql (GRAPHIQL=false). MetricsAddr,
	// when set, is the only address /metrics is served at, by `serve` and
	// `worker` alike; the API's address then answers 404 there.
	DisableIntrospection bool
	DisableGraphiQL      bool
	MetricsAddr          string

	PersistedQueries PersistedQueries
}

// PersistedQueries holds the settings of operations known by their hash:
// APQ registrations kept in an LRU cache of CacheSize, and the manifest
// File read at start; Only runs nothing but the manifest's operations.
type PersistedQueries struct {
	Only      bool
	File      string
	CacheSize int
}

// Payments holds the Stripe settings. Payments are on when SecretKey is
// set; WebhookSecret must then be set too.
type Payments struct {
	SecretKey     string
	WebhookSecret string
	// APIBase replaces Stripe's API address (stripe-mock in tests and local
	// use); empty means the library's default.
	APIBase string
	// CatalogFile replaces the built-in catalog of credit packs and plans.
	CatalogFile string
	// Tax turns on Stripe Tax in Checkout.
	Tax bool
	// ReconcileInterval is how often paid sessions and invoices that no
	// webhook delivered are looked up (0: never), over ReconcileWindow.
	ReconcileInterval time.Duration
	ReconcileWindow   time.Duration
	// WebhookMaxBytes caps a webhook's body.
	WebhookMaxBytes int64
}

// Enabled says whether payments are configured.
func (p Payments) Enabled() bool { return p.SecretKey != "" }

// Exports holds the settings of data exports (privacy requests).
type Exports struct {
	// TTL is how long a finished export can be downloaded (at most 7 days).
	TTL time.Duration
	// LinkKey signs the download links; empty derives a key from
	// STORAGE_SIGNING_KEY (or the local storage folder's key).
	LinkKey string
}

// Streams bounds, in each process, what clients hold open: streams
// (WebSockets and SSE streams) per client IP, subscriptions per WebSocket,
// and subscriptions per user over all their streams.
type Streams struct {
	PerIP     int
	PerSocket int
	PerUser   int
}

// Costs sets the leaky buckets that operations' computed costs are charged
// against: one per API key, one per session, one per client IP for callers
// not signed in.
type Costs struct {
	Keys      CostBucket
	Sessions  CostBucket
	Anonymous CostBucket
}

// CostBucket holds Size points at most and restores RestoreRate points a
// second; a Size of 0 turns the limit off.
type CostBucket struct {
	Size        int
	RestoreRate int
}

// Accounts holds the session and link lifetimes.
type Accounts struct {
	SessionIdleTimeout time.Duration
	SessionLifetime    time.Duration
	SessionRecheck     time.Duration
	VerifyLinkTTL      time.Duration
	EmailChangeLinkTTL time.Duration
}

// Credits holds the credit settings.
type Credits struct {
	SignupBonus int64
	// LowThreshold is the level of available credits below which a
	// generation's charge sends the credits.low webhook.
	LowThreshold int64
}

// Storage holds where blobs live.
type Storage struct {
	Backend    string // "local" or "gcs"
	Dir        string
	SigningKey string
	GCSBucket  string
	// GCSCredentialsFile is a service-account JSON key used to sign URLs;
	// without it URLs are signed through IAM signBlob as GCSSignerEmail.
	GCSCredentialsFile string
	GCSSignerEmail     string
}

// Works holds the My Works settings.
type Works struct {
	MaxPixels  int64
	QuotaBytes int64
	URLTTL     time.Duration
	Retention  time.Duration
	// MaxDecodeBytes is the most memory decoding one image may take, as its
	// header tells; MaxConcurrentDecodes is how many are decoded at once.
	MaxDecodeBytes       int64
	MaxConcurrentDecodes int
}

// Generate holds the generation settings.
type Generate struct {
	Workers          int
	Lease            time.Duration
	MaxAttempts      int
	UserRunningLimit int
	QueueCap         int
	Provider         string // "local" or "openai"
	LocalStepDelay   time.Duration
	OpenAIBaseURL    string
	OpenAIKey        string
	OpenAIModel      string
	OpenAITimeout    time.Duration
	OpenAIPartials   int
}

// Mail holds the outgoing email settings; an empty SMTPURL keeps mail in the
// local outbox.
type Mail struct {
	SMTPURL string
}

// Captcha holds the CAPTCHA settings; an empty Provider turns CAPTCHA off.
type Captcha struct {
	Provider  string
	Secret    string
	SiteKey   string
	Hostnames []string
	VerifyURL string
	Timeout   time.Duration
}

// Privacy holds the settings behind the privacy policy's promises.
type Privacy struct {
	// AnalyticsEnabled turns usage events on; AnalyticsForwardURL, when
	// set, receives them in JSON batches every AnalyticsForwardInterval.
	AnalyticsEnabled         bool
	AnalyticsForwardURL      string
	AnalyticsForwardInterval time.Duration
	// SupportEmail receives contactSupport messages.
	SupportEmail string
	// LiveChatProvider names the live chat widget (empty: none) and
	// LiveChatWidgetID is its public id, both shown in serverInfo.
	LiveChatProvider string
	LiveChatWidgetID string
	// LegalDocumentsFile replaces the built-in privacy policy and terms
	// versions (a JSON list).
	LegalDocumentsFile string
	Retention          Retention
}

// AnalyticsForwarding says whether usage events leave the service.
func (p Privacy) AnalyticsForwarding() bool { return p.AnalyticsEnabled && p.AnalyticsForwardURL != "" }

// LiveChatEnabled says whether a live chat widget is configured.
func (p Privacy) LiveChatEnabled() bool { return p.LiveChatProvider != "" }

// Retention holds how long records are kept. Zero keeps them.
type Retention struct {
	// Interval is how often the retention job runs (0: never).
	Interval time.Duration
	// Sessions and EmailTokens are kept this long after they ended
	// (signed out, revoked, expired; used, voided, expired).
	Sessions    time.Duration
	EmailTokens time.Duration
	// SecurityEvents and UsageEvents are kept this long after they happened.
	SecurityEvents time.Duration
	UsageEvents    time.Duration
	// IPTruncateAfter is the age past which a security event's IP address
	// is cut to its network (IPv4 /24, IPv6 /48).
	IPTruncateAfter time.Duration
}

// Migrate holds the settings of `fastimage migrate`.
type Migrate struct {
	Env Environment
	DB  DB
	Log Log
}

// DefaultDatabaseURL is the local database `make run` prepares.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/fastimage?sslmode=disable"

// set registers flags whose defaults come from the environment, and collects
// a problem for each environment value that does not parse, so that one run
// reports every bad setting at once.
type set struct {
	fs       *flag.FlagSet
	problems []string
	secrets  []secretSetting
}

func newSet(name string, out io.Writer) *set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &set{fs: fs}
}

func usage(env, help string) string {
	return fmt.Sprintf("%s (env %s)", help, env)
}

func (s *set) str(p *string, name, env, def, help string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	s.fs.StringVar(p, name, def, usage(env, help))
}

// secret registers a setting that may hold a credential: --help shows only
// the built-in default, never the environment's value, and the environment
// is read after parsing.
func (s *set) secret(p *string, name, env, def, help string) {
	s.fs.StringVar(p, name, "", usage(env, help)+secretDefault(def))
	s.secrets = append(s.secrets, secretSetting{p: p, name: name, env: env, def: def})
}

func secretDefault(def string) string {
	if def == "" {
		return ""
	}
	return fmt.Sprintf(" (default %q)", def)
}

type secretSetting struct {
	p              *string
	name, env, def string
}

func (s *set) bool(p *bool, name, env string, def bool, help string) {
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.problems = append(s.problems, fmt.Sprintf("%s=%q is not true or false", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, usage(env, help))
}

func (s *set) int(p *int, name, env string, def int, help string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.problems = append(s.problems, fmt.Sprintf("%s=%q is not a whole number", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, usage(env, help))
}

func (s *set) int64(p *int64, name, env string, def int64, help string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.problems = append(s.problems, fmt.Sprintf("%s=%q is not a whole number", env, v))
		} else {
			def = n
		}
	}
	s.fs.Int64Var(p, name, def, usage(env, help))
}

func (s *set) duration(p *time.Duration, name, env string, def time.Duration, help string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.problems = append(s.problems, fmt.Sprintf("%s=%q is not a duration such as 30s or 5m", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, usage(env, help))
}

// parse parses args and returns every problem found so far, or flag.ErrHelp.
func (s *set) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	s.fillSecrets()
	if s.fs.NArg() > 0 {
		s.problems = append(s.problems, fmt.Sprintf("unexpected argument %q", s.fs.Arg(0)))
	}
	return nil
}

func (s *set) fillSecrets() {
	for _, sec := range s.secrets {
		if *sec.p != "" {
			continue
		}
		if v, ok := os.LookupEnv(sec.env); ok {
			*sec.p = v
		} else {
			*sec.p = sec.def
		}
	}
}

func (s *set) check(ok bool, format string, args ...any) {
	if !ok {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

func (s *set) err() error {
	if len(s.problems) == 0 {
		return nil
	}
	return &Error{Problems: s.problems}
}

// Error lists every invalid setting found.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "invalid settings:\n  - " + strings.Join(e.Problems, "\n  - ")
}

type common struct {
	env       string
	logLevel  string
	logFormat string
}

func (s *set) common(c *common, db *DB) {
	s.str(&c.env, "env", "APP_ENV", string(Development), "deployment kind: development or production (production refuses 'migrate down')")
	s.secret(&db.URL, "database-url", "DATABASE_URL", DefaultDatabaseURL, "PostgreSQL URL; use sslmode=verify-full in production")
	s.int(&db.MaxOpenConns, "db-max-open-conns", "DB_MAX_OPEN_CONNS", 20, "largest number of open database connections per process")
	s.int(&db.MaxIdleConns, "db-max-idle-conns", "DB_MAX_IDLE_CONNS", 10, "idle database connections kept per process")
	s.duration(&db.ConnMaxLifetime, "db-conn-max-lifetime", "DB_CONN_MAX_LIFETIME", 30*time.Minute, "a database connection is replaced after this long")
	s.duration(&db.StatementTimeout, "db-statement-timeout", "DB_STATEMENT_TIMEOUT", 15*time.Second, "Postgres cancels any statement running longer")
	s.str(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	s.str(&c.logFormat, "log-format", "LOG_FORMAT", "auto", "json, text, or auto (JSON unless stderr is a terminal)")
}

func (s *set) finishCommon(c *common, db *DB, env *Environment, lg *Log) {
	*env = Environment(c.env)
	s.check(*env == Development || *env == Production, "--env / APP_ENV must be development or production, not %q", c.env)
	if u, err := url.Parse(db.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		s.problems = append(s.problems, "--database-url / DATABASE_URL must look like postgres://user@host:5432/dbname")
	}
	s.check(db.MaxOpenConns >= 1 && db.MaxOpenConns <= 1000, "--db-max-open-conns must be between 1 and 1000, not %d", db.MaxOpenConns)
	s.check(db.MaxIdleConns >= 0 && db.MaxIdleConns <= db.MaxOpenConns, "--db-max-idle-conns must be between 0 and --db-max-open-conns, not %d", db.MaxIdleConns)
	s.check(db.ConnMaxLifetime >= time.Minute, "--db-conn-max-lifetime must be at least 1m")
	s.check(db.StatementTimeout >= 100*time.Millisecond && db.StatementTimeout <= 10*time.Minute, "--db-statement-timeout must be between 100ms and 10m")
	if err := lg.Level.UnmarshalText([]byte(c.logLevel)); err != nil {
		s.problems = append(s.problems, fmt.Sprintf("--log-level / LOG_LEVEL must be debug, info, warn or error, not %q", c.logLevel))
	}
	lg.Format = c.logFormat
	s.check(c.logFormat == "auto" || c.logFormat == "json" || c.logFormat == "text", "--log-format / LOG_FORMAT must be auto, json or text, not %q", c.logFormat)
}

// ParseServe reads the settings of `serve` from args and the environment.
// It returns flag.ErrHelp after printing help to out, and an *Error listing
// every bad value otherwise.
func ParseServe(args []string, out io.Writer) (*Serve, error) {
	var (
		cfg     Serve
		c       common
		public  string
		origins string
	)
	s := newSet("fastimage serve", out)
	s.common(&c, &cfg.DB)
	s.str(&cfg.HTTPAddr, "http-addr", "HTTP_ADDR", "127.0.0.1:8080", "address the HTTP server listens on")
	s.str(&public, "public-url", "PUBLIC_URL", "http://localhost:8080", "URL users reach the service at; used in links and as an allowed origin")
	s.str(&origins, "allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated extra origins allowed for browsers and WebSocket upgrades")
	s.bool(&cfg.Migrate, "migrate", "MIGRATE", false, "apply pending migrations at start (otherwise refuse to start while any are pending)")
	s.duration(&cfg.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 20*time.Second, "longest wait for in-flight requests when stopping")
	s.int64(&cfg.MaxBodyBytes, "max-body-bytes", "MAX_BODY_BYTES", 1<<20, "largest accepted body of a JSON GraphQL request, in bytes")
	s.int64(&cfg.MaxUploadBytes, "max-upload-bytes", "MAX_UPLOAD_BYTES", 20<<20, "largest accepted multipart upload, in bytes")
	s.int(&cfg.MaxQueryComplexity, "max-query-complexity", "MAX_QUERY_COMPLEXITY", 10_000, "largest computed cost of one GraphQL operation (a page of 100 works with their images costs about 6,300)")
	s.int(&cfg.MaxQueryDepth, "max-query-depth", "MAX_QUERY_DEPTH", 12, "deepest selection nesting of one GraphQL operation (introspection not counted)")
	s.duration(&cfg.WSInitTimeout, "ws-init-timeout", "WS_INIT_TIMEOUT", 10*time.Second, "a WebSocket that sends no connection_init within this is closed")
	s.duration(&cfg.WSWriteTimeout, "ws-write-timeout", "WS_WRITE_TIMEOUT", 10*time.Second, "a WebSocket whose client does not take a message within this is closed")
	s.duration(&cfg.WSPingInterval, "ws-ping-interval", "WS_PING_INTERVAL", 25*time.Second, "WebSocket ping period; a client silent for two periods is closed")
	s.int64(&cfg.WSMaxMessage, "ws-max-message-bytes", "WS_MAX_MESSAGE_BYTES", 64<<10, "largest WebSocket message accepted from a client, in bytes")
	s.int(&cfg.Streams.PerIP, "max-streams-per-ip", "MAX_STREAMS_PER_IP", 100, "WebSockets and SSE streams one client IP may hold open in a process; more are refused with 429 LIMIT_EXCEEDED")
	s.int(&cfg.Streams.PerSocket, "max-subscriptions-per-socket", "MAX_SUBSCRIPTIONS_PER_SOCKET", 100, "subscriptions one WebSocket may run at once; more are refused with LIMIT_EXCEEDED")
	s.int(&cfg.Streams.PerUser, "max-subscriptions-per-user", "MAX_SUBSCRIPTIONS_PER_USER", 100, "subscriptions one user may run at once in a process, over all their WebSockets and SSE streams (clients of one IP not signed in count as one user); more are refused with LIMIT_EXCEEDED")
	s.int(&cfg.Costs.Keys.Size, "cost-limit-key-size", "COST_LIMIT_KEY_SIZE", 20_000, "points of query cost an API key's bucket holds (at least --max-query-complexity; 0 turns the limit off)")
	s.int(&cfg.Costs.Keys.RestoreRate, "cost-limit-key-rate", "COST_LIMIT_KEY_RATE", 500, "points a second an API key's bucket restores")
	s.int(&cfg.Costs.Sessions.Size, "cost-limit-session-size", "COST_LIMIT_SESSION_SIZE", 20_000, "points of query cost a session's bucket holds (at least --max-query-complexity; 0 turns the limit off)")
	s.int(&cfg.Costs.Sessions.RestoreRate, "cost-limit-session-rate", "COST_LIMIT_SESSION_RATE", 1_000, "points a second a session's bucket restores")
	s.int(&cfg.Costs.Anonymous.Size, "cost-limit-anonymous-size", "COST_LIMIT_ANONYMOUS_SIZE", 10_000, "points of query cost the bucket of one client IP not signed in holds (at least --max-query-complexity; 0 turns the limit off)")
	s.int(&cfg.Costs.Anonymous.RestoreRate, "cost-limit-anonymous-rate", "COST_LIMIT_ANONYMOUS_RATE", 200, "points a second the bucket of one client IP not signed in restores")
	s.duration(&cfg.HTTPReadHeaderTimeout, "http-read-header-timeout", "HTTP_READ_HEADER_TIMEOUT", 10*time.Second, "a connection whose request headers take longer is closed")
	s.duration(&cfg.HTTPReadTimeout, "http-read-timeout", "HTTP_READ_TIMEOUT", 10*time.Second, "a request body gets this long, plus a second per --http-min-body-rate bytes received (408 after)")
	s.int64(&cfg.HTTPMinBodyRate, "http-min-body-rate", "HTTP_MIN_BODY_RATE", 8<<10, "slowest request body accepted past --http-read-timeout, in bytes a second")
	s.duration(&cfg.HTTPIdleTimeout, "http-idle-timeout", "HTTP_IDLE_TIMEOUT", 2*time.Minute, "a keep-alive connection idle this long is closed")
	s.int(&cfg.MaxMutationsPerOperation, "max-mutations-per-operation", "MAX_MUTATIONS_PER_OPERATION", 10, "most root mutation fields (aliases included) one GraphQL operation may have")
	s.int(&cfg.WSMaxOperations, "ws-max-operations", "WS_MAX_OPERATIONS", 8, "queries and mutations one WebSocket may run at once; more are refused with RATE_LIMITED (subscriptions not counted)")
	s.int(&cfg.PasswordHashConcurrency, "password-hash-concurrency", "PASSWORD_HASH_CONCURRENCY", 0, "password hashes (argon2id, 19 MiB each) running at once in the process; 0 means as many as fit in 40 MiB (2), at most the number of CPUs")
	s.int(&cfg.PasswordHashQueue, "password-hash-queue", "PASSWORD_HASH_QUEUE", 0, "sign-ins and password changes that may wait for a hash slot; more are refused with UNAVAILABLE (0: 32 per slot)")
	var proxies, captchaHosts string
	s.duration(&cfg.Accounts.SessionIdleTimeout, "session-idle-timeout", "SESSION_IDLE_TIMEOUT", 7*24*time.Hour, "a session unused this long ends")
	s.duration(&cfg.Accounts.SessionLifetime, "session-lifetime", "SESSION_LIFETIME", 30*24*time.Hour, "every session ends this long after sign-in")
	s.duration(&cfg.Accounts.SessionRecheck, "session-recheck", "SESSION_RECHECK_INTERVAL", time.Minute, "safety net: how often the server rechecks the sessions and keys of open subscriptions, all in a few queries (revocations end them at once)")
	s.duration(&cfg.Accounts.VerifyLinkTTL, "verify-link-ttl", "VERIFY_LINK_TTL", 48*time.Hour, "how long an email verification link works")
	s.duration(&cfg.Accounts.EmailChangeLinkTTL, "email-change-link-ttl", "EMAIL_CHANGE_LINK_TTL", 24*time.Hour, "how long an email change confirmation link works")
	s.int64(&cfg.Credits.SignupBonus, "signup-bonus-credits", "SIGNUP_BONUS_CREDITS", 25, "credits granted when a user verifies their email (0: none)")
	s.int64(&cfg.Credits.LowThreshold, "credits-low-threshold", "CREDITS_LOW_THRESHOLD", 20, "a generation whose charge leaves fewer available credits than this sends the credits.low webhook (0: never)")
	s.duration(&cfg.MaintenanceInterval, "maintenance-interval", "MAINTENANCE_INTERVAL", time.Minute, "how often periodic jobs run (expired credit holds and lots, purging deleted works, old rate-limit events)")
	s.str(&cfg.Storage.Backend, "storage-backend", "STORAGE_BACKEND", "local", "where images are stored: local (a folder, served at /blobs/) or gcs")
	s.str(&cfg.Storage.Dir, "storage-dir", "STORAGE_DIR", ".data/blobs", "the folder of the local storage backend")
	s.secret(&cfg.Storage.SigningKey, "storage-signing-key", "STORAGE_SIGNING_KEY", "", "secret that signs local storage URLs (at least 32 characters; required in production; in development one is kept in the storage folder)")
	s.str(&cfg.Storage.GCSBucket, "gcs-bucket", "GCS_BUCKET", "", "the Google Cloud Storage bucket (with --storage-backend gcs)")
	s.str(&cfg.Storage.GCSCredentialsFile, "gcs-credentials-file", "GCS_CREDENTIALS_FILE", "", "service-account JSON key for the GCS client and URL signing (default: the environment's credentials, signing through IAM)")
	s.str(&cfg.Storage.GCSSignerEmail, "gcs-signer-email", "GCS_SIGNER_EMAIL", "", "service account that signs URLs through IAM signBlob when no key file is given")
	s.int64(&cfg.Works.MaxPixels, "max-image-pixels", "MAX_IMAGE_PIXELS", 40_000_000, "largest image accepted, in pixels (checked from the header, before decoding)")
	s.int64(&cfg.Works.QuotaBytes, "storage-quota-bytes", "STORAGE_QUOTA_BYTES", 5<<30, "bytes each user may keep")
	s.duration(&cfg.Works.URLTTL, "signed-url-ttl", "SIGNED_URL_TTL", time.Hour, "how long signed image URLs work (at least)")
	s.duration(&cfg.Works.Retention, "works-retention", "WORKS_RETENTION", 7*24*time.Hour, "how long deleted works stay restorable before they are erased")
	s.int64(&cfg.Works.MaxDecodeBytes, "max-decode-bytes", "MAX_DECODE_BYTES", 256<<20, "most memory decoding one image may take, worked out from its header (pixels × bytes per pixel at its bit depth); bigger images are refused with IMAGE_TOO_LARGE")
	s.int(&cfg.Works.MaxConcurrentDecodes, "max-concurrent-decodes", "MAX_CONCURRENT_DECODES", 2, "images this process decodes at once (for thumbnails); others wait their turn")
	s.int(&cfg.Generate.Workers, "workers", "WORKERS", 2, "generation jobs this process runs at once (0: none; the API only)")
	s.duration(&cfg.Generate.Lease, "job-lease", "JOB_LEASE", 30*time.Second, "a claimed job whose worker stops renewing it for this long is taken over by another worker")
	s.int(&cfg.Generate.MaxAttempts, "job-max-attempts", "JOB_MAX_ATTEMPTS", 3, "how often a job whose worker died is tried before it fails")
	s.int(&cfg.Generate.UserRunningLimit, "user-running-limit", "USER_RUNNING_LIMIT", 2, "jobs of one user that run at once")
	s.int(&cfg.Generate.QueueCap, "queue-cap", "QUEUE_CAP", 1000, "queued jobs past which new ones are refused with QUEUE_FULL")
	s.str(&cfg.Generate.Provider, "ai-provider", "AI_PROVIDER", "local", "local (built-in generator, no network) or openai (an OpenAI-compatible Images API)")
	s.duration(&cfg.Generate.LocalStepDelay, "local-step-delay", "LOCAL_STEP_DELAY", 250*time.Millisecond, "pause between the built-in generator's steps, so that progress can be watched")
	s.str(&cfg.Generate.OpenAIBaseURL, "openai-base-url", "OPENAI_BASE_URL", "https://api.openai.com", "base URL of the OpenAI-compatible Images API")
	s.secret(&cfg.Generate.OpenAIKey, "openai-api-key", "OPENAI_API_KEY", "", "API key of the Images API")
	s.str(&cfg.Generate.OpenAIModel, "openai-model", "OPENAI_MODEL", "gpt-image-1", "image model")
	s.duration(&cfg.Generate.OpenAITimeout, "openai-timeout", "OPENAI_TIMEOUT", 2*time.Minute, "longest wait for one provider call")
	s.int(&cfg.Generate.OpenAIPartials, "openai-partial-images", "OPENAI_PARTIAL_IMAGES", 2, "partial images to stream while generating (0 to 3; 0 turns streaming off)")
	s.str(&proxies, "trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated IPs or CIDRs of proxies whose X-Forwarded-For is believed")
	s.secret(&cfg.Mail.SMTPURL, "smtp-url", "SMTP_URL", "", "SMTP server for outgoing mail, e.g. smtp://user:pass@host:587?from=FastImage%20%3Cno-reply@example.com%3E; empty keeps mail in the local outbox (shown at /dev/outbox in development)")
	s.str(&cfg.Captcha.Provider, "captcha-provider", "CAPTCHA_PROVIDER", "", "turnstile or hcaptcha; empty turns CAPTCHA off")
	s.secret(&cfg.Captcha.Secret, "captcha-secret", "CAPTCHA_SECRET", "", "the CAPTCHA provider's secret key")
	s.str(&cfg.Captcha.SiteKey, "captcha-site-key", "CAPTCHA_SITE_KEY", "", "the CAPTCHA site key (required for hcaptcha; shown to the editor)")
	s.str(&captchaHosts, "captcha-hostnames", "CAPTCHA_HOSTNAMES", "", "comma-separated hostnames a solved CAPTCHA may come from (default: the public URL's host)")
	s.str(&cfg.Captcha.VerifyURL, "captcha-verify-url", "CAPTCHA_VERIFY_URL", "", "override of the provider's verify endpoint")
	s.duration(&cfg.Captcha.Timeout, "captcha-timeout", "CAPTCHA_TIMEOUT", 5*time.Second, "longest wait for the CAPTCHA provider; a slower answer fails closed")
	s.secret(&cfg.Payments.SecretKey, "stripe-secret-key", "STRIPE_SECRET_KEY", "", "Stripe secret API key; empty turns payments off (purchases answer PAYMENTS_DISABLED)")
	s.secret(&cfg.Payments.WebhookSecret, "stripe-webhook-secret", "STRIPE_WEBHOOK_SECRET", "", "signing secret of the Stripe webhook endpoint at /webhooks/stripe (required with STRIPE_SECRET_KEY)")
	s.str(&cfg.Payments.APIBase, "stripe-api-base", "STRIPE_API_BASE", "", "Stripe API base URL, e.g. a local stripe-mock (empty: Stripe's own)")
	s.str(&cfg.Payments.CatalogFile, "billing-catalog-file", "BILLING_CATALOG_FILE", "", "JSON file of the credit packs and plans on sale (empty: the built-in catalog)")
	s.bool(&cfg.Payments.Tax, "stripe-tax", "STRIPE_TAX", false, "let Stripe Tax compute and collect tax in Checkout")
	s.duration(&cfg.Payments.ReconcileInterval, "billing-reconcile-interval", "BILLING_RECONCILE_INTERVAL", time.Hour, "how often paid Checkout Sessions and invoices that no webhook delivered are looked up and applied (0: never)")
	s.duration(&cfg.Payments.ReconcileWindow, "billing-reconcile-window", "BILLING_RECONCILE_WINDOW", 72*time.Hour, "how far back the periodic reconcile looks")
	s.int64(&cfg.Payments.WebhookMaxBytes, "stripe-webhook-max-bytes", "STRIPE_WEBHOOK_MAX_BYTES", 256<<10, "largest Stripe webhook body accepted (413 above)")
	s.duration(&cfg.Exports.TTL, "privacy-export-ttl", "PRIVACY_EXPORT_TTL", 7*24*time.Hour, "how long a finished data export can be downloaded before it is deleted (at most 168h)")
	s.secret(&cfg.Exports.LinkKey, "privacy-export-link-key", "PRIVACY_EXPORT_LINK_KEY", "", "secret that signs data export download links (at least 32 characters; default: derived from the local storage signing key; required in production with GCS storage)")
	s.bool(&cfg.Privacy.AnalyticsEnabled, "analytics", "ANALYTICS_ENABLED", false, "record usage events (feature, operation, time, browser and OS family; never content) for signed-in users who do not object")
	s.str(&cfg.Privacy.AnalyticsForwardURL, "analytics-forward-url", "ANALYTICS_FORWARD_URL", "", "http(s) endpoint that receives usage events as JSON batches (empty: they stay in the database)")
	s.duration(&cfg.Privacy.AnalyticsForwardInterval, "analytics-forward-interval", "ANALYTICS_FORWARD_INTERVAL", time.Minute, "how often usage events are forwarded")
	s.str(&cfg.Privacy.SupportEmail, "support-email", "SUPPORT_EMAIL", "", "address that receives contactSupport messages (default: support@ the public URL's host)")
	s.str(&cfg.Privacy.LiveChatProvider, "live-chat-provider", "LIVE_CHAT_PROVIDER", "", "live chat widget the web app loads, e.g. crisp or intercom (empty: no live chat)")
	s.str(&cfg.Privacy.LiveChatWidgetID, "live-chat-widget-id", "LIVE_CHAT_WIDGET_ID", "", "the live chat widget's public id (required with LIVE_CHAT_PROVIDER)")
	s.str(&cfg.Privacy.LegalDocumentsFile, "legal-documents-file", "LEGAL_DOCUMENTS_FILE", "", "JSON file of the privacy policy and terms versions (empty: the built-in ones)")
	rt := &cfg.Privacy.Retention
	s.duration(&rt.Interval, "retention-interval", "RETENTION_INTERVAL", time.Hour, "how often the retention job runs (0: never; `fastimage retention` runs it once)")
	s.duration(&rt.Sessions, "retention-sessions", "RETENTION_SESSIONS", 30*24*time.Hour, "ended sessions (signed out, revoked, expired) are deleted this long after they ended (0: kept)")
	s.duration(&rt.EmailTokens, "retention-email-tokens", "RETENTION_EMAIL_TOKENS", 7*24*time.Hour, "used, replaced or expired email links are deleted this long after they ended (0: kept)")
	s.duration(&rt.SecurityEvents, "retention-security-events", "RETENTION_SECURITY_EVENTS", 365*24*time.Hour, "security events are deleted at this age (0: kept)")
	s.duration(&rt.UsageEvents, "retention-usage-events", "RETENTION_USAGE_EVENTS", 90*24*time.Hour, "usage events are deleted at this age (0: kept)")
	s.duration(&rt.IPTruncateAfter, "retention-ip-truncate-after", "RETENTION_IP_TRUNCATE_AFTER", 30*24*time.Hour, "IP addresses in security events older than this are cut to IPv4 /24, IPv6 /48 (0: kept whole)")
	var introspection, graphiql bool
	s.bool(&introspection, "introspection", "INTROSPECTION", true, "let clients read the schema through __schema and __type (GraphiQL and code generators need it); false refuses them with FORBIDDEN")
	s.bool(&graphiql, "graphiql", "GRAPHIQL", true, "serve the GraphiQL page at /graphiql")
	s.str(&cfg.MetricsAddr, "metrics-addr", "METRICS_ADDR", "", "host:port to serve /metrics on, alone (also for fastimage worker); empty serves it on --http-addr")
	pq := &cfg.PersistedQueries
	s.bool(&pq.Only, "persisted-queries-only", "PERSISTED_QUERIES_ONLY", false, "run only the operations of --persisted-queries-file (an allow-list); others are refused with PERSISTED_QUERY_REQUIRED")
	s.str(&pq.File, "persisted-queries-file", "PERSISTED_QUERIES_FILE", "", "JSON manifest of registered operations, {\"<sha256>\": \"<query>\"} or Apollo's persisted-query manifest; checked against the schema at start")
	s.int(&pq.CacheSize, "persisted-queries-cache-size", "PERSISTED_QUERIES_CACHE_SIZE", 1000, "queries registered by automatic persisted queries kept in memory (least recently used dropped first)")
	if err := s.parse(args); err != nil {
		return nil, err
	}
	cfg.DisableIntrospection, cfg.DisableGraphiQL = !introspection, !graphiql
	s.check(!pq.Only || pq.File != "", "--persisted-queries-only / PERSISTED_QUERIES_ONLY needs --persisted-queries-file / PERSISTED_QUERIES_FILE: the operations allowed to run")
	s.check(pq.CacheSize >= 1 && pq.CacheSize <= 1_000_000, "--persisted-queries-cache-size must be between 1 and 1000000")
	if cfg.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.MetricsAddr); err != nil {
			s.problems = append(s.problems, fmt.Sprintf("--metrics-addr / METRICS_ADDR must be host:port, not %q", cfg.MetricsAddr))
		}
	}
	s.finishCommon(&c, &cfg.DB, &cfg.Env, &cfg.Log)
	for _, p := range splitList(proxies) {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				s.problems = append(s.problems, fmt.Sprintf("--trusted-proxies / TRUSTED_PROXIES entry %q is not an IP or CIDR", p))
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, prefix.Masked())
	}
	cfg.Captcha.Hostnames = splitList(captchaHosts)
	a := cfg.Accounts
	s.check(a.SessionIdleTimeout >= time.Minute, "--session-idle-timeout must be at least 1m")
	s.check(a.SessionLifetime >= a.SessionIdleTimeout, "--session-lifetime must be at least --session-idle-timeout")
	s.check(a.SessionRecheck >= 100*time.Millisecond && a.SessionRecheck <= 10*time.Minute, "--session-recheck must be between 100ms and 10m")
	s.check(a.VerifyLinkTTL >= 10*time.Minute, "--verify-link-ttl must be at least 10m")
	s.check(a.EmailChangeLinkTTL >= 10*time.Minute, "--email-change-link-ttl must be at least 10m")
	s.check(cfg.Captcha.Provider == "" || cfg.Captcha.Provider == "turnstile" || cfg.Captcha.Provider == "hcaptcha",
		"--captcha-provider / CAPTCHA_PROVIDER must be turnstile, hcaptcha or empty, not %q", cfg.Captcha.Provider)
	s.check(cfg.Captcha.Provider == "" || cfg.Captcha.Secret != "", "CAPTCHA_SECRET is required when CAPTCHA_PROVIDER is set")
	s.check(cfg.Credits.SignupBonus >= 0 && cfg.Credits.SignupBonus <= 1_000_000, "--signup-bonus-credits must be between 0 and 1000000")
	s.check(cfg.MaintenanceInterval >= time.Second, "--maintenance-interval must be at least 1s")
	switch cfg.Storage.Backend {
	case "local":
		s.check(cfg.Storage.Dir != "", "--storage-dir / STORAGE_DIR must name a folder")
		s.check(cfg.Storage.SigningKey == "" || len(cfg.Storage.SigningKey) >= 32, "STORAGE_SIGNING_KEY must be at least 32 characters")
		s.check(cfg.Env != Production || cfg.Storage.SigningKey != "", "STORAGE_SIGNING_KEY is required in production with local storage")
	case "gcs":
		s.check(cfg.Storage.GCSBucket != "", "GCS_BUCKET is required with --storage-backend gcs")
	default:
		s.problems = append(s.problems, fmt.Sprintf("--storage-backend / STORAGE_BACKEND must be local or gcs, not %q", cfg.Storage.Backend))
	}
	s.check(cfg.Exports.TTL >= time.Hour && cfg.Exports.TTL <= 7*24*time.Hour, "--privacy-export-ttl must be between 1h and 168h")
	s.check(cfg.Exports.LinkKey == "" || len(cfg.Exports.LinkKey) >= 32, "PRIVACY_EXPORT_LINK_KEY must be at least 32 characters")
	s.check(cfg.Env != Production || cfg.Storage.Backend != "gcs" || cfg.Exports.LinkKey != "",
		"PRIVACY_EXPORT_LINK_KEY is required in production with GCS storage: it signs the data export download links")
	s.check(cfg.Works.MaxPixels >= 1_000_000, "--max-image-pixels must be at least 1000000")
	s.check(cfg.Works.QuotaBytes >= cfg.MaxUploadBytes, "--storage-quota-bytes must be at least --max-upload-bytes")
	s.check(cfg.Works.URLTTL >= time.Minute && cfg.Works.URLTTL <= 7*24*time.Hour, "--signed-url-ttl must be between 1m and 168h")
	s.check(cfg.Works.Retention >= time.Hour, "--works-retention must be at least 1h")
	s.check(cfg.Works.MaxDecodeBytes >= 16<<20, "--max-decode-bytes must be at least 16777216")
	s.check(cfg.Works.MaxConcurrentDecodes >= 1 && cfg.Works.MaxConcurrentDecodes <= 64, "--max-concurrent-decodes must be between 1 and 64")
	g := cfg.Generate
	s.check(g.Workers >= 0 && g.Workers <= 64, "--workers must be between 0 and 64")
	s.check(g.Lease >= time.Second, "--job-lease must be at least 1s")
	s.check(g.MaxAttempts >= 1 && g.MaxAttempts <= 10, "--job-max-attempts must be between 1 and 10")
	s.check(g.UserRunningLimit >= 1, "--user-running-limit must be at least 1")
	s.check(g.QueueCap >= 1, "--queue-cap must be at least 1")
	s.check(g.Provider == "local" || g.Provider == "openai", "--ai-provider / AI_PROVIDER must be local or openai, not %q", g.Provider)
	s.check(g.Provider != "openai" || g.OpenAIKey != "", "OPENAI_API_KEY is required with AI_PROVIDER=openai")
	s.check(g.OpenAIPartials >= 0 && g.OpenAIPartials <= 3, "--openai-partial-images must be between 0 and 3")
	pay := cfg.Payments
	s.check(pay.SecretKey == "" || pay.WebhookSecret != "", "STRIPE_WEBHOOK_SECRET is required with STRIPE_SECRET_KEY: without it no payment would ever be credited")
	s.check(pay.APIBase == "" || strings.HasPrefix(pay.APIBase, "http://") || strings.HasPrefix(pay.APIBase, "https://"), "--stripe-api-base must be an http(s) URL, not %q", pay.APIBase)
	s.check(pay.ReconcileInterval == 0 || pay.ReconcileInterval >= time.Minute, "--billing-reconcile-interval must be 0 or at least 1m")
	s.check(pay.ReconcileWindow >= time.Hour && pay.ReconcileWindow <= 30*24*time.Hour, "--billing-reconcile-window must be between 1h and 720h")
	s.check(pay.WebhookMaxBytes >= 16<<10 && pay.WebhookMaxBytes <= 16<<20, "--stripe-webhook-max-bytes must be between 16384 and 16777216")
	s.check(cfg.Captcha.Timeout >= 100*time.Millisecond, "--captcha-timeout must be at least 100ms")
	s.checkPrivacy(&cfg.Privacy)

	if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		s.problems = append(s.problems, fmt.Sprintf("--http-addr / HTTP_ADDR must be host:port, not %q", cfg.HTTPAddr))
	}
	u, err := url.Parse(public)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		s.problems = append(s.problems, fmt.Sprintf("--public-url / PUBLIC_URL must be an http(s) origin such as https://fastimage.example, not %q", public))
	} else {
		cfg.PublicURL = u
		cfg.AllowedOrigins = append(cfg.AllowedOrigins, u.Scheme+"://"+u.Host)
		if cfg.Privacy.SupportEmail == "" {
			cfg.Privacy.SupportEmail = "support@" + u.Hostname()
		}
		if len(cfg.Captcha.Hostnames) == 0 {
			cfg.Captcha.Hostnames = []string{u.Hostname()}
		}
	}
	for _, o := range splitList(origins) {
		o = strings.TrimRight(o, "/")
		ou, err := url.Parse(o)
		if err != nil || (ou.Scheme != "http" && ou.Scheme != "https") || ou.Host == "" || ou.Path != "" {
			s.problems = append(s.problems, fmt.Sprintf("--allowed-origins / ALLOWED_ORIGINS entry %q is not an origin such as https://app.example", o))
			continue
		}
		cfg.AllowedOrigins = append(cfg.AllowedOrigins, ou.Scheme+"://"+ou.Host)
	}
	s.check(cfg.ShutdownTimeout >= time.Second && cfg.ShutdownTimeout <= 5*time.Minute, "--shutdown-timeout must be between 1s and 5m")
	s.check(cfg.MaxBodyBytes >= 1<<10 && cfg.MaxBodyBytes <= 64<<20, "--max-body-bytes must be between 1024 and 67108864")
	s.check(cfg.MaxUploadBytes >= 1<<10 && cfg.MaxUploadBytes <= 1<<30, "--max-upload-bytes must be between 1024 and 1073741824")
	s.check(cfg.MaxQueryComplexity >= 10, "--max-query-complexity must be at least 10")
	s.check(cfg.MaxQueryDepth >= 3 && cfg.MaxQueryDepth <= 50, "--max-query-depth must be between 3 and 50")
	s.check(cfg.WSInitTimeout >= 100*time.Millisecond, "--ws-init-timeout must be at least 100ms")
	s.check(cfg.WSWriteTimeout >= 100*time.Millisecond, "--ws-write-timeout must be at least 100ms")
	s.check(cfg.WSPingInterval >= 100*time.Millisecond, "--ws-ping-interval must be at least 100ms")
	s.check(cfg.WSMaxMessage >= 1<<10, "--ws-max-message-bytes must be at least 1024")
	s.check(cfg.Streams.PerIP >= 1, "--max-streams-per-ip must be at least 1")
	s.check(cfg.Streams.PerSocket >= 1, "--max-subscriptions-per-socket must be at least 1")
	s.check(cfg.Streams.PerUser >= 1, "--max-subscriptions-per-user must be at least 1")
	for _, b := range []struct {
		name string
		b    CostBucket
	}{{"key", cfg.Costs.Keys}, {"session", cfg.Costs.Sessions}, {"anonymous", cfg.Costs.Anonymous}} {
		s.check(b.b.Size == 0 || b.b.Size >= cfg.MaxQueryComplexity, "--cost-limit-%s-size must be 0 (off) or at least --max-query-complexity (%d): an operation the complexity limit allows must fit in the bucket", b.name, cfg.MaxQueryComplexity)
		s.check(b.b.Size == 0 || (b.b.RestoreRate >= 1 && b.b.RestoreRate <= b.b.Size), "--cost-limit-%s-rate must be between 1 and --cost-limit-%s-size", b.name, b.name)
	}
	s.check(cfg.HTTPReadHeaderTimeout >= 100*time.Millisecond, "--http-read-header-timeout must be at least 100ms")
	s.check(cfg.HTTPReadTimeout >= 100*time.Millisecond, "--http-read-timeout must be at least 100ms")
	s.check(cfg.HTTPMinBodyRate >= 1, "--http-min-body-rate must be at least 1")
	s.check(cfg.HTTPIdleTimeout >= 100*time.Millisecond, "--http-idle-timeout must be at least 100ms")
	s.check(cfg.MaxMutationsPerOperation >= 1 && cfg.MaxMutationsPerOperation <= 1000, "--max-mutations-per-operation must be between 1 and 1000")
	s.check(cfg.WSMaxOperations >= 1 && cfg.WSMaxOperations <= 1000, "--ws-max-operations must be between 1 and 1000")
	s.check(cfg.PasswordHashConcurrency >= 0 && cfg.PasswordHashConcurrency <= 1024, "--password-hash-concurrency must be between 0 and 1024")
	s.check(cfg.PasswordHashQueue >= 0 && cfg.PasswordHashQueue <= 100_000, "--password-hash-queue must be between 0 and 100000")
	return &cfg, s.err()
}

func (s *set) checkPrivacy(p *Privacy) {
	if p.AnalyticsForwardURL != "" {
		u, err := url.Parse(p.AnalyticsForwardURL)
		s.check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "",
			"--analytics-forward-url / ANALYTICS_FORWARD_URL must be an http(s) URL, not %q", p.AnalyticsForwardURL)
	}
	s.check(p.AnalyticsForwardInterval >= time.Second, "--analytics-forward-interval must be at least 1s")
	if p.SupportEmail != "" {
		a, err := mail.ParseAddress(p.SupportEmail)
		s.check(err == nil && a.Name == "" && a.Address == p.SupportEmail,
			"--support-email / SUPPORT_EMAIL must be one plain address such as support@example.com, not %q", p.SupportEmail)
	}
	s.check(p.LiveChatProvider == "" || liveChatName.MatchString(p.LiveChatProvider),
		"--live-chat-provider / LIVE_CHAT_PROVIDER must be a short lowercase name such as crisp, not %q", p.LiveChatProvider)
	s.check((p.LiveChatProvider == "") == (p.LiveChatWidgetID == ""),
		"LIVE_CHAT_PROVIDER and LIVE_CHAT_WIDGET_ID go together: set both to show live chat, or neither")
	s.check(len(p.LiveChatWidgetID) <= 200 && !strings.ContainsFunc(p.LiveChatWidgetID, unicode.IsControl),
		"--live-chat-widget-id / LIVE_CHAT_WIDGET_ID must be at most 200 characters without control characters")
	r := p.Retention
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--retention-sessions", r.Sessions}, {"--retention-email-tokens", r.EmailTokens},
		{"--retention-security-events", r.SecurityEvents}, {"--retention-usage-events", r.UsageEvents},
		{"--retention-ip-truncate-after", r.IPTruncateAfter},
	} {
		s.check(d.v == 0 || d.v >= time.Hour, "%s must be 0 (keep) or at least 1h", d.name)
	}
	s.check(r.Interval == 0 || r.Interval >= time.Minute, "--retention-interval must be 0 or at least 1m")
	s.check(r.SecurityEvents == 0 || r.IPTruncateAfter == 0 || r.IPTruncateAfter <= r.SecurityEvents,
		"--retention-ip-truncate-after must not exceed --retention-security-events: the events would be deleted first")
}

var liveChatName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// ParseMigrate reads the settings of `migrate` from args and the environment
// and returns the remaining arguments (the migrate action).
func ParseMigrate(args []string, out io.Writer) (*Migrate, []string, error) {
	var (
		cfg Migrate
		c   common
	)
	s := newSet("fastimage migrate up|down|status", out)
	s.common(&c, &cfg.DB)
	if err := s.fs.Parse(args); err != nil {
		return nil, nil, err
	}
	s.fillSecrets()
	s.finishCommon(&c, &cfg.DB, &cfg.Env, &cfg.Log)
	return &cfg, s.fs.Args(), s.err()
}

// IsHelp reports whether err asks for help rather than signals a problem.
func IsHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
