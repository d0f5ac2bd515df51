//! What the store keeps, as serde records (JSON in sled values). Field names are part of the
//! on-disk format: changing one is a schema version bump. Absent optional fields are left
//! out (read back as absent, also by the previous release): a payment is written twice and
//! its nulls were a fifth of its bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::state::{PaymentStatus, RefundStatus};

/// Why a payment or refund failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// How far the provider side of a payment or refund has got: the recovery point a retry or
/// the recovery pass resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStep {
    /// Recorded here; the provider has not been asked yet (or said nothing happened).
    NotSent,
    /// The provider answered; the record holds its answer.
    Answered,
    /// The request may have reached the provider without an answer: query before anything.
    OutcomeUnknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub id: String,
    pub merchant_id: String,
    pub provider: String,
    /// `qr`, `barcode` or `link`.
    pub method: crate::domain::method::Method,
    pub amount_minor: i64,
    pub currency: String,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// The payer's one-time payment code (barcode), kept to resume a create after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub metadata: BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// When it moved to `succeeded`, by our clock (absent in records written before it was
    /// kept): reconciliation's day of the payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_at_ms: Option<i64>,
    /// Sum of the refunds that have not failed (pending ones may still succeed).
    pub refund_reserved_minor: i64,
    /// Sum of the succeeded refunds.
    pub refunded_minor: i64,
    pub provider_step: ProviderStep,
    /// The API key that created it.
    pub api_key_id: String,
    /// (Link payments) the cashier page's address, as handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_url: Option<String>,
    /// (Link payments) the one wallet the page may offer, when the request named one. The
    /// payment's `provider` stays empty until the payer picks a wallet on the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_wallet: Option<String>,
    /// (Wallet-token payments) the token's own id (Apple Pay `header.transactionId`): the
    /// store keeps it unique per provider, so that a token is charged at most once. The
    /// token itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_token_id: Option<String>,
    /// (Wallet-token payments) the card charged, as far as anyone may keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardSummary>,
    /// Numbered by the store: 1 when recorded, one more at each write (0 in records written
    /// before versions were kept).
    #[serde(default)]
    pub version: u64,
}

/// The card behind a wallet token: its network and last four digits, never more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub network: String,
    pub last_four: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    pub id: String,
    pub payment_id: String,
    pub merchant_id: String,
    pub provider: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: RefundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub provider_step: ProviderStep,
    pub api_key_id: String,
    /// Numbered by the store, as a payment's.
    #[serde(default)]
    pub version: u64,
}

/// An idempotency key's record, scoped to the API key that sent it (API.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 of method, path and canonical body: "the same request".
    pub fingerprint: String,
    pub created_at_ms: i64,
    pub state: IdempotencyState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IdempotencyState {
    /// Claimed; the object it created is `object_id`. A retry after a crash resumes it.
    InProgress { object_id: String },
    /// Finished: the response to replay byte for byte.
    Done { status: u16, body: String },
}

/// One state change, appended in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    /// What happened (`payment.succeeded`, `refund.failed`, `payment.conflict`, ...).
    pub kind: crate::domain::events::EventKind,
    pub created_at_ms: i64,
    /// The object the event is about (payment or refund id).
    pub object_id: String,
    /// What happened: the new status, or the conflict's evidence.
    pub data: serde_json::Value,
    /// The record of the object right after the change (filled in by the store, in memory
    /// and in the webhook outbox; the event log keeps only its version), from which webhooks
    /// render the API object and the monitor reads terminals, payers and keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Snapshot>,
    /// The version of the object's record the event announces (0: not a versioned record,
    /// or logged before versions were kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub object_version: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl EventRecord {
    /// The fields of its object that in-process consumers read; all absent without one.
    pub fn fields(&self) -> SnapshotFields {
        self.object
            .as_ref()
            .and_then(|object| object.read().ok())
            .unwrap_or_default()
    }
}

/// A record as it was right after a change, kept as its JSON text. The store writes it
/// inside the event's JSON as an object, as it always did; only in memory is it text.
/// Building a JSON tree per event instead was the largest single cost of recording a
/// payment (BENCHMARKS.md, "What was tried").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Snapshot(Box<serde_json::value::RawValue>);

impl Snapshot {
    pub fn of<T: Serialize + ?Sized>(record: &T) -> Snapshot {
        Snapshot(serde_json::value::to_raw_value(record).expect("records always serialize"))
    }

    /// The snapshot read as `T` (a record type, or [`SnapshotFields`]).
    pub fn read<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    pub fn json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Snapshot) -> bool {
        self.json() == other.json()
    }
}

impl Eq for Snapshot {}

/// The fields of a snapshot that in-process consumers read (the monitor, the event metrics,
/// webhook endpoint filters). Each record kind has some of them; the others stay `None`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SnapshotFields {
    pub merchant_id: Option<String>,
    pub terminal_id: Option<String>,
    pub currency: Option<String>,
    pub amount_minor: Option<i64>,
    pub created_at_ms: Option<i64>,
    pub payer: Option<String>,
    pub api_key_id: Option<String>,
    pub provider: Option<String>,
    /// An alert's subject, whose merchant is the alert's.
    pub subject: Option<SubjectFields>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SubjectFields {
    pub merchant_id: Option<String>,
}

impl SnapshotFields {
    /// The merchant the record belongs to: its own field, or an alert subject's.
    pub fn merchant(&self) -> Option<&str> {
        self.merchant_id
            .as_deref()
            .or_else(|| self.subject.as_ref()?.merchant_id.as_deref())
    }
}

/// A webhook delivery still owed for one event, per endpoint (keyed by event id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Endpoint name -> its delivery state. Endpoints not listed have not been tried.
    pub endpoints: BTreeMap<String, DeliveryState>,
}

impl OutboxRecord {
    /// When the entry's next attempt is due (unix ms): the earliest of its unfinished
    /// endpoints', 0 (now) when none has been tried.
    pub fn due_ms(&self) -> i64 {
        self.endpoints
            .values()
            .filter(|d| !d.finished)
            .map(|d| d.next_attempt_ms)
            .min()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (unix ms).
    pub next_attempt_ms: i64,
    /// Delivered (2xx), or given up after the retry period.
    pub finished: bool,
    pub last_error: Option<String>,
}

/// Who or what an alert is about (API.md §10); absent parts are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertSubject {
    pub merchant_id: Option<String>,
    pub terminal_id: Option<String>,
    pub api_key_id: Option<String>,
    pub payer: Option<String>,
    pub provider: Option<String>,
}

/// An alert the monitor raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: String,
    pub rule: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub subject: AlertSubject,
    pub summary: String,
    pub evidence: serde_json::Value,
    /// How many times the rule fired for this subject within the cool-down.
    pub count: u64,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub acknowledged_at_ms: Option<i64>,
    /// The API key that acknowledged it.
    pub acknowledged_by: Option<String>,
    /// The block the rule's action placed, if any.
    pub block_id: Option<String>,
}

/// A subject refused for a while by a rule's action (today: a terminal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub id: String,
    /// `terminal` (a till of `merchant_id`), or `api_key` (every payment by `api_key_id`).
    pub kind: String,
    pub merchant_id: String,
    /// The blocked terminal; empty for an `api_key` block.
    pub terminal_id: String,
    /// The blocked key, for an `api_key` block (absent from blocks stored before keys could
    /// be blocked: those are all terminal blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    pub rule: String,
    pub alert_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl BlockRecord {
    /// What the block stops, as the monitor's lookup key: a merchant's terminal, or a key.
    pub fn scope(&self) -> BlockScope {
        match &self.api_key_id {
            Some(key) if self.kind == "api_key" => BlockScope::ApiKey(key.clone()),
            _ => BlockScope::Terminal(self.merchant_id.clone(), self.terminal_id.clone()),
        }
    }
}

/// What a block stops.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlockScope {
    /// (merchant, terminal).
    Terminal(String, String),
    ApiKey(String),
}

/// A secret sealed with the master key (AES-256-GCM); `key_id` names the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    /// Hex.
    pub nonce: String,
    /// Hex, tag included.
    pub ciphertext: String,
}

/// A console session (the store keys it by the SHA-256 of its id, which only the browser
/// holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The API key that logged in.
    pub key_id: String,
    /// Its value's digest (`ApiKey::digest`) at log-in: a key replaced under the same id
    /// ends the session.
    pub key_digest: String,
    /// The fingerprint of the key's authenticator at log-in: a reset one ends the session.
    pub factor: String,
    /// The token every form of the session carries.
    pub csrf: String,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
}

/// A merchant onboarded through the API (config merchants are not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantRecord {
    pub id: String,
    pub name: String,
    pub status: crate::domain::state::MerchantStatus,
    pub business_license_no: String,
    pub tax_registration_no: String,
    pub legal_person_name: String,
    pub legal_person_id: Sealed,
    pub legal_person_id_masked: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    pub industry_code: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A merchant's application to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub id: String,
    pub merchant_id: String,
    pub provider: String,
    pub status: crate::domain::state::ActivationStatus,
    /// The provider's sub-merchant or application number.
    pub provider_reference: Option<String>,
    pub rejection_reason: Option<String>,
    /// What the merchant must do for the application to go on (sign the provider's
    /// agreement at a URL, ...), while it waits for them: a JSON object with a `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<serde_json::Value>,
    /// Submissions so far (a resubmission after a rejection adds one).
    pub submissions: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A settlement bank account of a merchant, bound at a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccountRecord {
    pub id: String,
    pub merchant_id: String,
    pub provider: String,
    pub account_holder: String,
    pub account_number: Sealed,
    pub account_number_last4: String,
    pub bank_name: String,
    pub branch: Option<String>,
    /// Administrative division code of the branch's city, when given (WeChat Pay needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_area_code: Option<String>,
    pub status: crate::domain::state::BankAccountStatus,
    /// The provider's verification step for the merchant (e.g. a remittance to make).
    pub verification: Option<serde_json::Value>,
    pub failure_reason: Option<String>,
    pub provider_reference: Option<String>,
    pub is_default: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One change to a merchant, activation or bank account: who, what, when, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub at_ms: i64,
    /// The API key that made it (`system` for the daemon's own polling).
    pub actor: String,
    /// The client's address.
    pub source: String,
    /// `merchant.created`, `activation.updated`, ...
    pub action: String,
    pub merchant_id: String,
    pub object_id: String,
    /// What changed (never a clear secret).
    pub details: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stored_with_its_object_as_a_json_tree_reads_back_and_is_written_the_same() {
        // The on-disk form of every event ever written: the object inline, as JSON.
        let stored = br#"{"id":"evt_1","kind":"payment.succeeded","created_at_ms":5,"object_id":"pay_1","data":{"status":"succeeded"},"object":{"amount_minor":1250,"currency":"CNY","merchant_id":"m_a","payer":"p\u00e9","terminal_id":null}}"#;
        let event: EventRecord = serde_json::from_slice(stored).unwrap();
        let fields = event.fields();
        assert_eq!(fields.amount_minor, Some(1250));
        assert_eq!(fields.currency.as_deref(), Some("CNY"));
        assert_eq!(fields.merchant_id.as_deref(), Some("m_a"));
        assert_eq!(fields.payer.as_deref(), Some("pé"), "escapes are decoded");
        assert_eq!(fields.terminal_id, None);
        assert_eq!(fields.api_key_id, None, "a field the record lacks");
        // Written again, it is the same bytes: the object stays an object, not a string.
        assert_eq!(serde_json::to_vec(&event).unwrap(), stored.to_vec());
    }

    #[test]
    fn an_alerts_merchant_is_its_subjects() {
        let alert = AlertRecord {
            id: "al_1".into(),
            rule: "card_testing".into(),
            severity: "critical".into(),
            subject: AlertSubject {
                merchant_id: Some("m_a".into()),
                ..AlertSubject::default()
            },
            summary: "s".into(),
            evidence: serde_json::Value::Null,
            count: 1,
            created_at_ms: 0,
            last_seen_at_ms: 0,
            acknowledged_at_ms: None,
            acknowledged_by: None,
            block_id: None,
        };
        let fields: SnapshotFields = Snapshot::of(&alert).read().unwrap();
        assert_eq!(fields.merchant(), Some("m_a"));
        let payment_like: SnapshotFields =
            serde_json::from_str(r#"{"merchant_id":"m_b"}"#).unwrap();
        assert_eq!(payment_like.merchant(), Some("m_b"));
        assert_eq!(SnapshotFields::default().merchant(), None);
    }

    #[test]
    fn events_without_an_object_read_as_having_no_fields() {
        for stored in [
            &br#"{"id":"e","kind":"payment.created","created_at_ms":0,"object_id":"o","data":null}"#[..],
            br#"{"id":"e","kind":"payment.created","created_at_ms":0,"object_id":"o","data":null,"object":null}"#,
        ] {
            let event: EventRecord = serde_json::from_slice(stored).unwrap();
            assert_eq!(event.object, None);
            assert_eq!(event.fields(), SnapshotFields::default());
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_the_record_it_was_taken_of() {
        let record = BlockRecord {
            id: "blk_1".into(),
            kind: "terminal".into(),
            merchant_id: "m_a".into(),
            terminal_id: "T-\"1\"".into(),
            api_key_id: None,
            rule: "card_testing".into(),
            alert_id: "al_1".into(),
            created_at_ms: 7,
            expires_at_ms: 9,
        };
        let snapshot = Snapshot::of(&record);
        assert_eq!(snapshot.read::<BlockRecord>().unwrap(), record);
        assert_eq!(snapshot, Snapshot::of(&record));
        let fields: SnapshotFields = snapshot.read().unwrap();
        assert_eq!(fields.terminal_id.as_deref(), Some("T-\"1\""));
        assert_eq!(fields.created_at_ms, Some(7));
    }

    #[test]
    fn blocks_stored_before_key_blocks_still_read_as_terminal_blocks() {
        let stored = br#"{"id":"blk_1","kind":"terminal","merchant_id":"m_a","terminal_id":"T1","rule":"card_testing","alert_id":"al_1","created_at_ms":7,"expires_at_ms":9}"#;
        let block: BlockRecord = serde_json::from_slice(stored).unwrap();
        assert_eq!(
            block.scope(),
            BlockScope::Terminal("m_a".into(), "T1".into())
        );
        // Written again, a terminal block is the same bytes as before.
        assert_eq!(serde_json::to_vec(&block).unwrap(), stored.to_vec());
        let key = BlockRecord {
            kind: "api_key".into(),
            terminal_id: String::new(),
            api_key_id: Some("key_pos".into()),
            ..block
        };
        assert_eq!(key.scope(), BlockScope::ApiKey("key_pos".into()));
    }
}
