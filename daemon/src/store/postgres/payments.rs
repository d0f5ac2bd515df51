//! The payments use cases' storage port on PostgreSQL: each operation one transaction at
//! `READ COMMITTED`, its invariants kept by the database, so that they hold whichever daemon
//! runs it:
//! - a key is claimed by inserting its row (`ON CONFLICT DO NOTHING`: a concurrent claim of
//!   the same key waits for the other transaction, then finds its row), in the transaction
//!   that records the object, so neither exists without the other;
//! - `order_id` and wallet tokens are unique by partial unique indexes; a payment refused by
//!   one rolls its claim back with it;
//! - a refund locks its payment's row (`FOR UPDATE`) before it checks and reserves the
//!   amount, so concurrent refunds on any daemons are checked one after the other;
//! - a change locks its record's row, applies the use case's closure to what it read, and
//!   writes the record and its events together;
//! - a claimed key is leased to the daemon whose request works on it
//!   (`[store.postgres] lease_ms`, renewed while it works): a retry on another daemon finds it in
//!   progress until the lease has expired, then takes it over with the next token; a change
//!   made under a claim or a janitor's lease first checks its token (the claim's row shared
//!   and the record's row locked until the commit, so a takeover waits for the change or the
//!   change sees the takeover).

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};

use super::commit::{Written, outcome_unknown};
use super::events::log_events;
use super::{Db, NOW_MS, PgError, PgStore, decoded, each, one};
use crate::domain::records::{EventRecord, OutboxRecord, PaymentRecord, RefundRecord, Snapshot};
use crate::store::payments::reserve_refund;
use crate::store::port::{
    Fence, Leased, PaymentAnswer, PaymentChange, PaymentStore, Pending, RefundChange,
};
use crate::store::{Begin, Claim, StoreError};

impl From<PgError> for StoreError {
    fn from(e: PgError) -> StoreError {
        StoreError::Postgres(e)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(PgError::Query(e))
    }
}

/// What `claim`'s row says about a new request with it (`None`: the key is free).
async fn decide_claim<C: Db>(db: &C, claim: &Claim) -> Result<Option<Begin>, StoreError> {
    let Some(row) = db
        .row_opt(
            "SELECT fingerprint, object_id, answer_status, answer_body
               FROM idempotency_keys WHERE api_key_id = $1 AND key = $2",
            &[&claim.api_key_id, &claim.key],
        )
        .await?
    else {
        return Ok(None);
    };
    let fingerprint: &str = row.get(0);
    if fingerprint != claim.fingerprint {
        return Ok(Some(Begin::KeyReused));
    }
    let object_id: Option<String> = row.get(1);
    let status: Option<i16> = row.get(2);
    let body: Option<String> = row.get(3);
    Ok(Some(match (status, body, object_id) {
        (Some(status), Some(body), _) => Begin::Replay {
            status: status as u16,
            body,
        },
        (None, _, Some(object_id)) => Begin::Resume { object_id },
        _ => {
            return Err(StoreError::Corrupt(format!(
                "idempotency key {} has neither an object nor an answer",
                claim.key
            )));
        }
    }))
}

/// Who takes a lease: this daemon, for how long.
#[derive(Clone, Copy)]
struct Holder<'a> {
    node: &'a str,
    lease_ms: i64,
}

/// Claims `claim` for `object_id`, leased to `holder`; what the key already says if it was
/// taken (an unfinished key whose lease has expired, or that `node` holds, is taken over:
/// `Resume` with the next token).
async fn take_claim<C: Db>(
    db: &C,
    holder: Holder<'_>,
    claim: &Claim,
    object_id: &str,
    now_ms: i64,
) -> Result<Option<Begin>, StoreError> {
    // A key that expired between the insert and the read is free again: a second try.
    for _ in 0..2 {
        if let Some(found) = try_claim(db, holder, claim, object_id, now_ms).await? {
            return Ok(found);
        }
    }
    Err(StoreError::Corrupt(format!(
        "idempotency key {} neither claimed nor readable",
        claim.key
    )))
}

/// `Some(None)`: claimed; `Some(Some(found))`: taken, what it says; `None`: taken, then gone.
async fn try_claim<C: Db>(
    db: &C,
    holder: Holder<'_>,
    claim: &Claim,
    object_id: &str,
    now_ms: i64,
) -> Result<Option<Option<Begin>>, StoreError> {
    let inserted = db
        .exec(
            &format!(
                "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, object_id,
                                               created_at_ms, lease_holder, leased_until_ms, lease)
                 VALUES ($1, $2, $3, $4, $5, $6, {NOW_MS} + $7, 1) ON CONFLICT DO NOTHING"
            ),
            &[
                &claim.api_key_id,
                &claim.key,
                &claim.fingerprint,
                &object_id,
                &now_ms,
                &holder.node,
                &holder.lease_ms,
            ],
        )
        .await?;
    if inserted == 1 {
        claim.lease.grant(1);
        return Ok(Some(None));
    }
    match decide_claim(db, claim).await? {
        Some(Begin::Resume { object_id }) => {
            Ok(Some(Some(take_over(db, holder, claim, object_id).await?)))
        }
        found => Ok(found.map(Some)),
    }
}

/// Takes over the unfinished key `claim` if its lease has expired or `holder` has it (this
/// daemon's in-flight set admitted the request: its earlier request on the key has ended).
async fn take_over<C: Db>(
    db: &C,
    holder: Holder<'_>,
    claim: &Claim,
    object_id: String,
) -> Result<Begin, StoreError> {
    let taken = db
        .row_opt(
            &format!(
                "UPDATE idempotency_keys
                    SET lease_holder = $3, leased_until_ms = {NOW_MS} + $4, lease = lease + 1
                  WHERE api_key_id = $1 AND key = $2 AND answer_status IS NULL
                    AND (lease_holder = $3 OR leased_until_ms <= {NOW_MS})
                  RETURNING lease"
            ),
            &[
                &claim.api_key_id,
                &claim.key,
                &holder.node,
                &holder.lease_ms,
            ],
        )
        .await?;
    if let Some(row) = taken {
        claim.lease.grant(row.get(0));
        return Ok(Begin::Resume { object_id });
    }
    // Its lease is live on another daemon, or its request finished meanwhile.
    Ok(match decide_claim(db, claim).await? {
        Some(replay @ Begin::Replay { .. }) => replay,
        _ => Begin::InProgress,
    })
}

/// The token now on the key of a `Fence::Claim` (read `FOR SHARE`, so that a takeover waits
/// for this transaction to end); `None` for the other fences, which need no read.
async fn claim_token<C: Db>(db: &C, fence: Fence<'_>) -> Result<Option<i64>, StoreError> {
    let Fence::Claim(claim) = fence else {
        return Ok(None);
    };
    if claim.lease.token() == 0 {
        return Ok(None);
    }
    Ok(Some(
        db.row_opt(
            "SELECT lease FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 FOR SHARE",
            &[&claim.api_key_id, &claim.key],
        )
        .await?
        .map_or(0, |row| row.get::<_, i64>(0)),
    ))
}

/// Refuses a change made under a lease that another daemon has taken over since:
/// `record_lease` is the record's janitor token, `claim_token` what `claim_token` read.
fn fence_holds(
    fence: Fence<'_>,
    record_lease: i64,
    claim_token: Option<i64>,
) -> Result<(), StoreError> {
    let holds = match (fence, claim_token) {
        (Fence::Unleased, _) => true,
        (Fence::Janitor(token), _) => record_lease == token,
        (Fence::Claim(claim), Some(token)) => token == claim.lease.token(),
        (Fence::Claim(_), None) => true,
    };
    if holds {
        Ok(())
    } else {
        Err(StoreError::LeaseLost)
    }
}

async fn check_fence<C: Db>(db: &C, fence: Fence<'_>, record_lease: i64) -> Result<(), StoreError> {
    fence_holds(fence, record_lease, claim_token(db, fence).await?)
}

/// Writes the answer a request finishes `claim` with; false if its lease was taken over.
/// A leased key is finished only with its token; an unleased one keeps the first answer
/// (one that expired meanwhile holds its answer itself).
async fn finish_key<C: Db>(
    db: &C,
    claim: &Claim,
    status: i16,
    body: &str,
    now_ms: i64,
) -> Result<bool, tokio_postgres::Error> {
    if claim.lease.token() != 0 {
        let finished = db
            .exec(
                "UPDATE idempotency_keys
                    SET answer_status = $3, answer_body = $4, leased_until_ms = 0
                  WHERE api_key_id = $1 AND key = $2 AND answer_status IS NULL
                    AND lease = $5",
                &[
                    &claim.api_key_id,
                    &claim.key,
                    &status,
                    &body,
                    &claim.lease.token(),
                ],
            )
            .await?;
        return Ok(finished == 1);
    }
    db.exec(
        "INSERT INTO idempotency_keys
                (api_key_id, key, fingerprint, created_at_ms, answer_status, answer_body)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (api_key_id, key) DO UPDATE
            SET answer_status = excluded.answer_status,
                answer_body = excluded.answer_body
          WHERE idempotency_keys.answer_status IS NULL",
        &[
            &claim.api_key_id,
            &claim.key,
            &claim.fingerprint,
            &now_ms,
            &status,
            &body,
        ],
    )
    .await?;
    Ok(true)
}

async fn write_payment<C: Db>(db: &C, payment: &PaymentRecord) -> Result<(), StoreError> {
    db.exec(
        "UPDATE payments SET final = $2, version = $3, record = $4 WHERE id = $1",
        &[
            &payment.id,
            &payment.status.is_terminal(),
            &(payment.version as i64),
            &Json(payment),
        ],
    )
    .await?;
    Ok(())
}

async fn locked_payment<C: Db>(db: &C, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
    Ok(locked_payment_leased(db, id)
        .await?
        .map(|(payment, _)| payment))
}

/// The payment, locked, with its janitor's lease token.
async fn locked_payment_leased<C: Db>(
    db: &C,
    id: &str,
) -> Result<Option<(PaymentRecord, i64)>, StoreError> {
    let Some(row) = db
        .row_opt(
            "SELECT record, lease FROM payments WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((decoded(&row, 0)?, row.get(1))))
}

/// The table of a janitor's work list.
fn table(list: Pending) -> &'static str {
    match list {
        Pending::Payments => "payments",
        Pending::Refunds => "refunds",
    }
}

fn ids(rows: Vec<tokio_postgres::Row>) -> Vec<String> {
    rows.into_iter().map(|row| row.get(0)).collect()
}

/// `begin_payment_at_once`'s statement, with the outbox entry or without; made once (it is
/// on every payment's path), and prepared once per connection by its text.
fn begin_at_once_sql(outbox: bool) -> &'static str {
    fn text(outbox_part: &str) -> String {
        format!(
            "WITH k AS (INSERT INTO idempotency_keys
                            (api_key_id, key, fingerprint, object_id, created_at_ms,
                             lease_holder, leased_until_ms, lease)
                        VALUES ($1, $2, $3, $4, $5, $6, {NOW_MS} + $7, 1)
                        ON CONFLICT DO NOTHING RETURNING 1),
                  p AS (INSERT INTO payments (id, merchant_id, order_id, provider,
                                              wallet_token_id, final, version, created_at_ms,
                                              record)
                        SELECT $4, $8::text, $9::text, $10::text, $11::text, $12::boolean, 1,
                               $5, $13::json
                          FROM k RETURNING 1),
                  e AS (INSERT INTO events (id, kind, object_id, object_version, created_at_ms,
                                            event)
                        SELECT $14::text, $15::text, $4, 1, $16::bigint, $17::json
                          FROM p RETURNING seq){outbox_part}
             SELECT 1 FROM e"
        )
    }
    static WITHOUT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| text(""));
    static WITH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        text(
            ", o AS (INSERT INTO outbox (event_id, seq, event, delivery)
                     SELECT $14, seq, $18::json, $19::json FROM e)",
        )
    });
    if outbox { &WITH } else { &WITHOUT }
}

/// The error that failed statements sent together: a failed statement aborts the
/// transaction, and each one queued behind it fails with "in failed SQL transaction"
/// (25P02), which says nothing of why (a timeout, a deadlock, the server gone).
fn first_cause<const N: usize>(errors: [Option<StoreError>; N]) -> StoreError {
    let mut errors: Vec<StoreError> = errors.into_iter().flatten().collect();
    let behind = |e: &StoreError| {
        matches!(e, StoreError::Postgres(PgError::Query(e))
            if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION))
    };
    let cause = errors.iter().position(|e| !behind(e)).unwrap_or(0);
    errors.swap_remove(cause)
}

/// A request's last change finishing its key: the key, the answer, the time.
struct Answering<'a> {
    claim: &'a Claim,
    answer: PaymentAnswer<'a>,
    now_ms: i64,
}

impl PgStore {
    /// `begin_payment`'s common case in one statement, its own transaction (one round trip,
    /// no `BEGIN` or `COMMIT`): the key is new, and the payment's order id and wallet token
    /// are free. The payment and its event are inserted only if the key was, and a unique
    /// index that refuses the payment fails the whole statement, so neither exists without
    /// the other. `None`: it was not that case (nothing was written); the transaction in
    /// `begin_payment` says what the key or the indexes say.
    async fn begin_payment_at_once(
        &self,
        claim: &Claim,
        payment: &PaymentRecord,
        event: &EventRecord,
    ) -> Result<Option<Begin>, StoreError> {
        let payment = PaymentRecord {
            version: 1,
            ..payment.clone()
        };
        let logged = EventRecord {
            object: None,
            object_version: 1,
            ..event.clone()
        };
        let published = EventRecord {
            object: Some(Snapshot::of(&payment)),
            ..logged.clone()
        };
        let outbox = self.outbox_on() && event.kind.is_webhook();
        let holder = self.holder();
        let (is_final, kind) = (payment.status.is_terminal(), logged.kind.as_str());
        let (record, logged_json, published_json, delivery) = (
            Json(&payment),
            Json(&logged),
            Json(&published),
            Json(OutboxRecord::default()),
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &claim.api_key_id,
            &claim.key,
            &claim.fingerprint,
            &payment.id,
            &payment.created_at_ms,
            &holder.node,
            &holder.lease_ms,
            &payment.merchant_id,
            &payment.order_id,
            &payment.provider,
            &payment.wallet_token_id,
            &is_final,
            &record,
            &logged.id,
            &kind,
            &logged.created_at_ms,
            &logged_json,
        ];
        if outbox {
            params.extend([&published_json as &(dyn ToSql + Sync), &delivery]);
        }
        let client = self.client().await?;
        let inserted = match client.rows(begin_at_once_sql(outbox), &params).await {
            Ok(rows) => rows.len() == 1,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => false,
            Err(e) if outcome_unknown(&e) => {
                let written = Written::Row {
                    table: "payments",
                    id: &payment.id,
                };
                self.read_back(e, written).await.map(|()| true)?
            }
            Err(e) => return Err(e.into()),
        };
        if !inserted {
            return Ok(None);
        }
        claim.lease.grant(1);
        self.published(vec![published]);
        Ok(Some(Begin::Created))
    }

    /// Changes a payment under `fence` and, `answering`, finishes the request's key with the
    /// answer rendered from the changed payment, in one transaction. Its reads go together,
    /// and so do its writes (pipelined on the connection: one round trip each).
    async fn change_payment(
        &self,
        payment_id: &str,
        fence: Fence<'_>,
        change: PaymentChange<'_>,
        answering: Option<Answering<'_>>,
    ) -> Result<Option<(PaymentRecord, Option<(u16, String)>)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The payment's row first, then the claim's: always in this order (a late holder
        // waits for the payment without holding the claim, so it cannot deadlock with the
        // request that took the key over).
        let Some((previous, lease)) = locked_payment_leased(&tx, payment_id).await? else {
            return Ok(None);
        };
        fence_holds(fence, lease, claim_token(&tx, fence).await?)?;
        let mut payment = previous.clone();
        let events = change(&mut payment);
        if events.is_some() {
            payment.version = previous.version + 1;
        }
        // Rendered from the record as it will be stored: unchanged if the change declined.
        let stored = if events.is_some() {
            &payment
        } else {
            &previous
        };
        let answer = answering
            .as_ref()
            .and_then(|answering| (answering.answer)(stored));
        if events.is_none() && answer.is_none() {
            return Ok(Some((payment, None)));
        }
        let write = async {
            match &events {
                Some(_) => write_payment(&tx, &payment).await,
                None => Ok(()),
            }
        };
        let log = async {
            match &events {
                Some(events) => {
                    let snapshot = Snapshot::of(&payment);
                    log_events(&tx, events, payment.version, &snapshot, self.outbox_on()).await
                }
                None => Ok(Vec::new()),
            }
        };
        let finish = async {
            match (&answering, &answer) {
                (Some(answering), Some((status, body))) => {
                    Ok(
                        finish_key(&tx, answering.claim, *status as i16, body, answering.now_ms)
                            .await?,
                    )
                }
                _ => Ok(true),
            }
        };
        let (logged, finished) = match tokio::join!(write, log, finish) {
            (Ok(()), Ok(logged), Ok(finished)) => (logged, finished),
            (written, logged, finished) => {
                return Err(first_cause([written.err(), logged.err(), finished.err()]));
            }
        };
        if !finished {
            return Err(StoreError::LeaseLost);
        }
        // What only this transaction wrote, to read back if its commit's answer is lost: its
        // first event, else the key's answer, else the record whole.
        let first_event = events.as_ref().and_then(|events| events.first());
        let written = match (first_event, &answering, &answer) {
            (Some(event), _, _) => Written::Change {
                table: "payments",
                id: payment_id,
                event_id: Some(event.id.as_str()),
                json: String::new(),
            },
            (None, Some(answering), Some((status, body))) => Written::Answer {
                claim: answering.claim,
                status: *status as i16,
                body,
            },
            _ => Written::Change {
                table: "payments",
                id: payment_id,
                event_id: None,
                json: serde_json::to_string(&payment)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            },
        };
        self.commit(tx, written).await?;
        if let Some(answering) = &answering
            && answer.is_some()
        {
            answering.claim.lease.finish();
        }
        self.published(logged);
        Ok(Some((payment, answer)))
    }
}

#[async_trait::async_trait]
impl PaymentStore for PgStore {
    async fn begin_payment(
        &self,
        claim: &Claim,
        payment: &PaymentRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError> {
        if let Some(begun) = self.begin_payment_at_once(claim, payment, event).await? {
            return Ok(begun);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(found) = take_claim(
            &tx,
            self.holder(),
            claim,
            &payment.id,
            payment.created_at_ms,
        )
        .await?
        {
            // A takeover of the key is kept.
            tx.commit().await?;
            return Ok(found);
        }
        let payment = PaymentRecord {
            version: 1,
            ..payment.clone()
        };
        let inserted = tx
            .exec(
                "INSERT INTO payments (id, merchant_id, order_id, provider, wallet_token_id,
                                       final, version, created_at_ms, record)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) ON CONFLICT DO NOTHING",
                &[
                    &payment.id,
                    &payment.merchant_id,
                    &payment.order_id,
                    &payment.provider,
                    &payment.wallet_token_id,
                    &payment.status.is_terminal(),
                    &payment.created_at_ms,
                    &Json(&payment),
                ],
            )
            .await?;
        if inserted == 0 {
            // Refused by a unique index: say which (the claim goes back with the rollback).
            if let Some(order_id) = &payment.order_id
                && let Some(row) = tx
                    .row_opt(
                        "SELECT id FROM payments WHERE merchant_id = $1 AND order_id = $2",
                        &[&payment.merchant_id, order_id],
                    )
                    .await?
            {
                return Ok(Begin::OrderIdInUse {
                    payment_id: row.get(0),
                });
            }
            if let Some(token_id) = &payment.wallet_token_id
                && let Some(row) = tx
                    .row_opt(
                        "SELECT id FROM payments WHERE provider = $1 AND wallet_token_id = $2",
                        &[&payment.provider, token_id],
                    )
                    .await?
            {
                return Ok(Begin::WalletTokenUsed {
                    payment_id: row.get(0),
                });
            }
            return Err(StoreError::Corrupt(format!(
                "payment {} exists already",
                payment.id
            )));
        }
        let logged = log_events(
            &tx,
            std::slice::from_ref(event),
            1,
            &Snapshot::of(&payment),
            self.outbox_on(),
        )
        .await?;
        self.commit(
            tx,
            Written::Row {
                table: "payments",
                id: &payment.id,
            },
        )
        .await?;
        self.published(logged);
        Ok(Begin::Created)
    }

    async fn begin_refund(
        &self,
        claim: &Claim,
        refund: &RefundRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(found) =
            take_claim(&tx, self.holder(), claim, &refund.id, refund.created_at_ms).await?
        {
            // A takeover of the key is kept.
            tx.commit().await?;
            return Ok(found);
        }
        let Some(mut payment) = locked_payment(&tx, &refund.payment_id).await? else {
            return Ok(Begin::PaymentMissing);
        };
        if let Err(refused) = reserve_refund(&mut payment, refund.amount_minor) {
            return Ok(refused);
        }
        let refund = RefundRecord {
            version: 1,
            ..refund.clone()
        };
        tx.exec(
            "INSERT INTO refunds (id, payment_id, final, version, created_at_ms, record)
             VALUES ($1, $2, $3, 1, $4, $5)",
            &[
                &refund.id,
                &refund.payment_id,
                &refund.status.is_terminal(),
                &refund.created_at_ms,
                &Json(&refund),
            ],
        )
        .await?;
        write_payment(&tx, &payment).await?;
        let logged = log_events(
            &tx,
            std::slice::from_ref(event),
            1,
            &Snapshot::of(&refund),
            self.outbox_on(),
        )
        .await?;
        self.commit(
            tx,
            Written::Row {
                table: "refunds",
                id: &refund.id,
            },
        )
        .await?;
        self.published(logged);
        Ok(Begin::Created)
    }

    async fn claim(
        &self,
        claim: &Claim,
        object_id: &str,
        now_ms: i64,
    ) -> Result<Begin, StoreError> {
        let client = self.client().await?;
        Ok(
            take_claim(&*client, self.holder(), claim, object_id, now_ms)
                .await?
                .unwrap_or(Begin::Created),
        )
    }

    async fn known_claim(&self, claim: &Claim) -> Result<Option<Begin>, StoreError> {
        let client = self.client().await?;
        decide_claim(&*client, claim).await
    }

    /// A leased claim is finished only by its holder (else `LeaseLost`: the request that
    /// took it over answers).
    async fn finish_claim(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let status = status as i16;
        let finished = match finish_key(&*client, claim, status, body, now_ms).await {
            Ok(finished) => finished,
            // Its own transaction: a lost answer is read back like a commit's.
            Err(e) if outcome_unknown(&e) => {
                let answer = Written::Answer {
                    claim,
                    status,
                    body,
                };
                self.read_back(e, answer).await.map(|()| true)?
            }
            Err(e) => return Err(e.into()),
        };
        if !finished {
            return Err(StoreError::LeaseLost);
        }
        claim.lease.finish();
        Ok(())
    }

    async fn renew_claim(&self, claim: &Claim, lease_ms: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let renewed = client
            .exec(
                &format!(
                    "UPDATE idempotency_keys SET leased_until_ms = {NOW_MS} + $4
                      WHERE api_key_id = $1 AND key = $2 AND lease = $3
                        AND answer_status IS NULL"
                ),
                &[
                    &claim.api_key_id,
                    &claim.key,
                    &claim.lease.token(),
                    &lease_ms,
                ],
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn release_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "UPDATE idempotency_keys SET leased_until_ms = 0
                  WHERE api_key_id = $1 AND key = $2 AND lease = $3 AND answer_status IS NULL",
                &[&claim.api_key_id, &claim.key, &claim.lease.token()],
            )
            .await?;
        Ok(())
    }

    async fn update_payment(
        &self,
        payment_id: &str,
        fence: Fence<'_>,
        change: PaymentChange<'_>,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        Ok(self
            .change_payment(payment_id, fence, change, None)
            .await?
            .map(|(payment, _)| payment))
    }

    /// One transaction: the change and the key's answer commit together.
    async fn update_payment_answering(
        &self,
        payment_id: &str,
        claim: &Claim,
        change: PaymentChange<'_>,
        answer: PaymentAnswer<'_>,
        now_ms: i64,
    ) -> Result<Option<(PaymentRecord, Option<(u16, String)>)>, StoreError> {
        let answering = Answering {
            claim,
            answer,
            now_ms,
        };
        self.change_payment(payment_id, Fence::Claim(claim), change, Some(answering))
            .await
    }

    async fn update_refund(
        &self,
        refund_id: &str,
        fence: Fence<'_>,
        change: RefundChange<'_>,
    ) -> Result<Option<RefundRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .row_opt(
                "SELECT record, lease FROM refunds WHERE id = $1 FOR UPDATE",
                &[&refund_id],
            )
            .await?
        else {
            return Ok(None);
        };
        check_fence(&tx, fence, row.get(1)).await?;
        let mut refund: RefundRecord = decoded(&row, 0)?;
        let Some(mut payment) = locked_payment(&tx, &refund.payment_id).await? else {
            return Err(StoreError::Corrupt(format!(
                "refund {refund_id} names missing payment {}",
                refund.payment_id
            )));
        };
        let totals = (payment.refund_reserved_minor, payment.refunded_minor);
        let Some(events) = change(&mut refund, &mut payment) else {
            return Ok(Some(refund));
        };
        assert!(payment.refunded_minor <= payment.refund_reserved_minor);
        assert!(payment.refund_reserved_minor <= payment.amount_minor);
        refund.version += 1;
        tx.exec(
            "UPDATE refunds SET final = $2, version = $3, record = $4 WHERE id = $1",
            &[
                &refund.id,
                &refund.status.is_terminal(),
                &(refund.version as i64),
                &Json(&refund),
            ],
        )
        .await?;
        if (payment.refund_reserved_minor, payment.refunded_minor) != totals {
            payment.version += 1;
            write_payment(&tx, &payment).await?;
        }
        let logged = log_events(
            &tx,
            &events,
            refund.version,
            &Snapshot::of(&refund),
            self.outbox_on(),
        )
        .await?;
        let json =
            serde_json::to_string(&refund).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let written = Written::Change {
            table: "refunds",
            id: refund_id,
            event_id: events.first().map(|e| e.id.as_str()),
            json,
        };
        self.commit(tx, written).await?;
        self.published(logged);
        Ok(Some(refund))
    }

    async fn payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt("SELECT record FROM payments WHERE id = $1", &[&id])
            .await?)
    }

    async fn refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt("SELECT record FROM refunds WHERE id = $1", &[&id])
            .await?)
    }

    async fn refunds_of(&self, payment_id: &str) -> Result<Vec<RefundRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows(
                    "SELECT record FROM refunds WHERE payment_id = $1 ORDER BY id",
                    &[&payment_id],
                )
                .await?,
        )
    }

    /// This engine keeps every payment in its tables (no archive yet).
    async fn archived_payment(&self, _id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        Ok(None)
    }

    async fn archived_refund(&self, _id: &str) -> Result<Option<RefundRecord>, StoreError> {
        Ok(None)
    }

    async fn pending_payment_ids(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows("SELECT id FROM payments WHERE NOT final ORDER BY id", &[])
            .await?;
        Ok(ids(rows))
    }

    async fn pending_refund_ids(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows("SELECT id FROM refunds WHERE NOT final ORDER BY id", &[])
            .await?;
        Ok(ids(rows))
    }

    /// `FOR UPDATE SKIP LOCKED`: records another daemon's transaction holds are left to it;
    /// records leased and not expired are not taken.
    async fn take_pending(
        &self,
        list: Pending,
        after: Option<&str>,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        let client = self.client().await?;
        let table = table(list);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .rows(
                &format!(
                    "WITH free AS (
                         SELECT id FROM {table}
                          WHERE NOT final AND id > $1 AND leased_until_ms <= {NOW_MS}
                          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                     UPDATE {table} SET leased_until_ms = {NOW_MS} + $3, lease = {table}.lease + 1
                       FROM free WHERE {table}.id = free.id
                     RETURNING {table}.id, {table}.lease"
                ),
                &[&after.unwrap_or(""), &limit, &lease_ms],
            )
            .await?;
        let mut taken: Vec<Leased> = rows
            .iter()
            .map(|row| Leased {
                id: row.get(0),
                token: row.get(1),
            })
            .collect();
        taken.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(taken)
    }

    async fn renew_pending(
        &self,
        list: Pending,
        held: &[Leased],
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        self.set_pending_leases(list, held, &format!("{NOW_MS} + $3"), lease_ms)
            .await
    }

    async fn release_pending(&self, list: Pending, held: &[Leased]) -> Result<(), StoreError> {
        self.set_pending_leases(list, held, "$3::bigint", 0).await
    }

    /// In batches, each well within the statement timeout however large the backlog.
    async fn expire_idempotency_keys(&self, before_ms: i64) -> Result<usize, StoreError> {
        const BATCH: i64 = 10_000;
        let client = self.client().await?;
        let mut removed = 0;
        loop {
            let batch = client
                .exec(
                    "DELETE FROM idempotency_keys WHERE (api_key_id, key) IN (
                         SELECT api_key_id, key FROM idempotency_keys
                          WHERE answer_status IS NOT NULL AND created_at_ms < $1
                          LIMIT $2)",
                    &[&before_ms, &BATCH],
                )
                .await?;
            removed += batch as usize;
            if (batch as i64) < BATCH {
                return Ok(removed);
            }
        }
    }

    async fn events(&self) -> Result<Vec<EventRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows("SELECT event FROM events ORDER BY seq", &[])
                .await?,
        )
    }
}

impl PgStore {
    fn holder(&self) -> Holder<'_> {
        Holder {
            node: &self.node,
            lease_ms: self.lease_ms,
        }
    }

    /// Sets `leased_until_ms` to `until` (SQL, `$3` bound to `lease_ms`) on the records of
    /// `held` whose lease is still the one held.
    async fn set_pending_leases(
        &self,
        list: Pending,
        held: &[Leased],
        until: &str,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let (ids, leases): (Vec<&str>, Vec<i64>) =
            held.iter().map(|l| (l.id.as_str(), l.token)).unzip();
        let table = table(list);
        let client = self.client().await?;
        client
            .exec(
                &format!(
                    "UPDATE {table} SET leased_until_ms = {until}
                       FROM unnest($1::text[], $2::bigint[]) AS held (id, lease)
                      WHERE {table}.id = held.id AND {table}.lease = held.lease"
                ),
                &[&ids, &leases, &lease_ms],
            )
            .await?;
        Ok(())
    }
}
