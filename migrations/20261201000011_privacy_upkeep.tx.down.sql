DROP INDEX security_events_ip_whole_idx;
DROP INDEX security_events_created_idx;
DROP TRIGGER security_events_append_only ON security_events;
CREATE TRIGGER security_events_append_only BEFORE UPDATE ON security_events
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
DROP FUNCTION security_events_guard();
ALTER TABLE security_events DROP COLUMN ip_truncated;
DROP FUNCTION truncate_ip(text);
ALTER TABLE mail_outbox DROP COLUMN reply_to;
