-- The delivery store's claim → settle → log loop run inside PostgreSQL (no client, no
-- protocol), 20,000 messages in claims of 100 with a commit after each claim and each
-- settlement, for the figures in docs/performance.md. Run it in a scratch database (it drops
-- and creates `messages` and `token_logs`):
--
--     psql -X -d scratch -f xtask/sql/claim-loop.sql
--
-- Each CALL prints its time; messages/s = 20,000 / seconds. The WAL each loop wrote per message
-- is printed after it.
\set ON_ERROR_STOP on

-- The current claim (a row update to `processed` under a lease, `due_at` moved to the lease
-- end), then the settlement (a row update) and the token log: one row per message
-- (`per_message_log`) or one per settlement.
CREATE OR REPLACE PROCEDURE claim_loop_leases(per_message_log bool) LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; lease uuid;
BEGIN
  LOOP
    lease := gen_random_uuid();
    WITH c AS (
      UPDATE messages SET status = 'processed', attempts = attempts + 1, lease_id = lease,
        due_at = now() + interval '5 min', status_changed_at = now()
      WHERE id IN (SELECT id FROM messages WHERE due_at <= now() + interval '1 hour'
        AND status = 'pending' ORDER BY due_at, id LIMIT 100 FOR UPDATE SKIP LOCKED)
      RETURNING *)
    SELECT array_agg(id) INTO ids FROM c;
    EXIT WHEN ids IS NULL;
    COMMIT;
    UPDATE messages m SET status = 'delivered', last_reply = '250 ok', status_changed_at = now(),
      due_at = NULL, lease_id = NULL WHERE m.id = ANY(ids) AND m.lease_id = lease;
    CALL claim_loop_log(ids, per_message_log);
    COMMIT;
  END LOOP;
END $$;

-- The current claim and settlement, on the narrow `deliveries` table (migrations/postgres/0010):
-- the claim joins the claimed rows with their messages (which it reads, never writes), and the
-- settlement and the log read nothing else; the log gets a row per settlement. The wide
-- `messages` columns of the delivery state are left alone.
CREATE OR REPLACE PROCEDURE claim_loop_deliveries(batch int) LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; lease uuid; bytes bigint;
BEGIN
  LOOP
    lease := gen_random_uuid();
    WITH d AS (
      UPDATE deliveries SET status = 'processed', attempts = attempts + 1, lease_id = lease,
        due_at = now() + interval '5 min', status_changed_at = now(),
        interrupted = CASE WHEN status = 'processed' THEN interrupted + 1 ELSE 0 END
      WHERE message_id IN (SELECT message_id FROM deliveries
        WHERE due_at <= now() + interval '1 hour'
        ORDER BY due_at, message_id LIMIT batch FOR UPDATE SKIP LOCKED)
      RETURNING *)
    SELECT array_agg(m.id), sum(length(m.content_json)) INTO ids, bytes
      FROM d JOIN messages m ON m.id = d.message_id;
    EXIT WHEN ids IS NULL;
    COMMIT;
    UPDATE deliveries d SET status = 'delivered', last_reply = '250 ok', status_changed_at = now(),
      due_at = NULL, lease_id = NULL WHERE d.message_id = ANY(ids) AND d.lease_id = lease;
    CALL claim_loop_log(ids, false);
    COMMIT;
  END LOOP;
END $$;

-- A claim that only locks its rows for the attempt (no `processed` write), settled in the same
-- transaction.
CREATE OR REPLACE PROCEDURE claim_loop_locks(per_message_log bool) LANGUAGE plpgsql AS $$
DECLARE ids uuid[];
BEGIN
  LOOP
    WITH c AS (SELECT * FROM messages WHERE due_at <= now() + interval '1 hour'
      ORDER BY due_at, id LIMIT 100 FOR UPDATE SKIP LOCKED)
    SELECT array_agg(id) INTO ids FROM c;
    EXIT WHEN ids IS NULL;
    UPDATE messages m SET status = 'delivered', attempts = attempts + 1, last_reply = '250 ok',
      status_changed_at = now(), due_at = NULL WHERE m.id = ANY(ids);
    CALL claim_loop_log(ids, per_message_log);
    COMMIT;
  END LOOP;
END $$;

CREATE OR REPLACE PROCEDURE claim_loop_log(ids uuid[], per_message bool) LANGUAGE plpgsql AS $$
BEGIN
  IF per_message THEN
    INSERT INTO token_logs (id, token_id, at, via, action, outcome, status, message_ids)
    SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000003', now(), 'api', 'delivery',
      'delivered', 250, '["' || i || '"]' FROM unnest(ids) i;
  ELSE
    INSERT INTO token_logs (id, token_id, at, via, action, outcome, status, message_ids)
    VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000003', now(), 'api',
      'delivery', 'delivered', 250, array_to_json(ids)::text);
  END IF;
END $$;

\echo leases, a log row per message
\ir claim-loop-reset.sql
SELECT pg_current_wal_lsn() AS wal_start \gset
\timing on
CALL claim_loop_leases(true);
\timing off
SELECT (pg_current_wal_lsn() - :'wal_start'::pg_lsn) / 20000 AS wal_bytes_per_message;
\echo leases, a log row per settlement
\ir claim-loop-reset.sql
SELECT pg_current_wal_lsn() AS wal_start \gset
\timing on
CALL claim_loop_leases(false);
\timing off
SELECT (pg_current_wal_lsn() - :'wal_start'::pg_lsn) / 20000 AS wal_bytes_per_message;
\echo row locks only, a log row per settlement
\ir claim-loop-reset.sql
SELECT pg_current_wal_lsn() AS wal_start \gset
\timing on
CALL claim_loop_locks(false);
\timing off
SELECT (pg_current_wal_lsn() - :'wal_start'::pg_lsn) / 20000 AS wal_bytes_per_message;
\echo leases on deliveries (the current schema), a log row per settlement
\ir claim-loop-reset.sql
SELECT pg_current_wal_lsn() AS wal_start \gset
\timing on
CALL claim_loop_deliveries(100);
\timing off
SELECT (pg_current_wal_lsn() - :'wal_start'::pg_lsn) / 20000 AS wal_bytes_per_message;
