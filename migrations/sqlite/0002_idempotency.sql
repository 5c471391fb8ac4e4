-- Responses remembered for Idempotency-Key, per project, written in the same transaction as the
-- messages they describe.
CREATE TABLE idempotency_keys (
    project_id   BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL CHECK (length(request_hash) = 32),
    status       INTEGER NOT NULL,
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
