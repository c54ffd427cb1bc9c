package account

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	s.recordLimited(ctx, userID, key, windows...)
	return rateLimited(d)
}

// recordLimited records that key's limit refused someone, once per key and
// longest window: a client that keeps knocking on a closed door would
// otherwise write an event on every knock.
func (s *Service) recordLimited(ctx context.Context, userID *uuid.UUID, key string, windows ...ratelimit.Window) {
	var period time.Duration
	for _, w := range windows {
		period = max(period, w.Period)
	}
	d, err := s.limiter.Take(ctx, "event-limited:"+key, ratelimit.Window{Max: 1, Period: period})
	if err != nil {
		s.log.ErrorContext(ctx, "security event not recorded", "kind", EventRateLimited, "err", err)
		return
	}
	if d.Allowed {
		s.recordBestEffort(ctx, userID, nil, EventRateLimited, map[string]any{"limit": limitName(key)})
	}
}

// passwordAttempt is one password check, counted before it runs.
type passwordAttempt struct {
	key  string
	slot ratelimit.Decision // not Allowed: past the limit on a solved CAPTCHA
}

// beginPasswordCheck counts a password check against key (SignInFailures)
// before the password is verified. The count is taken atomically, so racing
// attempts from any number of replicas cannot all pass a check made before
// any of them failed. Past the limit, a solved CAPTCHA lets the check run
// uncounted; callers that cannot offer one (captchaToken nil), and every
// caller when CAPTCHA is off, are refused.
// Returns RATE_LIMITED, CAPTCHA_REQUIRED or CAPTCHA_FAILED.
func (s *Service) beginPasswordCheck(ctx context.Context, userID *uuid.UUID, key string, captchaToken *string) (passwordAttempt, error) {
	d, err := s.limiter.Take(ctx, key, s.cfg.Limits.SignInFailures)
	if err != nil {
		return passwordAttempt{}, err
	}
	a := passwordAttempt{key: key, slot: d}
	if d.Allowed {
		return a, nil
	}
	if s.captcha == nil || captchaToken == nil {
		s.recordLimited(ctx, userID, key, s.cfg.Limits.SignInFailures)
		return a, rateLimited(d)
	}
	if *captchaToken == "" {
		return a, apperr.Errorf(apperr.CaptchaRequired, "Too many failed attempts: complete the CAPTCHA to sign in.")
	}
	if err := s.checkCaptcha(ctx, *captchaToken, actionSignIn, userID); err != nil {
		return a, err
	}
	return a, nil
}

// passwordFailed keeps a wrong password counted: the slot it took stays, or,
// for a check let through by a CAPTCHA, a failure is added.
func (s *Service) passwordFailed(ctx context.Context, a passwordAttempt) error {
	if a.slot.Allowed {
		return nil
	}
	return s.limiter.Record(ctx, a.key)
}

// passwordUnchecked gives back the slot of a check that never ran: the
// hasher refused it (UNAVAILABLE, "try again in a second") or the caller
// stopped waiting. Only checks that ran count against the limit; otherwise
// a client retrying as told while the server is busy would lock its user
// out without a single password checked.
func (s *Service) passwordUnchecked(ctx context.Context, a passwordAttempt) {
	if err := s.limiter.Give(context.WithoutCancel(ctx), a.key, a.slot); err != nil {
		s.log.ErrorContext(ctx, "give back a password check's slot", "limit", limitName(a.key), "err", err)
	}
}

// passwordPassed keeps the slot of a correct password counted too: every
// password check takes one, so that however many attempts race (on any
// number of replicas), no more than the limit's checks ever run. Giving the
// slot back, or forgiving earlier failures, would hand it to a guess racing
// with this sign-in.
func (s *Service) passwordPassed(context.Context, passwordAttempt) error {
	return nil
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
