-- Where a leaked token's value was found, on the log entry of its revocation by a verified
-- secret-scanning report. NULL on every other entry.
ALTER TABLE token_logs ADD COLUMN leak_url text;
