// Package webhook tells partner apps about events by HTTP POST, for those
// that cannot hold a socket open: endpoints a user registers for event
// types, per-request URLs given with a generation, and the deliveries to
// both, kept in a Postgres outbox written in the transaction of the event
// and sent by a worker with retries for a day.
//
// Messages follow the Standard Webhooks specification: headers webhook-id,
// webhook-timestamp and webhook-signature ("v1," + base64 of the
// HMAC-SHA256 of "id.timestamp.body", keyed with the decoded secret).
// Every connection goes through Guard, which refuses private addresses at
// connect time.
package webhook

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/events"
)

// Event types a delivery can carry and an endpoint can ask for.
const (
	GenerationSucceeded = "generation.succeeded"
	GenerationFailed    = "generation.failed"
	GenerationCanceled  = "generation.canceled"
	// CreditsLow: the user's available credits fell below the threshold
	// (CREDITS_LOW_THRESHOLD), once per fall.
	CreditsLow = "credits.low"
)

// EventTypes lists every event type, in the order to show them.
var EventTypes = []string{GenerationSucceeded, GenerationFailed, GenerationCanceled, CreditsLow}

// Topic is rung when deliveries are enqueued, to wake the worker.
const Topic = "webhooks"

// Status is where a delivery stands.
type Status string

// Statuses of a delivery.
const (
	StatusPending   Status = "pending"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
)

// Endpoint is a URL a user registered for some event types.
type Endpoint struct {
	bun.BaseModel `bun:"table:webhook_endpoints,alias:ep"`

	ID       uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID   uuid.UUID  `bun:"user_id,type:uuid"`
	APIKeyID *uuid.UUID `bun:"api_key_id,type:uuid"`
	URL      string     `bun:"url"`
	Events   []string   `bun:"events,array"`
	// Secret signs the deliveries; it is shown once, when made.
	Secret                  string     `bun:"secret"`
	PreviousSecret          *string    `bun:"previous_secret"`
	PreviousSecretExpiresAt *time.Time `bun:"previous_secret_expires_at"`
	CreatedAt               time.Time  `bun:"created_at,nullzero,default:now()"`
	DisabledAt              *time.Time `bun:"disabled_at"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode *int      `json:"statusCode,omitempty"`
	Response   string    `json:"response,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMs int64     `json:"durationMs"`
}

// Delivery is one message to one URL and how sending it went.
type Delivery struct {
	bun.BaseModel `bun:"table:webhook_deliveries,alias:d"`

	ID             uuid.UUID       `bun:"id,pk,type:uuid,default:uuidv7()"`
	EndpointID     *uuid.UUID      `bun:"endpoint_id,type:uuid"`
	UserID         uuid.UUID       `bun:"user_id,type:uuid"`
	URL            string          `bun:"url"`
	PerRequest     bool            `bun:"per_request"`
	EventType      string          `bun:"event_type"`
	Payload        json.RawMessage `bun:"payload,type:jsonb"`
	WebhookID      string          `bun:"webhook_id"`
	Status         Status          `bun:"status"`
	Attempts       int             `bun:"attempts"`
	NextAttemptAt  *time.Time      `bun:"next_attempt_at"`
	WindowStart    time.Time       `bun:"window_start,nullzero,default:now()"`
	LastStatusCode *int            `bun:"last_status_code"`
	LastResponse   *string         `bun:"last_response"`
	LastError      *string         `bun:"last_error"`
	AttemptLog     []Attempt       `bun:"attempt_log,type:jsonb"`
	CreatedAt      time.Time       `bun:"created_at,nullzero,default:now()"`
	DeliveredAt    *time.Time      `bun:"delivered_at"`
}

// Config tunes the service; zero fields take the defaults below.
type Config struct {
	// Development allows http URLs and loopback and private addresses, for
	// receivers on the developer's machine. Cloud metadata addresses stay
	// refused.
	Development bool
	// Backoff is the pause after the first failed try; it doubles after
	// each further one (with jitter), up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// RetryFor is how long after the event a delivery is retried before it
	// is given up.
	RetryFor time.Duration
	// Timeout bounds one try (connect, send, and read the answer).
	Timeout time.Duration
	// Poll is the safety net behind the doorbell.
	Poll time.Duration
	// RotationGrace is how long a rotated-out secret still signs.
	RotationGrace time.Duration
	// MaxEndpoints is how many endpoints one user may have.
	MaxEndpoints int
}

// The Config defaults: retries for a day, 30 s to 1 h apart.
const (
	DefaultBackoff       = 30 * time.Second
	DefaultMaxBackoff    = time.Hour
	DefaultRetryFor      = 24 * time.Hour
	DefaultTimeout       = 15 * time.Second
	DefaultPoll          = 30 * time.Second
	DefaultRotationGrace = 24 * time.Hour
	DefaultMaxEndpoints  = 20
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Backoff, DefaultBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.RetryFor, DefaultRetryFor)
	def(&c.Timeout, DefaultTimeout)
	def(&c.Poll, DefaultPoll)
	def(&c.RotationGrace, DefaultRotationGrace)
	if c.MaxEndpoints <= 0 {
		c.MaxEndpoints = DefaultMaxEndpoints
	}
	return c
}

// Service registers endpoints, enqueues deliveries and sends them.
type Service struct {
	db    *bun.DB
	bus   *events.Bus
	log   *slog.Logger
	cfg   Config
	guard *Guard
}

// New returns a Service over db; bus (running) wakes its worker.
func New(db *bun.DB, bus *events.Bus, log *slog.Logger, cfg Config) *Service {
	cfg = cfg.withDefaults()
	return &Service{db: db, bus: bus, log: log, cfg: cfg, guard: &Guard{AllowPrivate: cfg.Development}}
}

func endpointNotFound() error { return apperr.Errorf(apperr.NotFound, "No such webhook endpoint.") }
func deliveryNotFound() error { return apperr.Errorf(apperr.NotFound, "No such webhook delivery.") }
