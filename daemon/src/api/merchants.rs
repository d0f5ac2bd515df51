//! Merchants (API.md §8): the config's and those onboarded through the API, their
//! activations at providers, their settlement bank accounts, and the audit log. Identity and
//! account numbers are accepted here, sealed before they are stored, and only ever shown
//! masked.

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::idempotency::Idempotent;
use super::json::{ApiPath, ApiQuery};
use super::list::{List, PageParams};
use super::payments::rfc3339_ms;
use crate::app::AppState;
use crate::auth::Role;
use crate::domain::ids::new_id;
use crate::domain::records::{ActivationRecord, AuditRecord, BankAccountRecord, MerchantRecord};
use crate::idempotency::{self, Answer, ClaimError, Claimed};
use crate::merchants::details::ApplicationDetails;
use crate::merchants::documents::Document;
use crate::merchants::onboarding::{self, AccountInput, Actor, MerchantInput, OnboardingError};
use crate::merchants::{Merchant, MerchantSource};
use crate::server::ClientAddr;
use crate::store::PaymentStore;

/// The legal person of a merchant, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegalPersonObject {
    pub name: String,
    /// Masked: `1101**********1234`.
    pub id_number: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactObject {
    pub name: String,
    pub phone: String,
    pub email: String,
}

/// A merchant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantObject {
    pub id: String,
    /// Always `"merchant"`.
    pub object: &'static str,
    pub name: String,
    /// `draft`, `onboarding` or `active` (config merchants are always `active`).
    pub status: String,
    /// `config` (declared in the config file) or `api` (created through the API).
    pub source: &'static str,
    /// Providers the merchant collects through now.
    pub providers: Vec<String>,
    pub business_license_no: Option<String>,
    pub tax_registration_no: Option<String>,
    pub legal_person: Option<LegalPersonObject>,
    pub contact: Option<ContactObject>,
    pub industry_code: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl MerchantObject {
    fn new(merchant: &Merchant, record: Option<&MerchantRecord>) -> MerchantObject {
        let source = match merchant.source {
            MerchantSource::Config => "config",
            MerchantSource::Api => "api",
        };
        MerchantObject {
            id: merchant.id.clone(),
            object: "merchant",
            name: merchant.name.clone(),
            status: record.map_or("active", |r| r.status.as_str()).to_owned(),
            source,
            providers: merchant.providers.keys().cloned().collect(),
            business_license_no: record.map(|r| r.business_license_no.clone()),
            tax_registration_no: record.map(|r| r.tax_registration_no.clone()),
            legal_person: record.map(|r| LegalPersonObject {
                name: r.legal_person_name.clone(),
                id_number: r.legal_person_id_masked.clone(),
            }),
            contact: record.map(|r| ContactObject {
                name: r.contact_name.clone(),
                phone: r.contact_phone.clone(),
                email: r.contact_email.clone(),
            }),
            industry_code: record.map(|r| r.industry_code.clone()),
            created_at: record.map(|r| rfc3339_ms(r.created_at_ms)),
            updated_at: record.map(|r| rfc3339_ms(r.updated_at_ms)),
        }
    }
}

/// A merchant's application to a provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivationObject {
    pub id: String,
    /// Always `"activation"`.
    pub object: &'static str,
    pub merchant_id: String,
    pub provider: String,
    /// `submitted`, `under_review`, `active` or `rejected`.
    pub status: String,
    pub rejection_reason: Option<String>,
    /// What the merchant must do for the application to go on, while it waits for them: an
    /// object with a `type` and what the provider gives for it, passed on as the provider's
    /// plugin tells it. WeChat Pay's: `sign_agreement` (`url`: the super administrator
    /// signs there), `confirm_account` (`url`), `verify_account` (`remittance`: the
    /// verification payment to make). `null` otherwise.
    #[schema(value_type = Option<Object>)]
    pub next_step: Option<serde_json::Value>,
    pub provider_reference: Option<String>,
    pub submissions: u32,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ActivationRecord> for ActivationObject {
    fn from(a: &ActivationRecord) -> Self {
        ActivationObject {
            id: a.id.clone(),
            object: "activation",
            merchant_id: a.merchant_id.clone(),
            provider: a.provider.clone(),
            status: a.status.as_str().to_owned(),
            rejection_reason: a.rejection_reason.clone(),
            next_step: a.next_step.clone(),
            provider_reference: a.provider_reference.clone(),
            submissions: a.submissions,
            created_at: rfc3339_ms(a.created_at_ms),
            updated_at: rfc3339_ms(a.updated_at_ms),
        }
    }
}

/// A settlement bank account (the number is never shown, only its last four digits).
#[derive(Debug, Serialize, ToSchema)]
pub struct BankAccountObject {
    pub id: String,
    /// Always `"bank_account"`.
    pub object: &'static str,
    pub merchant_id: String,
    pub provider: String,
    pub account_holder: String,
    pub account_number_last4: String,
    pub bank_name: String,
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_area_code: Option<String>,
    /// `pending_verification`, `verified` or `failed`.
    pub status: String,
    /// The provider's verification step for the merchant, while pending.
    #[schema(value_type = Option<Object>)]
    pub verification: Option<serde_json::Value>,
    pub failure_reason: Option<String>,
    /// The provider's number for the binding (Alipay's order, WeChat Pay's settlement
    /// change `application_no`), once it has one: what its support asks for.
    pub provider_reference: Option<String>,
    pub default: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&BankAccountRecord> for BankAccountObject {
    fn from(b: &BankAccountRecord) -> Self {
        BankAccountObject {
            id: b.id.clone(),
            object: "bank_account",
            merchant_id: b.merchant_id.clone(),
            provider: b.provider.clone(),
            account_holder: b.account_holder.clone(),
            account_number_last4: b.account_number_last4.clone(),
            bank_name: b.bank_name.clone(),
            branch: b.branch.clone(),
            bank_area_code: b.bank_area_code.clone(),
            status: b.status.as_str().to_owned(),
            verification: b.verification.clone(),
            failure_reason: b.failure_reason.clone(),
            provider_reference: b.provider_reference.clone(),
            default: b.is_default,
            created_at: rfc3339_ms(b.created_at_ms),
            updated_at: rfc3339_ms(b.updated_at_ms),
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditObject {
    pub id: String,
    /// Always `"audit_entry"`.
    pub object: &'static str,
    pub at: String,
    /// The API key id (`system` for the daemon's own polling).
    pub actor: String,
    pub source: String,
    pub action: String,
    pub merchant_id: String,
    pub object_id: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&AuditRecord> for AuditObject {
    fn from(a: &AuditRecord) -> Self {
        AuditObject {
            id: a.id.clone(),
            object: "audit_entry",
            at: rfc3339_ms(a.at_ms),
            actor: a.actor.clone(),
            source: a.source.clone(),
            action: a.action.clone(),
            merchant_id: a.merchant_id.clone(),
            object_id: a.object_id.clone(),
            details: a.details.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalPersonBody {
    pub name: String,
    /// Resident identity number (GB 11643-1999).
    pub id_number: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: String,
    /// Mainland mobile number.
    pub phone: String,
    pub email: String,
}

/// A merchant's application materials.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantBody {
    pub name: String,
    /// Unified social credit code (GB 32100-2015).
    pub business_license_no: String,
    pub tax_registration_no: String,
    pub legal_person: LegalPersonBody,
    pub contact: ContactBody,
    pub industry_code: String,
}

impl MerchantBody {
    fn input(&self) -> MerchantInput {
        MerchantInput {
            name: self.name.clone(),
            business_license_no: self.business_license_no.clone(),
            tax_registration_no: self.tax_registration_no.clone(),
            legal_person_name: self.legal_person.name.clone(),
            legal_person_id: self.legal_person.id_number.clone(),
            contact_name: self.contact.name.clone(),
            contact_phone: self.contact.phone.clone(),
            contact_email: self.contact.email.clone(),
            industry_code: self.industry_code.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationBody {
    /// The provider to apply to, e.g. `alipay`.
    pub provider: String,
    /// The images the provider's review needs. Passed on to the provider and never stored.
    #[serde(default)]
    pub documents: Option<DocumentsBody>,
    /// What the provider's review needs beyond the merchant's record (WeChat Pay: the
    /// identity card's address and term, the store, the settlement account, ...). Passed on
    /// to the provider and never stored.
    #[serde(default)]
    pub details: Option<ApplicationDetails>,
}

/// An application's images, each a JPEG, PNG or BMP of at most 2 MiB. Which ones a provider
/// needs is its own (WeChat Pay: the licence, both sides of the legal person's card, the
/// store's two photos; an agent's card and authorisation letter when the contact is not the
/// legal person; each beneficial owner's card when the legal person is not one).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentsBody {
    /// The business licence (营业执照).
    pub business_license: Option<DocumentBody>,
    /// The legal person's identity card, the side with the photo (人像面).
    pub id_card_front: Option<DocumentBody>,
    /// The legal person's identity card, the side with the national emblem (国徽面).
    pub id_card_back: Option<DocumentBody>,
    /// The store's entrance, its sign readable (门头照).
    pub store_entrance: Option<DocumentBody>,
    /// The inside of the store (店内环境照).
    pub store_indoor: Option<DocumentBody>,
    /// The agent's identity card, the side with the photo (when the contact is an agent).
    pub contact_id_front: Option<DocumentBody>,
    /// The agent's identity card, the side with the national emblem.
    pub contact_id_back: Option<DocumentBody>,
    /// The merchant's letter authorising the agent, stamped (业务办理授权函).
    pub authorization_letter: Option<DocumentBody>,
    /// Beneficial owner 1's identity card, the side with the photo (and so on to 4).
    pub beneficial_owner_1_id_front: Option<DocumentBody>,
    pub beneficial_owner_1_id_back: Option<DocumentBody>,
    pub beneficial_owner_2_id_front: Option<DocumentBody>,
    pub beneficial_owner_2_id_back: Option<DocumentBody>,
    pub beneficial_owner_3_id_front: Option<DocumentBody>,
    pub beneficial_owner_3_id_back: Option<DocumentBody>,
    pub beneficial_owner_4_id_front: Option<DocumentBody>,
    pub beneficial_owner_4_id_back: Option<DocumentBody>,
}

/// One image.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    /// `image/jpeg`, `image/png` or `image/bmp`.
    pub content_type: String,
    /// The image, base64 (standard alphabet, padded).
    pub data: String,
}

impl std::fmt::Debug for DocumentBody {
    /// Never the image (it may end up in a log line).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentBody")
            .field("content_type", &self.content_type)
            .field("data_chars", &self.data.len())
            .finish()
    }
}

impl DocumentsBody {
    /// The images, checked.
    fn checked(&self) -> Result<Vec<Document>, OnboardingError> {
        [
            ("business_license", &self.business_license),
            ("id_card_front", &self.id_card_front),
            ("id_card_back", &self.id_card_back),
            ("store_entrance", &self.store_entrance),
            ("store_indoor", &self.store_indoor),
            ("contact_id_front", &self.contact_id_front),
            ("contact_id_back", &self.contact_id_back),
            ("authorization_letter", &self.authorization_letter),
            (
                "beneficial_owner_1_id_front",
                &self.beneficial_owner_1_id_front,
            ),
            (
                "beneficial_owner_1_id_back",
                &self.beneficial_owner_1_id_back,
            ),
            (
                "beneficial_owner_2_id_front",
                &self.beneficial_owner_2_id_front,
            ),
            (
                "beneficial_owner_2_id_back",
                &self.beneficial_owner_2_id_back,
            ),
            (
                "beneficial_owner_3_id_front",
                &self.beneficial_owner_3_id_front,
            ),
            (
                "beneficial_owner_3_id_back",
                &self.beneficial_owner_3_id_back,
            ),
            (
                "beneficial_owner_4_id_front",
                &self.beneficial_owner_4_id_front,
            ),
            (
                "beneficial_owner_4_id_back",
                &self.beneficial_owner_4_id_back,
            ),
        ]
        .into_iter()
        .filter_map(|(kind, body)| body.as_ref().map(|b| (kind, b)))
        .map(|(kind, body)| Document::check(kind, &body.content_type, &body.data))
        .collect()
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankAccountBody {
    /// The provider the account settles at (where the merchant is active).
    pub provider: String,
    /// Must be the merchant's name or its legal person's.
    pub account_holder: String,
    /// `corporate` (8 to 30 digits, the default) or `card` (a bank card, Luhn-checked).
    #[serde(default)]
    pub account_type: Option<String>,
    pub account_number: String,
    pub bank_name: String,
    #[serde(default)]
    pub branch: Option<String>,
    /// Administrative division code (GB/T 2260) of the branch's city, e.g. `440300`
    /// (WeChat Pay requires it: its `bank_address_code`).
    #[serde(default)]
    pub bank_area_code: Option<String>,
    /// Make it the default settlement account (the first one always is).
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub merchant_id: String,
}

impl From<OnboardingError> for ApiError {
    fn from(error: OnboardingError) -> ApiError {
        let message = error.to_string();
        match error {
            OnboardingError::Invalid { param, .. } => ApiError::InvalidRequest {
                code: "parameter_invalid",
                message,
                param: Some(param.into()),
            },
            OnboardingError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            OnboardingError::WrongState(_) => ApiError::Unprocessable {
                code: "merchant_not_active",
                message,
                param: None,
            },
            OnboardingError::AccountHolderMismatch(_) => ApiError::Unprocessable {
                code: "account_holder_mismatch",
                message,
                param: Some("account_holder".into()),
            },
            OnboardingError::NotSupported(_) => ApiError::Unprocessable {
                code: "wallet_not_supported",
                message,
                param: Some("provider".into()),
            },
            OnboardingError::NoMasterKey => ApiError::Unavailable {
                code: "encryption_unavailable",
                message,
            },
            OnboardingError::ProviderRefused(_) => ApiError::Provider {
                status: axum::http::StatusCode::PAYMENT_REQUIRED,
                code: "provider_declined".into(),
                message,
                payment: None,
            },
            OnboardingError::ProviderUnavailable(_) => ApiError::Provider {
                status: axum::http::StatusCode::BAD_GATEWAY,
                code: "provider_unavailable".into(),
                message,
                payment: None,
            },
            OnboardingError::Plugin(e) => ApiError::Plugin {
                message: e.to_string(),
            },
            OnboardingError::Store(e) => ApiError::from(e),
        }
    }
}

/// Runs a mutating request once per idempotency key: claims it for `fresh_id` (or the id a
/// crashed attempt claimed), runs `work` with that id, and stores the answer to replay.
/// Client errors are stored too (the same request would fail the same way); server-side
/// ones leave the key open for a retry.
pub(super) async fn idempotently<F, Fut>(
    state: &AppState,
    caller: &Caller,
    key: &str,
    fingerprint: &str,
    fresh_id: String,
    work: F,
) -> Result<Answer, ApiError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<(u16, String), ApiError>>,
{
    let claim = crate::store::Claim {
        api_key_id: caller.0.id.clone(),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        lease: Default::default(),
    };
    let store: Arc<dyn PaymentStore> = state.store.clone();
    let claimed = idempotency::claim(
        &store,
        &state.payments.in_flight,
        &claim,
        fresh_id,
        state.clock.now_ms(),
    )
    .await;
    let (id, _guard) = match claimed {
        Ok(Claimed::Run {
            object_id,
            guard,
            lease,
        }) => (object_id, (guard, lease)),
        Ok(Claimed::Replay(answer)) => {
            state.metrics.count_idempotency_replay();
            return Ok(answer);
        }
        Err(ClaimError::Conflict(conflict)) => {
            super::payments::observe_conflict(state, caller, conflict);
            return Err(ApiError::from(conflict));
        }
        Err(ClaimError::Store(e)) => return Err(e.into()),
    };
    let (status, body) = match work(id).await {
        Ok(answer) => answer,
        Err(error) if error.status().is_client_error() => (error.status().as_u16(), error.body()),
        Err(error) => return Err(error),
    };
    match idempotency::finish(store.as_ref(), &claim, status, body, state.clock.now_ms()).await {
        Ok(answer) => Ok(answer),
        Err(ClaimError::Conflict(conflict)) => {
            super::payments::observe_conflict(state, caller, conflict);
            Err(ApiError::from(conflict))
        }
        Err(ClaimError::Store(e)) => Err(e.into()),
    }
}

/// A new merchant id: onboarded and config merchants share one id space, so never one a
/// config merchant has.
fn fresh_merchant_id(state: &AppState) -> String {
    loop {
        let id = new_id("m");
        if state.merchants.get(&id).is_none() {
            return id;
        }
    }
}

fn actor(caller: &Caller, client: Option<&ClientAddr>) -> Actor {
    Actor {
        key_id: caller.0.id.clone(),
        source: client.map_or_else(|| "unknown".to_owned(), |c| c.0.clone()),
    }
}

pub(super) fn json_body<T: Serialize>(status: u16, value: &T) -> Result<(u16, String), ApiError> {
    Ok((
        status,
        serde_json::to_string(value).map_err(|_| ApiError::Internal)?,
    ))
}

/// An onboarded merchant the caller may act for (scope before existence).
async fn onboarded(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<MerchantRecord, ApiError> {
    caller.require_merchant(id)?;
    state
        .store
        .merchant_record(id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            kind: "merchant",
            id: id.to_owned(),
        })
}

/// Lists the merchants this key may act for (all of them for admin keys).
#[utoipa::path(get, path = "/v1/merchants", tag = "merchants",
    params(PageParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of merchants", body = List<MerchantObject>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Role below erp", body = ErrorBody),
    ))]
pub async fn list_merchants(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<List<MerchantObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    let limit = page.limit()?;
    let mut visible = Vec::new();
    for merchant in state.merchants.list_from(page.starting_after.as_deref()) {
        if !caller.0.may_act_for(&merchant.id) {
            continue;
        }
        let record = state.store.merchant_record(&merchant.id).await?;
        visible.push(MerchantObject::new(&merchant, record.as_ref()));
        if visible.len() > limit {
            break;
        }
    }
    Ok(Json(List::page(visible.into_iter(), limit)))
}

/// One merchant.
#[utoipa::path(get, path = "/v1/merchants/{id}", tag = "merchants",
    params(("id" = String, Path, description = "Merchant id, m_...")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The merchant", body = MerchantObject),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Role below erp, or merchant outside the key's scope", body = ErrorBody),
        (status = 404, description = "No such merchant (admin keys only)", body = ErrorBody),
    ))]
pub async fn get_merchant(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MerchantObject>, ApiError> {
    caller.require_role(Role::Erp)?;
    // Scope before existence, so a merchant outside the scope looks exactly like a missing one.
    caller.require_merchant(&id)?;
    let merchant = state.merchants.get(&id).ok_or(ApiError::NotFound {
        kind: "merchant",
        id: id.clone(),
    })?;
    let record = state.store.merchant_record(&id).await?;
    Ok(Json(MerchantObject::new(&merchant, record.as_ref())))
}

/// Creates a merchant in `draft` (admin): the application materials, validated and with the
/// identity number sealed.
#[utoipa::path(post, path = "/v1/merchants", tag = "merchants",
    request_body = MerchantBody,
    params(("Idempotency-Key" = String, Header, description = "Unique per operation")),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "The merchant, draft", body = MerchantObject),
        (status = 400, description = "A field is invalid (param names it)", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 503, description = "No master key configured", body = ErrorBody),
    ))]
pub async fn create_merchant(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    client: Option<axum::Extension<ClientAddr>>,
    mut request: Idempotent<MerchantBody>,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Admin)?;
    let body = request.body()?;
    let actor = actor(&caller, client.as_deref());
    let input = body.input();
    idempotently(
        &state,
        &caller,
        &request.key,
        &request.fingerprint,
        fresh_merchant_id(&state),
        |id| async {
            let id = id;
            let record =
                onboarding::create_merchant(&state.onboarding, &actor, &id, &input).await?;
            let merchant = state.merchants.get(&id).ok_or(ApiError::Internal)?;
            json_body(201, &MerchantObject::new(&merchant, Some(&record)))
        },
    )
    .await
}

/// Updates a merchant's materials while it is a `draft`.
#[utoipa::path(post, path = "/v1/merchants/{id}", tag = "merchants",
    request_body = MerchantBody,
    params(("id" = String, Path, description = "m_..."), ("Idempotency-Key" = String, Header, description = "Unique per operation")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The merchant", body = MerchantObject),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 422, description = "No longer a draft", body = ErrorBody),
    ))]
pub async fn update_merchant(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    client: Option<axum::Extension<ClientAddr>>,
    ApiPath(id): ApiPath<String>,
    mut request: Idempotent<MerchantBody>,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Erp)?;
    onboarded(&state, &caller, &id).await?;
    let body = request.body()?;
    let actor = actor(&caller, client.as_deref());
    let input = body.input();
    idempotently(
        &state,
        &caller,
        &request.key,
        &request.fingerprint,
        id.clone(),
        |id| async {
            let id = id;
            let record =
                onboarding::update_merchant(&state.onboarding, &actor, &id, &input).await?;
            let merchant = state.merchants.get(&id).ok_or(ApiError::Internal)?;
            json_body(200, &MerchantObject::new(&merchant, Some(&record)))
        },
    )
    .await
}

/// Applies to a provider (or resubmits after a rejection).
#[utoipa::path(post, path = "/v1/merchants/{id}/activations", tag = "merchants",
    request_body = ActivationBody,
    params(("id" = String, Path, description = "m_..."), ("Idempotency-Key" = String, Header, description = "Unique per operation"), ("Paygate-OTP" = Option<String>, Header, description = "A fresh code from the key's authenticator, when it has one and details.settlement_account is given (API.md §2)")),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "The activation", body = ActivationObject),
        (status = 401, description = "Unknown key, or a code needed: otp_required, otp_invalid", body = ErrorBody),
        (status = 429, description = "Too many wrong codes for the key: otp_attempts_exceeded, Retry-After", body = ErrorBody),
        (status = 404, description = "No such merchant", body = ErrorBody),
        (status = 422, description = "The provider is not available", body = ErrorBody),
        (status = 502, description = "The provider is unavailable; retry with the same key", body = ErrorBody),
    ))]
pub async fn create_activation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    client: Option<axum::Extension<ClientAddr>>,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<String>,
    mut request: Idempotent<ActivationBody>,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Erp)?;
    onboarded(&state, &caller, &id).await?;
    let body = request.body()?;
    let actor = actor(&caller, client.as_deref());
    let provider = body.provider.clone();
    let documents = body
        .documents
        .as_ref()
        .map(DocumentsBody::checked)
        .transpose()?
        .unwrap_or_default();
    let details = body.details.clone().unwrap_or_default();
    // An application that names the account the provider settles to decides where the money
    // goes, as binding one does: a fresh code from a key's authenticator.
    if details.settlement_account.is_some() {
        let claim = request.claim(&caller.0.id);
        let replay = super::second_factor::code_or_replay(
            &state,
            &caller.0,
            &claim,
            &headers,
            &actor.source,
        )
        .await?;
        if let Some(answer) = replay {
            return Ok(answer);
        }
    }
    idempotently(
        &state,
        &caller,
        &request.key,
        &request.fingerprint,
        id.clone(),
        |merchant_id| async {
            let merchant_id = merchant_id;
            let activation = onboarding::activate(
                &state.onboarding,
                &actor,
                &merchant_id,
                &provider,
                &documents,
                &details,
            )
            .await?;
            json_body(201, &ActivationObject::from(&activation))
        },
    )
    .await
}

/// A merchant's activations.
#[utoipa::path(get, path = "/v1/merchants/{id}/activations", tag = "merchants",
    params(("id" = String, Path, description = "m_...")),
    security(("api_key" = [])),
    responses((status = 200, description = "The activations", body = List<ActivationObject>)))]
pub async fn list_activations(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<List<ActivationObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    onboarded(&state, &caller, &id).await?;
    let all = state.store.activations_of(&id).await?;
    let count = all.len();
    Ok(Json(List::page(
        all.iter().map(ActivationObject::from),
        count.max(1),
    )))
}

/// One activation.
#[utoipa::path(get, path = "/v1/merchants/{id}/activations/{activation_id}", tag = "merchants",
    params(("id" = String, Path, description = "m_..."), ("activation_id" = String, Path, description = "act_...")),
    security(("api_key" = [])),
    responses((status = 200, description = "The activation", body = ActivationObject),
              (status = 404, description = "No such activation", body = ErrorBody)))]
pub async fn get_activation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath((id, activation_id)): ApiPath<(String, String)>,
) -> Result<Json<ActivationObject>, ApiError> {
    caller.require_role(Role::Erp)?;
    onboarded(&state, &caller, &id).await?;
    let activation = state
        .store
        .activation(&activation_id)
        .await?
        .filter(|a| a.merchant_id == id)
        .ok_or(ApiError::NotFound {
            kind: "activation",
            id: activation_id,
        })?;
    Ok(Json(ActivationObject::from(&activation)))
}

/// Binds a settlement bank account at a provider where the merchant is active.
#[utoipa::path(post, path = "/v1/merchants/{id}/bank_accounts", tag = "merchants",
    request_body = BankAccountBody,
    params(("id" = String, Path, description = "m_..."), ("Idempotency-Key" = String, Header, description = "Unique per operation"), ("Paygate-OTP" = Option<String>, Header, description = "A fresh code from the key's authenticator, when it has one (API.md §2)")),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "The account, pending verification", body = BankAccountObject),
        (status = 401, description = "Unknown key, or a code needed: otp_required, otp_invalid", body = ErrorBody),
        (status = 429, description = "Too many wrong codes for the key: otp_attempts_exceeded, Retry-After", body = ErrorBody),
        (status = 400, description = "Invalid account number", body = ErrorBody),
        (status = 422, description = "Holder mismatch, or not active at the provider", body = ErrorBody),
    ))]
pub async fn create_bank_account(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    client: Option<axum::Extension<ClientAddr>>,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<String>,
    mut request: Idempotent<BankAccountBody>,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Erp)?;
    onboarded(&state, &caller, &id).await?;
    let body = request.body()?;
    let actor = actor(&caller, client.as_deref());
    // Binding or changing where the money goes: a fresh code from a key's authenticator.
    let claim = request.claim(&caller.0.id);
    let replay =
        super::second_factor::code_or_replay(&state, &caller.0, &claim, &headers, &actor.source)
            .await?;
    if let Some(answer) = replay {
        return Ok(answer);
    }
    let is_card = match body.account_type.as_deref() {
        None | Some("corporate") => false,
        Some("card") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                format!("account_type \"{other}\" is not one of corporate, card"),
                Some("account_type"),
            ));
        }
    };
    let input = AccountInput {
        is_card,
        provider: body.provider,
        account_holder: body.account_holder,
        account_number: body.account_number,
        bank_name: body.bank_name,
        branch: body.branch,
        bank_area_code: body.bank_area_code,
        is_default: body.default,
    };
    idempotently(
        &state,
        &caller,
        &request.key,
        &request.fingerprint,
        new_id("ba"),
        |account_id| async {
            let account_id = account_id;
            let account =
                onboarding::bind_account(&state.onboarding, &actor, &id, &account_id, &input)
                    .await?;
            json_body(201, &BankAccountObject::from(&account))
        },
    )
    .await
}

/// A merchant's bank accounts.
#[utoipa::path(get, path = "/v1/merchants/{id}/bank_accounts", tag = "merchants",
    params(("id" = String, Path, description = "m_...")),
    security(("api_key" = [])),
    responses((status = 200, description = "The accounts", body = List<BankAccountObject>)))]
pub async fn list_bank_accounts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<List<BankAccountObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    onboarded(&state, &caller, &id).await?;
    let all = state.store.bank_accounts_of(&id).await?;
    let count = all.len();
    Ok(Json(List::page(
        all.iter().map(BankAccountObject::from),
        count.max(1),
    )))
}

/// One bank account.
#[utoipa::path(get, path = "/v1/merchants/{id}/bank_accounts/{account_id}", tag = "merchants",
    params(("id" = String, Path, description = "m_..."), ("account_id" = String, Path, description = "ba_...")),
    security(("api_key" = [])),
    responses((status = 200, description = "The account", body = BankAccountObject),
              (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn get_bank_account(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath((id, account_id)): ApiPath<(String, String)>,
) -> Result<Json<BankAccountObject>, ApiError> {
    caller.require_role(Role::Erp)?;
    onboarded(&state, &caller, &id).await?;
    let account = state
        .store
        .bank_account(&account_id)
        .await?
        .filter(|a| a.merchant_id == id)
        .ok_or(ApiError::NotFound {
            kind: "bank account",
            id: account_id,
        })?;
    Ok(Json(BankAccountObject::from(&account)))
}

/// The audit log of a merchant (admin): who changed what, when, from where.
#[utoipa::path(get, path = "/v1/audit", tag = "merchants",
    params(AuditQuery),
    security(("api_key" = [])),
    responses((status = 200, description = "The merchant's audit log, oldest first", body = List<AuditObject>),
              (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<List<AuditObject>>, ApiError> {
    caller.require_role(Role::Admin)?;
    let entries = state.store.audit_of(&query.merchant_id).await?;
    let count = entries.len();
    Ok(Json(List::page(
        entries.iter().map(AuditObject::from),
        count.max(1),
    )))
}
