-- Responses remembered for Idempotency-Key, per project, written in the same transaction as the
-- messages they describe.
CREATE TABLE idempotency_keys (
    project_id   uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL CHECK (length(request_hash) = 32),
    status       integer     NOT NULL,
    response     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
