package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
)

// Handled lists the event types that change anything here; Stripe's
// endpoint should send these. Others are answered 200 and ignored.
var Handled = []string{
	"checkout.session.completed",
	"checkout.session.async_payment_succeeded",
	"checkout.session.async_payment_failed",
	"checkout.session.expired",
	"invoice.paid",
	"invoice.payment_failed",
	"customer.subscription.created",
	"customer.subscription.updated",
	"customer.subscription.deleted",
	"charge.refunded",
	"charge.dispute.created",
	"charge.dispute.closed",
}

func handled(t string) bool {
	for _, h := range Handled {
		if h == t {
			return true
		}
	}
	return false
}

// WebhookHandler serves Stripe's webhooks (POST /webhooks/stripe). It reads
// the raw body up to the cap, verifies the signature (and its age) and the
// API version, and applies the event once. Refusals are 4xx with nothing
// written; a failure to apply is 500, and Stripe sends the event again.
func (s *Service) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			apperr.WriteHTTP(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Stripe webhooks are POSTed.")
			return
		}
		if s.api == nil || s.cfg.WebhookSecret == "" {
			// Without a secret anyone could sign an event.
			apperr.WriteHTTP(w, http.StatusNotFound, PaymentsDisabled, "Payments are not enabled on this server.")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.WebhookMaxBytes))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			apperr.WriteHTTP(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", fmt.Sprintf("A webhook body may be at most %d bytes.", s.cfg.WebhookMaxBytes))
			return
		case err != nil:
			apperr.WriteHTTP(w, http.StatusBadRequest, "BAD_REQUEST", "The body could not be read.")
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), s.cfg.WebhookSecret,
			webhook.ConstructEventOptions{Tolerance: s.cfg.Tolerance})
		if err != nil {
			code, msg := refusal(err)
			s.log.WarnContext(r.Context(), "stripe webhook refused", "reason", code)
			apperr.WriteHTTP(w, http.StatusBadRequest, apperr.Code(code), msg)
			return
		}
		applied, err := s.Apply(r.Context(), ev)
		if err != nil {
			s.log.ErrorContext(r.Context(), "stripe webhook failed; Stripe will send it again", "event", ev.ID, "type", ev.Type, "err", err)
			apperr.WriteHTTP(w, http.StatusInternalServerError, "INTERNAL", "The event could not be applied now; send it again.")
			return
		}
		s.log.InfoContext(r.Context(), "stripe webhook", "event", ev.ID, "type", ev.Type, "applied", applied)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"received":true}`)
	})
}

// refusal names why a webhook was refused.
func refusal(err error) (code, msg string) {
	switch {
	case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
		return "SIGNATURE_MISSING", "The Stripe-Signature header is missing or malformed."
	case errors.Is(err, webhook.ErrTooOld):
		return "SIGNATURE_EXPIRED", "The signature's timestamp is more than 300 seconds old."
	case errors.Is(err, webhook.ErrNoValidSignature):
		return "SIGNATURE_INVALID", "No signature matches this body and the endpoint's secret."
	case strings.Contains(err.Error(), "API version"):
		return "API_VERSION_MISMATCH", fmt.Sprintf("This endpoint takes events of Stripe API version %s only; set the endpoint's version to it.", stripe.APIVersion)
	}
	return "BAD_REQUEST", "The body is not a Stripe event."
}

// Apply applies one verified event, once: its id is recorded in the
// transaction of its effects, so a repeat, sequential or concurrent (the
// second waits on the first's row), changes nothing and reports false.
// Event types not handled are ignored.
func (s *Service) Apply(ctx context.Context, ev stripe.Event) (applied bool, err error) {
	if !handled(string(ev.Type)) || ev.Data == nil {
		return false, nil
	}
	var current *stripe.Subscription
	var observed time.Time
	if strings.HasPrefix(string(ev.Type), "customer.subscription.") {
		// Subscription events can race each other within one second; what
		// Stripe says now settles it.
		var ss stripe.Subscription
		if err := json.Unmarshal(ev.Data.Raw, &ss); err != nil {
			return false, fmt.Errorf("decode %s: %w", ev.Type, err)
		}
		observed = s.clock.Now()
		current, err = s.currentSubscription(ctx, &ss)
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
			// Gone from Stripe (test data deleted): the event's copy is
			// all there is, as of when it was sent.
			current, observed, err = &ss, time.Unix(ev.Created, 0).UTC(), nil
		}
		if err != nil {
			return false, err
		}
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewRaw("INSERT INTO stripe_events (id, type, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
			ev.ID, string(ev.Type), time.Unix(ev.Created, 0).UTC()).Exec(ctx)
		if err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		applied = true
		if current != nil {
			_, err := s.mergeSubscription(ctx, tx, current, observed)
			return err
		}
		_, err = s.applyObject(ctx, tx, string(ev.Type), ev.Data.Raw)
		return err
	})
	if errors.Is(err, errNotOurs) {
		// Not ours (made outside this service, or a subscription to
		// something else the account sells): recorded nowhere, ignored.
		s.log.WarnContext(ctx, "stripe event names no user or plan of ours; ignored", "event", ev.ID, "type", ev.Type)
		return false, nil
	}
	return applied, err
}

// applyObject merges the object of an event of type t, and reports whether
// that changed anything.
func (s *Service) applyObject(ctx context.Context, tx bun.Tx, t string, raw json.RawMessage) (bool, error) {
	switch {
	case strings.HasPrefix(t, "checkout.session."):
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(raw, &cs); err != nil {
			return false, fmt.Errorf("decode %s: %w", t, err)
		}
		return s.mergeCheckout(ctx, tx, &cs, t)
	case t == "invoice.paid" || t == "invoice.payment_failed":
		var inv stripe.Invoice
		if err := json.Unmarshal(raw, &inv); err != nil {
			return false, fmt.Errorf("decode %s: %w", t, err)
		}
		st := StatusPaid
		if t == "invoice.payment_failed" {
			st = StatusFailed
		}
		return s.mergeInvoice(ctx, tx, &inv, st)
	case t == "charge.refunded":
		var ch stripe.Charge
		if err := json.Unmarshal(raw, &ch); err != nil {
			return false, fmt.Errorf("decode %s: %w", t, err)
		}
		return s.mergeCharge(ctx, tx, &ch)
	case strings.HasPrefix(t, "charge.dispute."):
		var d stripe.Dispute
		if err := json.Unmarshal(raw, &d); err != nil {
			return false, fmt.Errorf("decode %s: %w", t, err)
		}
		return s.mergeDispute(ctx, tx, &d)
	}
	return false, nil
}

// currentSubscription asks Stripe for the subscription as it is now.
func (s *Service) currentSubscription(ctx context.Context, ss *stripe.Subscription) (*stripe.Subscription, error) {
	params := &stripe.SubscriptionParams{}
	params.Context = ctx
	cur, err := s.api.Subscriptions.Get(ss.ID, params)
	if err != nil {
		return nil, fmt.Errorf("fetch subscription %s: %w", ss.ID, err)
	}
	return cur, nil
}
