-- mail_outbox keeps the mail the service would have sent when no SMTP server
-- is configured (development and tests), so that people and tests can read
-- it back. Production sends over SMTP and leaves this table empty.
CREATE TABLE mail_outbox (
  id         uuid PRIMARY KEY DEFAULT uuidv7(),
  kind       text NOT NULL CHECK (kind <> ''),
  to_address text NOT NULL CHECK (to_address <> ''),
  subject    text NOT NULL,
  text_body  text NOT NULL,
  html_body  text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Tests and the dev page ask for the newest mail to one address.
CREATE INDEX mail_outbox_to_address_created_at_idx ON mail_outbox (to_address, created_at DESC);
