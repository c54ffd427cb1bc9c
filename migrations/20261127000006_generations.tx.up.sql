-- Generation jobs (Postgres is the queue), their events (the truth behind
-- every live stream), the per-user live feed, and prices.

CREATE TABLE generation_prices (
  kind              text NOT NULL CHECK (kind IN ('generate', 'edit')),
  max_pixels        bigint NOT NULL CHECK (max_pixels > 0),
  credits_per_image int NOT NULL CHECK (credits_per_image > 0),
  PRIMARY KEY (kind, max_pixels)
);
INSERT INTO generation_prices (kind, max_pixels, credits_per_image) VALUES
  ('generate', 1048576, 4),  -- up to 1024 × 1024
  ('generate', 4194304, 8),  -- up to 2048 × 2048
  ('edit',     1048576, 5),
  ('edit',     4194304, 10);

CREATE TABLE generations (
  id               uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  work_id          uuid NOT NULL REFERENCES works (id) ON DELETE CASCADE,
  kind             text NOT NULL CHECK (kind IN ('generate', 'edit')),
  prompt           text NOT NULL,
  negative_prompt  text NOT NULL DEFAULT '',
  width            int NOT NULL CHECK (width BETWEEN 64 AND 2048),
  height           int NOT NULL CHECK (height BETWEEN 64 AND 2048),
  count            int NOT NULL CHECK (count BETWEEN 1 AND 4),
  seed             bigint NOT NULL,
  strength         real NOT NULL DEFAULT 0.6,
  source_work_id   uuid REFERENCES works (id) ON DELETE SET NULL,
  mask_work_id     uuid REFERENCES works (id) ON DELETE SET NULL,
  provider         text NOT NULL,
  status           text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  progress         real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
  credits_per_image int NOT NULL,
  hold_id          uuid REFERENCES credit_holds (id),
  cost             bigint,
  outputs          int NOT NULL DEFAULT 0,
  attempts         int NOT NULL DEFAULT 0,
  max_attempts     int NOT NULL,
  lease_owner      text,
  lease_expires_at timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  last_seq         int NOT NULL DEFAULT 0,
  idempotency_key  text,
  request_hash     text NOT NULL,
  retry_of         uuid REFERENCES generations (id) ON DELETE SET NULL,
  error_code       text,
  error_message    text,
  queued_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at       timestamptz,
  finished_at      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX generations_idempotency_key ON generations (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX generations_queue_idx ON generations (queued_at, id) WHERE status = 'queued';
CREATE INDEX generations_running_idx ON generations (user_id, lease_expires_at) WHERE status = 'running';
CREATE INDEX generations_user_idx ON generations (user_id, id DESC);

CREATE TABLE generation_events (
  generation_id uuid NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
  seq           int NOT NULL CHECK (seq > 0),
  kind          text NOT NULL CHECK (kind IN ('QUEUED', 'STARTED', 'PROGRESS', 'OUTPUT', 'SUCCEEDED', 'FAILED', 'CANCELED')),
  payload       jsonb NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (generation_id, seq)
);

-- One resumable feed per user: generation status changes and credit balance
-- changes. A per-user counter, taken under its row lock, makes sequence order
-- equal commit order, so a reader that resumes after seq N misses nothing.
CREATE TABLE viewer_feeds (
  user_id  uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  last_seq bigint NOT NULL DEFAULT 0
);
CREATE TABLE viewer_events (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  seq        bigint NOT NULL CHECK (seq > 0),
  kind       text NOT NULL,
  payload    jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (user_id, seq)
);

CREATE FUNCTION feed_append(p_user uuid, p_kind text, p_payload jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
  INSERT INTO viewer_feeds (user_id, last_seq) VALUES (p_user, 1)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = viewer_feeds.last_seq + 1
    RETURNING last_seq INTO s;
  INSERT INTO viewer_events (user_id, seq, kind, payload) VALUES (p_user, s, p_kind, p_payload);
  PERFORM pg_notify('fastimage_events', 'user:' || p_user || ':' || s);
  RETURN s;
END $$;

-- Every change of a credit balance, whatever made it, reaches the feed.
CREATE FUNCTION credit_accounts_to_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.balance IS DISTINCT FROM OLD.balance OR NEW.held IS DISTINCT FROM OLD.held THEN
    PERFORM feed_append(NEW.user_id, 'CREDITS', jsonb_build_object(
      'balance', NEW.balance, 'held', NEW.held, 'available', NEW.balance - NEW.held));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER credit_accounts_feed AFTER UPDATE ON credit_accounts
  FOR EACH ROW EXECUTE FUNCTION credit_accounts_to_feed();
