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

ALTER TABLE works DROP CONSTRAINT works_status_check;
UPDATE works SET status = CASE status
  WHEN 'queued' THEN 'pending' WHEN 'running' THEN 'processing' WHEN 'succeeded' THEN 'ready'
  WHEN 'canceled' THEN 'failed' ELSE status END;
ALTER TABLE works ALTER COLUMN status SET DEFAULT 'ready';
ALTER TABLE works ADD CONSTRAINT works_status_check CHECK (status IN ('pending', 'processing', 'ready', 'failed'));
