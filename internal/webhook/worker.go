package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
)

const (
	// maxResponseBytes of a receiver's answer are kept, for the listing.
	maxResponseBytes = 2000
	maxErrorBytes    = 1000
	// MaxAttemptLog is how many tries are kept per delivery (the latest).
	MaxAttemptLog = 20
	// claimMargin keeps a claimed row from being claimed again while its
	// try can still be running.
	claimMargin = time.Minute
	userAgent   = "FastImage-Webhooks/1"
)

// Run sends due deliveries until ctx ends. Several workers, in one process
// or many, share the table: each claims one due row at a time without
// waiting for rows another holds.
func (s *Service) Run(ctx context.Context) {
	wake, stop := s.bus.Subscribe(Topic)
	defer stop()
	client := s.guard.Client(s.cfg.Timeout)
	for ctx.Err() == nil {
		d, err := db.ClaimDue[Delivery](ctx, s.db, "webhook_deliveries", s.cfg.Timeout+claimMargin)
		if err != nil {
			if ctx.Err() == nil {
				s.log.ErrorContext(ctx, "webhooks: claim a delivery", "err", err)
			}
			events.WaitFor(ctx, wake, time.Second)
			continue
		}
		if d != nil {
			s.deliver(ctx, client, d)
			continue
		}
		events.WaitFor(ctx, wake, db.UntilNextDue(ctx, s.db, "webhook_deliveries", s.cfg.Poll))
	}
}

// secrets returns the secrets that sign d: its endpoint's (two during a
// rotation's grace) or its user's request secret. None when the endpoint
// is gone or disabled.
func (s *Service) secrets(ctx context.Context, d *Delivery) ([]string, error) {
	if d.PerRequest {
		sec, err := userSecret(ctx, s.db, d.UserID)
		return []string{sec}, err
	}
	if d.EndpointID == nil {
		return nil, nil
	}
	var eps []Endpoint
	if err := s.db.NewSelect().Model(&eps).Where("id = ? AND disabled_at IS NULL", *d.EndpointID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read endpoint: %w", err)
	}
	if len(eps) == 0 {
		return nil, nil
	}
	out := []string{eps[0].Secret}
	if ep := eps[0]; ep.PreviousSecret != nil && ep.PreviousSecretExpiresAt != nil && time.Now().Before(*ep.PreviousSecretExpiresAt) {
		out = append(out, *ep.PreviousSecret)
	}
	return out, nil
}

// deliver makes one try of a claimed delivery and records it.
func (s *Service) deliver(ctx context.Context, client *http.Client, d *Delivery) {
	log := s.log.With("webhook_delivery_id", d.ID.String(), "event", d.EventType, "attempt", d.Attempts)
	secrets, err := s.secrets(ctx, d)
	if err != nil {
		if ctx.Err() != nil {
			s.giveBack(ctx, log, d)
			return
		}
		s.record(ctx, log, d, Attempt{At: time.Now(), Error: err.Error()}, false)
		return
	}
	if len(secrets) == 0 {
		s.record(ctx, log, d, Attempt{At: time.Now(), Error: "The endpoint was deleted."}, true)
		return
	}
	start := time.Now()
	at := Attempt{At: start.UTC()}
	code, body, err := s.post(ctx, client, d, secrets)
	at.DurationMs = time.Since(start).Milliseconds()
	if err != nil && ctx.Err() != nil {
		s.giveBack(ctx, log, d)
		return
	}
	if err != nil {
		at.Error = truncate(err.Error(), maxErrorBytes)
	} else {
		at.StatusCode, at.Response = &code, body
		if code/100 != 2 {
			at.Error = "The receiver answered HTTP " + strconv.Itoa(code) + "."
		}
	}
	s.record(ctx, log, d, at, false)
}

// giveBack makes a delivery due again at once when its worker stops
// mid-try; the try does not count.
func (s *Service) giveBack(ctx context.Context, log *slog.Logger, d *Delivery) {
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE webhook_deliveries
		SET attempts = attempts - 1, next_attempt_at = now() WHERE id = ? AND status = 'pending'`, d.ID); err != nil {
		log.WarnContext(ctx, "webhooks: give back a delivery", "err", err)
	}
}

// post sends d once and returns the receiver's status and the start of its
// answer.
func (s *Service) post(ctx context.Context, client *http.Client, d *Delivery, secrets []string) (int, string, error) {
	now := time.Now()
	sig, err := Sign(d.WebhookID, now, d.Payload, secrets...)
	if err != nil {
		return 0, "", err
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("webhook-id", d.WebhookID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	return resp.StatusCode, truncate(string(b), maxResponseBytes), nil
}

// record stores a try: the delivery succeeded (2xx), is due again after a
// backoff, or is given up (giveUp, or its day of retries is over). A
// delivery given up meanwhile (its endpoint deleted) stays so.
func (s *Service) record(ctx context.Context, log *slog.Logger, d *Delivery, at Attempt, giveUp bool) {
	ctx = context.WithoutCancel(ctx)
	ok := at.Error == "" && at.StatusCode != nil
	entry, _ := json.Marshal(at)
	var status Status
	var next any
	switch {
	case ok:
		status = StatusSucceeded
		log.InfoContext(ctx, "webhook delivered")
	default:
		backoff := s.backoff(d.Attempts)
		due := time.Now().Add(backoff)
		if giveUp || due.After(d.WindowStart.Add(s.cfg.RetryFor)) {
			status = StatusFailed
			log.WarnContext(ctx, "webhook given up", "err", at.Error)
		} else {
			status, next = StatusPending, db.Interval(backoff)
			log.InfoContext(ctx, "webhook not delivered; will retry", "err", at.Error, "retry_in", backoff.String())
		}
	}
	var errText *string
	if at.Error != "" {
		errText = &at.Error
	}
	var response *string
	if at.StatusCode != nil {
		response = &at.Response
	}
	_, err := s.db.ExecContext(ctx, `UPDATE webhook_deliveries SET
		status = ?,
		next_attempt_at = CASE WHEN ?::text IS NULL THEN NULL ELSE now() + ?::interval END,
		delivered_at = CASE WHEN ? THEN now() ELSE delivered_at END,
		last_status_code = ?, last_response = ?, last_error = ?,
		attempt_log = (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]') FROM (
			SELECT e, n FROM jsonb_array_elements(attempt_log || jsonb_build_array(?::jsonb)) WITH ORDINALITY AS t(e, n)
			ORDER BY n DESC LIMIT ?) AS latest)
		WHERE id = ? AND status = 'pending'`,
		status, next, next, ok, at.StatusCode, response, errText, string(entry), MaxAttemptLog, d.ID)
	if err != nil {
		log.ErrorContext(ctx, "webhooks: record a try", "err", err)
	}
}

// backoff is the pause after the given failed try: Backoff doubled for
// each earlier failure, at most MaxBackoff, with up to a fifth of jitter
// either way so that a receiver coming back is not hit by every retry at
// once.
func (s *Service) backoff(attempt int) time.Duration {
	d := s.cfg.Backoff
	for i := 1; i < attempt && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) * 2
	return d - d/5 + jitter
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
