//! `paygate-bench stores <tmp dir> <payments> <group> [relaxed]`: the daemon's own store code,
//! the sled engine's methods behind the storage port (`PaymentStore`, whose sled impl calls
//! them one for one), driven the way the payments use case drives them for one barcode
//! payment:
//!
//! 1. `begin_payment`: the claim, the payment with an order id and a terminal, its
//!    `payment.created` event;
//! 2. `update_payment`: the provider's answer (succeeded, with its reference and payer) and
//!    the `payment.succeeded` event;
//! 3. `finish_claim`: the answer the request gave (a ~700-byte body, as the API renders it).
//!
//! One thread makes the payments; every `group` payments it waits on `durable()`, the group
//! commit every request path waits on (at 64 clients one flush serves ~20 requests). The
//! store is opened as the daemon opens it by default (group commit with `fdatasync`, or
//! without with `relaxed`). Prints one JSON line: CPU per payment (every thread of the
//! process, the committer's flushes included), bytes written per payment (`wchar`), bytes on
//! disk per payment once closed, and peak RSS.

use std::path::Path;
use std::time::Instant;

use paygate_daemon::domain::events::EventKind;
use paygate_daemon::domain::method::Method;
use paygate_daemon::domain::records::{EventRecord, PaymentRecord, ProviderStep};
use paygate_daemon::domain::state::PaymentStatus;
use paygate_daemon::store::commit::Durability;
use paygate_daemon::store::{Begin, Claim, Store};

use crate::measure;

pub fn stores(dir: &Path, payments: u64, group: u64, relaxed: bool) {
    let _ = std::fs::remove_dir_all(dir);
    let durability = Durability {
        group_commit: true,
        fdatasync: !relaxed,
        window: std::time::Duration::ZERO,
    };
    let store = Store::open_with(dir, durability, paygate_daemon::store::DEFAULT_CACHE_BYTES)
        .expect("open the store");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Warm-up: sled's first pages and the allocator's, outside the measurement.
    let warmup = (payments / 20).max(100);
    for n in 0..warmup {
        pay(&store, n);
        if n % group == group - 1 {
            runtime.block_on(store.durable()).expect("durable");
        }
    }
    runtime.block_on(store.durable()).expect("durable");
    let cpu_before = measure::cpu_seconds("/proc/self");
    let written_before = measure::field("/proc/self", "io", "wchar:");
    let started = Instant::now();
    for n in warmup..warmup + payments {
        pay(&store, n);
        if n % group == group - 1 {
            runtime.block_on(store.durable()).expect("durable");
        }
    }
    runtime.block_on(store.durable()).expect("durable");
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = measure::cpu_seconds("/proc/self") - cpu_before;
    let written = measure::field("/proc/self", "io", "wchar:") - written_before;
    let peak_rss_kib = measure::field("/proc/self", "status", "VmHWM:");
    let check = store
        .payment(&payment_id(warmup + payments - 1))
        .expect("read back");
    assert_eq!(
        check.map(|p| p.status),
        Some(PaymentStatus::Succeeded),
        "the last payment reads back as succeeded"
    );
    drop(store);
    let on_disk = measure::dir_bytes(dir);
    let total = (warmup + payments) as f64;
    println!(
        "{{\"bench\":\"stores\",\"engine\":\"paygate-sled\",\"mode\":\"{}\",\"payments\":{payments},\"group\":{group},\"payments_per_s\":{:.0},\"cpu_us_per_payment\":{:.1},\"written_kib_per_payment\":{:.2},\"disk_kib_per_payment\":{:.2},\"peak_rss_mib\":{:.1}}}",
        if relaxed { "group" } else { "group+fdatasync" },
        payments as f64 / elapsed,
        cpu * 1e6 / payments as f64,
        written as f64 / 1024.0 / payments as f64,
        on_disk as f64 / 1024.0 / total,
        peak_rss_kib as f64 / 1024.0,
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn payment_id(n: u64) -> String {
    // Time-ordered like the daemon's ids: a fixed-width counter, then a spread tail.
    format!(
        "pay_{n:012}{:014}",
        n.wrapping_mul(2_654_435_761) % 100_000_000_000_000
    )
}

/// One barcode payment's parts, as the payments use case makes them: its claim, its record,
/// its two events and the answer its request gives.
pub(crate) struct PaymentParts {
    pub claim: Claim,
    pub record: PaymentRecord,
    pub created: EventRecord,
    pub succeeded: EventRecord,
    pub answer: String,
    pub now: i64,
}

impl PaymentParts {
    pub(crate) fn of(n: u64) -> PaymentParts {
        let now = 1_770_000_000_000 + n as i64;
        let id = payment_id(n);
        let claim = Claim {
            api_key_id: "key_demo_pos".to_owned(),
            key: format!("till-{}-{}", n % 4096, n / 4096),
            fingerprint: format!("{:064x}", u128::from(n as u32) * 0x9e37_79b9_7f4a_7c15),
            lease: Default::default(),
        };
        let record = PaymentRecord {
            id: id.clone(),
            merchant_id: "m_demo".to_owned(),
            provider: "mock".to_owned(),
            method: Method::Barcode,
            amount_minor: 1_000 + (n % 9_000) as i64,
            currency: "CNY".to_owned(),
            status: PaymentStatus::Pending,
            order_id: Some(format!("order-{n:010}")),
            description: Some("2 x coffee".to_owned()),
            terminal_id: Some(format!("till-{}", n % 4096)),
            auth_code: Some(format!("28{:016}", n)),
            provider_reference: None,
            qr_code: None,
            payer: None,
            failure: None,
            metadata: Default::default(),
            created_at_ms: now,
            updated_at_ms: now,
            expires_at_ms: None,
            succeeded_at_ms: None,
            refund_reserved_minor: 0,
            refunded_minor: 0,
            provider_step: ProviderStep::NotSent,
            api_key_id: claim.api_key_id.clone(),
            payment_url: None,
            link_wallet: None,
            wallet_token_id: None,
            card: None,
            version: 0,
        };
        PaymentParts {
            created: event(now, EventKind::PaymentCreated, &id, "pending"),
            succeeded: event(now + 40, EventKind::PaymentSucceeded, &id, "succeeded"),
            answer: answer(&id, &record, n),
            claim,
            record,
            now,
        }
    }

    /// The provider's answer: succeeded, with its reference and payer.
    pub(crate) fn succeed(&self, p: &mut PaymentRecord, n: u64) -> Option<Vec<EventRecord>> {
        p.status = PaymentStatus::Succeeded;
        p.provider_step = ProviderStep::Answered;
        p.provider_reference = Some(format!("mock_{n:020}"));
        p.payer = Some(format!("payer-{}", n % 100_000));
        p.updated_at_ms = self.now + 40;
        Some(vec![self.succeeded.clone()])
    }
}

fn pay(store: &Store, n: u64) {
    let parts = PaymentParts::of(n);
    match store
        .begin_payment(&parts.claim, &parts.record, &parts.created)
        .expect("begin")
    {
        Begin::Created => {}
        other => panic!("payment {n}: {other:?}"),
    }
    store
        .update_payment(&parts.record.id, |p| parts.succeed(p, n))
        .expect("update")
        .expect("the payment exists");
    store
        .finish_claim(&parts.claim, 201, &parts.answer, parts.now + 41)
        .expect("finish");
}

fn event(now: i64, kind: EventKind, object_id: &str, status: &str) -> EventRecord {
    EventRecord {
        id: paygate_daemon::domain::ids::new_id("evt"),
        kind,
        created_at_ms: now,
        object_id: object_id.to_owned(),
        data: serde_json::json!({ "status": status }),
        object_version: 0,
        object: None,
    }
}

/// A body of the size and shape the API answers a barcode payment with.
fn answer(id: &str, record: &PaymentRecord, n: u64) -> String {
    serde_json::json!({
        "id": id,
        "object": "payment",
        "merchant_id": record.merchant_id,
        "provider": record.provider,
        "method": "barcode",
        "amount": {"value": format!("{}.{:02}", record.amount_minor / 100, record.amount_minor % 100), "currency": record.currency},
        "status": "succeeded",
        "order_id": record.order_id,
        "description": record.description,
        "terminal_id": record.terminal_id,
        "provider_reference": format!("mock_{n:020}"),
        "payer": format!("payer-{}", n % 100_000),
        "qr_code": null,
        "payment_url": null,
        "failure": null,
        "metadata": {},
        "refunded": {"value": "0.00", "currency": record.currency},
        "created_at": "2026-02-02T02:40:00.000Z",
        "updated_at": "2026-02-02T02:40:00.040Z",
        "expires_at": null,
        "livemode": false
    })
    .to_string()
}
