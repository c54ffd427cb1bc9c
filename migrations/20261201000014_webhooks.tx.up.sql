-- Partner webhooks. An endpoint is a URL a user (through the editor or one
-- of their API keys) registered for some event types; a delivery is one
-- message to one URL, written in the transaction of the event it tells
-- about (the outbox), and sent by the webhook worker with retries.
--
-- Secrets are kept as they are shown ("whsec_" + base64): a webhook secret
-- must be usable to sign, so it cannot be stored as a hash like a password
-- or an API key. Encryption at rest is left to the database's storage.
CREATE TABLE webhook_endpoints (
  id          uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The API key that registered the endpoint (NULL from a session). No
  -- foreign key here: api_keys comes with the keys migration, which adds
  -- the reference (ON DELETE SET NULL).
  api_key_id  uuid,
  url         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
  events      text[] NOT NULL CHECK (cardinality(events) > 0),
  secret      text NOT NULL,
  -- After a rotation the previous secret still signs (a second signature)
  -- until previous_secret_expires_at, so receivers can switch without
  -- losing messages.
  previous_secret            text,
  previous_secret_expires_at timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  disabled_at timestamptz
);
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, id) WHERE disabled_at IS NULL;

-- The secret that signs the deliveries of per-request webhooks
-- (webhookUrl on generateImage / editImage): one per user, made when first
-- needed.
CREATE TABLE webhook_user_secrets (
  user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A generation's per-request webhook URL, validated at submission.
ALTER TABLE generations ADD COLUMN webhook_url text CHECK (length(webhook_url) BETWEEN 1 AND 2000);

CREATE TABLE webhook_deliveries (
  id              uuid PRIMARY KEY DEFAULT uuidv7(),
  -- NULL for a per-request webhook, and once the endpoint is deleted (its
  -- deliveries stay listed).
  endpoint_id     uuid REFERENCES webhook_endpoints (id) ON DELETE SET NULL,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  url             text NOT NULL,
  -- A per-request webhook (webhookUrl), signed with the user's request
  -- secret; otherwise its endpoint's.
  per_request     boolean NOT NULL DEFAULT false,
  event_type      text NOT NULL,
  payload         jsonb NOT NULL,
  -- The Standard Webhooks message id (webhook-id): the same on every try
  -- and on a redelivery, so receivers can drop duplicates.
  webhook_id      text NOT NULL UNIQUE,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- When the row is due; NULL once it succeeded or failed.
  next_attempt_at timestamptz DEFAULT now(),
  -- Retries stop a day after this (creation, or the last redelivery).
  window_start    timestamptz NOT NULL DEFAULT now(),
  last_status_code integer,
  last_response   text,
  last_error      text,
  -- The latest tries, newest last, at most 20: {at, statusCode, response,
  -- error, durationMs}.
  attempt_log     jsonb NOT NULL DEFAULT '[]',
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz,
  CONSTRAINT webhook_deliveries_due_only_pending CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (user_id, id);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id) WHERE endpoint_id IS NOT NULL;
