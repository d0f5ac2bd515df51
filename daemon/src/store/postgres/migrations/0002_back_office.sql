-- The anomaly monitor's alerts and blocks, the second factor's code steps, the console's
-- sessions, onboarded merchants with their activations, bank accounts and audit log, and
-- the webhook outbox.
-- As in 0001: records whole as `json`, ids in byte order.

CREATE TABLE alerts (
    id text COLLATE "C" PRIMARY KEY,
    record json NOT NULL
);

-- Every node enforces every block: each reads them all at start and follows new ones.
CREATE TABLE blocks (
    id text COLLATE "C" PRIMARY KEY,
    expires_at_ms bigint NOT NULL,
    record json NOT NULL
);

-- The last accepted TOTP step of each API key (a code is accepted once, on any node).
CREATE TABLE code_steps (
    api_key_id text PRIMARY KEY,
    step bigint NOT NULL CHECK (step >= 0)
);

-- Keyed by the SHA-256 of the session id: the id itself is only in the browser's cookie.
CREATE TABLE console_sessions (
    id_hash bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    record json NOT NULL
);

CREATE TABLE merchants (
    id text COLLATE "C" PRIMARY KEY,
    record json NOT NULL
);

CREATE TABLE activations (
    id text COLLATE "C" PRIMARY KEY,
    merchant_id text NOT NULL,
    record json NOT NULL
);
CREATE INDEX activations_by_merchant ON activations (merchant_id, id);

CREATE TABLE bank_accounts (
    id text COLLATE "C" PRIMARY KEY,
    merchant_id text NOT NULL,
    record json NOT NULL
);
CREATE INDEX bank_accounts_by_merchant ON bank_accounts (merchant_id, id);

CREATE TABLE audit (
    id text COLLATE "C" PRIMARY KEY,
    merchant_id text NOT NULL,
    record json NOT NULL
);
CREATE INDEX audit_by_merchant ON audit (merchant_id, id);

-- The webhook outbox: an entry per webhook event (logged in the event's transaction once an
-- endpoint is configured), with the event and its object, taken by one dispatcher at a
-- time under a lease (`leased_until_ms`, by the database's clock) whose fencing token
-- (`lease`) every write of the holder names.
CREATE TABLE outbox (
    event_id text PRIMARY KEY,
    seq bigint NOT NULL,
    event json NOT NULL,
    delivery json NOT NULL,
    -- When its next attempt is due (the daemons' clock, as the delivery state's times).
    due_ms bigint NOT NULL DEFAULT 0,
    leased_until_ms bigint NOT NULL DEFAULT 0,
    lease bigint NOT NULL DEFAULT 0
);
CREATE INDEX outbox_by_seq ON outbox (seq);
CREATE INDEX outbox_by_due ON outbox (due_ms);

-- The SHA-256 of each compiled plugin a daemon cached (its file name -> digest): a cached
-- artifact is loaded only if it is what a daemon compiled.
CREATE TABLE plugin_artifacts (
    artifact text PRIMARY KEY,
    sha256 text NOT NULL
);
