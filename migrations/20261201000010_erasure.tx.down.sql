DROP TRIGGER credit_entries_append_only ON credit_entries;
CREATE TRIGGER credit_entries_append_only BEFORE UPDATE OR DELETE ON credit_entries
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
DROP FUNCTION credit_entries_guard();
