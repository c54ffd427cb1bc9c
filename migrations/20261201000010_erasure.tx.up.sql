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

-- An erasure deletes a user's works by the hundred, and each deleted row is
-- looked up in the columns that refer to it (ON DELETE CASCADE / SET NULL):
-- without an index each lookup reads the whole table. It also moves the
-- user's lots and holds, and finds their uploads, by user.
CREATE INDEX generations_work_idx ON generations (work_id);
CREATE INDEX generations_source_work_idx ON generations (source_work_id) WHERE source_work_id IS NOT NULL;
CREATE INDEX generations_mask_work_idx ON generations (mask_work_id) WHERE mask_work_id IS NOT NULL;
CREATE INDEX generations_retry_of_idx ON generations (retry_of) WHERE retry_of IS NOT NULL;
CREATE INDEX works_source_work_idx ON works (source_work_id) WHERE source_work_id IS NOT NULL;
CREATE INDEX assets_parent_idx ON assets (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX uploads_work_idx ON uploads (work_id) WHERE work_id IS NOT NULL;
CREATE INDEX uploads_user_idx ON uploads (user_id);
CREATE INDEX credit_lots_user_idx ON credit_lots (user_id);
CREATE INDEX credit_holds_user_all_idx ON credit_holds (user_id);
