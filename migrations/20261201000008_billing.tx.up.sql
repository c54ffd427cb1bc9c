-- Payments through Stripe (internal/billing). Money becomes credits exactly
-- once: every webhook's event id is recorded in the transaction of its
-- effects, and a purchase's effects are derived from facts that only ever
-- grow (paid, refunded amount, dispute outcome), so any order of arrival
-- ends in the same state.

-- One Stripe Customer per user, created once.
ALTER TABLE users ADD COLUMN stripe_customer_id text;
CREATE UNIQUE INDEX users_stripe_customer_id_key ON users (stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;

-- Credits taken back after a refund or a lost dispute that had been spent
-- already: owed, and settled from the next grant. Balances never go negative.
ALTER TABLE credit_accounts ADD COLUMN owed bigint NOT NULL DEFAULT 0 CHECK (owed >= 0);
-- A lot of a disputed payment is frozen: its credits are held and spent last.
ALTER TABLE credit_lots ADD COLUMN frozen boolean NOT NULL DEFAULT false;
DROP INDEX credit_lots_spend_idx;
CREATE INDEX credit_lots_spend_idx ON credit_lots (user_id, frozen, expires_at NULLS LAST, created_at, id) WHERE remaining > 0;

-- Stripe events applied, each once.
CREATE TABLE stripe_events (
  id          text PRIMARY KEY,
  type        text NOT NULL,
  created     timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);

-- A purchase is one payment: a credit pack's Checkout Session, or one
-- period of a subscription (its invoice).
CREATE TABLE purchases (
  id                  uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id             uuid NOT NULL REFERENCES users (id),
  kind                text NOT NULL CHECK (kind IN ('pack', 'plan')),
  catalog_code        text NOT NULL,
  credits             bigint NOT NULL CHECK (credits >= 0),
  amount              bigint NOT NULL CHECK (amount >= 0),
  currency            text NOT NULL,
  status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'paid', 'failed', 'expired')),
  idempotency_key     text,
  customer_id         text,
  checkout_session_id text UNIQUE,
  checkout_url        text,
  invoice_id          text UNIQUE,
  payment_intent_id   text UNIQUE,
  subscription_id     text,
  period_start        timestamptz,
  period_end          timestamptz,
  receipt_url         text,
  lot_id              uuid REFERENCES credit_lots (id),
  credits_granted     bigint NOT NULL DEFAULT 0 CHECK (credits_granted >= 0),
  credits_clawed_back bigint NOT NULL DEFAULT 0 CHECK (credits_clawed_back >= 0),
  credits_owed        bigint NOT NULL DEFAULT 0 CHECK (credits_owed >= 0),
  frozen_hold_id      uuid REFERENCES credit_holds (id),
  paid_at             timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CHECK (credits_clawed_back + credits_owed <= credits_granted)
);
CREATE UNIQUE INDEX purchases_idempotency_key ON purchases (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- One grant per subscription and period.
CREATE UNIQUE INDEX purchases_subscription_period ON purchases (subscription_id, period_start) WHERE subscription_id IS NOT NULL AND period_start IS NOT NULL;
CREATE INDEX purchases_user_idx ON purchases (user_id, id DESC);

-- What Stripe said about each charge: refunds and disputes, whichever
-- arrives first. A purchase reads its charges by payment intent or invoice.
CREATE TABLE stripe_charges (
  id                text PRIMARY KEY,
  payment_intent_id text,
  invoice_id        text,
  amount            bigint NOT NULL CHECK (amount >= 0),
  amount_refunded   bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
  dispute_id        text,
  dispute_status    text CHECK (dispute_status IN ('open', 'won', 'lost')),
  dispute_amount    bigint NOT NULL DEFAULT 0 CHECK (dispute_amount >= 0),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_charges_payment_intent_idx ON stripe_charges (payment_intent_id) WHERE payment_intent_id IS NOT NULL;
CREATE INDEX stripe_charges_invoice_idx ON stripe_charges (invoice_id) WHERE invoice_id IS NOT NULL;
-- Each dispute of a charge: an inquiry closed in our favour may be followed
-- by a chargeback, a new dispute of the same charge. A dispute once closed
-- stays as it closed; the charge's dispute columns above sum them up (lost
-- if any is lost, open if any is open).
CREATE TABLE stripe_disputes (
  id         text PRIMARY KEY,
  charge_id  text NOT NULL,
  status     text NOT NULL CHECK (status IN ('open', 'won', 'lost')),
  amount     bigint NOT NULL CHECK (amount >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_disputes_charge_idx ON stripe_disputes (charge_id);

-- A user's subscriptions as Stripe last told us (observed_at orders what
-- arrives late), and the limits of the plan that is active.
CREATE TABLE subscriptions (
  id                     uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id                uuid NOT NULL REFERENCES users (id),
  stripe_subscription_id text NOT NULL UNIQUE,
  customer_id            text,
  plan_code              text NOT NULL,
  status                 text NOT NULL,
  current_period_start   timestamptz,
  current_period_end     timestamptz,
  cancel_at_period_end   boolean NOT NULL DEFAULT false,
  canceled_at            timestamptz,
  observed_at            timestamptz NOT NULL,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_user_idx ON subscriptions (user_id, id DESC);

-- Limits that differ from the settings' defaults because of a plan.
CREATE TABLE user_limits (
  user_id             uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  plan_code           text NOT NULL,
  storage_quota_bytes bigint CHECK (storage_quota_bytes > 0),
  running_jobs_limit  integer CHECK (running_jobs_limit > 0),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
