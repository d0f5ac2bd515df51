//! Reconciliations (API.md §14): `POST /v1/reconciliations` runs one for a merchant,
//! provider and day, downloading the provider's bill (a JSON body) or reading the bill the
//! merchant uploads (`multipart/form-data`, the file as downloaded from the provider's
//! portal, under a body limit of its own); `GET /v1/reconciliations`, `/{id}` and
//! `/{id}/discrepancies` (JSON, or CSV with `Accept: text/csv`). Role erp and above, for
//! the merchants the key acts for.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiPath, ApiQuery, RawBody, parse_json};
use super::list::{List, PageParams};
use super::payments::{money_text, rfc3339_ms};
use crate::app::AppState;
use crate::auth::Role;
use crate::domain::ids::new_id;
use crate::domain::reconciliation::{Discrepancy, ReconciliationRecord, Totals};
use crate::idempotency::Answer;
use crate::reconciliation::{ReconcileError, Run, Upload};

/// What one side counts for the day.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsObject {
    pub payments: u64,
    /// Sum of the payments, as a decimal string.
    pub gross: String,
    pub refunds: u64,
    pub refunded: String,
    /// Fees charged less fees given back, exactly as stated (`null` where this side does
    /// not know them).
    pub fees: Option<String>,
    /// Gross less refunds, less fees when known: what is to be settled.
    pub net: String,
}

fn exponent_of(currency: &str) -> u8 {
    crate::domain::money::Currency::from_code(currency).map_or(2, |c| c.exponent())
}

/// An exact amount with at least the currency's decimals (`0.20`), more where it has them
/// (WeChat Pay's fees below the fen: `0.075`).
fn exact(value: rust_decimal::Decimal, currency: &str) -> String {
    let mut value = value.normalize();
    let exponent = u32::from(exponent_of(currency));
    if value.scale() < exponent {
        value.rescale(exponent);
    }
    value.to_string()
}

fn totals(t: &Totals, currency: &str) -> TotalsObject {
    TotalsObject {
        payments: t.payments,
        gross: money_text(t.gross_minor, currency),
        refunds: t.refunds,
        refunded: money_text(t.refunded_minor, currency),
        fees: t.fees.map(|f| exact(f, currency)),
        net: exact(t.net(exponent_of(currency)), currency),
    }
}

/// The bill a run read.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillObject {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    pub rows: u64,
}

/// How many discrepancies a run found.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscrepancyCounts {
    pub total: usize,
    pub critical: usize,
    pub unresolved: usize,
    /// By kind (only the kinds found).
    #[schema(value_type = Object)]
    pub by_kind: std::collections::BTreeMap<String, usize>,
}

/// A reconciliation run (API.md §14).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationObject {
    pub id: String,
    /// Always `"reconciliation"`.
    pub object: &'static str,
    pub merchant_id: String,
    pub provider: String,
    /// The provider's day, `YYYY-MM-DD` (China time for Alipay and WeChat Pay).
    pub date: String,
    /// `completed` or `bill_not_ready`.
    pub status: String,
    /// `download`, `upload`, or `none` (the provider has no bill: nothing happened).
    pub source: String,
    pub currency: String,
    pub bill: Option<BillObject>,
    /// The provider's words when its bill is not ready.
    pub message: Option<String>,
    pub ours: TotalsObject,
    pub theirs: TotalsObject,
    pub discrepancies: DiscrepancyCounts,
    pub created_at: String,
}

fn snake<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl From<&ReconciliationRecord> for ReconciliationObject {
    fn from(r: &ReconciliationRecord) -> Self {
        let mut by_kind = std::collections::BTreeMap::new();
        for d in &r.discrepancies {
            *by_kind.entry(d.kind.as_str().to_owned()).or_insert(0) += 1;
        }
        ReconciliationObject {
            id: r.id.clone(),
            object: "reconciliation",
            merchant_id: r.merchant_id.clone(),
            provider: r.provider.clone(),
            date: r.date.clone(),
            status: snake(&r.status),
            source: snake(&r.source),
            currency: r.currency.clone(),
            bill: r.bill.as_ref().map(|b| BillObject {
                name: b.name.clone(),
                sha256: b.sha256.clone(),
                bytes: b.bytes,
                rows: b.rows,
            }),
            message: r.message.clone(),
            ours: totals(&r.ours, &r.currency),
            theirs: totals(&r.theirs, &r.currency),
            discrepancies: DiscrepancyCounts {
                total: r.discrepancies.len(),
                critical: r
                    .discrepancies
                    .iter()
                    .filter(|d| d.kind.is_critical())
                    .count(),
                unresolved: r
                    .discrepancies
                    .iter()
                    .filter(|d| d.resolution.is_none())
                    .count(),
                by_kind,
            },
            created_at: rfc3339_ms(r.created_at_ms),
        }
    }
}

/// Our side of a discrepancy.
#[derive(Debug, Serialize, ToSchema)]
pub struct OursObject {
    pub payment_id: String,
    pub refund_id: Option<String>,
    pub status: String,
    pub amount: String,
}

/// The provider's side: the bill's row.
#[derive(Debug, Serialize, ToSchema)]
pub struct TheirsObject {
    /// The bill file's line.
    pub line: Option<u32>,
    /// `payment` or `refund`.
    pub kind: String,
    pub payment_id: String,
    pub refund_id: Option<String>,
    pub provider_reference: Option<String>,
    pub amount: String,
    pub fee: Option<String>,
    pub occurred_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolutionObject {
    /// `corrected`, `refunded` or `accepted`.
    pub action: String,
    pub at: String,
    pub note: Option<String>,
}

/// One disagreement between our books and the bill.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscrepancyObject {
    /// `dsc_00001`...: its place in its run.
    pub id: String,
    /// Always `"discrepancy"`.
    pub object: &'static str,
    /// `theirs_only`, `ours_only`, `amount_mismatch`, `status_mismatch`, `stray_charge`,
    /// `missing_refund`, `refund_theirs_only`, `refund_amount_mismatch`,
    /// `refund_status_mismatch`.
    pub kind: String,
    /// `critical` (money moved that the merchant does not know of, or was told had not) or
    /// `warning`.
    pub severity: &'static str,
    pub ours: Option<OursObject>,
    pub theirs: Option<TheirsObject>,
    pub resolution: Option<ResolutionObject>,
}

fn discrepancy(d: &Discrepancy, currency: &str) -> DiscrepancyObject {
    DiscrepancyObject {
        id: d.id.clone(),
        object: "discrepancy",
        kind: d.kind.as_str().into(),
        severity: if d.kind.is_critical() {
            "critical"
        } else {
            "warning"
        },
        ours: d.ours.as_ref().map(|o| OursObject {
            payment_id: o.payment_id.clone(),
            refund_id: o.refund_id.clone(),
            status: o.status.clone(),
            amount: money_text(o.amount_minor, currency),
        }),
        theirs: d.theirs.as_ref().map(|t| TheirsObject {
            line: t.line,
            kind: t.kind.clone(),
            payment_id: t.payment_id.clone(),
            refund_id: t.refund_id.clone(),
            provider_reference: t.provider_reference.clone(),
            amount: money_text(t.amount_minor, currency),
            fee: t.fee.map(|f| exact(f, currency)),
            occurred_at: t.occurred_at.clone(),
        }),
        resolution: d.resolution.as_ref().map(|r| ResolutionObject {
            action: r.action.clone(),
            at: rfc3339_ms(r.at_ms),
            note: r.note.clone(),
        }),
    }
}

/// A run to make: the provider's bill is downloaded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationBody {
    pub merchant_id: String,
    pub provider: String,
    /// The provider's day, `YYYY-MM-DD`.
    pub date: String,
}

/// The same, with the bill uploaded (`multipart/form-data`): the fields above, and the file
/// part `bill` as downloaded from the provider's portal.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ReconciliationUpload {
    pub merchant_id: String,
    pub provider: String,
    pub date: String,
    #[schema(value_type = String, format = Binary)]
    pub bill: Vec<u8>,
}

/// A request to run: its fields, the upload if any, and its fingerprint (API.md §4).
struct Asked {
    body: ReconciliationBody,
    upload: Option<Upload>,
    fingerprint: String,
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Reads a JSON or multipart request.
async fn read(request: Request, state: &Arc<AppState>) -> Result<Asked, ApiError> {
    let path = request.uri().path().to_owned();
    let fingerprint = |canonical: &[u8]| {
        let mut digest = Sha256::new();
        digest.update(format!("POST\n{path}\n").as_bytes());
        digest.update(canonical);
        hex::encode(digest.finalize())
    };
    if !is_multipart(request.headers()) {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        // The route's own limit is the bill's: a JSON body has the others'.
        if bytes.len() > state.body_bytes_max {
            return Err(ApiError::PayloadTooLarge {
                limit_bytes: state.body_bytes_max,
            });
        }
        let body: ReconciliationBody = parse_json(&bytes)?;
        let canonical = serde_json::json!({"merchant_id": body.merchant_id, "provider": body.provider, "date": body.date});
        return Ok(Asked {
            fingerprint: fingerprint(canonical.to_string().as_bytes()),
            body,
            upload: None,
        });
    }
    let limit_bytes = state.bill_upload_bytes_max;
    let mut form = axum::extract::Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::invalid("multipart_invalid", e.body_text(), None))?;
    let (mut merchant_id, mut provider, mut date, mut bill) = (None, None, None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge { limit_bytes });
            }
            Err(e) => return Err(ApiError::invalid("multipart_invalid", e.body_text(), None)),
        };
        let name = field.name().unwrap_or("").to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit_bytes }
            } else {
                ApiError::invalid("multipart_invalid", e.body_text(), None)
            }
        })?;
        let text = || {
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                ApiError::invalid(
                    "parameter_invalid",
                    format!("{name} is not UTF-8 text"),
                    Some(&name),
                )
            })
        };
        let slot = match name.as_str() {
            "merchant_id" => &mut merchant_id,
            "provider" => &mut provider,
            "date" => &mut date,
            "bill" => {
                if bill
                    .replace((file_name.unwrap_or_else(|| "bill".into()), bytes.to_vec()))
                    .is_some()
                {
                    return Err(ApiError::invalid(
                        "parameter_invalid",
                        "the part bill comes twice",
                        Some("bill"),
                    ));
                }
                continue;
            }
            other => {
                return Err(ApiError::invalid(
                    "parameter_unknown",
                    format!(
                        "unknown part {other:?}: the form has merchant_id, provider, date and bill"
                    ),
                    Some(other),
                ));
            }
        };
        if slot.replace(text()?).is_some() {
            return Err(ApiError::invalid(
                "parameter_invalid",
                format!("the part {name} comes twice"),
                Some(&name),
            ));
        }
    }
    let missing = |name: &str| {
        ApiError::invalid(
            "parameter_missing",
            format!("the form has no {name}"),
            Some(name),
        )
    };
    let body = ReconciliationBody {
        merchant_id: merchant_id.ok_or_else(|| missing("merchant_id"))?,
        provider: provider.ok_or_else(|| missing("provider"))?,
        date: date.ok_or_else(|| missing("date"))?,
    };
    let (name, content) = bill.ok_or_else(|| missing("bill"))?;
    if content.is_empty() {
        return Err(ApiError::invalid(
            "parameter_invalid",
            "the bill is empty",
            Some("bill"),
        ));
    }
    let canonical = serde_json::json!({
        "merchant_id": body.merchant_id, "provider": body.provider, "date": body.date,
        "bill_sha256": hex::encode(Sha256::digest(&content)),
    });
    Ok(Asked {
        fingerprint: fingerprint(canonical.to_string().as_bytes()),
        body,
        upload: Some(Upload { name, content }),
    })
}

impl From<ReconcileError> for ApiError {
    fn from(e: ReconcileError) -> Self {
        match e {
            ReconcileError::BadDate(m) => ApiError::invalid("parameter_invalid", m, Some("date")),
            ReconcileError::UnknownMerchant(id) => ApiError::NotFound {
                kind: "merchant",
                id,
            },
            ReconcileError::NotSupported(m) => ApiError::Unprocessable {
                code: "wallet_not_supported",
                message: m,
                param: Some("provider".into()),
            },
            ReconcileError::BadBill(m) => ApiError::Unprocessable {
                code: "bill_invalid",
                message: format!("the bill cannot be read: {m}"),
                param: Some("bill".into()),
            },
            ReconcileError::Unavailable(m) => ApiError::Provider {
                status: StatusCode::BAD_GATEWAY,
                code: "provider_unavailable".into(),
                message: format!(
                    "the provider's bill could not be had: {m}; retry with the same key"
                ),
                payment: None,
            },
            ReconcileError::Store(e) => e.into(),
        }
    }
}

/// Runs a reconciliation.
#[utoipa::path(post, path = "/v1/reconciliations", tag = "reconciliations",
    request_body(content(
        (ReconciliationBody = "application/json"),
        (ReconciliationUpload = "multipart/form-data"),
    )),
    params(("Idempotency-Key" = String, Header, description = "Unique per operation")),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "The run: completed, or the bill not ready yet", body = ReconciliationObject),
        (status = 400, description = "Invalid body or date", body = ErrorBody),
        (status = 403, description = "Role below erp, or another merchant's", body = ErrorBody),
        (status = 404, description = "No such merchant", body = ErrorBody),
        (status = 413, description = "The bill is larger than server.bill_upload_bytes_max", body = ErrorBody),
        (status = 422, description = "The bill cannot be read (bill_invalid, naming the line), or the wallet has no bills", body = ErrorBody),
        (status = 502, description = "The provider's bill could not be had; retry with the same key", body = ErrorBody),
    ))]
pub async fn create_reconciliation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    request: Request,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Erp)?;
    let key = super::idempotency::idempotency_key(request.headers().get("idempotency-key"))?;
    let asked = read(request, &state).await?;
    caller.require_merchant(&asked.body.merchant_id)?;
    let Asked {
        body,
        upload,
        fingerprint,
    } = asked;
    let upload = std::sync::Mutex::new(upload);
    super::merchants::idempotently(
        &state,
        &caller,
        &key,
        &fingerprint,
        new_id("rec"),
        |id| async {
            let run = Run {
                id,
                merchant_id: &body.merchant_id,
                provider: &body.provider,
                date: &body.date,
                upload: upload.lock().map(|mut u| u.take()).unwrap_or(None),
                api_key_id: Some(&caller.0.id),
                keep_not_ready: true,
            };
            let record = state.reconciler.run(run).await?;
            super::merchants::json_body(201, &ReconciliationObject::from(&record))
        },
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationFilters {
    pub merchant_id: Option<String>,
    pub provider: Option<String>,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    pub limit: Option<usize>,
    pub starting_after: Option<String>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/reconciliations", tag = "reconciliations",
    params(ReconciliationFilters),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of runs", body = List<ReconciliationObject>),
        (status = 403, description = "Role below erp, or another merchant's", body = ErrorBody),
    ))]
pub async fn list_reconciliations(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(filters): ApiQuery<ReconciliationFilters>,
) -> Result<Json<List<ReconciliationObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    if let Some(merchant) = &filters.merchant_id {
        caller.require_merchant(merchant)?;
    }
    let limit = PageParams {
        limit: filters.limit,
        starting_after: None,
    }
    .limit()?;
    let keep = |r: &ReconciliationRecord| {
        caller.0.may_act_for(&r.merchant_id)
            && filters
                .merchant_id
                .as_ref()
                .is_none_or(|m| &r.merchant_id == m)
            && filters.provider.as_ref().is_none_or(|p| &r.provider == p)
            && filters.date.as_ref().is_none_or(|d| &r.date == d)
    };
    let page = state
        .store
        .reconciliations_page(filters.starting_after.as_deref(), limit, &keep)
        .await?;
    Ok(Json(List::page(
        page.iter().map(ReconciliationObject::from),
        limit,
    )))
}

/// A run the caller may see.
async fn visible(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> Result<ReconciliationRecord, ApiError> {
    let found = state.store.reconciliation(&id).await?;
    match found {
        Some(r) if caller.0.may_act_for(&r.merchant_id) => Ok(r),
        Some(r) => Err(ApiError::Forbidden {
            message: format!("this API key may not act for merchant {}", r.merchant_id),
        }),
        None => Err(ApiError::NotFound {
            kind: "reconciliation",
            id,
        }),
    }
}

/// One run.
#[utoipa::path(get, path = "/v1/reconciliations/{id}", tag = "reconciliations",
    params(("id" = String, Path, description = "rec_...")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The run", body = ReconciliationObject),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub async fn get_reconciliation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReconciliationObject>, ApiError> {
    caller.require_role(Role::Erp)?;
    let run = visible(&state, &caller, id).await?;
    Ok(Json(ReconciliationObject::from(&run)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiscrepancyFilters {
    pub limit: Option<usize>,
    /// A discrepancy's id: the page starts after it.
    pub starting_after: Option<String>,
}

/// A run's discrepancies in the order found; `Accept: text/csv` gives them all as CSV.
#[utoipa::path(get, path = "/v1/reconciliations/{id}/discrepancies", tag = "reconciliations",
    params(("id" = String, Path, description = "rec_..."), DiscrepancyFilters),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of discrepancies (or all, as CSV)", body = List<DiscrepancyObject>),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub async fn list_discrepancies(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(filters): ApiQuery<DiscrepancyFilters>,
) -> Result<Response, ApiError> {
    caller.require_role(Role::Erp)?;
    let limit = PageParams {
        limit: filters.limit,
        starting_after: None,
    }
    .limit()?;
    let run = visible(&state, &caller, id).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        return Ok(csv(&run).into_response());
    }
    let start = match &filters.starting_after {
        None => 0,
        Some(after) => run
            .discrepancies
            .iter()
            .position(|d| &d.id == after)
            .map(|i| i + 1)
            .ok_or_else(|| {
                ApiError::invalid(
                    "parameter_invalid",
                    format!("starting_after {after:?} is not a discrepancy of this run"),
                    Some("starting_after"),
                )
            })?,
    };
    let page = run
        .discrepancies
        .iter()
        .skip(start)
        .take(limit + 1)
        .map(|d| discrepancy(d, &run.currency));
    Ok(Json(List::page(page, limit)).into_response())
}

/// A CSV cell: quoted when it must be, and never read as a formula by a spreadsheet.
fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) && text.parse::<f64>().is_err()
    {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv(run: &ReconciliationRecord) -> Response {
    let mut out = String::from(
        "id,kind,severity,payment_id,refund_id,our_status,our_amount,their_line,their_kind,their_amount,their_fee,their_reference,their_time,resolution\r\n",
    );
    for d in &run.discrepancies {
        let o = discrepancy(d, &run.currency);
        let ours = o.ours.as_ref();
        let theirs = o.theirs.as_ref();
        let fields = [
            o.id.clone(),
            o.kind.clone(),
            o.severity.into(),
            ours.map(|x| x.payment_id.clone())
                .or_else(|| theirs.map(|t| t.payment_id.clone()))
                .unwrap_or_default(),
            ours.and_then(|x| x.refund_id.clone())
                .or_else(|| theirs.and_then(|t| t.refund_id.clone()))
                .unwrap_or_default(),
            ours.map(|x| x.status.clone()).unwrap_or_default(),
            ours.map(|x| x.amount.clone()).unwrap_or_default(),
            theirs
                .and_then(|t| t.line)
                .map(|l| l.to_string())
                .unwrap_or_default(),
            theirs.map(|t| t.kind.clone()).unwrap_or_default(),
            theirs.map(|t| t.amount.clone()).unwrap_or_default(),
            theirs.and_then(|t| t.fee.clone()).unwrap_or_default(),
            theirs
                .and_then(|t| t.provider_reference.clone())
                .unwrap_or_default(),
            theirs
                .and_then(|t| t.occurred_at.clone())
                .unwrap_or_default(),
            o.resolution
                .as_ref()
                .map(|r| r.action.clone())
                .unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|f| cell(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-discrepancies.csv\"", run.id),
            ),
        ],
        out,
    )
        .into_response()
}
