-- Rotation with an overlap: the digest a rotation replaced keeps working until
-- `previous_expires_at`. It is a SHA-256 digest like `digest` (never the secret), unique so that
-- authentication finds a token by either digest in one indexed lookup. Regenerating clears both.
-- Per-token IP allowlists: CIDRs separated by spaces; empty means any address.
-- Token log entries name which of the two values was presented.
ALTER TABLE project_tokens ADD COLUMN previous_digest bytea
    CHECK (previous_digest IS NULL OR length(previous_digest) = 32);
ALTER TABLE project_tokens ADD COLUMN previous_expires_at timestamptz;
ALTER TABLE project_tokens ADD COLUMN allowed_ips text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX project_tokens_previous_digest ON project_tokens (previous_digest);

ALTER TABLE team_tokens ADD COLUMN previous_digest bytea
    CHECK (previous_digest IS NULL OR length(previous_digest) = 32);
ALTER TABLE team_tokens ADD COLUMN previous_expires_at timestamptz;
ALTER TABLE team_tokens ADD COLUMN allowed_ips text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX team_tokens_previous_digest ON team_tokens (previous_digest);

ALTER TABLE token_logs ADD COLUMN credential text
    CHECK (credential IN ('current', 'previous'));
