//! The console's figures, read from the store within the signed-in key's scope and shaped
//! into the views the pages render. Every day is the merchant's own (its `utc_offset`).

use std::collections::BTreeMap;

use time::{Date, OffsetDateTime, UtcOffset};

use super::view::*;
use crate::api::alerts::visible_to;
use crate::app::AppState;
use crate::auth::{ApiKey, Role};
use crate::domain::money::{Currency, Money};
use crate::domain::records::PaymentRecord;
use crate::domain::state::PaymentStatus;
use crate::store::StoreError;

/// Days the chart covers.
pub const CHART_DAYS: usize = 30;
/// Payments read at most for the day's figures and the chart (newest first).
pub const SCAN_MAX: usize = 100_000;
/// Rows of a payments page.
pub const PAGE_ROWS: usize = 50;
/// Events read back at most for a payment's history, and for the day's refunds.
const EVENTS_SCAN_MAX: usize = 200_000;
/// Open alerts listed at most.
const ALERTS_OPEN_MAX: usize = 1_000;
/// Alerts listed, open and acknowledged, when fewer are open.
const ALERTS_SHOWN: usize = 200;
/// Where the day of a payment-less scope begins: China time, the providers' day.
const DEFAULT_OFFSET_MIN: i32 = 8 * 60;

/// `minor` units of `currency` as a decimal string at its scale (`"12.50"`).
pub fn amount(minor: i64, currency: &str) -> String {
    match Currency::from_code(currency) {
        Some(c) => Money::from_minor(minor, c).decimal().to_string(),
        None => minor.to_string(),
    }
}

fn offset(minutes: i32) -> UtcOffset {
    UtcOffset::from_whole_seconds(minutes * 60).unwrap_or(UtcOffset::UTC)
}

fn at(ms: i64, offset_min: i32) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset(offset_min))
}

pub fn local_date(ms: i64, offset_min: i32) -> Date {
    at(ms, offset_min).date()
}

/// `"2026-12-07 10:32"` in the merchant's time.
pub fn local_time(ms: i64, offset_min: i32) -> String {
    let t = at(ms, offset_min);
    format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute())
}

pub fn offset_of(state: &AppState, merchant_id: &str) -> i32 {
    state
        .merchants
        .get(merchant_id)
        .map_or(DEFAULT_OFFSET_MIN, |m| m.utc_offset_min)
}

/// The offset the page's own day is named in: the key's one merchant's, else China time.
fn scope_offset(state: &AppState, key: &ApiKey) -> i32 {
    match (key.role, key.merchants.len()) {
        (Role::Admin, _) => DEFAULT_OFFSET_MIN,
        (_, 1) => offset_of(state, key.merchants.first().expect("one")),
        _ => DEFAULT_OFFSET_MIN,
    }
}

/// The merchant whose payments alone the key sees, when there is one (a faster scan).
fn only_merchant(key: &ApiKey) -> Option<&str> {
    (key.role != Role::Admin && key.merchants.len() == 1)
        .then(|| key.merchants.first().map(String::as_str))
        .flatten()
}

pub fn payment_row(state: &AppState, p: &PaymentRecord) -> PaymentRow {
    let offset_min = offset_of(state, &p.merchant_id);
    PaymentRow {
        id: p.id.clone(),
        created: local_time(p.created_at_ms, offset_min),
        merchant_id: p.merchant_id.clone(),
        order_id: p.order_id.clone(),
        terminal_id: p.terminal_id.clone(),
        provider: p.provider.clone(),
        method: p.method.as_str().to_owned(),
        status: p.status.as_str().to_owned(),
        amount: amount(p.amount_minor, &p.currency),
        currency: p.currency.clone(),
        refunded: amount(p.refunded_minor, &p.currency),
    }
}

/// The day's figures and the 30-day chart.
pub async fn today(state: &AppState, key: &ApiKey) -> Result<DayFigures, StoreError> {
    let now = state.clock.now_ms();
    let page_offset = scope_offset(state, key);
    let page_today = local_date(now, page_offset);
    let first_day = page_today - time::Duration::days(CHART_DAYS as i64 - 1);
    // A day and a half more than the chart: every merchant's first chart day is inside.
    let since_ms = now - (CHART_DAYS as i64 + 2) * 86_400_000;
    let mut takings: BTreeMap<(String, String), (u64, i64)> = BTreeMap::new();
    let mut refunds: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let mut unpaid = 0;
    // (currency) -> (count, provider -> minor per day)
    let mut chart: BTreeMap<String, (u64, BTreeMap<String, Vec<i64>>)> = BTreeMap::new();
    let mut scanned = 0;
    let mut partial = false;
    let mut after: Option<String> = None;
    'scan: loop {
        let page = state
            .store
            .payments_page(only_merchant(key), after.as_deref(), 500, &|p| {
                key.may_act_for(&p.merchant_id)
            })
            .await?;
        let last = page.len() <= 500;
        for found in page.iter().take(500) {
            let p = &found.record;
            after = Some(p.id.clone());
            if p.created_at_ms < since_ms {
                break 'scan;
            }
            scanned += 1;
            if scanned > SCAN_MAX {
                partial = true;
                break 'scan;
            }
            let offset_min = offset_of(state, &p.merchant_id);
            let day = local_date(p.created_at_ms, offset_min);
            let is_today = day == local_date(now, offset_min);
            if p.status == PaymentStatus::Succeeded {
                let index = (day - first_day).whole_days();
                if (0..CHART_DAYS as i64).contains(&index) {
                    let entry = chart.entry(p.currency.clone()).or_default();
                    entry.0 += 1;
                    entry
                        .1
                        .entry(p.provider.clone())
                        .or_insert_with(|| vec![0; CHART_DAYS])[index as usize] += p.amount_minor;
                }
                if is_today {
                    let t = takings
                        .entry((p.provider.clone(), p.currency.clone()))
                        .or_default();
                    t.0 += 1;
                    t.1 += p.amount_minor;
                }
            } else if is_today {
                unpaid += 1;
            }
        }
        if last {
            break;
        }
    }
    // Refunds asked for today, whatever the age of their payment: the log's refund.created
    // events of the last day (every merchant's today began less than a day ago).
    let (created, complete) = state
        .store
        .events_since(now - 86_400_000, EVENTS_SCAN_MAX, &|e| {
            e.kind == crate::domain::events::EventKind::RefundCreated
        })
        .await?;
    partial |= !complete;
    for event in created {
        let Some(found) = state.store.find_refund(&event.object_id).await? else {
            continue;
        };
        let r = found.record;
        let offset_min = offset_of(state, &r.merchant_id);
        let today = local_date(r.created_at_ms, offset_min) == local_date(now, offset_min);
        if today && key.may_act_for(&r.merchant_id) && r.status.as_str() != "failed" {
            let t = refunds.entry(r.currency.clone()).or_default();
            t.0 += 1;
            t.1 += r.amount_minor;
        }
    }
    let open_alerts = state
        .store
        .alerts_page(None, 100_000, &|a| {
            a.acknowledged_at_ms.is_none() && visible_to(key, a)
        })
        .await?
        .len();
    // The chart shows the currency most payments were made in.
    let chart =
        chart
            .into_iter()
            .max_by_key(|(_, (count, _))| *count)
            .map(|(currency, (_, series))| Chart {
                scale: Currency::from_code(&currency).map_or(0, |c| u32::from(c.exponent())),
                currency,
                days: (0..CHART_DAYS as i64)
                    .map(|i| (first_day + time::Duration::days(i)).to_string())
                    .collect(),
                series: series
                    .into_iter()
                    .map(|(provider, minor)| Series { provider, minor })
                    .collect(),
            });
    Ok(DayFigures {
        date: page_today.to_string(),
        takings: takings
            .into_iter()
            .map(|((provider, currency), (count, minor))| Takings {
                amount: amount(minor, &currency),
                provider,
                currency,
                count,
            })
            .collect(),
        refunds: refunds
            .into_iter()
            .map(|(currency, (count, minor))| Totals {
                amount: amount(minor, &currency),
                currency,
                count,
            })
            .collect(),
        unpaid,
        open_alerts,
        chart,
        partial,
    })
}

/// The search's filters, checked.
pub struct Filters {
    order_id: Option<String>,
    terminal_id: Option<String>,
    status: Option<PaymentStatus>,
    date: Option<Date>,
}

pub fn filters(query: &PaymentQuery) -> Result<Filters, QueryProblem> {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let status = match query.status.trim() {
        "" => None,
        s => Some(PaymentStatus::parse(s).ok_or(QueryProblem::BadStatus)?),
    };
    let date = match query.date.trim() {
        "" => None,
        d => Some(parse_date(d).ok_or(QueryProblem::BadDate)?),
    };
    Ok(Filters {
        order_id: text(&query.order_id),
        terminal_id: text(&query.terminal_id),
        status,
        date,
    })
}

/// `YYYY-MM-DD`, a real day.
fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// A page of the payments `filters` keep, newest first, after the payment `after`; and the
/// id to continue after when there are more.
pub async fn search(
    state: &AppState,
    key: &ApiKey,
    filters: &Filters,
    after: Option<&str>,
) -> Result<(Vec<PaymentRow>, Option<String>), StoreError> {
    let keep = |p: &PaymentRecord| {
        key.may_act_for(&p.merchant_id)
            && filters
                .order_id
                .as_ref()
                .is_none_or(|o| p.order_id.as_ref() == Some(o))
            && filters
                .terminal_id
                .as_ref()
                .is_none_or(|t| p.terminal_id.as_ref() == Some(t))
            && filters.status.is_none_or(|s| p.status == s)
            && filters
                .date
                .is_none_or(|d| local_date(p.created_at_ms, offset_of(state, &p.merchant_id)) == d)
    };
    // An order id names at most one hot payment per merchant: the index finds it without
    // reading the others (archived payments are found by the scan below).
    if let (Some(order_id), None) = (&filters.order_id, after) {
        let merchants: Vec<String> = match key.role {
            Role::Admin => state
                .merchants
                .list_from(None)
                .iter()
                .map(|m| m.id.clone())
                .collect(),
            _ => key.merchants.iter().cloned().collect(),
        };
        let mut found = Vec::new();
        for merchant in &merchants {
            if let Some(p) = state.store.payment_by_order_id(merchant, order_id).await?
                && keep(&p)
            {
                found.push(payment_row(state, &p));
            }
        }
        if !found.is_empty() {
            return Ok((found, None));
        }
    }
    let mut page = state
        .store
        .payments_page(only_merchant(key), after, PAGE_ROWS, &keep)
        .await?;
    let more = page.len() > PAGE_ROWS;
    page.truncate(PAGE_ROWS);
    let next = more
        .then(|| page.last().map(|p| p.record.id.clone()))
        .flatten();
    Ok((
        page.iter().map(|p| payment_row(state, &p.record)).collect(),
        next,
    ))
}

/// A payment's page, if the key may see it.
pub struct PaymentPage {
    pub payment: PaymentDetail,
    pub record: PaymentRecord,
    pub refunds: Vec<RefundRow>,
    pub events: Vec<EventRow>,
    /// False when the log was read back only so far: older events are not shown.
    pub events_complete: bool,
    /// What is left to refund (minor units).
    pub refundable_minor: i64,
}

pub enum Lookup<T> {
    Found(T),
    NotFound,
    Forbidden,
}

pub async fn payment_page(
    state: &AppState,
    key: &ApiKey,
    id: &str,
) -> Result<Lookup<PaymentPage>, StoreError> {
    // Only an admin may tell "missing" from "not yours" (API.md §2).
    let hidden = if key.role == Role::Admin {
        Lookup::NotFound
    } else {
        Lookup::Forbidden
    };
    let Some(found) = state.store.find_payment(id).await? else {
        return Ok(hidden);
    };
    let p = found.record;
    if !key.may_act_for(&p.merchant_id) {
        return Ok(hidden);
    }
    let offset_min = offset_of(state, &p.merchant_id);
    let refunds: Vec<_> = state
        .store
        .find_refunds_of(&p.id)
        .await?
        .into_iter()
        .map(|r| r.record)
        .collect();
    let mut objects: Vec<&str> = vec![p.id.as_str()];
    objects.extend(refunds.iter().map(|r| r.id.as_str()));
    let (events, events_complete) = if found.archived {
        (Vec::new(), true)
    } else {
        state
            .store
            .events_since(p.created_at_ms - 1000, EVENTS_SCAN_MAX, &|e| {
                objects.contains(&e.object_id.as_str())
            })
            .await?
    };
    let payment = PaymentDetail {
        summary: payment_row(state, &p),
        description: p.description.clone(),
        updated: local_time(p.updated_at_ms, offset_min),
        provider_reference: p.provider_reference.clone(),
        failure: p
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.code, f.message)),
        metadata: p
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        archived: found.archived,
    };
    let refund_rows = refunds
        .iter()
        .map(|r| RefundRow {
            id: r.id.clone(),
            created: local_time(r.created_at_ms, offset_min),
            amount: amount(r.amount_minor, &p.currency),
            status: r.status.as_str().to_owned(),
            reason: r.reason.clone(),
        })
        .collect();
    let events = events
        .iter()
        .map(|e| EventRow {
            at: local_time(e.created_at_ms, offset_min),
            kind: e.kind.as_str().to_owned(),
        })
        .collect();
    let refundable_minor = if found.archived || p.status != PaymentStatus::Succeeded {
        0
    } else {
        (p.amount_minor - p.refund_reserved_minor).max(0)
    };
    Ok(Lookup::Found(PaymentPage {
        payment,
        record: p,
        refunds: refund_rows,
        events,
        events_complete,
        refundable_minor,
    }))
}

fn subject_parts(s: &crate::domain::records::AlertSubject) -> Vec<SubjectPart> {
    [
        ("terminal", &s.terminal_id),
        ("merchant", &s.merchant_id),
        ("api_key", &s.api_key_id),
        ("payer", &s.payer),
        ("provider", &s.provider),
    ]
    .into_iter()
    .filter_map(|(kind, value)| {
        value.as_ref().map(|value| SubjectPart {
            kind,
            value: value.clone(),
        })
    })
    .collect()
}

/// Alerts (open first, then newest first) and the blocks in force, within the key's scope.
pub async fn alerts(
    state: &AppState,
    key: &ApiKey,
) -> Result<(Vec<AlertRow>, Vec<BlockRow>), StoreError> {
    let now = state.clock.now_ms();
    // Every open alert (however old), then the newest acknowledged ones.
    let mut alerts = state
        .store
        .alerts_page(None, ALERTS_OPEN_MAX, &|a| {
            a.acknowledged_at_ms.is_none() && visible_to(key, a)
        })
        .await?;
    alerts.truncate(ALERTS_OPEN_MAX);
    let room = ALERTS_SHOWN.saturating_sub(alerts.len());
    let mut done = state
        .store
        .alerts_page(None, room, &|a| {
            a.acknowledged_at_ms.is_some() && visible_to(key, a)
        })
        .await?;
    done.truncate(room);
    alerts.extend(done);
    let offset_min = scope_offset(state, key);
    let rows = alerts
        .iter()
        .map(|a| AlertRow {
            id: a.id.clone(),
            created: local_time(a.created_at_ms, offset_min),
            rule: a.rule.clone(),
            severity: a.severity.clone(),
            subject: subject_parts(&a.subject),
            summary: a.summary.clone(),
            evidence: a.evidence.to_string(),
            count: a.count,
            acknowledged: a.acknowledged_at_ms.is_some(),
        })
        .collect();
    let blocks = state
        .store
        .blocks()
        .await?
        .into_iter()
        .filter(|b| b.expires_at_ms > now && key.may_act_for(&b.merchant_id))
        .map(|b| BlockRow {
            subject: match &b.api_key_id {
                Some(k) => vec![SubjectPart {
                    kind: "api_key",
                    value: k.clone(),
                }],
                None => vec![
                    SubjectPart {
                        kind: "terminal",
                        value: b.terminal_id.clone(),
                    },
                    SubjectPart {
                        kind: "merchant",
                        value: b.merchant_id.clone(),
                    },
                ],
            },
            until: local_time(b.expires_at_ms, offset_of(state, &b.merchant_id)),
            rule: b.rule,
            id: b.id,
        })
        .collect();
    Ok((rows, blocks))
}

/// The merchants in the key's scope, with their onboarding and settlement accounts.
pub async fn merchants(state: &AppState, key: &ApiKey) -> Result<Vec<MerchantRow>, StoreError> {
    let mut rows = Vec::new();
    for m in state.merchants.list_from(None) {
        if !key.may_act_for(&m.id) {
            continue;
        }
        let (status, activations, accounts) = match m.source {
            crate::merchants::MerchantSource::Config => ("configured".to_owned(), vec![], vec![]),
            crate::merchants::MerchantSource::Api => {
                let status = state
                    .store
                    .merchant_record(&m.id)
                    .await?
                    .map_or_else(|| "unknown".to_owned(), |r| r.status.as_str().to_owned());
                let activations = state
                    .store
                    .activations_of(&m.id)
                    .await?
                    .into_iter()
                    .map(|a| ActivationRow {
                        provider: a.provider,
                        status: a.status.as_str().to_owned(),
                        next_step: a.next_step.as_ref().and_then(|s| {
                            s.get("type").and_then(|t| t.as_str()).map(str::to_owned)
                        }),
                        next_step_url: a
                            .next_step
                            .as_ref()
                            .and_then(|s| s.get("url").and_then(|u| u.as_str()))
                            .filter(|u| u.starts_with("https://"))
                            .map(str::to_owned),
                        rejection_reason: a.rejection_reason,
                    })
                    .collect();
                let accounts = state
                    .store
                    .bank_accounts_of(&m.id)
                    .await?
                    .into_iter()
                    .map(|a| AccountRow {
                        provider: a.provider,
                        bank_name: a.bank_name,
                        last4: a.account_number_last4,
                        status: a.status.as_str().to_owned(),
                        is_default: a.is_default,
                    })
                    .collect();
                (status, activations, accounts)
            }
        };
        rows.push(MerchantRow {
            id: m.id.clone(),
            name: m.name.clone(),
            status,
            activations,
            accounts,
        });
    }
    Ok(rows)
}
