-- Privacy upkeep (issue 12): what retention may change in security events,
-- and a Reply-To for the mail sent to support.

-- Support mail carries the sender's address as Reply-To, so that support
-- answers with one click. Empty for every other mail.
ALTER TABLE mail_outbox ADD COLUMN reply_to text NOT NULL DEFAULT '';

-- The address of IP, cut to its network: IPv4 to /24, IPv6 to /48. Anything
-- that is not an address (an empty string, a malformed value) becomes ''.
CREATE FUNCTION truncate_ip(ip text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  addr inet;
BEGIN
  IF ip IS NULL OR ip = '' THEN
    RETURN '';
  END IF;
  BEGIN
    addr := ip::inet;
  EXCEPTION WHEN others THEN
    RETURN '';
  END;
  RETURN host(network(set_masklen(addr, CASE family(addr) WHEN 4 THEN 24 ELSE 48 END)));
END $$;

-- Security events stay append-only, with one exception: the retention job
-- (which sets fastimage.retention to 'on' for its transaction only, with
-- SET LOCAL) may cut an old event's IP address to its network, once. Any
-- other change, and this one outside that job, is refused as before.
ALTER TABLE security_events ADD COLUMN ip_truncated boolean NOT NULL DEFAULT false;

CREATE FUNCTION security_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('fastimage.retention', true) = 'on'
     AND NOT OLD.ip_truncated AND NEW.ip_truncated
     AND NEW.ip = truncate_ip(OLD.ip)
     AND (to_jsonb(NEW) - 'ip' - 'ip_truncated') = (to_jsonb(OLD) - 'ip' - 'ip_truncated') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

DROP TRIGGER security_events_append_only ON security_events;
CREATE TRIGGER security_events_append_only BEFORE UPDATE ON security_events
  FOR EACH ROW EXECUTE FUNCTION security_events_guard();

-- Retention finds old events by age, and those whose IP is still whole.
CREATE INDEX security_events_created_idx ON security_events (created_at);
CREATE INDEX security_events_ip_whole_idx ON security_events (created_at) WHERE NOT ip_truncated;
