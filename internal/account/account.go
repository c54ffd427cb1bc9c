// Package account is who our users are and how they prove it: sign-up with
// email verification, sign-in and sessions, passwords and their reset, email
// change, profile, security events, and suspension by admins.
//
// Secrets never rest in the database: session and email tokens are 32 random
// bytes of which only the SHA-256 is stored, and passwords are argon2id.
package account

import (
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/captcha"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/password"
	"github.com/fastimage/api/internal/ratelimit"
)

// Roles and statuses of users.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"

	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusDeleted   = "deleted"
)

// User is an account.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID              uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	Email           string     `bun:"email"`
	Name            string     `bun:"name"`
	PasswordHash    string     `bun:"password_hash"`
	EmailVerifiedAt *time.Time `bun:"email_verified_at"`
	Role            string     `bun:"role"`
	Status          string     `bun:"status"`
	SuspendedReason *string    `bun:"suspended_reason"`
	CreatedAt       time.Time  `bun:"created_at,nullzero,default:now()"`
	UpdatedAt       time.Time  `bun:"updated_at,nullzero,default:now()"`
	// StripeCustomerID is written by billing (its customer, made once);
	// the API shows it to admins only.
	StripeCustomerID *string `bun:"stripe_customer_id"`
}

// EmailVerified reports whether the user has proved they own their email.
func (u *User) EmailVerified() bool { return u.EmailVerifiedAt != nil }

// Session is one signed-in device.
type Session struct {
	bun.BaseModel `bun:"table:sessions"`

	ID            uuid.UUID  `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID        uuid.UUID  `bun:"user_id,type:uuid"`
	TokenHash     []byte     `bun:"token_hash"`
	IP            string     `bun:"ip"`
	UserAgent     string     `bun:"user_agent"`
	CreatedAt     time.Time  `bun:"created_at,nullzero,default:now()"`
	LastSeenAt    time.Time  `bun:"last_seen_at,nullzero,default:now()"`
	ExpiresAt     time.Time  `bun:"expires_at"`
	RevokedAt     *time.Time `bun:"revoked_at"`
	RevokedReason *string    `bun:"revoked_reason"`
	// PasswordConfirmedAt is when this session last proved the password
	// (its sign-in, or ConfirmPassword): sensitive actions want it recent.
	PasswordConfirmedAt time.Time `bun:"password_confirmed_at,nullzero,default:now()"`

	User *User `bun:"rel:belongs-to,join:user_id=id"`
	// New marks the session SignIn just opened: the request that opened it
	// did not come with it, yet it is that client's current session.
	New bool `bun:"-"`
}

// Config holds the account rules that are settings.
type Config struct {
	// PublicURL is where links in emails point.
	PublicURL *url.URL
	// SessionIdleTimeout ends a session unused for this long.
	SessionIdleTimeout time.Duration
	// SessionLifetime ends every session this long after sign-in.
	SessionLifetime time.Duration
	// VerifyTokenTTL and EmailChangeTokenTTL bound how long emailed links work;
	// password reset links always last one hour.
	VerifyTokenTTL      time.Duration
	EmailChangeTokenTTL time.Duration
	// Passwords hashes and verifies passwords, with the process-wide bound
	// on hashes in flight; hashes with other parameters than its own are
	// upgraded at the next sign-in. Nil means a Hasher of its own with the
	// default parameters and bound.
	Passwords *password.Hasher
	// Limits are the rate limits; zero means DefaultLimits.
	Limits Limits
	// OnEmailVerified runs inside the transaction that first verifies a
	// user's email (the sign-up bonus is granted there), so both happen or
	// neither does.
	OnEmailVerified func(ctx context.Context, tx bun.Tx, userID uuid.UUID) error
	// OnSignUp runs inside the transaction that creates an account (the
	// legal documents in effect are accepted there). When the address had
	// an account already it runs with uuid.Nil, so that both answers take
	// as long; it must then change nothing.
	OnSignUp func(ctx context.Context, tx bun.Tx, userID uuid.UUID) error
}

// Limits are the rate limits of the account flows.
type Limits struct {
	// EmailsPerAddress bound verification and reset emails to one address.
	EmailsPerAddress []ratelimit.Window
	// SignInFailures per (email, IP) before a CAPTCHA (or, without CAPTCHA, a
	// block) is required.
	SignInFailures ratelimit.Window
	// SignUpsPerIP and ResetsPerIP bound what one client IP may ask for.
	SignUpsPerIP ratelimit.Window
	ResetsPerIP  ratelimit.Window
	// EventsPerIP bounds the security events that requests from one client
	// IP may write outside the flows that succeed (failures, refusals).
	EventsPerIP ratelimit.Window
}

// DefaultLimits are the limits promised to users: at most 1 email a minute
// and 5 an hour per address; a block or CAPTCHA after 5 failed sign-ins in 15
// minutes per (email, IP).
func DefaultLimits() Limits {
	return Limits{
		EmailsPerAddress: []ratelimit.Window{{Max: 1, Period: time.Minute}, {Max: 5, Period: time.Hour}},
		SignInFailures:   ratelimit.Window{Max: 5, Period: 15 * time.Minute},
		SignUpsPerIP:     ratelimit.Window{Max: 30, Period: time.Hour},
		ResetsPerIP:      ratelimit.Window{Max: 30, Period: time.Hour},
		EventsPerIP:      ratelimit.Window{Max: 60, Period: time.Minute},
	}
}

const resetTokenTTL = time.Hour

// Service carries out the account flows.
type Service struct {
	db      *bun.DB
	cfg     Config
	outbox  *mail.Outbox
	limiter *ratelimit.Limiter
	captcha captcha.Verifier // nil when CAPTCHA is off
	log     *slog.Logger
}

// New returns a Service that enqueues its mail in outbox. captchaVerifier
// may be nil (CAPTCHA off).
func New(db *bun.DB, cfg Config, outbox *mail.Outbox, captchaVerifier captcha.Verifier, log *slog.Logger) *Service {
	if cfg.Limits.EmailsPerAddress == nil {
		cfg.Limits = DefaultLimits()
	}
	if cfg.Limits.EventsPerIP.Max == 0 {
		cfg.Limits.EventsPerIP = DefaultLimits().EventsPerIP
	}
	if cfg.Passwords == nil {
		cfg.Passwords = password.NewHasher(password.HasherConfig{})
	}
	return &Service{db: db, cfg: cfg, outbox: outbox, limiter: ratelimit.New(db, clock.System{}), captcha: captchaVerifier, log: log}
}

// WithoutPasswordHash leaves the password hash out of a query's users (a
// Relation's apply function): a viewer lives as long as its WebSocket, for
// hours, and nothing it serves needs the hash; a password check reads it
// afresh.
func WithoutPasswordHash(q *bun.SelectQuery) *bun.SelectQuery {
	return q.ExcludeColumn("password_hash")
}
