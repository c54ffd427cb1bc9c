-- The live feed is written by Go (internal/feed), which types its payloads,
-- names the cause of each credit change, and rings the one doorbell channel
-- it defines (internal/events). The trigger and function that did it in SQL
-- repeated that channel's name and could not know a change's cause.
DROP TRIGGER credit_accounts_feed ON credit_accounts;
DROP FUNCTION credit_accounts_to_feed();
DROP FUNCTION feed_append(uuid, text, jsonb);

-- A work and the generation that makes it share one status: the API shows
-- both with one enum, so clients can select `status` on either in one query.
ALTER TABLE works DROP CONSTRAINT works_status_check;
UPDATE works SET status = CASE status
  WHEN 'pending' THEN 'queued' WHEN 'processing' THEN 'running' WHEN 'ready' THEN 'succeeded' ELSE status END;
ALTER TABLE works ALTER COLUMN status SET DEFAULT 'succeeded';
ALTER TABLE works ADD CONSTRAINT works_status_check
  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled'));
