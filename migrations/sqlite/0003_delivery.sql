-- Delivery state. A message is due for an attempt at `due_at`: when accepted (or at its
-- scheduled time), after a deferral, or when the lease of a worker that claimed it runs out.
-- Delivered and failed messages are due never (NULL), so the partial index holds only the
-- work still to do.
ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_reply TEXT;
ALTER TABLE messages ADD COLUMN status_changed_at INTEGER;
ALTER TABLE messages ADD COLUMN due_at INTEGER;
ALTER TABLE messages ADD COLUMN lease_id BLOB;
UPDATE messages SET due_at = COALESCE(scheduled_at, created_at)
    WHERE status IN ('pending', 'scheduled', 'queued', 'processed', 'deferred');
CREATE INDEX messages_due ON messages (due_at) WHERE due_at IS NOT NULL;
