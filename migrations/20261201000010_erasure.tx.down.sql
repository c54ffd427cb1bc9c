DROP INDEX credit_holds_user_all_idx;
DROP INDEX credit_lots_user_idx;
DROP INDEX uploads_user_idx;
DROP INDEX uploads_work_idx;
DROP INDEX assets_parent_idx;
DROP INDEX works_source_work_idx;
DROP INDEX generations_retry_of_idx;
DROP INDEX generations_mask_work_idx;
DROP INDEX generations_source_work_idx;
DROP INDEX generations_work_idx;
DROP TRIGGER credit_entries_append_only ON credit_entries;
CREATE TRIGGER credit_entries_append_only BEFORE UPDATE OR DELETE ON credit_entries
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
DROP FUNCTION credit_entries_guard();
