package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// Metadata keys set on every Stripe object we create, linking it back.
const (
	metaUser     = "fastimage_user_id"
	metaCode     = "fastimage_catalog_code"
	metaPurchase = "fastimage_purchase_id"
)

// CheckoutRequest asks to buy one catalog item.
type CheckoutRequest struct {
	PlanCode string
	// IdempotencyKey makes a retried request return the same session.
	IdempotencyKey string
	// SuccessPath and CancelPath are where Stripe sends the browser back:
	// a path on the public URL ("/billing/done") or a URL on an allowed
	// origin.
	SuccessPath string
	CancelPath  string
}

// Checkout is a Stripe Checkout Session to send the browser to.
type Checkout struct {
	URL       string
	SessionID string
	Purchase  *Purchase
}

// CreateCheckout starts buying req.PlanCode: a Checkout Session in payment
// mode for a pack, subscription mode for a plan, for the actor's own Stripe
// customer. The same idempotency key returns the same session. Credits come
// later, from Stripe's webhook, never from the browser's return.
// Returns PAYMENTS_DISABLED, EMAIL_NOT_VERIFIED, VALIDATION (unknown plan,
// bad key or return path), CONFLICT (a plan while one is active) or
// UNAVAILABLE (Stripe failed).
func (s *Service) CreateCheckout(ctx context.Context, a actor.Actor, req CheckoutRequest) (*Checkout, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	if err := a.RequireVerified(); err != nil {
		return nil, err
	}
	item, ok := s.catalog.Find(req.PlanCode)
	if !ok {
		return nil, apperr.Errorf(apperr.Validation, "There is no plan or credit pack %q; the plans query lists them.", req.PlanCode).With("field", "planCode")
	}
	key := strings.TrimSpace(req.IdempotencyKey)
	// The key goes into Stripe's Idempotency-Key header and our database:
	// a control character (or broken UTF-8) can be neither, and would fail
	// as if Stripe or the database were down.
	if key == "" || len(key) > 100 || !utf8.ValidString(key) || strings.IndexFunc(key, unicode.IsControl) >= 0 {
		return nil, apperr.Errorf(apperr.Validation, "Give an idempotency key of 1 to 100 printable characters (no tabs or line breaks); send the same key when you retry.").With("field", "idempotencyKey")
	}
	success, err := s.returnURL(req.SuccessPath, "successPath")
	if err != nil {
		return nil, err
	}
	cancel, err := s.returnURL(req.CancelPath, "cancelPath")
	if err != nil {
		return nil, err
	}
	if item.Kind == Plan {
		active, err := s.activeSubscription(ctx, a.UserID)
		if err != nil {
			return nil, err
		}
		if active != nil {
			return nil, apperr.Errorf(apperr.Conflict, "You already subscribe to %s; change or cancel it in the billing portal.", active.PlanCode)
		}
	}

	// A retry of a checkout already made returns it, whatever the limit.
	var made Purchase
	err = s.db.NewSelect().Model(&made).Where("user_id = ? AND idempotency_key = ? AND checkout_session_id IS NOT NULL", a.UserID, key).Scan(ctx)
	if err == nil && made.CatalogCode == item.Code {
		if made.Status != StatusOpen {
			// Its page no longer works: paid, expired or failed.
			return nil, apperr.Errorf(apperr.Conflict, "The checkout of this idempotency key is %s; start a new one with a new key.", made.Status).
				With("field", "idempotencyKey").With("status", string(made.Status))
		}
		return &Checkout{URL: deref(made.CheckoutURL), SessionID: *made.CheckoutSessionID, Purchase: &made}, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find checkout by key: %w", err)
	}
	if err := s.allow(ctx, "checkout", a.UserID, checkoutLimits); err != nil {
		return nil, err
	}
	p, err := s.openPurchase(ctx, a.UserID, item, key)
	if err != nil {
		return nil, err
	}
	if p.CheckoutSessionID != nil {
		return &Checkout{URL: deref(p.CheckoutURL), SessionID: *p.CheckoutSessionID, Purchase: p}, nil
	}
	started := false
	defer func() {
		if !started {
			s.dropUnstarted(ctx, p.ID)
		}
	}()
	customer, err := s.ensureCustomer(ctx, a)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{metaUser: a.UserID.String(), metaCode: item.Code, metaPurchase: p.ID.String()}
	params := &stripe.CheckoutSessionParams{
		Customer:          stripe.String(customer),
		ClientReferenceID: stripe.String(a.UserID.String()),
		SuccessURL:        stripe.String(withSessionID(success)),
		CancelURL:         stripe.String(cancel),
	}
	price, err := s.priceID(ctx, item)
	if err != nil {
		return nil, err
	}
	params.LineItems = []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}}
	for k, v := range meta {
		params.AddMetadata(k, v)
	}
	if item.Kind == Plan {
		params.Mode = stripe.String(string(stripe.CheckoutSessionModeSubscription))
		params.SubscriptionData = &stripe.CheckoutSessionSubscriptionDataParams{Metadata: meta}
	} else {
		params.Mode = stripe.String(string(stripe.CheckoutSessionModePayment))
		params.PaymentIntentData = &stripe.CheckoutSessionPaymentIntentDataParams{Metadata: meta}
	}
	if s.cfg.Tax {
		params.AutomaticTax = &stripe.CheckoutSessionAutomaticTaxParams{Enabled: stripe.Bool(true)}
		params.CustomerUpdate = &stripe.CheckoutSessionCustomerUpdateParams{Address: stripe.String("auto")}
	}
	// Our key, scoped to the user, is Stripe's: a retry after a lost answer
	// gets the same session.
	params.SetIdempotencyKey("checkout:" + a.UserID.String() + ":" + key)
	cs, err := s.api.CheckoutSessions.New(params)
	if err != nil {
		return nil, s.stripeError(ctx, "start the checkout", err)
	}
	if _, err := s.db.NewUpdate().Model((*Purchase)(nil)).
		Set("checkout_session_id = ?, checkout_url = ?, customer_id = ?, updated_at = now()", cs.ID, cs.URL, customer).
		Where("id = ? AND checkout_session_id IS NULL", p.ID).Exec(ctx); err != nil {
		return nil, fmt.Errorf("record checkout session: %w", err)
	}
	started = true
	p.CheckoutSessionID, p.CheckoutURL, p.CustomerID = &cs.ID, &cs.URL, &customer
	return &Checkout{URL: cs.URL, SessionID: cs.ID, Purchase: p}, nil
}

// dropUnstarted forgets the purchase of a checkout that could not be
// started (Stripe failed, or its price is not synced yet). Left open, it
// would block the user's next plan checkout for a day (one at a time), and
// a new click sends a new key. A session Stripe did make but whose answer
// was lost is not lost with it: a retry with the same key gets it again
// (Stripe's idempotency), recorded on a new row, and a payment of it is
// found by its session id.
func (s *Service) dropUnstarted(ctx context.Context, id uuid.UUID) {
	ctx = context.WithoutCancel(ctx)
	if _, err := s.db.NewRaw("DELETE FROM purchases WHERE id = ? AND checkout_session_id IS NULL AND status = ?", id, StatusOpen).Exec(ctx); err != nil {
		s.log.ErrorContext(ctx, "forget a checkout that could not start", "purchase", id, "err", err)
	}
}

// openPurchase records the purchase a checkout is for, or returns the one
// recorded under the same key.
func (s *Service) openPurchase(ctx context.Context, userID uuid.UUID, item Item, key string) (*Purchase, error) {
	p := &Purchase{
		UserID: userID, Kind: item.Kind, CatalogCode: item.Code, Credits: item.Credits,
		Amount: item.Price, Currency: item.Currency, Status: StatusOpen, IdempotencyKey: &key,
	}
	inserted := false
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if item.Kind == Plan {
			// Two plan checkouts open at once would become two
			// subscriptions, each charged: one at a time per user.
			if _, err := tx.NewRaw("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", "plan-checkout:"+userID.String()).Exec(ctx); err != nil {
				return fmt.Errorf("lock plan checkouts: %w", err)
			}
			var other Purchase
			err := tx.NewSelect().Model(&other).
				Where("user_id = ? AND kind = ? AND status = ? AND idempotency_key <> ? AND created_at > now() - interval '1 day'", userID, Plan, StatusOpen, key).
				Limit(1).Scan(ctx)
			if err == nil {
				e := apperr.Errorf(apperr.Conflict, "You have a plan checkout open already; finish it, or start another once it expires (within a day).")
				if other.CheckoutURL != nil {
					e = e.With("checkoutUrl", *other.CheckoutURL)
				}
				return e
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find open plan checkouts: %w", err)
			}
		}
		res, err := tx.NewInsert().Model(p).On("CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING").
			Returning("id, created_at, updated_at").Exec(ctx)
		if err != nil {
			return fmt.Errorf("record purchase: %w", err)
		}
		n, _ := res.RowsAffected()
		inserted = n == 1
		return nil
	})
	if err != nil {
		return nil, err
	}
	if inserted {
		return p, nil
	}
	var existing Purchase
	if err := s.db.NewSelect().Model(&existing).Where("user_id = ? AND idempotency_key = ?", userID, key).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find purchase by key: %w", err)
	}
	if existing.CatalogCode != item.Code {
		return nil, apperr.Errorf(apperr.Conflict, "This idempotency key was used for %s; use a new key for another plan.", existing.CatalogCode).With("field", "idempotencyKey")
	}
	return &existing, nil
}

// ensureCustomer returns the actor's Stripe customer, creating it once. An
// advisory lock per user makes concurrent first checkouts wait for the one
// that creates it; Stripe's idempotency key covers a crash between the
// creation and our record of it.
func (s *Service) ensureCustomer(ctx context.Context, a actor.Actor) (string, error) {
	var id string
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewRaw("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", "stripe-customer:"+a.UserID.String()).Exec(ctx); err != nil {
			return fmt.Errorf("lock customer: %w", err)
		}
		var existing sql.NullString
		var email string
		if err := tx.NewRaw("SELECT stripe_customer_id, email FROM users WHERE id = ?", a.UserID).Scan(ctx, &existing, &email); err != nil {
			return fmt.Errorf("read customer: %w", err)
		}
		if existing.Valid {
			id = existing.String
			return nil
		}
		params := &stripe.CustomerParams{Email: stripe.String(email)}
		params.AddMetadata(metaUser, a.UserID.String())
		params.SetIdempotencyKey("customer:" + a.UserID.String())
		c, err := s.api.Customers.New(params)
		if err != nil {
			return s.stripeError(ctx, "set up your billing profile", err)
		}
		if _, err := tx.NewRaw("UPDATE users SET stripe_customer_id = ? WHERE id = ?", c.ID, a.UserID).Exec(ctx); err != nil {
			return fmt.Errorf("record customer: %w", err)
		}
		id = c.ID
		return nil
	})
	return id, err
}

// priceID finds the Stripe Price of item by its lookup key.
func (s *Service) priceID(ctx context.Context, item Item) (string, error) {
	params := &stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{item.LookupKey})}
	params.Filters.AddFilter("limit", "", "1")
	it := s.api.Prices.List(params)
	for it.Next() {
		return it.Price().ID, nil
	}
	if err := it.Err(); err != nil {
		return "", s.stripeError(ctx, "find the price", err)
	}
	s.log.ErrorContext(ctx, "no Stripe price has the catalog's lookup key; run fastimage billing sync-catalog", "lookup_key", item.LookupKey)
	return "", apperr.Errorf(apperr.Unavailable, "This plan cannot be bought just now; please try again later.")
}

// returnURL resolves a return path: a path on the public URL, or an
// absolute URL on an allowed origin. Anything else could send a paying
// user to someone else's page.
func (s *Service) returnURL(path, field string) (string, error) {
	bad := apperr.Errorf(apperr.Validation, "%s must be a path on this site, such as /billing/done, or a URL on an allowed origin.", field).With("field", field)
	if path == "" || len(path) > 1000 || strings.ContainsAny(path, "\\\r\n\t") {
		return "", bad
	}
	u, err := url.Parse(path)
	if err != nil || u.User != nil || u.Fragment != "" {
		return "", bad
	}
	if !u.IsAbs() {
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(path, "//") {
			return "", bad
		}
		return s.cfg.PublicURL.Scheme + "://" + s.cfg.PublicURL.Host + u.RequestURI(), nil
	}
	origin := u.Scheme + "://" + u.Host
	for _, o := range s.cfg.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return u.String(), nil
		}
	}
	return "", bad
}

// withSessionID adds Stripe's session id placeholder to the success URL, so
// the editor can show what was bought.
func withSessionID(u string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "session_id={CHECKOUT_SESSION_ID}"
}

// CreatePortal returns a Stripe billing portal session where the actor
// manages cards, invoices and their plan. Returns PAYMENTS_DISABLED,
// VALIDATION (return path), NOT_FOUND (never bought anything) or
// UNAVAILABLE.
func (s *Service) CreatePortal(ctx context.Context, a actor.Actor, returnPath string) (string, error) {
	if err := a.RequireSession(); err != nil {
		return "", err
	}
	if err := s.requireEnabled(); err != nil {
		return "", err
	}
	back, err := s.returnURL(returnPath, "returnPath")
	if err != nil {
		return "", err
	}
	if err := s.allow(ctx, "portal", a.UserID, portalLimits); err != nil {
		return "", err
	}
	var customer sql.NullString
	if err := s.db.NewRaw("SELECT stripe_customer_id FROM users WHERE id = ?", a.UserID).Scan(ctx, &customer); err != nil {
		return "", fmt.Errorf("read customer: %w", err)
	}
	if !customer.Valid {
		return "", apperr.Errorf(apperr.NotFound, "You have no billing profile yet: it is made with your first purchase.")
	}
	ps, err := s.api.BillingPortalSessions.New(&stripe.BillingPortalSessionParams{Customer: stripe.String(customer.String), ReturnURL: stripe.String(back)})
	if err != nil {
		return "", s.stripeError(ctx, "open the billing portal", err)
	}
	return ps.URL, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// errNotOurs is a Stripe object that names no user of ours, or no plan of
// ours (the account sells something else too): its event is ignored.
var errNotOurs = errors.New("billing: the Stripe object names no user or plan of ours")
