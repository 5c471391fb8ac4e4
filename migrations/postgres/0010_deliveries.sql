-- Delivery state in a narrow table of its own, one row per message, so that a message's row is
-- written once (when accepted) and never rewritten. A claim and a settlement each used to write
-- a new version of the whole ~1.3 KB `messages` row and an entry in each of its indexes; they
-- now write a row of ~150 bytes with two indexes: about 750 bytes of WAL per delivered message
-- instead of about 5,000 (docs/performance.md).
-- `token_id` and `via` are copied from the message (neither ever changes): a settlement names
-- them in the token log entries it writes.
-- No foreign key to `messages`: its check would lock the new message's row at every enqueue.
-- Messages go away only with their project, and deleting a project deletes its deliveries
-- first, in the same transaction.
CREATE TABLE deliveries (
    message_id        uuid        PRIMARY KEY,
    token_id          uuid        NOT NULL,
    via               text        NOT NULL,
    status            text        NOT NULL,
    attempts          integer     NOT NULL DEFAULT 0,
    last_reply        text,
    status_changed_at timestamptz,
    due_at            timestamptz,
    lease_id          uuid,
    interrupted       integer     NOT NULL DEFAULT 0,
    interrupted_alone integer     NOT NULL DEFAULT 0,
    delivered_to      text        NOT NULL DEFAULT '[]'
);
INSERT INTO deliveries (message_id, token_id, via, status, attempts, last_reply,
    status_changed_at, due_at, lease_id, interrupted, interrupted_alone, delivered_to)
SELECT id, token_id, via, status, attempts, last_reply, status_changed_at, due_at, lease_id,
    interrupted, interrupted_alone, delivered_to
FROM messages;
-- Delivered and failed messages are due never (NULL): the index holds only the work to do.
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE due_at IS NOT NULL;
DROP INDEX messages_due;
ALTER TABLE messages
    DROP COLUMN status,
    DROP COLUMN attempts,
    DROP COLUMN last_reply,
    DROP COLUMN status_changed_at,
    DROP COLUMN due_at,
    DROP COLUMN lease_id,
    DROP COLUMN interrupted,
    DROP COLUMN interrupted_alone,
    DROP COLUMN delivered_to;
