-- Delivery state in a narrow table of its own, one row per message, so that a message's row is
-- written once (when accepted) and never rewritten: a claim and a settlement write a row of
-- ~150 bytes instead of the whole ~1.3 KB message (fewer pages to the WAL per delivered
-- message; docs/performance.md).
-- `token_id` and `via` are copied from the message (neither ever changes): a settlement names
-- them in the token log entries it writes, and SQLite's RETURNING sees only the updated table.
-- No foreign key to `messages`: messages go away only with their project, and deleting a
-- project deletes its deliveries first, in the same transaction.
CREATE TABLE deliveries (
    message_id        BLOB    PRIMARY KEY NOT NULL,
    token_id          BLOB    NOT NULL,
    via               TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_reply        TEXT,
    status_changed_at INTEGER,
    due_at            INTEGER,
    lease_id          BLOB,
    interrupted       INTEGER NOT NULL DEFAULT 0,
    interrupted_alone INTEGER NOT NULL DEFAULT 0,
    delivered_to      TEXT    NOT NULL DEFAULT '[]'
);
INSERT INTO deliveries (message_id, token_id, via, status, attempts, last_reply,
    status_changed_at, due_at, lease_id, interrupted, interrupted_alone, delivered_to)
SELECT id, token_id, via, status, attempts, last_reply, status_changed_at, due_at, lease_id,
    interrupted, interrupted_alone, delivered_to
FROM messages;
-- Delivered and failed messages are due never (NULL): the index holds only the work to do.
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE due_at IS NOT NULL;
DROP INDEX messages_due;
ALTER TABLE messages DROP COLUMN status;
ALTER TABLE messages DROP COLUMN attempts;
ALTER TABLE messages DROP COLUMN last_reply;
ALTER TABLE messages DROP COLUMN status_changed_at;
ALTER TABLE messages DROP COLUMN due_at;
ALTER TABLE messages DROP COLUMN lease_id;
ALTER TABLE messages DROP COLUMN interrupted;
ALTER TABLE messages DROP COLUMN interrupted_alone;
ALTER TABLE messages DROP COLUMN delivered_to;
