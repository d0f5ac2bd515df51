//! The JSON of an outgoing webhook (API.md §9): `{"id", "type", "created_at", "data"}` with
//! `data` the object as the API shows it, rendered from the record the event carries.

use serde::Serialize;

use super::alerts::AlertObject;
use super::merchants::{ActivationObject, BankAccountObject};
use super::payments::{PaymentObject, RefundObject, rfc3339_ms};
use super::reconciliations::ReconciliationObject;
use crate::domain::events::ObjectKind;
use crate::domain::reconciliation::ReconciliationRecord;
use crate::domain::records::{
    ActivationRecord, AlertRecord, BankAccountRecord, EventRecord, PaymentRecord, RefundRecord,
};

#[derive(Serialize)]
struct WebhookBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    data: serde_json::Value,
}

/// The body to deliver for `event`, or why it cannot be rendered (a record this version
/// cannot read: delivering something else would be worse than not delivering).
pub fn webhook_body(event: &EventRecord) -> Result<String, String> {
    let object = event
        .object
        .as_ref()
        .ok_or_else(|| format!("event {} carries no object", event.id))?;
    let unreadable = |e: serde_json::Error| format!("event {}: {e}", event.id);
    let data = match event.kind.object() {
        ObjectKind::Payment => {
            let record: PaymentRecord = object.read().map_err(unreadable)?;
            serde_json::to_value(PaymentObject::from(&record)).map_err(unreadable)?
        }
        ObjectKind::Refund => {
            let record: RefundRecord = object.read().map_err(unreadable)?;
            serde_json::to_value(RefundObject::from(&record)).map_err(unreadable)?
        }
        ObjectKind::Activation => {
            let record: ActivationRecord = object.read().map_err(unreadable)?;
            serde_json::to_value(ActivationObject::from(&record)).map_err(unreadable)?
        }
        ObjectKind::BankAccount => {
            let record: BankAccountRecord = object.read().map_err(unreadable)?;
            serde_json::to_value(BankAccountObject::from(&record)).map_err(unreadable)?
        }
        ObjectKind::Alert => {
            let record: AlertRecord = object.read().map_err(unreadable)?;
            serde_json::to_value(AlertObject::from(&record)).map_err(unreadable)?
        }
        ObjectKind::Reconciliation => {
            let record: ReconciliationRecord = object.read().map_err(unreadable)?;
            serde_json::to_value(ReconciliationObject::from(&record)).map_err(unreadable)?
        }
    };
    serde_json::to_string(&WebhookBody {
        id: &event.id,
        kind: event.kind.as_str(),
        created_at: rfc3339_ms(event.created_at_ms),
        data,
    })
    .map_err(unreadable)
}
