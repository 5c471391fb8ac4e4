-- The delivery store's claim → settle → log loop on `deliveries` run inside PostgreSQL with
-- several claims leased at once, as a worker holds them (claims of :batch, :window of them
-- under lease; the oldest is settled, with its token-log row, once :window are held), for the
-- figures in docs/performance.md. Two claims are compared (`claim_window(hot, …)`):
--
-- * `hot` false: the claim of migrations/postgres/0010, which moves `due_at` (indexed) to the
--   lease end, so both the claim and the settlement write a new row version and index entries;
-- * `hot` true: `due_at` left alone and the lease end kept in an unindexed
--   `leased_until`, so that a claim can be a HOT update (no index entries) on pages with room
--   (`fillfactor`), at the price of the claim's scan passing over the rows under lease.
--
-- Run it in a scratch database (it drops and creates `messages`, `deliveries` and `token_logs`):
--
--     psql -X -d scratch -v batch=16 -v window=4 -v fillfactor=100 -f xtask/sql/claim-window.sql
--
-- Each CALL prints its time; messages/s = 20,000 / seconds. The WAL per message and the share of
-- HOT updates are printed after each.
\set ON_ERROR_STOP on

CREATE OR REPLACE PROCEDURE claim_window(hot bool, batch int, win int) LANGUAGE plpgsql AS $$
-- `bytes`: the claimed content is read (summed), as a worker reads it, though nothing uses it.
DECLARE ids uuid[]; held uuid[] := '{}'; leases uuid[] := '{}'; lease uuid; bytes bigint;
  oldest uuid[]; n int;
BEGIN
  LOOP
    lease := gen_random_uuid();
    IF hot THEN
      WITH d AS (
        UPDATE deliveries SET status = 'processed', attempts = attempts + 1, lease_id = lease,
          leased_until = now() + interval '5 min', status_changed_at = now(),
          interrupted = CASE WHEN status = 'processed' THEN interrupted + 1 ELSE 0 END
        WHERE message_id IN (SELECT message_id FROM deliveries
          WHERE due_at <= now() AND (leased_until IS NULL OR leased_until <= now())
          ORDER BY due_at, message_id LIMIT batch FOR UPDATE SKIP LOCKED)
        RETURNING *)
      SELECT array_agg(m.id), sum(length(m.content_json)) INTO ids, bytes
        FROM d JOIN messages m ON m.id = d.message_id;
    ELSE
      WITH d AS (
        UPDATE deliveries SET status = 'processed', attempts = attempts + 1, lease_id = lease,
          due_at = now() + interval '5 min', status_changed_at = now(),
          interrupted = CASE WHEN status = 'processed' THEN interrupted + 1 ELSE 0 END
        WHERE message_id IN (SELECT message_id FROM deliveries WHERE due_at <= now()
          ORDER BY due_at, message_id LIMIT batch FOR UPDATE SKIP LOCKED)
        RETURNING *)
      SELECT array_agg(m.id), sum(length(m.content_json)) INTO ids, bytes
        FROM d JOIN messages m ON m.id = d.message_id;
    END IF;
    COMMIT;
    IF ids IS NOT NULL THEN
      held := held || ids;
      leases := leases || lease;
    END IF;
    EXIT WHEN ids IS NULL AND cardinality(leases) = 0;
    IF cardinality(leases) >= win OR ids IS NULL THEN
      -- Every claim but the last takes `batch` rows, so the oldest claim's rows come first.
      n := least(batch, cardinality(held));
      oldest := held[1:n];
      held := held[n + 1:];
      UPDATE deliveries d SET status = 'delivered', last_reply = '250 ok',
        status_changed_at = now(), due_at = NULL, lease_id = NULL, leased_until = NULL
        WHERE d.message_id = ANY(oldest) AND d.lease_id = leases[1];
      leases := leases[2:];
      INSERT INTO token_logs (id, token_id, at, via, action, outcome, status, message_ids)
      VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000003', now(), 'api',
        'delivery', 'delivered', 250, array_to_json(oldest)::text);
      COMMIT;
    END IF;
  END LOOP;
END $$;

\echo current claim (due_at moved to the lease end)
\set hot false
\ir claim-window-run.sql
\echo claim as a HOT update (lease end in leased_until)
\set hot true
\ir claim-window-run.sql
