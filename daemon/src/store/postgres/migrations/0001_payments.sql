-- Payments, refunds, idempotency keys and the event log. Each record is kept whole as JSON
-- (`record`, what the daemon reads back); the columns beside it are what constraints,
-- indexes and work lists need, derived from the record in the same statement. Records are
-- `json`, kept as written: nothing queries inside them, and `jsonb` refuses the text
-- `\u0000` that a merchant's metadata may hold. Ids sort in byte order (`COLLATE "C"`), as
-- on every engine: ids begin with their creation time, so lists come oldest first.

CREATE TABLE payments (
    id text COLLATE "C" PRIMARY KEY,
    merchant_id text NOT NULL,
    order_id text,
    provider text NOT NULL,
    wallet_token_id text,
    final boolean NOT NULL,
    version bigint NOT NULL,
    created_at_ms bigint NOT NULL,
    record json NOT NULL
);
-- `order_id` is unique per merchant; a wallet token is charged by one payment.
CREATE UNIQUE INDEX payments_order_id ON payments (merchant_id, order_id)
    WHERE order_id IS NOT NULL;
CREATE UNIQUE INDEX payments_wallet_token ON payments (provider, wallet_token_id)
    WHERE wallet_token_id IS NOT NULL;
CREATE INDEX payments_by_merchant ON payments (merchant_id, id);
-- The janitor's work list.
CREATE INDEX payments_pending ON payments (id) WHERE NOT final;

CREATE TABLE refunds (
    id text COLLATE "C" PRIMARY KEY,
    payment_id text COLLATE "C" NOT NULL REFERENCES payments (id),
    final boolean NOT NULL,
    version bigint NOT NULL,
    created_at_ms bigint NOT NULL,
    record json NOT NULL
);
CREATE INDEX refunds_by_payment ON refunds (payment_id, id);
CREATE INDEX refunds_pending ON refunds (id) WHERE NOT final;

-- A claimed key names the object its request created; a finished one holds its answer,
-- replayed byte for byte (text, not jsonb, which would rewrite it).
CREATE TABLE idempotency_keys (
    api_key_id text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    object_id text,
    created_at_ms bigint NOT NULL,
    answer_status smallint,
    answer_body text,
    PRIMARY KEY (api_key_id, key),
    CHECK ((answer_status IS NULL) = (answer_body IS NULL))
);
CREATE INDEX idempotency_keys_finished ON idempotency_keys (created_at_ms)
    WHERE answer_status IS NOT NULL;

-- Every change's events, in the change's transaction, each naming the version of the
-- record it announces (`object_version`; the record itself is not copied here). `seq` is
-- assigned at insert, not at commit, so a reader following the log by `seq` could pass a
-- number whose transaction commits later and never see it. Readers follow `(xid, seq)`
-- instead, below the oldest transaction still running (`pg_snapshot_xmin`): every
-- transaction below that horizon has ended, so no event can appear there after a reader has
-- passed it (`feed.rs`).
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id text NOT NULL,
    kind text NOT NULL,
    object_id text NOT NULL,
    object_version bigint NOT NULL,
    created_at_ms bigint NOT NULL,
    event json NOT NULL
);
CREATE INDEX events_by_object ON events (object_id, seq);
CREATE INDEX events_by_transaction ON events (xid, seq);
