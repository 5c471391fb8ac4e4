-- The dashboard: accounts, team members, sessions, failed logins and the audit log.
-- Passwords are stored only as argon2id PHC strings; sessions only as the SHA-256 digest of
-- the browser's value (the same rule as tokens).

CREATE TABLE accounts (
    id                  uuid        PRIMARY KEY,
    email               text        NOT NULL,
    display_name        text        NOT NULL,
    password_hash       text        NOT NULL,
    created_at          timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL
);
-- Emails are stored lower-cased (the core's `Email`), so a plain unique index is case-blind.
CREATE UNIQUE INDEX accounts_email ON accounts (email);

CREATE TABLE team_members (
    team_id    uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    account_id uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  timestamptz NOT NULL,
    CONSTRAINT team_members_pkey PRIMARY KEY (team_id, account_id)
);
CREATE INDEX team_members_account ON team_members (account_id);

-- The idle expiry never passes the absolute one, so "expired at t" is `idle_expires_at <= t`
-- and pruning needs one index.
CREATE TABLE sessions (
    id              uuid        PRIMARY KEY,
    digest          bytea       NOT NULL CHECK (length(digest) = 32),
    account_id      uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    idle_expires_at timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    CHECK (idle_expires_at <= expires_at)
);
CREATE UNIQUE INDEX sessions_digest ON sessions (digest);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_idle_expires ON sessions (idle_expires_at);

-- One row per failed login per key (`email:<address>`, `ip:<address>`), counted over a window
-- by every instance.
CREATE TABLE login_failures (
    key text        NOT NULL,
    at  timestamptz NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- The audit log has no foreign keys: entries outlive what they name. A team's entries keep
-- their team id when the team goes (setting it NULL would make them read as account-wide
-- events, which is what a NULL team means), and an actor's keep their id and email.
CREATE TABLE audit_log (
    id          uuid        PRIMARY KEY,
    team_id     uuid,
    actor_id    uuid,
    actor_email text,
    action      text        NOT NULL,
    target      text,
    detail      text,
    ip          text,
    at          timestamptz NOT NULL
);
CREATE INDEX audit_log_team ON audit_log (team_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);

-- A member's change to a token (create, regenerate, revoke) is logged on the token too, via the
-- dashboard and with who did it (their email).
ALTER TABLE token_logs DROP CONSTRAINT token_logs_via_check;
ALTER TABLE token_logs ADD CONSTRAINT token_logs_via_check
    CHECK (via IN ('api', 'smtp', 'dashboard'));
ALTER TABLE token_logs ADD COLUMN actor text;
