-- One run of claim-window.sql's loop (`:hot` chooses the claim) on fresh tables.
\ir claim-loop-reset.sql
ALTER TABLE deliveries ADD COLUMN leased_until timestamptz;
ALTER TABLE deliveries SET (fillfactor = :fillfactor);
VACUUM FULL deliveries;
VACUUM ANALYZE deliveries;
CHECKPOINT;
SELECT pg_current_wal_lsn() AS wal_start \gset
SELECT n_tup_upd AS upd_start, n_tup_hot_upd AS hot_start FROM pg_stat_user_tables
  WHERE relname = 'deliveries' \gset
\timing on
CALL claim_window(:hot, :batch, :window);
\timing off
SELECT pg_stat_force_next_flush();
SELECT (pg_current_wal_lsn() - :'wal_start'::pg_lsn) / 20000 AS wal_bytes_per_message,
  (n_tup_hot_upd - :hot_start) || ' of ' || (n_tup_upd - :upd_start) AS hot_updates
  FROM pg_stat_user_tables WHERE relname = 'deliveries';
