-- Erasure (internal/privacy): a deleted user's ledger stays for accounting
-- under a tombstone user that names nobody. credit_entries stays
-- append-only, with one exception: inside an erasure's transaction (which
-- sets fastimage.erasure to 'on' with SET LOCAL) an entry may be moved to a
-- tombstone (a user whose status is 'deleted'), changing nothing but its
-- user_id and, in its idempotency key and reference, the old user id
-- spelled out (the sign-up bonus's key is "signup-bonus:<user id>") for the
-- tombstone's. Every other UPDATE, and every DELETE, is refused as before.
CREATE FUNCTION credit_entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND current_setting('fastimage.erasure', true) = 'on'
     AND NEW.user_id <> OLD.user_id
     AND NEW.idempotency_key = replace(OLD.idempotency_key, OLD.user_id::text, NEW.user_id::text)
     AND NEW.reference_id IS NOT DISTINCT FROM replace(OLD.reference_id, OLD.user_id::text, NEW.user_id::text)
     AND (to_jsonb(NEW) - 'user_id' - 'idempotency_key' - 'reference_id')
       = (to_jsonb(OLD) - 'user_id' - 'idempotency_key' - 'reference_id')
     AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id AND status = 'deleted') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

DROP TRIGGER credit_entries_append_only ON credit_entries;
CREATE TRIGGER credit_entries_append_only BEFORE UPDATE OR DELETE ON credit_entries
  FOR EACH ROW EXECUTE FUNCTION credit_entries_guard();
