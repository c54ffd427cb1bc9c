ALTER TABLE sessions DROP COLUMN password_confirmed_at;
DROP TABLE usage_events;
DROP TABLE support_messages;
DROP TABLE legal_acceptances;
DROP TABLE legal_documents;
DROP TABLE export_downloads;
DROP TABLE processing_objections;
DROP TABLE privacy_audit;
DROP TABLE privacy_requests;
