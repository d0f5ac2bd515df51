//! The onboarding use cases (API.md §8): create and update a merchant, apply to a provider
//! (activation), bind settlement bank accounts, and follow the provider's review and
//! verification (polling by the janitor, or notices). Every change is stored with its audit
//! line, and activation and account changes with their event (`merchant.activation.updated`,
//! `bank_account.updated`) for webhooks and the monitor.

use std::sync::Arc;

use serde_json::json;

use super::details::ApplicationDetails;
use super::documents::{self, Document};
use super::sealed::MasterKey;
use super::validate;
use crate::clock::Clock;
use crate::domain::events::EventKind;
use crate::domain::ids::new_id;
use crate::domain::records::{
    ActivationRecord, AuditRecord, BankAccountRecord, EventRecord, MerchantRecord,
};
use crate::domain::state::{
    ActivationStatus, BankAccountStatus, MerchantStatus, Observed, Transition,
};
use crate::merchants::MerchantDirectory;
use crate::plugins::CallError;
use crate::plugins::Providers;
use crate::plugins::types as wit;
use crate::store::{MerchantStore, OnboardingChange, StoreError};

/// The onboarding use cases and what they work with.
pub struct Onboarding {
    pub store: Arc<dyn MerchantStore>,
    pub merchants: Arc<MerchantDirectory>,
    pub plugins: Arc<dyn Providers>,
    /// Seals merchants' sensitive data at rest; `None` when not configured (onboarding then
    /// refuses what needs it).
    pub master_key: Option<Arc<MasterKey>>,
    /// The daemon's public base URL (no trailing slash), for the providers' notify URLs.
    pub public_url: String,
    pub clock: Arc<dyn Clock>,
}

/// Who made a change, from where (for the audit log).
#[derive(Debug, Clone)]
pub struct Actor {
    pub key_id: String,
    pub source: String,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            key_id: "system".into(),
            source: "paygated".into(),
        }
    }
}

/// A validated request for a new merchant (or a draft's new values).
#[derive(Debug, Clone)]
pub struct MerchantInput {
    pub name: String,
    pub business_license_no: String,
    pub tax_registration_no: String,
    pub legal_person_name: String,
    pub legal_person_id: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    pub industry_code: String,
}

/// A request to bind a bank account.
#[derive(Debug, Clone)]
pub struct AccountInput {
    pub provider: String,
    pub account_holder: String,
    pub account_number: String,
    pub bank_name: String,
    pub branch: Option<String>,
    /// Administrative division code of the branch's city (GB/T 2260), when given.
    pub bank_area_code: Option<String>,
    pub is_default: bool,
    /// A bank card (Luhn-checked) rather than a corporate account.
    pub is_card: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error("{message}")]
    Invalid {
        param: &'static str,
        message: String,
    },
    #[error("no such {kind}: {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    WrongState(String),
    #[error("the account holder \"{0}\" is neither the merchant's name nor its legal person")]
    AccountHolderMismatch(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("sensitive data cannot be stored: no [onboarding] master_key is configured")]
    NoMasterKey,
    #[error("the provider refused: {0}")]
    ProviderRefused(String),
    #[error("the provider is unavailable ({0}); retry with the same Idempotency-Key")]
    ProviderUnavailable(String),
    #[error(transparent)]
    Plugin(CallError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn today() -> (i32, u32, u32) {
    let now = time::OffsetDateTime::now_utc();
    (now.year(), u8::from(now.month()).into(), now.day().into())
}

/// Checks every field of a merchant, naming the first one at fault.
pub fn check_merchant(input: &MerchantInput) -> Result<(), OnboardingError> {
    let invalid =
        |param: &'static str| move |message: String| OnboardingError::Invalid { param, message };
    let text = |param: &'static str, value: &str, max: usize| {
        if value.trim().is_empty() || value.chars().count() > max {
            Err(OnboardingError::Invalid {
                param,
                message: format!("{param} must be 1 to {max} characters"),
            })
        } else {
            Ok(())
        }
    };
    text("name", &input.name, 128)?;
    validate::unified_social_credit_code(&input.business_license_no)
        .map_err(invalid("business_license_no"))?;
    text("tax_registration_no", &input.tax_registration_no, 32)?;
    text("legal_person.name", &input.legal_person_name, 64)?;
    validate::resident_identity_number(&input.legal_person_id, today())
        .map_err(invalid("legal_person.id_number"))?;
    text("contact.name", &input.contact_name, 64)?;
    validate::mainland_mobile(&input.contact_phone).map_err(invalid("contact.phone"))?;
    validate::email(&input.contact_email).map_err(invalid("contact.email"))?;
    text("industry_code", &input.industry_code, 16)?;
    Ok(())
}

fn master_key(onboarding: &Onboarding) -> Result<&MasterKey, OnboardingError> {
    onboarding
        .master_key
        .as_deref()
        .ok_or(OnboardingError::NoMasterKey)
}

impl Onboarding {
    fn audit(
        &self,
        actor: &Actor,
        action: &str,
        merchant_id: &str,
        object_id: &str,
        details: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord {
            id: new_id("aud"),
            at_ms: self.clock.now_ms(),
            actor: actor.key_id.clone(),
            source: actor.source.clone(),
            action: action.into(),
            merchant_id: merchant_id.into(),
            object_id: object_id.into(),
            details,
        }
    }

    fn event(&self, kind: EventKind, object_id: &str, data: serde_json::Value) -> EventRecord {
        EventRecord {
            id: new_id("evt"),
            kind,
            created_at_ms: self.clock.now_ms(),
            object_id: object_id.into(),
            data,
            object_version: 0,
            object: None,
        }
    }
}

/// Loads the onboarded merchants into the directory (at start).
pub async fn load(onboarding: &Onboarding) -> Result<usize, StoreError> {
    let merchants = onboarding.store.merchant_records().await?;
    for merchant in &merchants {
        let activations = onboarding.store.activations_of(&merchant.id).await?;
        onboarding.merchants.put_onboarded(merchant, &activations);
    }
    Ok(merchants.len())
}

async fn refresh_directory(onboarding: &Onboarding, merchant_id: &str) -> Result<(), StoreError> {
    if let Some(record) = onboarding.store.merchant_record(merchant_id).await? {
        let activations = onboarding.store.activations_of(merchant_id).await?;
        onboarding.merchants.put_onboarded(&record, &activations);
    }
    Ok(())
}

/// An onboarded merchant's record, or `NotFound`.
async fn stored_merchant(
    onboarding: &Onboarding,
    merchant_id: &str,
) -> Result<MerchantRecord, OnboardingError> {
    onboarding
        .store
        .merchant_record(merchant_id)
        .await?
        .ok_or(OnboardingError::NotFound {
            kind: "merchant",
            id: merchant_id.into(),
        })
}

/// `POST /v1/merchants`: a new merchant in `draft`, with the id given (the idempotency
/// claim's object).
pub async fn create_merchant(
    onboarding: &Onboarding,
    actor: &Actor,
    id: &str,
    input: &MerchantInput,
) -> Result<MerchantRecord, OnboardingError> {
    check_merchant(input)?;
    if let Some(existing) = onboarding.store.merchant_record(id).await? {
        return Ok(existing); // resumed after a crash: it was stored
    }
    let key = master_key(onboarding)?;
    let now = onboarding.clock.now_ms();
    let record = MerchantRecord {
        id: id.into(),
        name: input.name.trim().into(),
        status: MerchantStatus::Draft,
        business_license_no: input.business_license_no.clone(),
        tax_registration_no: input.tax_registration_no.clone(),
        legal_person_name: input.legal_person_name.trim().into(),
        legal_person_id: key.seal(id, "legal_person_id", &input.legal_person_id),
        legal_person_id_masked: validate::mask(&input.legal_person_id, 4, 4),
        contact_name: input.contact_name.trim().into(),
        contact_phone: input.contact_phone.clone(),
        contact_email: input.contact_email.clone(),
        industry_code: input.industry_code.clone(),
        created_at_ms: now,
        updated_at_ms: now,
    };
    let line = onboarding.audit(
        actor,
        "merchant.created",
        id,
        id,
        json!({"name": record.name}),
    );
    onboarding
        .store
        .save_onboarding(&OnboardingChange {
            merchant: Some(&record),
            activation: None,
            bank_account: None,
            also_accounts: &[],
            audit: &line,
            event: None,
        })
        .await?;
    refresh_directory(onboarding, id).await?;
    Ok(record)
}

/// Updates a merchant while it is a `draft`.
pub async fn update_merchant(
    onboarding: &Onboarding,
    actor: &Actor,
    id: &str,
    input: &MerchantInput,
) -> Result<MerchantRecord, OnboardingError> {
    check_merchant(input)?;
    let mut record = stored_merchant(onboarding, id).await?;
    if record.status != MerchantStatus::Draft {
        return Err(OnboardingError::WrongState(format!(
            "merchant {id} is {} and can only be changed while draft",
            record.status.as_str()
        )));
    }
    let key = master_key(onboarding)?;
    let before = record.clone();
    record.name = input.name.trim().into();
    record.business_license_no = input.business_license_no.clone();
    record.tax_registration_no = input.tax_registration_no.clone();
    record.legal_person_name = input.legal_person_name.trim().into();
    record.legal_person_id = key.seal(id, "legal_person_id", &input.legal_person_id);
    record.legal_person_id_masked = validate::mask(&input.legal_person_id, 4, 4);
    record.contact_name = input.contact_name.trim().into();
    record.contact_phone = input.contact_phone.clone();
    record.contact_email = input.contact_email.clone();
    record.industry_code = input.industry_code.clone();
    record.updated_at_ms = onboarding.clock.now_ms();
    let changed: Vec<&str> = [
        ("name", before.name != record.name),
        (
            "business_license_no",
            before.business_license_no != record.business_license_no,
        ),
        (
            "tax_registration_no",
            before.tax_registration_no != record.tax_registration_no,
        ),
        (
            "legal_person",
            before.legal_person_name != record.legal_person_name
                || before.legal_person_id_masked != record.legal_person_id_masked,
        ),
        (
            "contact",
            before.contact_name != record.contact_name
                || before.contact_phone != record.contact_phone
                || before.contact_email != record.contact_email,
        ),
        (
            "industry_code",
            before.industry_code != record.industry_code,
        ),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect();
    let line = onboarding.audit(
        actor,
        "merchant.updated",
        id,
        id,
        json!({"changed": changed}),
    );
    onboarding
        .store
        .save_onboarding(&OnboardingChange {
            merchant: Some(&record),
            activation: None,
            bank_account: None,
            also_accounts: &[],
            audit: &line,
            event: None,
        })
        .await?;
    refresh_directory(onboarding, id).await?;
    Ok(record)
}

/// The platform's plugin `merchant` record for calls about onboarded merchant `merchant_id`.
fn platform_record(
    onboarding: &Onboarding,
    provider: &str,
    merchant_id: &str,
    extra: serde_json::Value,
) -> Result<wit::Merchant, OnboardingError> {
    let platform = onboarding.merchants.platform().ok_or_else(|| {
        OnboardingError::NotSupported("no [onboarding] platform_merchant is configured".into())
    })?;
    let mut settings = platform.providers.get(provider).cloned().ok_or_else(|| {
        OnboardingError::NotSupported(format!(
            "wallet \"{provider}\" is not available for onboarding; the platform collects through [{}]",
            platform.providers.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    // What the gateway says of this merchant replaces the platform's own: a `null` (an
    // activation without a reference yet) leaves the setting out, never the platform's.
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            match toml::Value::try_from(v) {
                Ok(v) => settings.insert(k, v),
                Err(_) => settings.remove(&k),
            };
        }
    }
    let notify_url = format!(
        "{}/v1/notify/{provider}/{merchant_id}",
        onboarding.public_url
    );
    onboarding
        .plugins
        .merchant_record(provider, &platform.id, &settings, notify_url)
        .map_err(OnboardingError::Plugin)
}

/// The largest next step passed on to the merchant.
const NEXT_STEP_BYTES_MAX: usize = 4096;

/// The next step an onboarding result tells, for an application still waiting: the plugin's
/// `next-step-json` when it is a JSON object of at most 4 KiB with a string `type` whose
/// links (`url`, `*_url`, at any depth) are clean `https` ones. Anything else is dropped,
/// with a warning: the merchant is shown nothing rather than something unreadable, or a
/// link a plugin had no business giving.
fn next_step(
    result: &wit::OnboardingResult,
    status: ActivationStatus,
) -> Option<serde_json::Value> {
    if status.is_finished() {
        return None;
    }
    let text = result.next_step_json.as_deref()?;
    let step = Some(text)
        .filter(|text| text.len() <= NEXT_STEP_BYTES_MAX)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .filter(|step| step.get("type").is_some_and(serde_json::Value::is_string))
        .filter(links_are_https);
    if step.is_none() {
        tracing::warn!(
            "a plugin told a next step that is not a small JSON object with a type and https links: dropped"
        );
    }
    step
}

/// Whether every link of a next step (a string under a key `url` or `*_url`) is an `https`
/// URL without spaces or control characters.
fn links_are_https(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(fields) => fields.iter().all(|(key, value)| {
            let is_link = key == "url" || key.ends_with("_url");
            match value {
                serde_json::Value::String(url) if is_link => {
                    url.len() > "https://".len()
                        && url.starts_with("https://")
                        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
                }
                _ if is_link => false,
                other => links_are_https(other),
            }
        }),
        serde_json::Value::Array(items) => items.iter().all(links_are_https),
        _ => true,
    }
}

fn activation_status(status: wit::OnboardingStatus) -> ActivationStatus {
    match status {
        wit::OnboardingStatus::Submitted => ActivationStatus::Submitted,
        wit::OnboardingStatus::UnderReview => ActivationStatus::UnderReview,
        wit::OnboardingStatus::Active => ActivationStatus::Active,
        wit::OnboardingStatus::Rejected => ActivationStatus::Rejected,
    }
}

fn binding_status(status: wit::BindingStatus) -> BankAccountStatus {
    match status {
        wit::BindingStatus::PendingVerification => BankAccountStatus::PendingVerification,
        wit::BindingStatus::Verified => BankAccountStatus::Verified,
        wit::BindingStatus::Failed => BankAccountStatus::Failed,
    }
}

fn provider_failure(error: Result<wit::ProviderError, CallError>) -> OnboardingError {
    match error {
        Ok(wit::ProviderError::Declined(d)) => {
            OnboardingError::ProviderRefused(format!("{}: {}", d.code, d.message))
        }
        Ok(wit::ProviderError::InvalidRequest(m)) => OnboardingError::ProviderRefused(m),
        Ok(wit::ProviderError::Unavailable(m)) | Ok(wit::ProviderError::UnknownOutcome(m)) => {
            OnboardingError::ProviderUnavailable(m)
        }
        Err(e) => OnboardingError::Plugin(e),
    }
}

/// Saves an activation's new state with its audit line and event, and refreshes the
/// merchant (its status, its active providers).
async fn save_activation(
    onboarding: &Onboarding,
    actor: &Actor,
    activation: &ActivationRecord,
    action: &str,
) -> Result<(), OnboardingError> {
    save_activation_with(onboarding, actor, activation, action, json!({})).await
}

/// `save_activation`, with more details for the audit line (an object, merged in).
async fn save_activation_with(
    onboarding: &Onboarding,
    actor: &Actor,
    activation: &ActivationRecord,
    action: &str,
    more: serde_json::Value,
) -> Result<(), OnboardingError> {
    let mut merchant = onboarding
        .store
        .merchant_record(&activation.merchant_id)
        .await?;
    if let Some(m) = merchant.as_mut() {
        let mut all = onboarding.store.activations_of(&m.id).await?;
        all.retain(|a| a.id != activation.id);
        all.push(activation.clone());
        m.status = if all.iter().any(|a| a.status == ActivationStatus::Active) {
            MerchantStatus::Active
        } else {
            MerchantStatus::Onboarding
        };
        m.updated_at_ms = onboarding.clock.now_ms();
    }
    let mut details = json!({"provider": activation.provider, "status": activation.status,
                             "rejection_reason": activation.rejection_reason,
                             "next_step": activation.next_step.as_ref().map(|s| &s["type"])});
    if let (Some(details), serde_json::Value::Object(more)) = (details.as_object_mut(), more) {
        details.extend(more);
    }
    let line = onboarding.audit(
        actor,
        action,
        &activation.merchant_id,
        &activation.id,
        details,
    );
    let change_event = onboarding.event(
        EventKind::ActivationUpdated,
        &activation.id,
        json!({"status": activation.status, "merchant_id": activation.merchant_id}),
    );
    onboarding
        .store
        .save_onboarding(&OnboardingChange {
            merchant: merchant.as_ref(),
            activation: Some(activation),
            bank_account: None,
            also_accounts: &[],
            audit: &line,
            event: Some(&change_event),
        })
        .await?;
    refresh_directory(onboarding, &activation.merchant_id).await?;
    Ok(())
}

fn materials(
    onboarding: &Onboarding,
    merchant: &MerchantRecord,
    documents: &[Document],
    details: &ApplicationDetails,
) -> Result<String, OnboardingError> {
    let key = master_key(onboarding)?;
    let id_number = key
        .open(&merchant.id, "legal_person_id", &merchant.legal_person_id)
        .map_err(StoreError::Corrupt)?;
    Ok(json!({
        "name": merchant.name,
        "business_license_no": merchant.business_license_no,
        "tax_registration_no": merchant.tax_registration_no,
        "legal_person": {"name": merchant.legal_person_name, "id_number": id_number.as_str()},
        "contact": {"name": merchant.contact_name, "phone": merchant.contact_phone,
                    "email": merchant.contact_email},
        "industry_code": merchant.industry_code,
        "documents": documents::materials(documents),
        "details": details.materials(),
    })
    .to_string())
}

/// `POST /v1/merchants/{id}/activations`: applies to `provider` (or resubmits after a
/// rejection), with the images and details the provider's review needs (`documents`,
/// `details`: never stored).
/// One activation per merchant and provider; an application under review or active is
/// answered as it is. One still `submitted` (its submission failed, or the provider has not
/// reviewed it yet) is submitted again: the provider knows it by our activation id, so this
/// reaches the same application, and a submission that never arrived arrives.
pub async fn activate(
    onboarding: &Onboarding,
    actor: &Actor,
    merchant_id: &str,
    provider: &str,
    documents: &[Document],
    details: &ApplicationDetails,
) -> Result<ActivationRecord, OnboardingError> {
    details.check(today())?;
    let merchant = stored_merchant(onboarding, merchant_id).await?;
    let existing = onboarding
        .store
        .activations_of(merchant_id)
        .await?
        .into_iter()
        .find(|a| a.provider == provider);
    let mut activation = match existing {
        Some(a)
            if matches!(
                a.status,
                ActivationStatus::UnderReview | ActivationStatus::Active
            ) =>
        {
            return Ok(a);
        }
        Some(a) if a.status == ActivationStatus::Submitted => a,
        Some(mut a) => {
            a.submissions += 1;
            a.status = ActivationStatus::Submitted;
            a.rejection_reason = None;
            a.next_step = None;
            a
        }
        None => ActivationRecord {
            id: new_id("act"),
            merchant_id: merchant_id.into(),
            provider: provider.into(),
            status: ActivationStatus::Submitted,
            provider_reference: None,
            rejection_reason: None,
            next_step: None,
            submissions: 1,
            created_at_ms: onboarding.clock.now_ms(),
            updated_at_ms: onboarding.clock.now_ms(),
        },
    };
    let record = platform_record(onboarding, provider, merchant_id, json!({}))?;
    let request = wit::OnboardingRequest {
        activation_id: activation.id.clone(),
        provider: provider.into(),
        merchant: record,
        materials_json: materials(onboarding, &merchant, documents, details)?,
    };
    // Recorded (durably) before the provider hears of it, so a crash leaves a trace to poll.
    let images: Vec<_> = documents.iter().map(Document::summary).collect();
    save_activation_with(
        onboarding,
        actor,
        &activation,
        "activation.submitted",
        json!({"documents": images, "details": details.sections()}),
    )
    .await?;
    onboarding.store.durable().await?;
    let answer = onboarding.plugins.onboard(request).await;
    let outcome = match answer {
        Ok(Ok(result)) => {
            activation.status = activation_status(result.status);
            activation.next_step = next_step(&result, activation.status);
            activation.provider_reference =
                result.provider_reference.or(activation.provider_reference);
            activation.rejection_reason = result.rejection_reason;
            activation.updated_at_ms = onboarding.clock.now_ms();
            save_activation(onboarding, actor, &activation, "activation.updated").await?;
            Ok(activation)
        }
        Ok(Err(e)) => {
            let failure = provider_failure(Ok(e));
            // Refused (by the provider, or by its plugin before anything was sent): the
            // application is rejected, with the reason, until it is submitted again; nothing
            // is left for the janitor to ask about.
            if let OnboardingError::ProviderRefused(reason) = &failure {
                activation.status = ActivationStatus::Rejected;
                activation.rejection_reason = Some(reason.clone());
                activation.updated_at_ms = onboarding.clock.now_ms();
                save_activation(onboarding, actor, &activation, "activation.updated").await?;
            }
            Err(failure)
        }
        Err(e) => Err(provider_failure(Err(e))),
    };
    onboarding.store.durable().await?;
    outcome
}

/// Asks the provider about an unfinished activation; applies what it says.
pub async fn poll_activation(
    onboarding: &Onboarding,
    activation: &ActivationRecord,
) -> Result<bool, OnboardingError> {
    let record = platform_record(
        onboarding,
        &activation.provider,
        &activation.merchant_id,
        json!({}),
    )?;
    let answer = onboarding
        .plugins
        .query_onboarding(wit::OnboardingRef {
            activation_id: activation.id.clone(),
            provider: activation.provider.clone(),
            merchant: record,
            provider_reference: activation.provider_reference.clone(),
        })
        .await;
    let Ok(Ok(result)) = answer else {
        return Ok(false); // nothing known; ask again next sweep
    };
    Ok(
        apply_onboarding(onboarding, &Actor::system(), &activation.id, None, &result)
            .await?
            .moved(),
    )
}

/// How far an application has come: a report may only move it forward.
/// Applies an onboarding result (from a query or a notice). With `owner` (the notice's
/// merchant and provider), an activation of another merchant or provider is left as it is.
/// A report never moves an application backwards (a stale `rejected` cannot undo `active`),
/// and a finished one changes only by resubmission.
pub async fn apply_onboarding(
    onboarding: &Onboarding,
    actor: &Actor,
    activation_id: &str,
    owner: Option<(&str, &str)>,
    result: &wit::OnboardingResult,
) -> Result<Observed, OnboardingError> {
    let Some(mut activation) = onboarding.store.activation(activation_id).await? else {
        return Ok(Observed::Unknown);
    };
    if owner.is_some_and(|(merchant, provider)| {
        activation.merchant_id != merchant || activation.provider != provider
    }) {
        return Ok(Observed::Foreign);
    }
    let status = activation_status(result.status);
    let reference = result
        .provider_reference
        .clone()
        .or(activation.provider_reference.clone());
    let next_step = next_step(result, status);
    let transition = activation.status.transition(status);
    // The provider may tell its reference later within the same step (or fill in a
    // finished application's missing one), never replace a finished one's; and what it asks
    // of the merchant may change while the application waits.
    let news = activation.status == status
        && ((activation.provider_reference != reference
            && (!status.is_finished() || activation.provider_reference.is_none()))
            || (!status.is_finished() && activation.next_step != next_step));
    if transition != Transition::Move && !news {
        return Ok(Observed::Decided(transition));
    }
    activation.status = status;
    activation.provider_reference = reference;
    activation.next_step = next_step;
    activation.rejection_reason = result
        .rejection_reason
        .clone()
        .filter(|_| status == ActivationStatus::Rejected);
    activation.updated_at_ms = onboarding.clock.now_ms();
    save_activation(onboarding, actor, &activation, "activation.updated").await?;
    Ok(Observed::Decided(Transition::Move))
}

/// Saves a bank account's new state with its audit line and event.
async fn save_account(
    onboarding: &Onboarding,
    actor: &Actor,
    account: &BankAccountRecord,
    also: &[BankAccountRecord],
    action: &str,
) -> Result<(), OnboardingError> {
    let line = onboarding.audit(
        actor,
        action,
        &account.merchant_id,
        &account.id,
        json!({"provider": account.provider, "status": account.status,
               "account_number_last4": account.account_number_last4, "default": account.is_default}),
    );
    let change_event = onboarding.event(
        EventKind::BankAccountUpdated,
        &account.id,
        json!({"status": account.status, "merchant_id": account.merchant_id}),
    );
    onboarding
        .store
        .save_onboarding(&OnboardingChange {
            merchant: None,
            activation: None,
            bank_account: Some(account),
            also_accounts: also,
            audit: &line,
            event: Some(&change_event),
        })
        .await?;
    Ok(())
}

/// `POST /v1/merchants/{id}/bank_accounts`: binds a settlement account at a provider where
/// the merchant is active.
pub async fn bind_account(
    onboarding: &Onboarding,
    actor: &Actor,
    merchant_id: &str,
    id: &str,
    input: &AccountInput,
) -> Result<BankAccountRecord, OnboardingError> {
    if let Some(existing) = onboarding.store.bank_account(id).await? {
        return Ok(existing); // resumed
    }
    let merchant = stored_merchant(onboarding, merchant_id).await?;
    let digits = &input.account_number;
    let checked = if input.is_card {
        validate::bank_card_number(digits)
    } else {
        validate::corporate_account_number(digits)
    };
    checked.map_err(|message| OnboardingError::Invalid {
        param: "account_number",
        message: format!("account_number {message}"),
    })?;
    if let Some(code) = &input.bank_area_code {
        validate::area_code(code).map_err(|message| OnboardingError::Invalid {
            param: "bank_area_code",
            message: format!("bank_area_code {message}"),
        })?;
    }
    let holder = input.account_holder.trim();
    if holder != merchant.name && holder != merchant.legal_person_name {
        return Err(OnboardingError::AccountHolderMismatch(holder.into()));
    }
    let activation = onboarding
        .store
        .activations_of(merchant_id)
        .await?
        .into_iter()
        .find(|a| a.provider == input.provider && a.status == ActivationStatus::Active)
        .ok_or_else(|| {
            OnboardingError::WrongState(format!(
                "merchant {merchant_id} is not active at {}; activate it there first",
                input.provider
            ))
        })?;
    let key = master_key(onboarding)?;
    let mut existing = onboarding.store.bank_accounts_of(merchant_id).await?;
    let is_default = input.is_default || existing.is_empty();
    if is_default {
        for other in existing.iter_mut() {
            other.is_default = false;
        }
    } else {
        existing.clear();
    }
    let now = onboarding.clock.now_ms();
    let mut account = BankAccountRecord {
        id: id.into(),
        merchant_id: merchant_id.into(),
        provider: input.provider.clone(),
        account_holder: holder.into(),
        account_number: key.seal(id, "account_number", digits),
        account_number_last4: validate::last4(digits),
        bank_name: input.bank_name.trim().into(),
        branch: input.branch.clone(),
        bank_area_code: input.bank_area_code.clone(),
        status: BankAccountStatus::PendingVerification,
        verification: None,
        failure_reason: None,
        provider_reference: None,
        is_default,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let record = platform_record(
        onboarding,
        &input.provider,
        merchant_id,
        json!({"activation_id": activation.id, "sub_merchant_id": activation.provider_reference,
               "bank_area_code": account.bank_area_code}),
    )?;
    save_account(
        onboarding,
        actor,
        &account,
        &existing,
        "bank_account.submitted",
    )
    .await?;
    onboarding.store.durable().await?;
    let answer = onboarding
        .plugins
        .bind_account(wit::BindingRequest {
            bank_account_id: id.into(),
            provider: input.provider.clone(),
            merchant: record,
            account_holder: holder.into(),
            account_number: digits.clone(),
            bank_name: account.bank_name.clone(),
            branch: account.branch.clone(),
        })
        .await;
    let outcome = match answer {
        Ok(Ok(result)) => {
            apply_binding_to(&mut account, &result, onboarding.clock.now_ms());
            save_account(onboarding, actor, &account, &[], "bank_account.updated").await?;
            Ok(account)
        }
        Ok(Err(e)) => {
            let failure = provider_failure(Ok(e));
            // Refused (by the provider, or by its plugin before anything was sent): the
            // account failed, with the reason; nothing is left for the janitor to ask about
            // (a provider that never took the change cannot say how it went).
            if let OnboardingError::ProviderRefused(reason) = &failure {
                account.status = BankAccountStatus::Failed;
                account.failure_reason = Some(reason.clone());
                account.updated_at_ms = onboarding.clock.now_ms();
                save_account(onboarding, actor, &account, &[], "bank_account.updated").await?;
            }
            Err(failure)
        }
        Err(e) => Err(provider_failure(Err(e))),
    };
    onboarding.store.durable().await?;
    outcome
}

fn apply_binding_to(account: &mut BankAccountRecord, result: &wit::BindingResult, now: i64) {
    account.status = binding_status(result.status);
    account.provider_reference = result
        .provider_reference
        .clone()
        .or(account.provider_reference.take());
    if let Some(verification) = &result.verification_json {
        account.verification = serde_json::from_str(verification).ok();
    }
    account.failure_reason = result
        .failure
        .clone()
        .filter(|_| account.status == BankAccountStatus::Failed);
    account.updated_at_ms = now;
}

/// Asks the provider about an unverified account; applies what it says.
pub async fn poll_account(
    onboarding: &Onboarding,
    account: &BankAccountRecord,
) -> Result<bool, OnboardingError> {
    let activation = onboarding
        .store
        .activations_of(&account.merchant_id)
        .await?
        .into_iter()
        .find(|a| a.provider == account.provider);
    let record = platform_record(
        onboarding,
        &account.provider,
        &account.merchant_id,
        json!({"activation_id": activation.as_ref().map(|a| &a.id),
               "sub_merchant_id": activation.as_ref().and_then(|a| a.provider_reference.clone()),
               // Which account the query is about, when the provider never numbered it.
               "account_number_last4": account.account_number_last4}),
    )?;
    let answer = onboarding
        .plugins
        .query_binding(wit::BindingRef {
            bank_account_id: account.id.clone(),
            provider: account.provider.clone(),
            merchant: record,
            provider_reference: account.provider_reference.clone(),
        })
        .await;
    let Ok(Ok(result)) = answer else {
        return Ok(false);
    };
    Ok(
        apply_binding(onboarding, &Actor::system(), &account.id, None, &result)
            .await?
            .moved(),
    )
}

/// Applies a binding result (from a query or a notice). With `owner`, an account of another
/// merchant or provider is left as it is. Verified and failed accounts are final.
pub async fn apply_binding(
    onboarding: &Onboarding,
    actor: &Actor,
    account_id: &str,
    owner: Option<(&str, &str)>,
    result: &wit::BindingResult,
) -> Result<Observed, OnboardingError> {
    let Some(mut account) = onboarding.store.bank_account(account_id).await? else {
        return Ok(Observed::Unknown);
    };
    if owner.is_some_and(|(merchant, provider)| {
        account.merchant_id != merchant || account.provider != provider
    }) {
        return Ok(Observed::Foreign);
    }
    if account.status != BankAccountStatus::PendingVerification {
        let same = binding_status(result.status) == account.status;
        return Ok(Observed::Decided(if same {
            Transition::Same
        } else {
            Transition::Conflict
        }));
    }
    let before = account.clone();
    apply_binding_to(&mut account, result, onboarding.clock.now_ms());
    if account.status == before.status && account.verification == before.verification {
        return Ok(Observed::Decided(Transition::Same));
    }
    save_account(onboarding, actor, &account, &[], "bank_account.updated").await?;
    Ok(Observed::Decided(Transition::Move))
}

/// One pass over unfinished activations and accounts (the janitor calls it).
pub async fn sweep(onboarding: &Onboarding) -> Result<usize, StoreError> {
    let mut changed = 0;
    for activation in onboarding.store.all_activations().await? {
        if !activation.status.is_finished()
            && poll_activation(onboarding, &activation)
                .await
                .unwrap_or(false)
        {
            changed += 1;
        }
    }
    for account in onboarding.store.all_bank_accounts().await? {
        if account.status == BankAccountStatus::PendingVerification
            && poll_account(onboarding, &account).await.unwrap_or(false)
        {
            changed += 1;
        }
    }
    onboarding.store.durable().await?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Harness, PROVIDER};

    fn input(name: &str) -> MerchantInput {
        MerchantInput {
            name: name.into(),
            business_license_no: "91350100M000100Y43".into(),
            tax_registration_no: "91350100M000100Y43".into(),
            legal_person_name: "Zhang San".into(),
            legal_person_id: "11010519491231002X".into(),
            contact_name: "Li Si".into(),
            contact_phone: "13800138000".into(),
            contact_email: "li.si@example.cn".into(),
            industry_code: "5812".into(),
        }
    }

    fn outcome(status: wit::OnboardingStatus, reference: Option<&str>) -> wit::OnboardingResult {
        wit::OnboardingResult {
            status,
            provider_reference: reference.map(str::to_owned),
            rejection_reason: (status == wit::OnboardingStatus::Rejected)
                .then(|| "licence unreadable".into()),
            next_step_json: None,
        }
    }

    /// m_new applies to the fake provider (no images, no details).
    async fn apply(h: &Harness) -> Result<ActivationRecord, OnboardingError> {
        activate(
            &h.onboarding,
            &Actor::system(),
            "m_new",
            PROVIDER,
            &[],
            &Default::default(),
        )
        .await
    }

    /// A merchant with a submitted activation at the fake provider.
    async fn submitted(h: &Harness) -> ActivationRecord {
        let actor = Actor::system();
        create_merchant(&h.onboarding, &actor, "m_new", &input("Noodle Bar"))
            .await
            .unwrap();
        let activation = apply(h).await.unwrap();
        assert_eq!(activation.status, ActivationStatus::Submitted);
        activation
    }

    /// A refused binding leaves the account failed with the reason: the provider never took
    /// the change, so there is nothing to ask it about.
    #[tokio::test]
    async fn a_refused_binding_is_failed_with_the_reason() {
        let h = Harness::new();
        let activation = submitted(&h).await;
        let active = outcome(wit::OnboardingStatus::Active, Some("S1"));
        apply_onboarding(
            &h.onboarding,
            &Actor::system(),
            &activation.id,
            None,
            &active,
        )
        .await
        .unwrap();
        let account = |bank: &str| AccountInput {
            provider: PROVIDER.into(),
            account_holder: "Noodle Bar".into(),
            account_number: "7550000000000001".into(),
            bank_name: bank.into(),
            branch: None,
            bank_area_code: None,
            is_default: false,
            is_card: false,
        };
        let actor = Actor::system();
        let refused = bind_account(
            &h.onboarding,
            &actor,
            "m_new",
            "ba_r",
            &account("Refused Bank"),
        )
        .await;
        assert!(
            matches!(&refused, Err(OnboardingError::ProviderRefused(m)) if m.contains("Refused Bank")),
            "{refused:?}"
        );
        let stored = h.store.bank_account("ba_r").await.unwrap().unwrap();
        assert_eq!(stored.status, BankAccountStatus::Failed);
        assert!(stored.failure_reason.unwrap().contains("Refused Bank"));
        // Unavailable (it may or may not have arrived): pending, for the janitor to ask.
        let unsure = bind_account(
            &h.onboarding,
            &actor,
            "m_new",
            "ba_u",
            &account("Bank of Example"),
        )
        .await;
        assert!(unsure.is_err());
        let pending = h.store.bank_account("ba_u").await.unwrap().unwrap();
        assert_eq!(pending.status, BankAccountStatus::PendingVerification);
        sweep(&h.onboarding).await.unwrap();
        let calls = h.provider.calls();
        assert!(
            calls.contains(&"query_binding ba_u".to_owned()),
            "{calls:?}"
        );
        assert!(
            !calls.contains(&"query_binding ba_r".to_owned()),
            "{calls:?}"
        );
    }

    /// A plugin's refusal leaves the activation rejected with its reason (nothing for the
    /// janitor to ask about); applying again submits it again.
    #[tokio::test]
    async fn a_refused_application_is_rejected_with_the_reason() {
        let h = Harness::new();
        let actor = Actor::system();
        create_merchant(&h.onboarding, &actor, "m_new", &input("Refused Shop"))
            .await
            .unwrap();
        let refused = apply(&h).await;
        assert!(
            matches!(&refused, Err(OnboardingError::ProviderRefused(m)) if m.contains("details.store")),
            "{refused:?}"
        );
        let stored = h.onboarding.store.activations_of("m_new").await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].status, ActivationStatus::Rejected);
        assert_eq!(
            stored[0].rejection_reason.as_deref(),
            Some("the fake provider needs `details.store`")
        );
        sweep(&h.onboarding).await.unwrap();
        let id = &stored[0].id;
        assert_eq!(
            h.provider.calls(),
            [format!("onboard {id}")],
            "nothing polled"
        );
    }

    #[tokio::test]
    async fn what_the_merchant_must_do_next_is_kept_while_the_application_waits() {
        let h = Harness::new();
        let actor = Actor::system();
        create_merchant(&h.onboarding, &actor, "m_new", &input("Unsigned Shop"))
            .await
            .unwrap();
        let activation = apply(&h).await.unwrap();
        let url = format!("https://fake.example/sign/{}", activation.id);
        assert_eq!(
            activation.next_step,
            Some(json!({"type": "sign_agreement", "url": url}))
        );
        let stored = async || h.store.activation(&activation.id).await.unwrap().unwrap();
        assert_eq!(stored().await.next_step, activation.next_step);
        let report = async |status, step: Option<&str>| {
            let result = wit::OnboardingResult {
                next_step_json: step.map(str::to_owned),
                ..outcome(status, Some("A1"))
            };
            apply_onboarding(&h.onboarding, &actor, &activation.id, None, &result)
                .await
                .unwrap()
        };
        // The step changes while the application waits: that is news.
        let confirm = r#"{"type":"confirm_account","url":"https://fake.example/confirm"}"#;
        assert_eq!(
            report(wit::OnboardingStatus::UnderReview, Some(confirm)).await,
            Observed::Decided(Transition::Move)
        );
        assert_eq!(stored().await.next_step.unwrap()["type"], "confirm_account");
        assert_eq!(
            report(wit::OnboardingStatus::UnderReview, Some(confirm)).await,
            Observed::Decided(Transition::Same)
        );
        // Not an object with a type, too large, or with a link that is not https: dropped,
        // not shown.
        let huge = format!(
            r#"{{"type":"sign_agreement","note":"{}"}}"#,
            "x".repeat(5000)
        );
        for unreadable in [
            "not json",
            "[1]",
            r#"{"url":"x"}"#,
            r#"{"type":7}"#,
            huge.as_str(),
            r#"{"type":"sign_agreement","url":"javascript:alert(1)"}"#,
            r#"{"type":"sign_agreement","url":"http://pay.example/s"}"#,
            r#"{"type":"sign_agreement","url":"https://a b"}"#,
            r#"{"type":"x","more":{"legal_url":"data:text/html,hi"}}"#,
            r#"{"type":"x","url":7}"#,
        ] {
            report(wit::OnboardingStatus::UnderReview, Some(unreadable)).await;
            assert_eq!(stored().await.next_step, None, "{unreadable}");
            report(wit::OnboardingStatus::UnderReview, Some(confirm)).await;
        }
        // Once the application is decided, nothing is left to do.
        report(wit::OnboardingStatus::Active, Some(confirm)).await;
        assert_eq!(stored().await.status, ActivationStatus::Active);
        assert_eq!(stored().await.next_step, None);
        let audit = h.store.audit_of("m_new").await.unwrap();
        assert!(
            audit
                .iter()
                .any(|l| l.details["next_step"] == "confirm_account"),
            "{audit:?}"
        );
    }

    #[tokio::test]
    async fn an_activation_moves_forward_only() {
        let h = Harness::new();
        let activation = submitted(&h).await;
        let owner = Some(("m_new", PROVIDER));
        let apply = async |status, reference| {
            apply_onboarding(
                &h.onboarding,
                &Actor::system(),
                &activation.id,
                owner,
                &outcome(status, reference),
            )
            .await
            .unwrap()
        };
        let status = async || {
            h.store
                .activation(&activation.id)
                .await
                .unwrap()
                .unwrap()
                .status
        };

        assert_eq!(
            apply(wit::OnboardingStatus::UnderReview, None).await,
            Observed::Decided(Transition::Move)
        );
        assert_eq!(status().await, ActivationStatus::UnderReview);
        // A stale report of an earlier stage changes nothing.
        assert_eq!(
            apply(wit::OnboardingStatus::Submitted, None).await,
            Observed::Decided(Transition::Same)
        );
        assert_eq!(status().await, ActivationStatus::UnderReview);
        assert_eq!(
            apply(wit::OnboardingStatus::Active, Some("2088-sub-1")).await,
            Observed::Decided(Transition::Move)
        );
        assert_eq!(status().await, ActivationStatus::Active);
        // The merchant now collects through the provider.
        assert!(
            h.onboarding
                .merchants
                .get("m_new")
                .unwrap()
                .providers
                .contains_key(PROVIDER)
        );
        // After active, a rejection contradicts it: a conflict, nothing changes.
        assert_eq!(
            apply(wit::OnboardingStatus::Rejected, None).await,
            Observed::Decided(Transition::Conflict)
        );
        assert_eq!(status().await, ActivationStatus::Active);
        // The provider's reference, once set, is never replaced.
        apply(wit::OnboardingStatus::Active, Some("2088-other")).await;
        assert_eq!(
            h.store
                .activation(&activation.id)
                .await
                .unwrap()
                .unwrap()
                .provider_reference
                .as_deref(),
            Some("2088-sub-1")
        );
    }

    #[tokio::test]
    async fn a_report_from_another_merchant_or_provider_changes_nothing() {
        let h = Harness::new();
        let activation = submitted(&h).await;
        for owner in [("m_shop", PROVIDER), ("m_new", "other_wallet")] {
            let observed = apply_onboarding(
                &h.onboarding,
                &Actor::system(),
                &activation.id,
                Some(owner),
                &outcome(wit::OnboardingStatus::Active, None),
            )
            .await
            .unwrap();
            assert_eq!(observed, Observed::Foreign, "{owner:?}");
        }
        assert_eq!(
            h.store
                .activation(&activation.id)
                .await
                .unwrap()
                .unwrap()
                .status,
            ActivationStatus::Submitted
        );
        let unknown = apply_onboarding(
            &h.onboarding,
            &Actor::system(),
            "act_nobody",
            None,
            &outcome(wit::OnboardingStatus::Active, None),
        )
        .await
        .unwrap();
        assert_eq!(unknown, Observed::Unknown);
    }

    #[tokio::test]
    async fn a_rejected_application_can_be_submitted_again() {
        let h = Harness::new();
        let activation = submitted(&h).await;
        apply_onboarding(
            &h.onboarding,
            &Actor::system(),
            &activation.id,
            None,
            &outcome(wit::OnboardingStatus::Rejected, None),
        )
        .await
        .unwrap();
        let again = apply(&h).await.unwrap();
        assert_eq!(again.id, activation.id);
        assert_eq!(
            (again.status, again.submissions),
            (ActivationStatus::Submitted, 2)
        );
        assert_eq!(again.rejection_reason, None);
    }
}
