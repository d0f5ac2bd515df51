-- Reconciliation runs: each merchant's books against a provider's bill for one day, kept
-- as found (the record, as json like every record here). A new table only: a binary of
-- schema 1 to 3 runs on it.

CREATE TABLE reconciliations (
    id text COLLATE "C" PRIMARY KEY,
    merchant_id text NOT NULL,
    record json NOT NULL
);
