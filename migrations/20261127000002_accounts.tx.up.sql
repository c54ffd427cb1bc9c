-- Accounts, sessions, email tokens, security events and rate-limit events.

CREATE TABLE users (
  id                uuid PRIMARY KEY DEFAULT uuidv7(),
  email             text NOT NULL,
  name              text NOT NULL DEFAULT '',
  password_hash     text NOT NULL,
  email_verified_at timestamptz,
  role              text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
  suspended_reason  text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (email = lower(btrim(email)) AND length(email) BETWEEN 3 AND 254),
  CHECK (length(name) <= 100)
);
-- Emails are stored lowercased; the unique index makes "case-insensitive
-- unique" a database rule.
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
  id           uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
  ip           text NOT NULL DEFAULT '',
  user_agent   text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  revoked_at   timestamptz,
  revoked_reason text
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at DESC);

CREATE TABLE email_tokens (
  id         uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('verify_email', 'password_reset', 'email_change')),
  token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
  new_email  text,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  voided_at  timestamptz,
  CHECK ((kind = 'email_change') = (new_email IS NOT NULL))
);
CREATE UNIQUE INDEX email_tokens_token_hash_key ON email_tokens (token_hash);
CREATE INDEX email_tokens_user_kind_idx ON email_tokens (user_id, kind) WHERE used_at IS NULL AND voided_at IS NULL;

-- Append-only record of what happened to an account. Never holds a secret.
CREATE TABLE security_events (
  id         uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
  kind       text NOT NULL,
  ip         text NOT NULL DEFAULT '',
  user_agent text NOT NULL DEFAULT '',
  session_id uuid,
  detail     jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_events_user_idx ON security_events (user_id, id DESC);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER security_events_append_only BEFORE UPDATE ON security_events
  FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Sliding-window rate limits shared by every replica: one row per counted
-- event; old rows are swept.
CREATE TABLE rate_events (
  key text NOT NULL,
  at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rate_events_key_at_idx ON rate_events (key, at);
