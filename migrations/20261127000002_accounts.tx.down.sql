DROP TABLE rate_events;
DROP TABLE security_events;
DROP FUNCTION refuse_change();
DROP TABLE email_tokens;
DROP TABLE sessions;
DROP TABLE users;
