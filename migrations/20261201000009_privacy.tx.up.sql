-- Privacy (internal/privacy): users' requests to export, correct or delete
-- their data and to object to processing; the audit trail of every step;
-- legal documents and their acceptance; support messages; usage events.

-- A request, from received to its end. Export and deletion requests are
-- jobs: a worker claims one under a lease, as generations are claimed.
CREATE TABLE privacy_requests (
  id                uuid PRIMARY KEY DEFAULT uuidv7(),
  -- After an erasure, the tombstone that stands for the deleted user.
  user_id           uuid NOT NULL REFERENCES users (id),
  kind              text NOT NULL CHECK (kind IN ('export', 'correction', 'deletion', 'objection', 'withdrawal')),
  status            text NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'verified', 'in_progress', 'completed', 'rejected', 'canceled')),
  -- correction: what to change, to what, and why.
  field             text,
  value             text,
  note              text,
  -- objection and withdrawal: the purpose.
  purpose           text CHECK (purpose IN ('analytics', 'product_improvement', 'marketing_email')),
  rejection_reason  text,
  due_at            timestamptz NOT NULL,
  extended_at       timestamptz,
  extension_reason  text,
  -- jobs (export, deletion)
  progress          integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  attempts          integer NOT NULL DEFAULT 0,
  lease_owner       text,
  lease_expires_at  timestamptz,
  error             text,
  -- export: the ZIP in storage, until it expires.
  result_key        text,
  result_bytes      bigint,
  result_sha256     text,
  result_expires_at timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  completed_at      timestamptz,
  CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL)),
  CHECK ((extended_at IS NULL) = (extension_reason IS NULL)),
  CHECK (kind <> 'correction' OR field IS NOT NULL),
  CHECK (kind NOT IN ('objection', 'withdrawal') OR purpose IS NOT NULL)
);
CREATE INDEX privacy_requests_user_idx ON privacy_requests (user_id, id DESC);
CREATE INDEX privacy_requests_open_idx ON privacy_requests (status, due_at) WHERE status IN ('received', 'verified', 'in_progress');
-- One open export and one open deletion per user at a time.
CREATE UNIQUE INDEX privacy_requests_one_open_job ON privacy_requests (user_id, kind)
  WHERE kind IN ('export', 'deletion') AND status IN ('received', 'verified', 'in_progress');

-- The audit trail: every step of every request, by whom. Rows name the
-- request, never the user, and never change: the trail survives the
-- erasure it records.
CREATE TABLE privacy_audit (
  id          uuid PRIMARY KEY DEFAULT uuidv7(),
  -- The order of the steps: ids made within one millisecond are not
  -- ordered, a sequence is.
  seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  request_id  uuid NOT NULL REFERENCES privacy_requests (id),
  action      text NOT NULL,
  -- 'user', 'admin:<id>', 'system'
  actor       text NOT NULL,
  detail      text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX privacy_audit_request_idx ON privacy_audit (request_id, seq);
CREATE TRIGGER privacy_audit_append_only BEFORE UPDATE OR DELETE ON privacy_audit
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER privacy_audit_no_truncate BEFORE TRUNCATE ON privacy_audit
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Purposes a user objects to: no usage events (analytics, product
-- improvement) and no marketing email while the row exists.
CREATE TABLE processing_objections (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('analytics', 'product_improvement', 'marketing_email')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, purpose)
);

-- Every download of an export.
CREATE TABLE export_downloads (
  id          uuid PRIMARY KEY DEFAULT uuidv7(),
  request_id  uuid NOT NULL REFERENCES privacy_requests (id),
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  ip          text NOT NULL DEFAULT '',
  user_agent  text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX export_downloads_user_idx ON export_downloads (user_id, id DESC);

-- The privacy policy and terms, by version; a user accepts each version.
CREATE TABLE legal_documents (
  kind         text NOT NULL CHECK (kind IN ('privacy_policy', 'terms')),
  version      text NOT NULL,
  effective_at timestamptz NOT NULL,
  url          text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, version)
);
CREATE TABLE legal_acceptances (
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind        text NOT NULL,
  version     text NOT NULL,
  accepted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, kind, version),
  FOREIGN KEY (kind, version) REFERENCES legal_documents (kind, version)
);

-- Messages to support: from a user, or from an email address when signed
-- out.
CREATE TABLE support_messages (
  id         uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
  email      text NOT NULL,
  subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
  message    text NOT NULL CHECK (length(message) BETWEEN 1 AND 10000),
  ip         text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_messages_user_idx ON support_messages (user_id, id DESC) WHERE user_id IS NOT NULL;

-- Product usage, only when analytics is on and the user has not objected:
-- which feature, which operation, when, and coarse client info. Never
-- prompts, images or other content.
CREATE TABLE usage_events (
  id         uuid PRIMARY KEY DEFAULT uuidv7(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  feature    text NOT NULL,
  operation  text NOT NULL DEFAULT '',
  client     text NOT NULL DEFAULT '',
  forwarded_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_user_idx ON usage_events (user_id, id DESC);
CREATE INDEX usage_events_created_idx ON usage_events (created_at);
CREATE INDEX usage_events_unforwarded_idx ON usage_events (id) WHERE forwarded_at IS NULL;

-- Sudo mode: when the session last proved its password (sign-in, or
-- confirmPassword); deleting the account needs it within 10 minutes.
ALTER TABLE sessions ADD COLUMN password_confirmed_at timestamptz;
UPDATE sessions SET password_confirmed_at = created_at;
ALTER TABLE sessions ALTER COLUMN password_confirmed_at SET DEFAULT now();
