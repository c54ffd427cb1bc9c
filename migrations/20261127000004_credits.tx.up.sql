-- The credits ledger. Balances can never go wrong: every rule the database
-- can hold is a constraint here, and entries can never change.

CREATE TABLE credit_accounts (
  user_id    uuid PRIMARY KEY REFERENCES users (id),
  balance    bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
  held       bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credit_accounts_available_check CHECK (balance - held >= 0)
);

-- A lot is what one grant brought in, spent first-expiring-first.
CREATE TABLE credit_lots (
  id         uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id    uuid NOT NULL REFERENCES credit_accounts (user_id),
  amount     bigint NOT NULL CHECK (amount > 0),
  remaining  bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  expires_at timestamptz,
  expired_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_lots_spend_idx ON credit_lots (user_id, expires_at NULLS LAST, created_at, id) WHERE remaining > 0;
CREATE INDEX credit_lots_expiry_idx ON credit_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

CREATE TABLE credit_entries (
  id              uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id         uuid NOT NULL REFERENCES credit_accounts (user_id),
  amount          bigint NOT NULL CHECK (amount <> 0),
  kind            text NOT NULL CHECK (kind IN ('SIGNUP_BONUS', 'PURCHASE', 'SUBSCRIPTION_GRANT', 'SPEND', 'REFUND', 'ADJUSTMENT', 'EXPIRY', 'CLAWBACK')),
  reference_type  text,
  reference_id    text,
  balance_after   bigint NOT NULL CHECK (balance_after >= 0),
  idempotency_key text NOT NULL,
  lot_id          uuid REFERENCES credit_lots (id),
  reason          text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- Grants bring credits in, spends and expiries take them out.
  CHECK (kind NOT IN ('SIGNUP_BONUS', 'PURCHASE', 'SUBSCRIPTION_GRANT', 'REFUND') OR amount > 0),
  CHECK (kind NOT IN ('SPEND', 'EXPIRY', 'CLAWBACK') OR amount < 0),
  CHECK (kind <> 'ADJUSTMENT' OR reason IS NOT NULL)
);
CREATE UNIQUE INDEX credit_entries_idempotency_key ON credit_entries (idempotency_key);
CREATE INDEX credit_entries_user_idx ON credit_entries (user_id, id DESC);

CREATE TRIGGER credit_entries_append_only BEFORE UPDATE OR DELETE ON credit_entries
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER credit_entries_no_truncate BEFORE TRUNCATE ON credit_entries
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE TABLE credit_holds (
  id              uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id         uuid NOT NULL REFERENCES credit_accounts (user_id),
  amount          bigint NOT NULL CHECK (amount > 0),
  status          text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'captured', 'released')),
  captured_amount bigint CHECK (captured_amount >= 0 AND captured_amount <= amount),
  reference_type  text,
  reference_id    text,
  idempotency_key text,
  expires_at      timestamptz NOT NULL,
  resolved_at     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'held') = (resolved_at IS NULL)),
  CHECK ((status = 'captured') = (captured_amount IS NOT NULL))
);
CREATE UNIQUE INDEX credit_holds_idempotency_key ON credit_holds (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX credit_holds_open_idx ON credit_holds (expires_at) WHERE status = 'held';
CREATE INDEX credit_holds_user_idx ON credit_holds (user_id) WHERE status = 'held';
