//! The archive against the real store on disk: what leaves, how it is still found, and a
//! crash at each step of a run.

use super::run::CrashPoint;
use super::{ArchivePolicy, ArchiveReport};
use crate::domain::events::EventKind;
use crate::domain::records::*;
use crate::domain::state::{PaymentStatus, RefundStatus};
use crate::store::{Begin, Claim, Store};

pub(in crate::store) const DAY: i64 = 86_400_000;
/// 2026-01-10T00:00:00Z.
pub(in crate::store) const NOW: i64 = 1_768_003_200_000;

fn claim(key: &str) -> Claim {
    Claim {
        api_key_id: "key_a".into(),
        key: key.into(),
        fingerprint: "fp".into(),
        lease: Default::default(),
    }
}

fn record(id: &str, merchant: &str, at: i64) -> PaymentRecord {
    serde_json::from_value(serde_json::json!({
        "id": id, "merchant_id": merchant, "provider": "mock", "method": "barcode",
        "amount_minor": 1000, "currency": "CNY", "status": "pending",
        "order_id": format!("order-{id}"), "description": null, "terminal_id": "t1",
        "auth_code": null, "provider_reference": null, "qr_code": null, "payer": null,
        "failure": null, "metadata": {}, "created_at_ms": at, "updated_at_ms": at,
        "expires_at_ms": null, "refund_reserved_minor": 0, "refunded_minor": 0,
        "provider_step": "not_sent", "api_key_id": "key_a"
    }))
    .unwrap()
}

fn event(kind: EventKind, object_id: &str, at: i64) -> EventRecord {
    EventRecord {
        id: crate::domain::ids::new_id("evt"),
        kind,
        created_at_ms: at,
        object_id: object_id.into(),
        data: serde_json::json!({}),
        object_version: 0,
        object: None,
    }
}

/// A payment of `m_a` created at `at`, and succeeded then if `paid`.
pub(in crate::store) fn pay(store: &Store, id: &str, at: i64, paid: bool) {
    pay_for(store, id, "m_a", at, paid);
}

pub(in crate::store) fn pay_for(store: &Store, id: &str, merchant: &str, at: i64, paid: bool) {
    let begun = store
        .begin_payment(
            &claim(id),
            &record(id, merchant, at),
            &event(EventKind::PaymentCreated, id, at),
        )
        .unwrap();
    assert_eq!(begun, Begin::Created);
    if paid {
        store
            .update_payment(id, |p| {
                p.status = PaymentStatus::Succeeded;
                p.updated_at_ms = at;
                Some(vec![event(EventKind::PaymentSucceeded, &p.id, at)])
            })
            .unwrap()
            .unwrap();
    }
}

/// A refund of 4.00 of `payment_id` at `at`, succeeded then if `done`.
pub(in crate::store) fn refund(store: &Store, id: &str, payment_id: &str, at: i64, done: bool) {
    let refund: RefundRecord = serde_json::from_value(serde_json::json!({
        "id": id, "payment_id": payment_id, "merchant_id": "m_a", "provider": "mock",
        "amount_minor": 400, "currency": "CNY", "status": "pending", "reason": null,
        "provider_reference": null, "failure": null, "created_at_ms": at,
        "updated_at_ms": at, "provider_step": "not_sent", "api_key_id": "key_a"
    }))
    .unwrap();
    let begun = store
        .begin_refund(
            &claim(id),
            &refund,
            &event(EventKind::RefundCreated, id, at),
        )
        .unwrap();
    assert_eq!(begun, Begin::Created);
    if done {
        store
            .update_refund(id, |r, p| {
                r.status = RefundStatus::Succeeded;
                r.updated_at_ms = at;
                p.refunded_minor += r.amount_minor;
                Some(vec![event(EventKind::RefundSucceeded, &r.id, at)])
            })
            .unwrap()
            .unwrap();
    }
}

pub(in crate::store) fn run(
    store: &Store,
    days: u32,
    offset_min: i32,
) -> Result<ArchiveReport, crate::store::StoreError> {
    let offset = move |_: &str| offset_min;
    store.archive(&ArchivePolicy {
        now_ms: NOW,
        older_than_days: days,
        utc_offset_min: &offset,
        segment_payments: 2,
    })
}

pub(in crate::store) fn clean(store: &Store) {
    let report = store.verify().unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

fn listed(store: &Store, merchant: Option<&str>, limit: usize) -> Vec<(String, bool)> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .payments_page(merchant, after.as_deref(), limit, |_| true)
            .unwrap();
        let more = page.len() > limit;
        all.extend(
            page.iter()
                .take(limit)
                .map(|f| (f.record.id.clone(), f.archived)),
        );
        if !more {
            return all;
        }
        after = Some(page[limit - 1].record.id.clone());
    }
}

/// pay_01 and pay_03 (with re_01) are due; pay_02 is pending, pay_04 is recent, pay_05 has a
/// refund pending.
pub(in crate::store) fn shop(store: &Store) {
    pay(store, "pay_01", NOW - 30 * DAY, true);
    pay(store, "pay_02", NOW - 29 * DAY, false);
    pay(store, "pay_03", NOW - 28 * DAY, true);
    refund(store, "re_01", "pay_03", NOW - 27 * DAY, true);
    pay(store, "pay_04", NOW - 2 * DAY, true);
    pay(store, "pay_05", NOW - 26 * DAY, true);
    refund(store, "re_02", "pay_05", NOW - 25 * DAY, false);
}

#[test]
fn due_payments_leave_with_their_refunds_and_events_and_are_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    shop(&store);
    let before = store.payment("pay_03").unwrap().unwrap();
    let events_before = store.events().unwrap().len();

    let report = run(&store, 7, 0).unwrap();
    assert_eq!((report.payments, report.refunds), (2, 1), "{report:?}");
    // pay_01: created, succeeded; pay_03: created, succeeded; re_01: created, succeeded.
    assert_eq!(report.events, 6, "{report:?}");
    assert_eq!(store.events().unwrap().len(), events_before - 6);

    // Gone from the hot trees, found in the archive as they were.
    assert!(store.payment("pay_03").unwrap().is_none());
    let found = store.find_payment("pay_03").unwrap().unwrap();
    assert!(found.archived);
    assert_eq!(found.record, before);
    let re = store.find_refund("re_01").unwrap().unwrap();
    assert!(re.archived);
    assert_eq!(re.record.status, RefundStatus::Succeeded);
    let refunds = store.find_refunds_of("pay_03").unwrap();
    assert_eq!(refunds.len(), 1);
    assert!(
        store
            .find_payment("pay_02")
            .unwrap()
            .is_some_and(|f| !f.archived)
    );
    assert!(store.find_payment("pay_09").unwrap().is_none());

    // One order across hot and archived, whatever the page size.
    let want = [
        ("pay_05", false),
        ("pay_04", false),
        ("pay_03", true),
        ("pay_02", false),
        ("pay_01", true),
    ]
    .map(|(id, archived)| (id.to_owned(), archived));
    for limit in [1, 2, 3, 10] {
        assert_eq!(listed(&store, None, limit), want, "limit {limit}");
        assert_eq!(listed(&store, Some("m_a"), limit), want, "limit {limit}");
    }
    assert!(listed(&store, Some("m_b"), 2).is_empty());

    // The order id is free again (unique within the hot window only).
    pay(&store, "pay_06", NOW, false);
    let again = store
        .begin_payment(
            &claim("k-reuse"),
            &PaymentRecord {
                order_id: Some("order-pay_01".into()),
                ..record("pay_07", "m_a", NOW)
            },
            &event(EventKind::PaymentCreated, "pay_07", NOW),
        )
        .unwrap();
    assert_eq!(again, Begin::Created);
    clean(&store);

    // A second run finds nothing more due; the archive survives a restart.
    assert_eq!(run(&store, 7, 0).unwrap().segments, Vec::<String>::new());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.find_payment("pay_01").unwrap().unwrap().archived);
    let report = store.verify().unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!((report.archived.payments, report.archived.events), (2, 6));
}

#[test]
fn a_run_writes_segments_of_bounded_size_and_lists_merge_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for n in 1..=7 {
        pay(&store, &format!("pay_{n:02}"), NOW - (20 - n) * DAY, true);
    }
    let report = run(&store, 7, 0).unwrap();
    // Two payments a segment: four payment segments; eight events a segment: two for the
    // fourteen events.
    assert_eq!((report.payments, report.events), (7, 14));
    assert_eq!(report.segments.len(), 6, "{report:?}");
    let ids: Vec<String> = listed(&store, None, 3)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        ids,
        (1..=7)
            .rev()
            .map(|n| format!("pay_{n:02}"))
            .collect::<Vec<_>>()
    );
    clean(&store);
}

#[test]
fn days_are_counted_in_the_merchants_offset() {
    // Last change 2026-01-08T20:00Z: the 8th in UTC, the 9th at +08:00. On the 10th (UTC
    // midnight = 08:00 at +08:00), one day old in UTC, not yet at +08:00.
    let last = NOW - 28 * 3_600_000;
    let offset = |minutes: i32| move |_: &str| minutes;
    let policy = |f: &(dyn Fn(&str) -> i32 + Sync)| {
        ArchivePolicy {
            now_ms: NOW,
            older_than_days: 2,
            utc_offset_min: f,
            segment_payments: 10,
        }
        .due("m", last)
    };
    assert!(policy(&offset(0)));
    assert!(!policy(&offset(8 * 60)));
    // And by a run.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pay(&store, "pay_01", last, true);
    assert_eq!(run(&store, 2, 8 * 60).unwrap().payments, 0);
    assert_eq!(run(&store, 2, 0).unwrap().payments, 1);
}

#[test]
fn a_crash_at_any_step_of_a_run_loses_and_duplicates_nothing() {
    for point in [
        CrashPoint::BeforeCommit,
        CrashPoint::AfterCommit,
        CrashPoint::MidRemoval,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        shop(&store);
        store.crash_archive_at(point);
        assert!(run(&store, 7, 0).is_err(), "{point:?}");
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        clean(&store);
        let all = listed(&store, None, 2);
        assert_eq!(all.len(), 5, "{point:?}: {all:?}");
        for id in ["pay_01", "pay_03"] {
            assert!(store.find_payment(id).unwrap().is_some(), "{point:?} {id}");
        }
        // Reopening finished a committed segment's removal; a run finishes the rest.
        let hot_after_open = store.payment("pay_01").unwrap().is_some();
        assert_eq!(
            hot_after_open,
            point == CrashPoint::BeforeCommit,
            "{point:?}"
        );
        let report = run(&store, 7, 0).unwrap();
        let manifest = store.archive.manifest();
        let archived: u64 = manifest
            .segments
            .iter()
            .filter(|s| s.kind == super::SegmentKind::Payments)
            .map(|s| s.lines)
            .sum();
        assert_eq!(archived, 2, "{point:?}: archived once each; {report:?}");
        let stray = std::fs::read_dir(store.archive_dir())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                name.ends_with(".tmp")
                    || !(name == "MANIFEST.json"
                        || manifest
                            .segments
                            .iter()
                            .any(|s| name == s.data_file() || name == s.index_file()))
            })
            .count();
        assert_eq!(stray, 0, "{point:?}");
        assert!(store.payment("pay_01").unwrap().is_none());
        assert_eq!(store.events().unwrap().len(), 6, "{point:?}");
        clean(&store);
    }
}

#[test]
fn a_payment_changed_after_it_was_archived_stays_hot_and_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pay(&store, "pay_01", NOW - 30 * DAY, true);
    store.crash_archive_at(CrashPoint::AfterCommit);
    assert!(run(&store, 7, 0).is_err());
    // Archived, still hot: a refund now changes the hot copy.
    refund(&store, "re_01", "pay_01", NOW, true);
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let found = store.find_payment("pay_01").unwrap().unwrap();
    assert!(!found.archived);
    assert_eq!(found.record.refunded_minor, 400);
    assert_eq!(listed(&store, None, 5), [("pay_01".to_owned(), false)]);
    clean(&store);
    // Later, the newer version is archived too, and is the one found.
    let offset = |_: &str| 0;
    store
        .archive(&ArchivePolicy {
            now_ms: NOW + 30 * DAY,
            older_than_days: 7,
            utc_offset_min: &offset,
            segment_payments: 10,
        })
        .unwrap();
    let found = store.find_payment("pay_01").unwrap().unwrap();
    assert!(found.archived);
    assert_eq!(found.record.refunded_minor, 400);
    assert_eq!(listed(&store, None, 5), [("pay_01".to_owned(), true)]);
    clean(&store);
}

#[test]
fn event_numbers_are_not_handed_out_again_after_the_log_empties() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pay(&store, "pay_01", NOW - 30 * DAY, true);
    let next = store.seq.peek();
    run(&store, 7, 0).unwrap();
    assert!(store.events().unwrap().is_empty());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.seq.peek(), next);
}

#[test]
fn a_damaged_segment_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    shop(&store);
    run(&store, 7, 0).unwrap();
    let segment = store.archive.manifest().segments[0].clone();
    let path = store.archive_dir().join(segment.data_file());
    let mut raw = std::fs::read(&path).unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0xff;
    std::fs::write(&path, raw).unwrap();
    let report = store.verify().unwrap();
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains(&segment.name) && v.contains("checksum")),
        "{:?}",
        report.violations
    );
}
