package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/feed"
)

// Subscription is a user's subscription as Stripe last told us.
type Subscription struct {
	bun.BaseModel `bun:"table:subscriptions,alias:sub"`

	ID                 uuid.UUID          `bun:"id,pk,type:uuid,default:uuidv7()"`
	UserID             uuid.UUID          `bun:"user_id,type:uuid"`
	StripeID           string             `bun:"stripe_subscription_id"`
	CustomerID         *string            `bun:"customer_id"`
	PlanCode           string             `bun:"plan_code"`
	Status             SubscriptionStatus `bun:"status"`
	CurrentPeriodStart *time.Time         `bun:"current_period_start"`
	CurrentPeriodEnd   *time.Time         `bun:"current_period_end"`
	CancelAtPeriodEnd  bool               `bun:"cancel_at_period_end"`
	CanceledAt         *time.Time         `bun:"canceled_at"`
	ObservedAt         time.Time          `bun:"observed_at"`
	CreatedAt          time.Time          `bun:"created_at,nullzero,default:now()"`
	UpdatedAt          time.Time          `bun:"updated_at,nullzero,default:now()"`
}

// SubscriptionStatus is Stripe's status of a subscription.
type SubscriptionStatus string

// Stripe's subscription statuses.
const (
	SubActive            SubscriptionStatus = "active"
	SubTrialing          SubscriptionStatus = "trialing"
	SubPastDue           SubscriptionStatus = "past_due"
	SubUnpaid            SubscriptionStatus = "unpaid"
	SubCanceled          SubscriptionStatus = "canceled"
	SubIncomplete        SubscriptionStatus = "incomplete"
	SubIncompleteExpired SubscriptionStatus = "incomplete_expired"
	SubPaused            SubscriptionStatus = "paused"
)

// live are the Stripe statuses in which a plan's benefits apply. past_due
// keeps them while Stripe retries the card.
var live = []SubscriptionStatus{SubActive, SubTrialing, SubPastDue}

// terminal statuses never change again in Stripe.
func terminal(status SubscriptionStatus) bool {
	return status == SubCanceled || status == SubIncompleteExpired
}

// SubscriptionOf returns userID's current subscription: the live one, else
// the latest; nil when they never subscribed. Returns FORBIDDEN unless the
// actor is that user or an admin.
func (s *Service) SubscriptionOf(ctx context.Context, a actor.Actor, userID uuid.UUID) (*Subscription, error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	var sub Subscription
	err := s.db.NewSelect().Model(&sub).Where("user_id = ?", userID).
		OrderExpr("status IN (?) DESC, id DESC", bun.In(live)).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription: %w", err)
	}
	return &sub, nil
}

// SubscriptionsByIDs returns the actor's subscriptions among ids (an
// admin's: any user's), in no order.
func (s *Service) SubscriptionsByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Subscription, error) {
	if err := a.RequireScope(actor.ScopeCreditsRead); err != nil {
		return nil, err
	}
	var subs []Subscription
	q := s.db.NewSelect().Model(&subs).Where("id IN (?)", bun.In(ids))
	if !a.Admin() {
		q = q.Where("user_id = ?", a.UserID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find subscriptions: %w", err)
	}
	return subs, nil
}

func (s *Service) activeSubscription(ctx context.Context, userID uuid.UUID) (*Subscription, error) {
	var sub Subscription
	err := s.db.NewSelect().Model(&sub).Where("user_id = ? AND status IN (?)", userID, bun.In(live)).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription: %w", err)
	}
	return &sub, nil
}

// SetCancelAtPeriodEnd cancels the actor's subscription at the end of the
// period it is paid for (cancel true), or takes that back (false). The plan
// and its limits stay until then. Returns PAYMENTS_DISABLED, NOT_FOUND
// (not the actor's, or over), or UNAVAILABLE.
func (s *Service) SetCancelAtPeriodEnd(ctx context.Context, a actor.Actor, id uuid.UUID, cancel bool) (*Subscription, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	var sub Subscription
	err := s.db.NewSelect().Model(&sub).Where("id = ? AND user_id = ?", id, a.UserID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && terminal(sub.Status)) {
		return nil, apperr.Errorf(apperr.NotFound, "No such subscription, or it has ended.")
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription: %w", err)
	}
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	observed := s.clock.Now()
	ss, err := s.api.Subscriptions.Update(sub.StripeID, &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(cancel)})
	if err != nil {
		return nil, s.stripeError(ctx, "change your subscription", err)
	}
	// Stripe's answer is the newest word on it; the webhook that follows
	// repeats it.
	if err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := s.mergeSubscription(ctx, tx, ss, observed)
		return err
	}); err != nil {
		return nil, err
	}
	return s.SubscriptionOf(ctx, a, a.UserID)
}

// mergeSubscription records what Stripe said about a subscription at
// observed, unless we already know something newer, and sets the user's
// limits to their live plan's. It reports whether what the user sees of it
// (plan, status, period, cancellation) changed; only then is their feed
// told.
func (s *Service) mergeSubscription(ctx context.Context, tx bun.Tx, ss *stripe.Subscription, observed time.Time) (bool, error) {
	// A subscription we know stays its user's (the row's user never
	// changes), and keeps its plan when Stripe's answer names none of ours.
	var known Subscription
	var userID uuid.UUID
	err := tx.NewSelect().Model(&known).Where("stripe_subscription_id = ?", ss.ID).For("UPDATE").Scan(ctx)
	existed := err == nil
	switch {
	case err == nil:
		userID = known.UserID
	case errors.Is(err, sql.ErrNoRows):
		if userID, err = s.userOf(ctx, tx, ss.Metadata, customerID(ss.Customer)); err != nil {
			return false, err
		}
	default:
		return false, fmt.Errorf("read subscription %s: %w", ss.ID, err)
	}
	code := known.PlanCode
	if c := ss.Metadata[metaCode]; c != "" {
		code = c
	}
	if ss.Items != nil {
		for _, it := range ss.Items.Data {
			if item, ok := s.itemOfPrice(it.Price); ok {
				code = item.Code
			}
		}
	}
	if code == "" {
		// A subscription to something else the account sells, by one of
		// our users: not a plan of ours.
		return false, fmt.Errorf("subscription %s: no catalog plan in its items or metadata: %w", ss.ID, errNotOurs)
	}
	sub := &Subscription{
		UserID: userID, StripeID: ss.ID, PlanCode: code, Status: SubscriptionStatus(ss.Status),
		CurrentPeriodStart: unixTime(ss.CurrentPeriodStart), CurrentPeriodEnd: unixTime(ss.CurrentPeriodEnd),
		CancelAtPeriodEnd: ss.CancelAtPeriodEnd, CanceledAt: unixTime(ss.CanceledAt), ObservedAt: observed,
	}
	if c := customerID(ss.Customer); c != "" {
		sub.CustomerID = &c
	}
	// A newer observation wins; an ended subscription stays ended.
	res, err := tx.NewInsert().Model(sub).
		On("CONFLICT (stripe_subscription_id) DO UPDATE").
		Set("plan_code = EXCLUDED.plan_code, status = EXCLUDED.status").
		// An answer without the period (one shaped by a later API version)
		// does not erase it.
		Set("current_period_start = coalesce(EXCLUDED.current_period_start, sub.current_period_start)").
		Set("current_period_end = coalesce(EXCLUDED.current_period_end, sub.current_period_end)").
		Set("cancel_at_period_end = EXCLUDED.cancel_at_period_end, canceled_at = EXCLUDED.canceled_at").
		Set("observed_at = EXCLUDED.observed_at, updated_at = now()").
		Where("sub.observed_at <= EXCLUDED.observed_at AND sub.status NOT IN ('canceled', 'incomplete_expired')").
		Returning("id").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record subscription: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil // older news
	}
	if err := s.applyLimits(ctx, tx, userID); err != nil {
		return false, err
	}
	var cur Subscription
	if err := tx.NewSelect().Model(&cur).Where("stripe_subscription_id = ?", ss.ID).Scan(ctx); err != nil {
		return false, fmt.Errorf("read subscription: %w", err)
	}
	if existed && cur.facts() == known.facts() {
		return false, nil
	}
	return true, feed.AppendTx(ctx, tx, userID, feed.SubscriptionChanged{
		SubscriptionID: cur.ID, PlanCode: cur.PlanCode, Status: string(cur.Status), CancelAtPeriodEnd: cur.CancelAtPeriodEnd,
	})
}

// subscriptionFacts is what Stripe told of a subscription, without when.
type subscriptionFacts struct {
	plan                 string
	status               SubscriptionStatus
	start, end, canceled int64
	cancelAtPeriodEnd    bool
}

func (sub *Subscription) facts() subscriptionFacts {
	return subscriptionFacts{sub.PlanCode, sub.Status, unix(sub.CurrentPeriodStart), unix(sub.CurrentPeriodEnd), unix(sub.CanceledAt), sub.CancelAtPeriodEnd}
}

// refreshSubscriptions asks Stripe about every subscription we hold as not
// ended and merges its answer, so that one whose ending (or any change)
// no webhook delivered does not keep its plan's limits forever. It reports
// how many it asked about and how many changed; one that fails is logged
// and returned among the errors, and the rest go on.
func (s *Service) refreshSubscriptions(ctx context.Context) (checked, changed int, failed []error) {
	var ids []string
	if err := s.db.NewRaw("SELECT stripe_subscription_id FROM subscriptions WHERE status NOT IN (?) ORDER BY id",
		bun.In([]SubscriptionStatus{SubCanceled, SubIncompleteExpired})).Scan(ctx, &ids); err != nil {
		return 0, 0, []error{fmt.Errorf("list subscriptions: %w", err)}
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return checked, changed, append(failed, ctx.Err())
		}
		observed := s.clock.Now()
		params := &stripe.SubscriptionParams{}
		params.Context = ctx
		ss, err := s.api.Subscriptions.Get(id, params)
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
			// Deleted from Stripe (test data): nothing more to learn.
			s.log.WarnContext(ctx, "reconcile: a subscription we hold is gone from Stripe", "subscription", id)
			continue
		}
		if err != nil {
			s.log.ErrorContext(ctx, "reconcile could not read a subscription", "subscription", id, "err", err)
			failed = append(failed, fmt.Errorf("subscription %s: %w", id, err))
			continue
		}
		checked++
		var news bool
		err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			news, err = s.mergeSubscription(ctx, tx, ss, observed)
			return err
		})
		if err != nil {
			s.log.ErrorContext(ctx, "reconcile could not apply a subscription", "subscription", id, "err", err)
			failed = append(failed, fmt.Errorf("subscription %s: %w", id, err))
			continue
		}
		if news {
			s.log.InfoContext(ctx, "reconcile applied a subscription change that no webhook had delivered", "subscription", id)
			changed++
		}
	}
	return checked, changed, failed
}

// applyLimits sets userID's limits to those of their live plan, or back to
// the settings' defaults when none is live.
func (s *Service) applyLimits(ctx context.Context, tx bun.Tx, userID uuid.UUID) error {
	var codes []string
	if err := tx.NewRaw("SELECT plan_code FROM subscriptions WHERE user_id = ? AND status IN (?) ORDER BY id DESC", userID, bun.In(live)).
		Scan(ctx, &codes); err != nil {
		return fmt.Errorf("read live plans: %w", err)
	}
	for _, code := range codes {
		item, ok := s.catalog.Find(code)
		if !ok || (item.StorageQuotaBytes == 0 && item.RunningJobsLimit == 0) {
			continue
		}
		_, err := tx.NewRaw(`
			INSERT INTO user_limits (user_id, plan_code, storage_quota_bytes, running_jobs_limit) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET plan_code = EXCLUDED.plan_code, storage_quota_bytes = EXCLUDED.storage_quota_bytes,
			  running_jobs_limit = EXCLUDED.running_jobs_limit, updated_at = now()`,
			userID, code, nullIfZero(item.StorageQuotaBytes), nullIfZero(int64(item.RunningJobsLimit))).Exec(ctx)
		if err != nil {
			return fmt.Errorf("set plan limits: %w", err)
		}
		return nil
	}
	if _, err := tx.NewRaw("DELETE FROM user_limits WHERE user_id = ?", userID).Exec(ctx); err != nil {
		return fmt.Errorf("clear plan limits: %w", err)
	}
	return nil
}

func nullIfZero(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

func unixTime(sec int64) *time.Time {
	if sec == 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}

func customerID(c *stripe.Customer) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// userOf finds our user for a Stripe object: by the user id in its
// metadata, else by its customer.
func (s *Service) userOf(ctx context.Context, idb bun.IDB, meta map[string]string, customer string) (uuid.UUID, error) {
	if id, err := uuid.Parse(meta[metaUser]); err == nil {
		var exists bool
		if err := idb.NewRaw("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)", id).Scan(ctx, &exists); err != nil {
			return uuid.Nil, fmt.Errorf("find user: %w", err)
		}
		if exists {
			return id, nil
		}
	}
	if customer != "" {
		var id uuid.UUID
		err := idb.NewRaw("SELECT id FROM users WHERE stripe_customer_id = ?", customer).Scan(ctx, &id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return uuid.Nil, fmt.Errorf("find user by customer: %w", err)
		}
	}
	return uuid.Nil, errNotOurs
}

// itemOfPrice is the catalog item a Stripe price sells: by its lookup key,
// or, for a price replaced since (sync-catalog moved the key to a new
// one, subscribers stay on the old), by the code in its metadata.
func (s *Service) itemOfPrice(p *stripe.Price) (Item, bool) {
	if p == nil {
		return Item{}, false
	}
	if it, ok := s.catalog.ByLookupKey(p.LookupKey); ok {
		return it, true
	}
	return s.catalog.Find(p.Metadata[metaCode])
}
