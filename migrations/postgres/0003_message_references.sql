-- A message is inserted only after its token was checked under a row lock, and its route is the
-- project's; both go away only with their project, which already cascades to its messages. The
-- foreign keys on route_id and token_id therefore only cost two referential-integrity checks per
-- inserted message (and token deletions a scan of messages), so they go.
ALTER TABLE messages DROP CONSTRAINT messages_route_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_token_id_fkey;
DROP INDEX messages_token;
