-- Nothing to undo: the keys are harmless to the code before, and the URLs
-- that were dropped had expired.
SELECT 1;
