package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/ratelimit"
)

type mailMessage = mail.Message

// enqueue stores msgs in the outbox within tx, the transaction that decided
// to send them: they go if it commits, and the flow never waits for the mail
// server. No message still runs the statement (see mail.Outbox.Enqueue).
func (s *Service) enqueue(ctx context.Context, tx bun.Tx, msgs ...mailMessage) error {
	if err := s.outbox.Enqueue(ctx, tx, msgs...); err != nil {
		return fmt.Errorf("enqueue email: %w", err)
	}
	return nil
}

// take counts one event against key and refuses with RATE_LIMITED (and
// retryAfter seconds) when a window is full.
func (s *Service) take(ctx context.Context, userID *uuid.UUID, key string, windows ...ratelimit.Window) error {
	d, err := s.limiter.Take(ctx, key, windows...)
	if err != nil {
		return err
	}
	if d.Allowed {
		return nil
	}
	s.recordBestEffort(ctx, userID, nil, EventRateLimited, map[string]any{"limit": limitName(key)})
	return rateLimited(d)
}

func rateLimited(d ratelimit.Decision) error {
	return apperr.Errorf(apperr.RateLimited, "Too many attempts. Try again in %d seconds.", d.RetryAfterSeconds()).
		With("retryAfter", d.RetryAfterSeconds())
}

// limitName is the part of a rate-limit key that is safe to record: its
// kind, without the address or IP.
func limitName(key string) string {
	for i := range len(key) {
		if key[i] == ':' {
			return key[:i]
		}
	}
	return key
}

// checkCaptcha verifies a CAPTCHA token when CAPTCHA is enabled.
// Returns CAPTCHA_FAILED; a verifier that times out or errs fails closed.
func (s *Service) checkCaptcha(ctx context.Context, token, action string, userID *uuid.UUID) error {
	if s.captcha == nil {
		return nil
	}
	err := s.captcha.Verify(ctx, token, ClientFrom(ctx).IP, action)
	if err == nil {
		return nil
	}
	s.log.WarnContext(ctx, "captcha refused", "action", action, "err", err)
	s.recordBestEffort(ctx, userID, nil, EventCaptchaFailed, map[string]any{"action": action})
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return apperr.Errorf(apperr.CaptchaFailed, "%s", ae.Message)
	}
	return apperr.Errorf(apperr.CaptchaFailed, "The CAPTCHA could not be checked. Complete it again and resubmit.")
}

// CaptchaEnabled reports whether sign-up and repeated sign-in failures need a
// CAPTCHA.
func (s *Service) CaptchaEnabled() bool { return s.captcha != nil }
