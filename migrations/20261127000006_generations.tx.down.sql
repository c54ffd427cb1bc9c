DROP TRIGGER credit_accounts_feed ON credit_accounts;
DROP FUNCTION credit_accounts_to_feed();
DROP FUNCTION feed_append(uuid, text, jsonb);
DROP TABLE viewer_events;
DROP TABLE viewer_feeds;
DROP TABLE generation_events;
DROP TABLE generations;
DROP TABLE generation_prices;
