-- Teams, projects, routes, tokens, token logs and messages.
-- Ids are 16-byte UUID blobs; timestamps are INTEGER microseconds since the Unix epoch (UTC),
-- so that ordering and comparisons are numeric. Token secrets are never stored: only the
-- SHA-256 digest of the whole token and a short non-secret hint.

CREATE TABLE teams (
    id          BLOB    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE projects (
    id           BLOB    PRIMARY KEY NOT NULL,
    team_id      BLOB    NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    smtp_enabled INTEGER NOT NULL CHECK (smtp_enabled IN (0, 1)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX projects_team_created ON projects (team_id, created_at, id);
CREATE INDEX projects_team_name ON projects (team_id, name, id);

CREATE TABLE routes (
    id          BLOB    PRIMARY KEY NOT NULL,
    project_id  BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    slug        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('transactional', 'broadcast')),
    is_default  INTEGER NOT NULL CHECK (is_default IN (0, 1)),
    created_at  INTEGER NOT NULL,
    CONSTRAINT routes_project_slug UNIQUE (project_id, slug)
);
CREATE UNIQUE INDEX routes_one_default ON routes (project_id) WHERE is_default = 1;

CREATE TABLE project_tokens (
    id            BLOB    PRIMARY KEY NOT NULL,
    project_id    BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    digest        BLOB    NOT NULL CHECK (length(digest) = 32),
    hint          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    last_used_ip  TEXT,
    last_used_via TEXT    CHECK (last_used_via IN ('api', 'smtp')),
    expires_at    INTEGER,
    revoked_at    INTEGER
);
CREATE UNIQUE INDEX project_tokens_digest ON project_tokens (digest);
CREATE UNIQUE INDEX project_tokens_active_name ON project_tokens (project_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX project_tokens_project_created ON project_tokens (project_id, created_at, id);

CREATE TABLE team_tokens (
    id            BLOB    PRIMARY KEY NOT NULL,
    team_id       BLOB    NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    digest        BLOB    NOT NULL CHECK (length(digest) = 32),
    hint          TEXT    NOT NULL,
    abilities     TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    last_used_ip  TEXT,
    last_used_via TEXT    CHECK (last_used_via IN ('api', 'smtp')),
    expires_at    INTEGER,
    revoked_at    INTEGER
);
CREATE UNIQUE INDEX team_tokens_digest ON team_tokens (digest);
CREATE UNIQUE INDEX team_tokens_active_name ON team_tokens (team_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX team_tokens_team_created ON team_tokens (team_id, created_at, id);

CREATE TABLE token_logs (
    id          BLOB    PRIMARY KEY NOT NULL,
    token_id    BLOB    NOT NULL,
    at          INTEGER NOT NULL,
    ip          TEXT,
    via         TEXT    NOT NULL CHECK (via IN ('api', 'smtp')),
    action      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    message_ids TEXT    NOT NULL,
    user_agent  TEXT
);
CREATE INDEX token_logs_token_at ON token_logs (token_id, at, id);
CREATE INDEX token_logs_at ON token_logs (at);

CREATE TABLE messages (
    id              BLOB    PRIMARY KEY NOT NULL,
    project_id      BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    route_id        BLOB    NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    token_id        BLOB    NOT NULL REFERENCES project_tokens (id) ON DELETE CASCADE,
    via             TEXT    NOT NULL CHECK (via IN ('api', 'smtp')),
    status          TEXT    NOT NULL,
    envelope_from   TEXT    NOT NULL,
    envelope_to     TEXT    NOT NULL,
    subject         TEXT,
    tag             TEXT,
    metadata        TEXT    NOT NULL,
    idempotency_key TEXT,
    scheduled_at    INTEGER,
    created_at      INTEGER NOT NULL,
    content_json    TEXT,
    raw_mime        BLOB,
    CHECK ((content_json IS NULL) <> (raw_mime IS NULL))
);
CREATE INDEX messages_project_created ON messages (project_id, created_at);
CREATE INDEX messages_token ON messages (token_id);
