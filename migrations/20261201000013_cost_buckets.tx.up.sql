-- Cost-based limits (issue 13): one leaky bucket per API key, session or
-- anonymous client IP, shared by every replica. level is the points the
-- bucket holds at updated_at (the database's clock); it leaks at the
-- caller's restore rate, which the server applies when it charges, so the
-- rate is a setting and not stored here.
--
-- UNLOGGED: every operation writes its bucket, and a logged table would make
-- each of those writes wait for a WAL flush (about half a millisecond per
-- request, measured). Buckets are disposable: after a crash, or on a
-- promoted standby, the table is empty and every bucket starts full.
CREATE UNLOGGED TABLE cost_buckets (
  key        text PRIMARY KEY,
  level      double precision NOT NULL CHECK (level >= 0),
  updated_at timestamptz NOT NULL
) WITH (fillfactor = 50);
-- No index on updated_at: each charge changes it, and an index would turn
-- every charge into an index insert instead of an in-page (HOT) update. The
-- sweep that deletes idle buckets scans the table, which holds one row per
-- recent caller, once per maintenance interval.
