//! API.md §4 below the API: one request at a time per key in this process, a key claimed at
//! most once, a finished key's response replayed byte for byte. The payments use cases claim
//! a key together with the object they create (the store's `begin_*`); the other mutating
//! routes claim it here ([`claim`]) for work that is resumable by id, then [`finish`] it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::leases::{Renewing, renewing};
use crate::store::{Begin, Claim, PaymentStore, StoreError};

/// A response to send: freshly made, or replayed for a repeated idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
}

impl Answer {
    /// A finished key's stored answer, sent again.
    pub fn replayed(status: u16, body: String) -> Answer {
        Answer {
            status,
            body,
            replayed: true,
        }
    }
}

/// Why a key cannot be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry later")]
    InProgress,
}

impl Conflict {
    /// The error code the API answers (and the metrics and the monitor count).
    pub fn code(self) -> &'static str {
        match self {
            Conflict::KeyReused => "idempotency_key_reused",
            Conflict::InProgress => "idempotency_in_progress",
        }
    }
}

/// Idempotency keys being processed by this process right now.
#[derive(Default)]
pub struct InFlight {
    keys: Mutex<HashSet<(String, String)>>,
}

/// Releases an in-flight key when the request ends, however it ends.
pub struct InFlightGuard<'a> {
    set: &'a InFlight,
    key: (String, String),
}

impl InFlight {
    pub fn enter(&self, claim: &Claim) -> Option<InFlightGuard<'_>> {
        let key = (claim.api_key_id.clone(), claim.key.clone());
        let inserted = self
            .keys
            .lock()
            .expect("in-flight set poisoned")
            .insert(key.clone());
        // The guard is made only when the key was free, and after the lock is released: its
        // drop takes the lock (a guard made eagerly would deadlock, and free a busy key).
        inserted.then(|| InFlightGuard { set: self, key })
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.set.keys.lock() {
            keys.remove(&self.key);
        }
    }
}

/// Holds a claim's lease (stores shared by several daemons) while its request works: renews
/// it, and gives it back if the request ends without finishing the key, so that a retry on
/// another daemon resumes at once rather than when the lease expires. Nothing on sled.
pub struct LeaseKeeper(Option<Held>);

/// A lease being kept: renewed by its task until the keeper drops.
struct Held {
    _renewing: Renewing,
    store: Arc<dyn PaymentStore>,
    claim: Claim,
}

/// Keeps `claim`'s lease from now until the keeper drops.
pub fn keep_lease(store: &Arc<dyn PaymentStore>, claim: &Claim) -> LeaseKeeper {
    if !claim.lease.is_held() {
        return LeaseKeeper(None);
    }
    let lease_ms = store.lease_ms();
    let every = Duration::from_millis(lease_ms.max(3) as u64 / 3);
    let (task_store, task_claim) = (store.clone(), claim.clone());
    let renewing = renewing(every, move || {
        let (store, claim) = (task_store.clone(), task_claim.clone());
        async move {
            match store.renew_claim(&claim, lease_ms).await {
                Ok(renewed) => renewed, // false: finished, or taken over
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew an idempotency key's lease");
                    true
                }
            }
        }
    });
    LeaseKeeper(Some(Held {
        _renewing: renewing,
        store: store.clone(),
        claim: claim.clone(),
    }))
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if let Some(held) = self.0.take()
            && held.claim.lease.is_held()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let Held {
                _renewing: renewing,
                store,
                claim,
            } = held;
            // Renewals stop first (one already sent may still land after the release: the
            // lease then runs out by itself).
            drop(renewing);
            runtime.spawn(async move {
                if let Err(e) = store.release_claim(&claim).await {
                    tracing::warn!(error = %e, "cannot give an idempotency key's lease back");
                }
            });
        }
    }
}

/// What a request whose lease another daemon took over (this one was paused past it) answers:
/// what the key says now, the other request's answer or 409 while it works, never its own.
pub async fn after_lease_lost(
    store: &dyn PaymentStore,
    claim: &Claim,
) -> Result<Answer, ClaimError> {
    match store.known_claim(claim).await? {
        Some(Begin::Replay { status, body }) => Ok(Answer::replayed(status, body)),
        _ => Err(Conflict::InProgress.into()),
    }
}

/// What claiming a key for work on an object found.
pub enum Claimed<'a> {
    /// Work on `object_id` (new, or the one a crashed attempt claimed); the key is this
    /// request's until `guard` drops.
    Run {
        object_id: String,
        guard: InFlightGuard<'a>,
        lease: LeaseKeeper,
    },
    /// The key finished before: send this again.
    Replay(Answer),
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Claims `claim` for work on `fresh_id`, or on the object an earlier attempt with the key
/// claimed, or finds its finished response.
pub async fn claim<'a>(
    store: &Arc<dyn PaymentStore>,
    in_flight: &'a InFlight,
    claim: &Claim,
    fresh_id: String,
    now_ms: i64,
) -> Result<Claimed<'a>, ClaimError> {
    let guard = in_flight.enter(claim).ok_or(Conflict::InProgress)?;
    let object_id = match store.claim(claim, &fresh_id, now_ms).await? {
        Begin::Created => fresh_id,
        Begin::Resume { object_id } => object_id,
        Begin::Replay { status, body } => {
            return Ok(Claimed::Replay(Answer::replayed(status, body)));
        }
        Begin::KeyReused => return Err(Conflict::KeyReused.into()),
        Begin::InProgress => return Err(Conflict::InProgress.into()),
        other => return Err(StoreError::Corrupt(format!("claim: {other:?}")).into()),
    };
    let lease = keep_lease(store, claim);
    Ok(Claimed::Run {
        object_id,
        guard,
        lease,
    })
}

/// Finishes `claim` with the response its work made, durably, and returns it.
pub async fn finish(
    store: &dyn PaymentStore,
    claim: &Claim,
    status: u16,
    body: String,
    now_ms: i64,
) -> Result<Answer, ClaimError> {
    match store.finish_claim(claim, status, &body, now_ms).await {
        Err(StoreError::LeaseLost) => return after_lease_lost(store, claim).await,
        other => other?,
    }
    store.durable().await?;
    Ok(Answer {
        status,
        body,
        replayed: false,
    })
}
