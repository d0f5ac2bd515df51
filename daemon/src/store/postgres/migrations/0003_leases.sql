-- Leases, so that several daemons share the work: a claimed idempotency key is leased to
-- the request working on it, and the janitor leases the pending payments and refunds it
-- works on. A lease runs until `leased_until_ms` by the database's clock (the daemons'
-- clocks may differ); its token (`lease`) grows at each grant, and every write its holder
-- makes presents it, so that a holder paused past its lease, whose work another daemon took
-- over, writes nothing when it wakes up.
-- Columns with constant defaults and a new table only (no table rewrite); a binary of
-- schema 2 runs on it
-- (it neither grants nor checks leases: upgrade every daemon before relying on them).

ALTER TABLE idempotency_keys
    ADD COLUMN lease_holder text,
    ADD COLUMN leased_until_ms bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease bigint NOT NULL DEFAULT 0;

ALTER TABLE payments
    ADD COLUMN leased_until_ms bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease bigint NOT NULL DEFAULT 0;

ALTER TABLE refunds
    ADD COLUMN leased_until_ms bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease bigint NOT NULL DEFAULT 0;

-- Leases on work one daemon at a time does for all: the anomaly monitor, which reads the
-- shared event log from `position` (where its last holder stopped, `xid:seq`; see feed.rs).
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder text,
    leased_until_ms bigint NOT NULL DEFAULT 0,
    lease bigint NOT NULL DEFAULT 0,
    position text
);
-- The monitor starts reading where the log ends now (what came before is history), below
-- the oldest transaction still running (an older binary's change committing later is read):
-- every event committed from here on is read by some holder of the lease.
INSERT INTO leases (name, position)
SELECT 'monitor', coalesce(
    (SELECT xid::text || ':' || seq FROM events
      WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY xid DESC, seq DESC LIMIT 1), '0:0');
