-- Teams, projects, routes, tokens, token logs and messages.
-- Timestamps are UTC with microsecond precision. Token secrets are never stored: only the
-- SHA-256 digest of the whole token and a short non-secret hint.

CREATE TABLE teams (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE projects (
    id           uuid        PRIMARY KEY,
    team_id      uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    smtp_enabled boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX projects_team_created ON projects (team_id, created_at, id);
CREATE INDEX projects_team_name ON projects (team_id, name, id);

CREATE TABLE routes (
    id          uuid        PRIMARY KEY,
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    slug        text        NOT NULL,
    name        text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('transactional', 'broadcast')),
    is_default  boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT routes_project_slug UNIQUE (project_id, slug)
);
CREATE UNIQUE INDEX routes_one_default ON routes (project_id) WHERE is_default;

CREATE TABLE project_tokens (
    id            uuid        PRIMARY KEY,
    project_id    uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    digest        bytea       NOT NULL CHECK (length(digest) = 32),
    hint          text        NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    last_used_ip  text,
    last_used_via text        CHECK (last_used_via IN ('api', 'smtp')),
    expires_at    timestamptz,
    revoked_at    timestamptz
);
-- Authentication looks tokens up by digest.
CREATE UNIQUE INDEX project_tokens_digest ON project_tokens (digest);
-- Names are unique among a project's tokens that are not revoked.
CREATE UNIQUE INDEX project_tokens_active_name ON project_tokens (project_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX project_tokens_project_created ON project_tokens (project_id, created_at, id);

CREATE TABLE team_tokens (
    id            uuid        PRIMARY KEY,
    team_id       uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    digest        bytea       NOT NULL CHECK (length(digest) = 32),
    hint          text        NOT NULL,
    abilities     text        NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    last_used_ip  text,
    last_used_via text        CHECK (last_used_via IN ('api', 'smtp')),
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE UNIQUE INDEX team_tokens_digest ON team_tokens (digest);
CREATE UNIQUE INDEX team_tokens_active_name ON team_tokens (team_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX team_tokens_team_created ON team_tokens (team_id, created_at, id);

-- Entries of both kinds of token; token ids are unique across kinds.
CREATE TABLE token_logs (
    id          uuid        PRIMARY KEY,
    token_id    uuid        NOT NULL,
    at          timestamptz NOT NULL,
    ip          text,
    via         text        NOT NULL CHECK (via IN ('api', 'smtp')),
    action      text        NOT NULL,
    outcome     text        NOT NULL,
    status      integer     NOT NULL,
    message_ids text        NOT NULL,
    user_agent  text
);
CREATE INDEX token_logs_token_at ON token_logs (token_id, at, id);
CREATE INDEX token_logs_at ON token_logs (at);

CREATE TABLE messages (
    id              uuid        PRIMARY KEY,
    project_id      uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    route_id        uuid        NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    token_id        uuid        NOT NULL REFERENCES project_tokens (id) ON DELETE CASCADE,
    via             text        NOT NULL CHECK (via IN ('api', 'smtp')),
    status          text        NOT NULL,
    envelope_from   text        NOT NULL,
    envelope_to     text        NOT NULL,
    subject         text,
    tag             text,
    metadata        text        NOT NULL,
    idempotency_key text,
    scheduled_at    timestamptz,
    created_at      timestamptz NOT NULL,
    content_json    text,
    raw_mime        bytea,
    CHECK ((content_json IS NULL) <> (raw_mime IS NULL))
);
CREATE INDEX messages_project_created ON messages (project_id, created_at);
CREATE INDEX messages_token ON messages (token_id);
