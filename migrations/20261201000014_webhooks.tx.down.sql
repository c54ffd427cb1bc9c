DROP TABLE webhook_deliveries;
ALTER TABLE generations DROP COLUMN webhook_url;
DROP TABLE webhook_user_secrets;
DROP TABLE webhook_endpoints;
