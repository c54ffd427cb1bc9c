// Package generate runs image generation: the job (a generation row that is
// its own queue entry), the workers that claim jobs under leases and call
// an AI provider, and the events every state change and progress step
// leaves behind for live, resumable streams.
package generate

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/work"
)

// Status is where a generation stands: the status of the work it makes.
type Status = work.Status

// Statuses of a generation.
const (
	StatusQueued    = work.StatusQueued
	StatusRunning   = work.StatusRunning
	StatusSucceeded = work.StatusSucceeded
	StatusFailed    = work.StatusFailed
	StatusCanceled  = work.StatusCanceled
)

// Codes of refusals particular to generation.
const (
	QueueFull            apperr.Code = "QUEUE_FULL"
	IdempotencyKeyReused apperr.Code = "IDEMPOTENCY_KEY_REUSED"
)

// Generation is one job: a request to make images, and where it stands.
type Generation struct {
	bun.BaseModel `bun:"table:generations"`

	ID              uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID          uuid.UUID  `bun:"user_id,type:uuid"`
	WorkID          uuid.UUID  `bun:"work_id,type:uuid"`
	Kind            string     `bun:"kind"`
	Prompt          string     `bun:"prompt"`
	NegativePrompt  string     `bun:"negative_prompt"`
	Width           int        `bun:"width"`
	Height          int        `bun:"height"`
	Count           int        `bun:"count"`
	Seed            int64      `bun:"seed"`
	Strength        float64    `bun:"strength"`
	SourceWorkID    *uuid.UUID `bun:"source_work_id,type:uuid"`
	MaskWorkID      *uuid.UUID `bun:"mask_work_id,type:uuid"`
	Provider        string     `bun:"provider"`
	Status          Status     `bun:"status"`
	Progress        float64    `bun:"progress"`
	CreditsPerImage int        `bun:"credits_per_image"`
	HoldID          *uuid.UUID `bun:"hold_id,type:uuid"`
	Cost            *int64     `bun:"cost"`
	Outputs         int        `bun:"outputs"`
	Attempts        int        `bun:"attempts"`
	MaxAttempts     int        `bun:"max_attempts"`
	LeaseOwner      *string    `bun:"lease_owner"`
	LeaseExpiresAt  *time.Time `bun:"lease_expires_at"`
	CancelRequested bool       `bun:"cancel_requested"`
	LastSeq         int        `bun:"last_seq"`
	IdempotencyKey  *string    `bun:"idempotency_key"`
	RequestHash     string     `bun:"request_hash"`
	RetryOf         *uuid.UUID `bun:"retry_of,type:uuid"`
	ErrorCode       *string    `bun:"error_code"`
	ErrorMessage    *string    `bun:"error_message"`
	// WebhookURL is where the generation's end is POSTed (per request).
	WebhookURL *string    `bun:"webhook_url"`
	QueuedAt   time.Time  `bun:"queued_at,nullzero,default:clock_timestamp()"`
	StartedAt  *time.Time `bun:"started_at"`
	FinishedAt *time.Time `bun:"finished_at"`
	CreatedAt  time.Time  `bun:"created_at,nullzero,default:now()"`
	UpdatedAt  time.Time  `bun:"updated_at,nullzero,default:now()"`
}

// WorkKind is what the generation makes, as My Works names it: a
// generation or an edit.
func (g *Generation) WorkKind() string {
	if g.Kind == KindEdit {
		return work.KindEdit
	}
	return work.KindGeneration
}

// Final reports whether the generation is over.
func (g *Generation) Final() bool {
	return g.Status == StatusSucceeded || g.Status == StatusFailed || g.Status == StatusCanceled
}

// Config holds the generation settings.
type Config struct {
	// Workers is how many jobs this process runs at once (0: none).
	Workers int
	// Lease is how long a claimed job is a worker's without a heartbeat.
	Lease time.Duration
	// MaxAttempts is how often a job whose worker died is tried.
	MaxAttempts int
	// UserRunningLimit is how many of one user's jobs run at once.
	UserRunningLimit int
	// QueueCap refuses new jobs (QUEUE_FULL) past this many queued.
	QueueCap int
	// PollInterval is the safety net behind the NOTIFY wake-up.
	PollInterval time.Duration
	// HoldTTL is when, after submission, the sweeper may release a job's
	// credits hold if the job is gone or over without resolving it. The
	// hold of a job still queued or running lives as long as the job.
	HoldTTL time.Duration
	// ProgressEvery throttles PROGRESS events (at most one per interval).
	ProgressEvery time.Duration
	// OnEnd, when set, runs in the transaction that records a generation's
	// end, after its final event: webhooks write their deliveries there, so
	// that they go exactly when the end is committed.
	OnEnd func(ctx context.Context, tx bun.Tx, e Ending) error
	// CheckWebhookURL validates a request's webhook URL (VALIDATION naming
	// field); without it, requests with one are refused.
	CheckWebhookURL func(ctx context.Context, field, url string) error
}

// Ending is what Config.OnEnd learns of a generation that ended.
type Ending struct {
	Generation *Generation
	// Status is the final one (which may differ from the one asked for: a
	// success whose credits were gone ends FAILED).
	Status Status
	// ImageIDs are the images made, in order.
	ImageIDs []uuid.UUID
	// Cost is what was charged (success only).
	Cost int64
	// Failure is why it failed (FAILED only).
	Failure *apperr.Error
}

// Service submits, controls and reads generations.
type Service struct {
	db       *bun.DB
	cfg      Config
	bus      *events.Bus
	gallery  *work.Service
	provider provider.Provider
	log      *slog.Logger
	reads    events.SharedReads[Event]
	// following shares the reads and the safety-net poll of the
	// generations this process's subscribers follow (see watch).
	following following
}

// New returns a Service.
func New(db *bun.DB, cfg Config, bus *events.Bus, gallery *work.Service, p provider.Provider, log *slog.Logger) *Service {
	if cfg.Lease == 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.UserRunningLimit == 0 {
		cfg.UserRunningLimit = 2
	}
	if cfg.QueueCap == 0 {
		cfg.QueueCap = 1000
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.HoldTTL == 0 {
		cfg.HoldTTL = time.Hour
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = 250 * time.Millisecond
	}
	return &Service{db: db, cfg: cfg, bus: bus, gallery: gallery, provider: p, log: log}
}

// ProviderName says which AI provider makes the images.
func (s *Service) ProviderName() string { return s.provider.Name() }
