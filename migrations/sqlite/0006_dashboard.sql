-- The dashboard: accounts, team members, sessions, failed logins and the audit log.
-- Passwords are stored only as argon2id PHC strings; sessions only as the SHA-256 digest of
-- the browser's value (the same rule as tokens).

CREATE TABLE accounts (
    id                  BLOB    PRIMARY KEY NOT NULL,
    email               TEXT    NOT NULL,
    display_name        TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);
-- Emails are stored lower-cased (the core's `Email`), so a plain unique index is case-blind.
CREATE UNIQUE INDEX accounts_email ON accounts (email);

CREATE TABLE team_members (
    team_id    BLOB    NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    account_id BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (team_id, account_id)
);
CREATE INDEX team_members_account ON team_members (account_id);

-- The idle expiry never passes the absolute one, so "expired at t" is `idle_expires_at <= t`
-- and pruning needs one index.
CREATE TABLE sessions (
    id              BLOB    PRIMARY KEY NOT NULL,
    digest          BLOB    NOT NULL CHECK (length(digest) = 32),
    account_id      BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    CHECK (idle_expires_at <= expires_at)
);
CREATE UNIQUE INDEX sessions_digest ON sessions (digest);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_idle_expires ON sessions (idle_expires_at);

-- One row per failed login per key (`email:<address>`, `ip:<address>`), counted over a window
-- by every instance.
CREATE TABLE login_failures (
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- The audit log has no foreign keys: entries outlive what they name. A team's entries keep
-- their team id when the team goes (setting it NULL would make them read as account-wide
-- events, which is what a NULL team means), and an actor's keep their id and email.
CREATE TABLE audit_log (
    id          BLOB    PRIMARY KEY NOT NULL,
    team_id     BLOB,
    actor_id    BLOB,
    actor_email TEXT,
    action      TEXT    NOT NULL,
    target      TEXT,
    detail      TEXT,
    ip          TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX audit_log_team ON audit_log (team_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);

-- A member's change to a token (create, regenerate, revoke) is logged on the token too, via the
-- dashboard and with who did it (their email). SQLite cannot change a CHECK constraint in
-- place, so the token log is rebuilt (nothing references it: no foreign key, view or trigger).
CREATE TABLE token_logs_new (
    id          BLOB    PRIMARY KEY NOT NULL,
    token_id    BLOB    NOT NULL,
    at          INTEGER NOT NULL,
    ip          TEXT,
    via         TEXT    NOT NULL CHECK (via IN ('api', 'smtp', 'dashboard')),
    action      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    message_ids TEXT    NOT NULL,
    user_agent  TEXT,
    credential  TEXT    CHECK (credential IN ('current', 'previous')),
    leak_url    TEXT,
    actor       TEXT
);
INSERT INTO token_logs_new (id, token_id, at, ip, via, action, outcome, status, message_ids,
                            user_agent, credential, leak_url)
    SELECT id, token_id, at, ip, via, action, outcome, status, message_ids, user_agent,
           credential, leak_url
    FROM token_logs;
DROP TABLE token_logs;
ALTER TABLE token_logs_new RENAME TO token_logs;
CREATE INDEX token_logs_token_at ON token_logs (token_id, at, id);
CREATE INDEX token_logs_at ON token_logs (at);
