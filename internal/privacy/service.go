// Package privacy keeps the privacy policy's promises: users' requests to
// export, correct or delete their data and to object to processing, each
// with a due date and an audit trail that outlives the erasure it records.
//
// A request moves RECEIVED → VERIFIED → IN_PROGRESS → COMPLETED, or ends
// REJECTED (with a reason) or CANCELED. Requests made by a signed-in user
// whose email is verified are verified at once (deletion also wants the
// password proved within ReauthWindow). Exports and deletions are jobs:
// a worker claims them under a lease (RunWorkers). Corrections wait in the
// admin queue. Every step is written to the audit trail (privacy_audit:
// rows that name the request, never the user, and never change), told in
// the user's feed, and emailed.
//
// Entry points take the actor (see internal/actor).
package privacy

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/url"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/storage"
)

// ReauthWindow is how recently the password must have been proved on the
// session to ask for the account's deletion.
const ReauthWindow = account.ReauthWindow

// Config is what the privacy service needs from the settings.
type Config struct {
	PublicURL *url.URL
	// Lease is how long a worker holds a job between heartbeats.
	Lease time.Duration
	// PollInterval is the safety net behind the NOTIFY wake-up of workers.
	PollInterval time.Duration
	// RetryBackoff times the pause before a failed job is tried again:
	// attempts² × RetryBackoff (default 30 s).
	RetryBackoff time.Duration
	Clock        clock.Clock

	// Bucket keeps the exports' ZIPs (under each user's prefix).
	Bucket storage.Bucket
	// ExportTTL is how long a finished export can be downloaded; 0 or
	// more than MaxExportTTL means MaxExportTTL.
	ExportTTL time.Duration
	// LinkKey signs the export download links (HMAC-SHA256). It must stay
	// the same across restarts and replicas, or links already handed out
	// stop working; empty means a random key for this process.
	LinkKey []byte
}

// Job runs one claimed request of its kind (export, deletion). progress
// reports 0–100; the request is completed when Job returns nil.
type Job func(ctx context.Context, r *Request, progress func(percent int)) error

// Service is the privacy domain.
type Service struct {
	db     *bun.DB
	outbox *mail.Outbox
	bus    *events.Bus
	log    *slog.Logger
	cfg    Config
	clock  clock.Clock
	jobs   map[Kind]Job
}

// New returns the privacy service. Jobs for exports and deletions are
// added with Handle before RunWorkers starts.
func New(db *bun.DB, outbox *mail.Outbox, bus *events.Bus, log *slog.Logger, cfg Config) *Service {
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 30 * time.Second
	}
	if cfg.ExportTTL <= 0 || cfg.ExportTTL > MaxExportTTL {
		cfg.ExportTTL = MaxExportTTL
	}
	if len(cfg.LinkKey) == 0 {
		cfg.LinkKey = make([]byte, 32)
		_, _ = rand.Read(cfg.LinkKey)
	}
	return &Service{db: db, outbox: outbox, bus: bus, log: log, cfg: cfg, clock: clock.Or(cfg.Clock), jobs: map[Kind]Job{}}
}

// Handle sets the job that runs requests of kind.
func (s *Service) Handle(kind Kind, job Job) { s.jobs[kind] = job }
