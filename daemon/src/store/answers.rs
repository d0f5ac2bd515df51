//! The answers of finished idempotency keys (API.md §4: a retry gets the first answer byte
//! for byte), kept apart from the keys.
//!
//! A key's record stays small and never changes once claimed (`InProgress` with the object
//! it is about); its answer goes to the tree `answers` under `object id \0 api key id \0
//! key`. Keys are looked up at random (they are the client's), so their tree is written all
//! over; answers are written where their object's id sorts, which for a new payment or
//! refund (ids begin with their creation time) is the end of the tree. Holding each answer
//! (~700 bytes) in the keys' tree instead rewrote a random page of it per payment: 20 µs of
//! CPU and 5.7 KiB written per payment (BENCHMARKS.md, "Schema 2 against schema 1").
//!
//! A value is the answer's HTTP status (2 bytes, big-endian), then its body.
//! Records written before (state `Done`, with the body) are still read as answers.

use super::payments::Claim;
use super::{Store, StoreError};
use crate::domain::records::{IdempotencyRecord, IdempotencyState};

/// The key of the answer of `claim`, claimed for `object_id`.
pub(super) fn answer_key(object_id: &str, claim: &Claim) -> Vec<u8> {
    answer_key_of(object_id, &claim.store_key())
}

/// The same, from the claim's key in the keys' tree (`api key id \0 key`).
pub(super) fn answer_key_of(object_id: &str, claim_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(object_id.len() + 1 + claim_key.len());
    key.extend_from_slice(object_id.as_bytes());
    key.push(0);
    key.extend_from_slice(claim_key);
    key
}

fn encode(status: u16, body: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(2 + body.len());
    value.extend_from_slice(&status.to_be_bytes());
    value.extend_from_slice(body.as_bytes());
    value
}

fn decode(raw: &[u8]) -> Result<(u16, String), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("answer: {what}"));
    let (status, body) = raw
        .split_first_chunk::<2>()
        .ok_or_else(|| corrupt("shorter than its status"))?;
    let body = std::str::from_utf8(body).map_err(|_| corrupt("body is not UTF-8"))?;
    Ok((u16::from_be_bytes(*status), body.to_owned()))
}

/// The answer a claim was finished with, if it was.
pub(super) fn answer_of(
    answers: &sled::Tree,
    claim: &Claim,
    record: &IdempotencyRecord,
) -> Result<Option<(u16, String)>, StoreError> {
    match &record.state {
        IdempotencyState::Done { status, body } => Ok(Some((*status, body.clone()))),
        IdempotencyState::InProgress { object_id } => answers
            .get(answer_key(object_id, claim))
            .map_err(StoreError::Sled)?
            .map(|raw| decode(&raw))
            .transpose(),
    }
}

impl Store {
    /// Finishes an idempotency key with the response its request answered.
    pub fn finish_claim(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let t = &self.trees;
        self.writer.single_fallible(|keep| {
            let record = match t.idempotency.get(claim.store_key()) {
                Ok(Some(raw)) => serde_json::from_slice::<IdempotencyRecord>(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("idempotency record: {e}")))?,
                Ok(None) => {
                    // Not claimed (it expired meanwhile): the key holds its answer itself.
                    let done = IdempotencyRecord {
                        fingerprint: claim.fingerprint.clone(),
                        created_at_ms: now_ms,
                        state: IdempotencyState::Done {
                            status,
                            body: body.to_owned(),
                        },
                    };
                    keep.before_writing(&t.idempotency, claim.store_key());
                    return t
                        .idempotency
                        .insert(claim.store_key(), super::payments::encode(&done))
                        .map(|_| ())
                        .map_err(StoreError::Sled);
                }
                Err(e) => return Err(StoreError::Sled(e)),
            };
            // Finished before: the first answer stands.
            match record.state {
                IdempotencyState::InProgress { object_id } => {
                    let key = answer_key(&object_id, claim);
                    keep.before_writing(&t.answers, &key);
                    t.answers
                        .compare_and_swap(key, None::<&[u8]>, Some(encode(status, body)))
                        .map(|_| ())
                        .map_err(StoreError::Sled)
                }
                IdempotencyState::Done { .. } => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_damaged_ones_are_refused() {
        let body = r#"{"id":"pay_1","note":"é"}"#;
        assert_eq!(decode(&encode(201, body)).unwrap(), (201, body.to_owned()));
        assert_eq!(decode(&encode(409, "")).unwrap(), (409, String::new()));
        assert!(matches!(decode(&[1]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode(&[0, 200, 0xff, 0xfe]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
