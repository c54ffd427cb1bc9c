-- A webhook endpoint registered with an API key names it; the key's
-- revocation stops the endpoint (apikey's revoke hook), and its deletion
-- (with its user) leaves the endpoint to the user.
ALTER TABLE webhook_endpoints
  ADD CONSTRAINT webhook_endpoints_api_key_id_fkey FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE SET NULL;
