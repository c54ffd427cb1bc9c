// Package support takes messages to support: from signed-in users, and from
// anyone with an email address (and, when CAPTCHA is on, a solved CAPTCHA).
// Each message is stored in support_messages, where the user's export finds
// it and their erasure removes it, and emailed to the support address
// through the outbox, with the sender's address as Reply-To.
package support

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/captcha"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/ratelimit"
)

// CaptchaAction is the action the CAPTCHA widget of the support form names.
const CaptchaAction = "support"

// Bounds of a message, as the table's CHECKs hold them.
const (
	MaxSubjectRunes = 200
	MaxMessageRunes = 10_000
)

// Message is one message to support.
type Message struct {
	bun.BaseModel `bun:"table:support_messages,alias:sm"`

	ID uuid.UUID `bun:"id,pk,type:uuid,default:uuidv7()"`
	// UserID is the signed-in sender; nil for a message sent signed out.
	UserID *uuid.UUID `bun:"user_id,type:uuid"`
	// Email is where support answers: the account's address when signed in.
	Email     string    `bun:"email"`
	Subject   string    `bun:"subject"`
	Message   string    `bun:"message"`
	IP        string    `bun:"ip"`
	CreatedAt time.Time `bun:"created_at,nullzero,default:now()"`
}

// Input is what the sender writes.
type Input struct {
	Subject string
	Message string
	// Email is the address to answer, required when signed out (and
	// ignored when signed in: the account's address is used).
	Email string
	// CaptchaToken is required when signed out and CAPTCHA is on.
	CaptchaToken string
}

// Limits bound how many messages one sender may send.
type Limits struct {
	// PerUser bounds a signed-in user; PerIP a client IP signed out.
	PerUser []ratelimit.Window
	PerIP   []ratelimit.Window
}

// DefaultLimits allow 5 messages in 10 minutes and 20 a day.
func DefaultLimits() Limits {
	w := []ratelimit.Window{{Max: 5, Period: 10 * time.Minute}, {Max: 20, Period: 24 * time.Hour}}
	return Limits{PerUser: w, PerIP: w}
}

// Config configures the service.
type Config struct {
	// Address receives the messages.
	Address string
	Limits  Limits
}

// Service takes messages to support.
type Service struct {
	db      *bun.DB
	outbox  *mail.Outbox
	captcha captcha.Verifier // nil when CAPTCHA is off
	limiter *ratelimit.Limiter
	log     *slog.Logger
	cfg     Config
}

// New returns the support service. verifier may be nil (CAPTCHA off).
func New(db *bun.DB, outbox *mail.Outbox, verifier captcha.Verifier, limiter *ratelimit.Limiter, log *slog.Logger, cfg Config) *Service {
	if cfg.Limits.PerUser == nil && cfg.Limits.PerIP == nil {
		cfg.Limits = DefaultLimits()
	}
	return &Service{db: db, outbox: outbox, captcha: verifier, limiter: limiter, log: log, cfg: cfg}
}

// Contact stores a message to support and emails it to the support address.
// a is the signed-in sender, nil for someone signed out, who must give an
// email address and, when CAPTCHA is on, a solved CAPTCHA.
// Returns VALIDATION, RATE_LIMITED, CAPTCHA_REQUIRED or CAPTCHA_FAILED.
func (s *Service) Contact(ctx context.Context, a *actor.Actor, in Input) (*Message, error) {
	subject, err := clean(in.Subject, "subject", MaxSubjectRunes, false)
	if err != nil {
		return nil, err
	}
	text, err := clean(in.Message, "message", MaxMessageRunes, true)
	if err != nil {
		return nil, err
	}
	ip := account.ClientFrom(ctx).IP
	m := &Message{Subject: subject, Message: text, IP: ip}
	if a != nil {
		m.UserID, m.Email = &a.UserID, a.Email
		if err := s.take(ctx, "support-user:"+a.UserID.String(), s.cfg.Limits.PerUser); err != nil {
			return nil, err
		}
	} else {
		if strings.TrimSpace(in.Email) == "" {
			return nil, apperr.Errorf(apperr.Validation, "Enter the email address we should answer.").With("field", "email")
		}
		if m.Email, err = account.NormalizeEmail(in.Email); err != nil {
			return nil, err
		}
		// The limit comes first: every CAPTCHA check is a call to the
		// provider, which a flood must not be able to multiply.
		if err := s.take(ctx, "support-ip:"+ip, s.cfg.Limits.PerIP); err != nil {
			return nil, err
		}
		if err := s.checkCaptcha(ctx, in.CaptchaToken, ip); err != nil {
			return nil, err
		}
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(m).Returning("id, created_at").Exec(ctx); err != nil {
			return fmt.Errorf("store support message: %w", err)
		}
		if err := s.outbox.Enqueue(ctx, tx, s.mail(m)); err != nil {
			return fmt.Errorf("email support message: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// take counts one message against key. Returns RATE_LIMITED.
func (s *Service) take(ctx context.Context, key string, windows []ratelimit.Window) error {
	d, err := s.limiter.Take(ctx, key, windows...)
	if err != nil {
		return err
	}
	if !d.Allowed {
		return apperr.Errorf(apperr.RateLimited, "You sent several messages just now. Try again in %d seconds.", d.RetryAfterSeconds()).
			With("retryAfter", d.RetryAfterSeconds())
	}
	return nil
}

// checkCaptcha verifies token when CAPTCHA is on.
// Returns CAPTCHA_REQUIRED or CAPTCHA_FAILED; a verifier that fails, fails
// closed.
func (s *Service) checkCaptcha(ctx context.Context, token, ip string) error {
	if s.captcha == nil {
		return nil
	}
	if token == "" {
		return apperr.Errorf(apperr.CaptchaRequired, "Complete the CAPTCHA, then send your message again.").With("field", "captchaToken")
	}
	err := s.captcha.Verify(ctx, token, ip, CaptchaAction)
	if err == nil {
		return nil
	}
	s.log.WarnContext(ctx, "captcha refused", "action", CaptchaAction, "err", err)
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return apperr.Errorf(apperr.CaptchaFailed, "%s", ae.Message)
	}
	return apperr.Errorf(apperr.CaptchaFailed, "The CAPTCHA could not be checked. Complete it again and resubmit.")
}

// mail is the email to support for m: the sender's address is its
// Reply-To and is named in the body too.
func (s *Service) mail(m *Message) mail.Message {
	sender := m.Email + " (not signed in)"
	if m.UserID != nil {
		sender = fmt.Sprintf("%s (signed in, user %s)", m.Email, m.UserID)
	}
	return mail.Message{
		Kind:    "support_message",
		To:      s.cfg.Address,
		ReplyTo: m.Email,
		Subject: cutRunes("Support: "+m.Subject, MaxSubjectRunes),
		Text: fmt.Sprintf("From: %s\nReceived: %s\nMessage id: %s\nReply to this email to answer the sender.\n\nSubject: %s\n\n%s\n",
			sender, m.CreatedAt.UTC().Format(time.RFC3339), m.ID, m.Subject, m.Message),
	}
}

// clean trims s and checks that it has 1 to max characters and no control
// characters but, where multiline, line breaks and tabs.
// Returns VALIDATION naming field.
func clean(s, field string, max int, multiline bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || utf8.RuneCountInString(s) > max {
		return "", apperr.Errorf(apperr.Validation, "Write a %s of 1 to %d characters.", field, max).With("field", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t')) {
			return "", apperr.Errorf(apperr.Validation, "Write the %s without control characters.", field).With("field", field)
		}
	}
	return s, nil
}

func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
