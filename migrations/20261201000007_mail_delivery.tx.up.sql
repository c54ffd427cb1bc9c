-- The outbox becomes the one way mail leaves: every flow stores its message
-- here in its own transaction (so it goes only if the flow commits), and the
-- mail worker delivers due rows through SMTP, retrying with backoff.
-- next_attempt_at is when the row is due; NULL once it was sent or given up.
-- Rows stored before this were sent already (production) or were never to
-- be sent (development): they get no next_attempt_at, only new rows do.
ALTER TABLE mail_outbox
  ADD COLUMN attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  ADD COLUMN next_attempt_at timestamptz,
  ADD COLUMN sent_at         timestamptz,
  ADD COLUMN last_error      text,
  ADD CONSTRAINT mail_outbox_sent_is_final CHECK (sent_at IS NULL OR next_attempt_at IS NULL);
ALTER TABLE mail_outbox ALTER COLUMN next_attempt_at SET DEFAULT now();

-- The worker asks for the next due row.
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
