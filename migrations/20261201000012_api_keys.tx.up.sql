-- API keys (issue 13): partner apps act for the user who made the key,
-- within its scopes. The token is fi_live_<prefix>_<secret>; the prefix is
-- stored as it is (it finds the row and is shown in lists), the secret
-- only as its SHA-256: it is 32 random bytes, so a slow hash adds nothing.
CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  prefix text NOT NULL UNIQUE,
  secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
  scopes text[] NOT NULL CHECK (cardinality(scopes) > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz
);

-- A user's keys, newest first.
CREATE INDEX api_keys_user_id_created_at_idx ON api_keys (user_id, created_at DESC);
