-- Fresh tables for claim-loop.sql: `messages` (as it was before migrations/postgres/0010, the
-- delivery state in the message row), `deliveries` (the state in its own table, as now) and
-- `token_logs`, and 20,000 due API messages of ~1.3 KB each in both forms.
DROP TABLE IF EXISTS messages, token_logs, deliveries;
CREATE TABLE token_logs (id uuid PRIMARY KEY, token_id uuid NOT NULL, at timestamptz NOT NULL,
    ip text, via text, action text, outcome text, status int, message_ids text, user_agent text,
    credential text, leak_url text, actor text);
CREATE INDEX token_logs_token_at ON token_logs (token_id, at, id);
CREATE INDEX token_logs_at ON token_logs (at);
CREATE TABLE messages (id uuid PRIMARY KEY, project_id uuid NOT NULL, route_id uuid NOT NULL,
    token_id uuid NOT NULL, via text NOT NULL, status text NOT NULL, envelope_from text NOT NULL,
    envelope_to text NOT NULL, subject text, tag text, metadata text NOT NULL,
    idempotency_key text, scheduled_at timestamptz, created_at timestamptz NOT NULL,
    content_json text, raw_mime bytea, attempts int NOT NULL DEFAULT 0, last_reply text,
    status_changed_at timestamptz, due_at timestamptz, lease_id uuid,
    interrupted int NOT NULL DEFAULT 0, interrupted_alone int NOT NULL DEFAULT 0,
    delivered_to text NOT NULL DEFAULT '[]');
CREATE INDEX messages_project_created ON messages (project_id, created_at);
CREATE INDEX messages_due ON messages (due_at) WHERE due_at IS NOT NULL;
INSERT INTO messages (id, project_id, route_id, token_id, via, status, envelope_from,
    envelope_to, subject, metadata, created_at, content_json, due_at)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001',
    '00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000003', 'api',
    'pending', 'a@example.com', '["b@example.com"]', 'Hello', '{}',
    now() + (g || ' us')::interval,
    '{"from":"a@example.com","to":["b@example.com"],"subject":"Hello","html":"'
        || repeat(md5(g::text), 35) || '"}',
    now() + (g || ' us')::interval
FROM generate_series(1, 20000) g;
CREATE TABLE deliveries (message_id uuid PRIMARY KEY, token_id uuid NOT NULL, via text NOT NULL,
    status text NOT NULL, attempts int NOT NULL DEFAULT 0, last_reply text,
    status_changed_at timestamptz, due_at timestamptz, lease_id uuid,
    interrupted int NOT NULL DEFAULT 0, interrupted_alone int NOT NULL DEFAULT 0,
    delivered_to text NOT NULL DEFAULT '[]');
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE due_at IS NOT NULL;
INSERT INTO deliveries (message_id, token_id, via, status, due_at)
SELECT id, token_id, via, status, due_at FROM messages;
VACUUM ANALYZE messages;
VACUUM ANALYZE deliveries;
CHECKPOINT;
