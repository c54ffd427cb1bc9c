DROP INDEX mail_outbox_due_idx;
ALTER TABLE mail_outbox
  DROP CONSTRAINT mail_outbox_sent_is_final,
  DROP COLUMN last_error,
  DROP COLUMN sent_at,
  DROP COLUMN next_attempt_at,
  DROP COLUMN attempts;
