//! Merchant onboarding through WeChat Pay's service-provider APIs, the pure part (the
//! `transform` of onboarding): the applyment (特约商户进件) and settlement-account bodies and
//! paths, and the interpretation of their verified answers into our onboarding and binding
//! results. No host calls here: everything is unit-tested natively.
//!
//! - `onboard`: `POST /v3/applyment4sub/applyment/` with `business_code` = our activation id.
//! - `query-onboarding`: `GET /v3/applyment4sub/applyment/business_code/{business_code}`.
//! - `bind-account`: `POST /v3/apply4sub/sub_merchants/{sub_mchid}/modify-settlement`.
//! - `query-binding`: `GET .../application/{application_no}` (the change), then
//!   `GET .../settlement` (the account's verification).
//!
//! The sensitive fields (names, id numbers, phone, e-mail, account name and number) go
//! sealed: RSA-OAEP (SHA-1) under WeChat Pay's public key, base64, by the [`Seal`] the flow
//! hands in (the host's `keys.encrypt`), with `Wechatpay-Serial` naming that key.
//!
//! Every mapping below is documented in README.md; keep the two in step.

use paygate_plugin_api::{
    BindingRequest, BindingResult, BindingStatus, OnboardingResult, OnboardingStatus, ProviderError,
};
use serde::{Deserialize, Serialize};

use crate::details::{self, Agent, Details, RawDetails, Store, Term};
use crate::media::{Documents, MediaIds, owner_key};
use crate::payee::is_sub_mchid;
use crate::settings::Settings;
use crate::transform::{
    Answer, Call, Class, Failure, body_error, bounded, classify, clip, cut, generic_error,
    parse_body, present, to_json, uncertain,
};

/// Request paths (appended to `base_url`).
pub mod paths {
    /// Submit an applyment. The trailing `/` is part of WeChat Pay's path.
    pub const APPLYMENT: &str = "/v3/applyment4sub/applyment/";

    pub fn applyment(business_code: &str) -> String {
        format!("/v3/applyment4sub/applyment/business_code/{business_code}")
    }
    pub fn modify_settlement(sub_mchid: &str) -> String {
        format!("/v3/apply4sub/sub_merchants/{sub_mchid}/modify-settlement")
    }
    pub fn settlement_application(sub_mchid: &str, application_no: &str) -> String {
        format!("/v3/apply4sub/sub_merchants/{sub_mchid}/application/{application_no}")
    }
    pub fn settlement(sub_mchid: &str) -> String {
        format!("/v3/apply4sub/sub_merchants/{sub_mchid}/settlement")
    }
}

/// `business_code`: 1-124 characters of `[0-9A-Za-z_]` (WeChat Pay's rule).
const BUSINESS_CODE_CHARS_MAX: usize = 124;
/// `application_no`: WeChat Pay's is `string(64)`.
const APPLICATION_NO_CHARS_MAX: usize = 64;
/// `merchant_shortname` is `string(64)`: counted in bytes here, the stricter reading.
const SHORTNAME_BYTES_MAX: usize = 64;
/// A rejection reason is at most this long, from at most this many audit details.
const REJECTION_BYTES_MAX: usize = 1000;
const REJECTION_DETAILS_MAX: usize = 10;
/// A masked account number in an answer (`62*************78`).
const MASKED_ACCOUNT_CHARS_MAX: usize = 128;

/// The applyment's subject: paygate onboards companies (营业执照), whose legal person holds a
/// mainland identity card and whose settlement account is a corporate one.
const SUBJECT_TYPE: &str = "SUBJECT_TYPE_ENTERPRISE";
const ID_HOLDER_TYPE: &str = "LEGAL";
/// A mainland identity card, as `applyment4sub` names it (the legal person's, the agent's,
/// a beneficial owner's).
const ID_DOC_TYPE: &str = "IDENTIFICATION_TYPE_IDCARD";
const ACCOUNT_TYPE: &str = "ACCOUNT_TYPE_BUSINESS";
/// The applyment's settlement account: a corporate one, in the licence's name.
const BANK_ACCOUNT_TYPE: &str = "BANK_ACCOUNT_TYPE_CORPORATE";
/// The sales scene paygate's merchants collect in: a physical store with tills.
const SALES_SCENE: &str = "SALES_SCENES_STORE";
/// WeChat Pay's "accepted" mode of `modify-settlement`: `200 {"application_no"}`, then the
/// change is reviewed (the only mode since 2023-04-17).
const MODIFY_MODE: &str = "MODIFY_MODE_ASYNC";

// ---------------------------------------------------------------------------------------
// Our side: checks before anything is sent.
// ---------------------------------------------------------------------------------------

/// A business number (our activation id as `business_code`): 1-124 of `[0-9A-Za-z_]`. Our
/// ids fit; anything else is refused before it is sent (it also goes into a URL path).
pub fn check_business_code(what: &str, id: &str) -> Result<(), ProviderError> {
    let ok = (1..=BUSINESS_CODE_CHARS_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(()).ok_or_else(|| {
        ProviderError::InvalidRequest(format!(
            "{what} {:?} is not a valid WeChat Pay business number (1-124 of [0-9A-Za-z_])",
            clip(id)
        ))
    })
}

/// A settlement change's `application_no`: `[0-9A-Za-z_-]`, at most 64 (URL-path safe).
pub fn is_application_no(id: &str) -> bool {
    (1..=APPLICATION_NO_CHARS_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One text field of ours: trimmed, required or not, at most `chars_max` characters, no
/// control characters.
fn text_field(
    what: &str,
    value: Option<&str>,
    chars_max: usize,
    required: bool,
) -> Result<Option<String>, ProviderError> {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    match value {
        None if required => Err(ProviderError::InvalidRequest(format!(
            "wechatpay onboarding: `{what}` is required"
        ))),
        None => Ok(None),
        Some(v) if v.chars().count() > chars_max || v.chars().any(char::is_control) => {
            Err(ProviderError::InvalidRequest(format!(
                "wechatpay onboarding: `{what}` must be at most {chars_max} characters without control characters"
            )))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn required(what: &str, value: Option<&str>, chars_max: usize) -> Result<String, ProviderError> {
    Ok(text_field(what, value, chars_max, true)?.unwrap_or_default())
}

// --- the materials the gateway sends ------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct RawPerson {
    name: Option<String>,
    id_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawContact {
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawMaterials {
    name: Option<String>,
    business_license_no: Option<String>,
    tax_registration_no: Option<String>,
    legal_person: Option<RawPerson>,
    contact: Option<RawContact>,
    industry_code: Option<String>,
    details: Option<RawDetails>,
}

/// The application materials (`onboarding-request.materials-json`), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materials {
    pub name: String,
    pub business_license_no: String,
    pub tax_registration_no: Option<String>,
    pub legal_person_name: String,
    pub legal_person_id_number: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: Option<String>,
    pub industry_code: Option<String>,
    /// What the applyment needs beyond the merchant's record (`details`).
    pub details: Details,
}

impl Materials {
    /// `{"name","business_license_no","tax_registration_no","legal_person":{"name",
    /// "id_number"},"contact":{"name","phone","email"},"industry_code","details"}`
    /// (`details`: see the `details` module); unknown fields are
    /// ignored, a field of the wrong type or a missing required one is `invalid-request`.
    pub fn parse(json: &str) -> Result<Materials, ProviderError> {
        let raw: RawMaterials = serde_json::from_str(json).map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "wechatpay onboarding: the materials are not valid: {e}"
            ))
        })?;
        let person = raw.legal_person.unwrap_or_default();
        let contact = raw.contact.unwrap_or_default();
        Ok(Materials {
            name: required("name", raw.name.as_deref(), 128)?,
            business_license_no: required(
                "business_license_no",
                raw.business_license_no.as_deref(),
                64,
            )?,
            tax_registration_no: text_field(
                "tax_registration_no",
                raw.tax_registration_no.as_deref(),
                64,
                false,
            )?,
            legal_person_name: required("legal_person.name", person.name.as_deref(), 100)?,
            legal_person_id_number: required(
                "legal_person.id_number",
                person.id_number.as_deref(),
                32,
            )?,
            contact_name: required("contact.name", contact.name.as_deref(), 100)?,
            contact_phone: required("contact.phone", contact.phone.as_deref(), 32)?,
            contact_email: text_field("contact.email", contact.email.as_deref(), 128, false)?,
            industry_code: text_field("industry_code", raw.industry_code.as_deref(), 64, false)?,
            details: Details::check(raw.details)?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies (field order as in WeChat Pay's documentation).
// ---------------------------------------------------------------------------------------

/// Seals one sensitive field: its text in, the base64 of its RSA-OAEP ciphertext out.
pub type Seal<'s> = &'s dyn Fn(&str) -> Result<String, ProviderError>;

#[derive(Serialize)]
struct ContactInfo<'a> {
    contact_type: &'static str,
    contact_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id_doc_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id_doc_copy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id_doc_copy_back: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_period_begin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_period_end: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    business_authorization_letter: Option<&'a str>,
    mobile_phone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_email: Option<String>,
}

#[derive(Serialize)]
struct BusinessLicenseInfo<'a> {
    license_copy: &'a str,
    license_number: &'a str,
    merchant_name: &'a str,
    legal_person: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_begin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_end: Option<&'a str>,
}

#[derive(Serialize)]
struct IdCardInfo<'a> {
    id_card_copy: &'a str,
    id_card_national: &'a str,
    id_card_name: String,
    id_card_number: String,
    id_card_address: String,
    card_period_begin: &'a str,
    card_period_end: &'a str,
}

#[derive(Serialize)]
struct IdentityInfo<'a> {
    id_holder_type: &'static str,
    id_doc_type: &'static str,
    id_card_info: IdCardInfo<'a>,
    owner: bool,
}

#[derive(Serialize)]
struct UboInfo<'a> {
    ubo_id_doc_type: &'static str,
    ubo_id_doc_copy: &'a str,
    ubo_id_doc_copy_back: &'a str,
    ubo_id_doc_name: String,
    ubo_id_doc_number: String,
    ubo_id_doc_address: String,
    ubo_period_begin: &'a str,
    ubo_period_end: &'a str,
}

#[derive(Serialize)]
struct SubjectInfo<'a> {
    subject_type: &'static str,
    business_license_info: BusinessLicenseInfo<'a>,
    identity_info: IdentityInfo<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ubo_info_list: Vec<UboInfo<'a>>,
}

#[derive(Serialize)]
struct BizStoreInfo<'a> {
    biz_store_name: &'a str,
    biz_address_code: &'a str,
    biz_store_address: &'a str,
    store_entrance_pic: [&'a str; 1],
    indoor_pic: [&'a str; 1],
}

#[derive(Serialize)]
struct SalesInfo<'a> {
    sales_scenes_type: [&'static str; 1],
    biz_store_info: BizStoreInfo<'a>,
}

#[derive(Serialize)]
struct BusinessInfo<'a> {
    merchant_shortname: &'a str,
    service_phone: &'a str,
    sales_info: SalesInfo<'a>,
}

#[derive(Serialize)]
struct SettlementInfo<'a> {
    settlement_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    qualification_type: Option<&'a str>,
}

#[derive(Serialize)]
struct BankAccountInfo<'a> {
    bank_account_type: &'static str,
    account_name: String,
    account_bank: &'a str,
    bank_address_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bank_name: Option<&'a str>,
    account_number: String,
}

#[derive(Serialize)]
struct AdditionInfo {
    business_addition_msg: String,
}

#[derive(Serialize)]
struct ApplymentBody<'a> {
    business_code: &'a str,
    contact_info: ContactInfo<'a>,
    subject_info: SubjectInfo<'a>,
    business_info: BusinessInfo<'a>,
    settlement_info: SettlementInfo<'a>,
    bank_account_info: BankAccountInfo<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addition_info: Option<AdditionInfo>,
}

/// Whether the contact is the legal person (`LEGAL`) or an agent (`SUPER`), by name.
fn contact_is_agent(materials: &Materials) -> bool {
    materials.contact_name != materials.legal_person_name
}

fn needed(what: &str, why: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!(
        "wechatpay onboarding: `details.{what}` is required: {why}"
    ))
}

/// The images an applyment of these materials names, in upload order, each with what
/// needs it: the licence and the legal person's card always, the store's two photos, the
/// agent's card and authorisation letter when the contact is an agent, and each beneficial
/// owner's card when the legal person is not one.
pub fn needed_images(materials: &Materials) -> Vec<(String, &'static str)> {
    let mut keys: Vec<(String, &'static str)> = [
        ("business_license", "the business licence (license_copy)"),
        (
            "id_card_front",
            "the legal person's identity card (id_card_copy)",
        ),
        (
            "id_card_back",
            "the legal person's identity card (id_card_national)",
        ),
        (
            "store_entrance",
            "the store's entrance (store_entrance_pic)",
        ),
        ("store_indoor", "the store's inside (indoor_pic)"),
    ]
    .into_iter()
    .map(|(key, why)| (key.to_owned(), why))
    .collect();
    if contact_is_agent(materials) {
        keys.extend([
            ("contact_id_front".to_owned(), "the contact is not the legal person: the agent's identity card (contact_id_doc_copy)"),
            ("contact_id_back".to_owned(), "the contact is not the legal person: the agent's identity card (contact_id_doc_copy_back)"),
            ("authorization_letter".to_owned(), "the contact is not the legal person: the merchant's authorisation (business_authorization_letter)"),
        ]);
    }
    for i in 0..materials.details.owners.len() {
        keys.push((
            owner_key(i, "front"),
            "each beneficial owner's identity card (ubo_id_doc_copy)",
        ));
        keys.push((
            owner_key(i, "back"),
            "each beneficial owner's identity card (ubo_id_doc_copy_back)",
        ));
    }
    keys
}

/// Materials found complete by [`check_complete`], with the parts the applyment needs that
/// the materials hold as optional.
pub struct Complete<'m> {
    materials: &'m Materials,
    id_address: &'m str,
    id_term: &'m Term,
    store: &'m Store,
    account: &'m details::Account,
    /// The agent, when the contact is not the legal person.
    agent: Option<&'m Agent>,
}

/// Checks that everything the applyment needs is there, before any image is uploaded.
pub fn check_complete<'m>(
    materials: &'m Materials,
    documents: &Documents,
) -> Result<Complete<'m>, ProviderError> {
    let d = &materials.details;
    let Some(id_address) = d.id_address.as_deref() else {
        return Err(needed(
            "legal_person.id_address",
            "an enterprise's legal person's address (id_card_address)",
        ));
    };
    let Some(id_term) = &d.id_term else {
        return Err(needed(
            "legal_person.id_valid_from",
            "the identity card's term (card_period_begin, card_period_end)",
        ));
    };
    let Some(store) = &d.store else {
        return Err(needed(
            "store",
            "the store the merchant collects in (sales_info.biz_store_info)",
        ));
    };
    let Some(account) = &d.account else {
        return Err(needed(
            "settlement_account",
            "the account WeChat Pay settles to (bank_account_info)",
        ));
    };
    if account.holder != materials.name {
        return Err(ProviderError::InvalidRequest(
            "wechatpay onboarding: `details.settlement_account.account_holder` must be the merchant's name: a corporate account is in the licence's name".into(),
        ));
    }
    let agent = match (contact_is_agent(materials), &d.agent) {
        (false, _) => None,
        (true, Some(agent)) => Some(agent),
        (true, None) => {
            return Err(needed(
                "contact",
                "the contact is not the legal person, so WeChat Pay needs the agent's identity card (contact_id_number and its term)",
            ));
        }
    };
    if !d.legal_person_is_owner && d.owners.is_empty() {
        return Err(needed(
            "beneficial_owners",
            "the legal person is not a beneficial owner, so WeChat Pay needs those who are (ubo_info_list)",
        ));
    }
    for (key, why) in needed_images(materials) {
        documents.get(&key, why)?;
    }
    Ok(Complete {
        materials,
        id_address,
        id_term,
        store,
        account,
        agent,
    })
}

/// `POST /v3/applyment4sub/applyment/`: `business_code` = our activation id, so submitting
/// again under the same id is the same application (and, after a rejection, its
/// resubmission), from the materials [`check_complete`] passed, once the images are
/// uploaded.
///
/// - `contact_info.contact_type` is `LEGAL` when the contact is the legal person (same
///   name), else `SUPER` (an agent), with the agent's card (`details.contact`), its photos
///   and the authorisation letter.
/// - `settlement_info.qualification_type` is `industry_code` as given.
/// - `tax_registration_no`, when given and not the licence number itself (三证合一), goes
///   into `addition_info.business_addition_msg`.
/// - `identity_info.owner` is `details.legal_person.is_beneficial_owner` (default true);
///   when false, `ubo_info_list` names `details.beneficial_owners`.
/// - `business_info.sales_info` is one store (`SALES_SCENES_STORE`); `bank_account_info`
///   the corporate account `details.settlement_account`.
/// - names, identity numbers and addresses, the phone, the e-mail, the account's name and
///   number are sealed.
pub fn applyment(
    settings: &Settings,
    activation_id: &str,
    complete: &Complete<'_>,
    media: &MediaIds,
    seal: Seal<'_>,
) -> Result<String, ProviderError> {
    check_business_code("activation id", activation_id)?;
    let Complete {
        materials,
        id_address,
        id_term,
        store,
        account,
        agent,
    } = *complete;
    let d = &materials.details;
    let addition_info = materials
        .tax_registration_no
        .as_deref()
        .filter(|tax| *tax != materials.business_license_no)
        .map(|tax| AdditionInfo {
            business_addition_msg: format!("税务登记证号 tax registration no: {tax}"),
        });
    let ubo_info_list = d
        .owners
        .iter()
        .enumerate()
        .map(|(i, owner)| {
            Ok(UboInfo {
                ubo_id_doc_type: ID_DOC_TYPE,
                ubo_id_doc_copy: media.of(&owner_key(i, "front"))?,
                ubo_id_doc_copy_back: media.of(&owner_key(i, "back"))?,
                ubo_id_doc_name: seal(&owner.name)?,
                ubo_id_doc_number: seal(&owner.id_number)?,
                ubo_id_doc_address: seal(&owner.id_address)?,
                ubo_period_begin: &owner.id_term.begin,
                ubo_period_end: &owner.id_term.end,
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    to_json(&ApplymentBody {
        business_code: activation_id,
        contact_info: ContactInfo {
            contact_type: if agent.is_some() { "SUPER" } else { "LEGAL" },
            contact_name: seal(&materials.contact_name)?,
            contact_id_doc_type: agent.map(|_| ID_DOC_TYPE),
            contact_id_number: agent.map(|a| seal(&a.id_number)).transpose()?,
            contact_id_doc_copy: agent.map(|_| media.of("contact_id_front")).transpose()?,
            contact_id_doc_copy_back: agent.map(|_| media.of("contact_id_back")).transpose()?,
            contact_period_begin: agent.map(|a| a.id_term.begin.as_str()),
            contact_period_end: agent.map(|a| a.id_term.end.as_str()),
            business_authorization_letter: agent
                .map(|_| media.of("authorization_letter"))
                .transpose()?,
            mobile_phone: seal(&materials.contact_phone)?,
            contact_email: materials.contact_email.as_deref().map(seal).transpose()?,
        },
        subject_info: SubjectInfo {
            subject_type: SUBJECT_TYPE,
            business_license_info: BusinessLicenseInfo {
                license_copy: media.of("business_license")?,
                license_number: &materials.business_license_no,
                merchant_name: &materials.name,
                legal_person: &materials.legal_person_name,
                license_address: d.license_address.as_deref(),
                period_begin: d.license_term.as_ref().map(|t| t.begin.as_str()),
                period_end: d.license_term.as_ref().map(|t| t.end.as_str()),
            },
            identity_info: IdentityInfo {
                id_holder_type: ID_HOLDER_TYPE,
                id_doc_type: ID_DOC_TYPE,
                id_card_info: IdCardInfo {
                    id_card_copy: media.of("id_card_front")?,
                    id_card_national: media.of("id_card_back")?,
                    id_card_name: seal(&materials.legal_person_name)?,
                    id_card_number: seal(&materials.legal_person_id_number)?,
                    id_card_address: seal(id_address)?,
                    card_period_begin: &id_term.begin,
                    card_period_end: &id_term.end,
                },
                owner: d.legal_person_is_owner,
            },
            ubo_info_list,
        },
        business_info: BusinessInfo {
            merchant_shortname: cut(&materials.name, SHORTNAME_BYTES_MAX),
            service_phone: &materials.contact_phone,
            sales_info: SalesInfo {
                sales_scenes_type: [SALES_SCENE],
                biz_store_info: BizStoreInfo {
                    biz_store_name: &store.name,
                    biz_address_code: &store.area_code,
                    biz_store_address: &store.address,
                    store_entrance_pic: [media.of("store_entrance")?],
                    indoor_pic: [media.of("store_indoor")?],
                },
            },
        },
        settlement_info: SettlementInfo {
            settlement_id: &settings.settlement_id,
            qualification_type: materials.industry_code.as_deref(),
        },
        bank_account_info: BankAccountInfo {
            bank_account_type: BANK_ACCOUNT_TYPE,
            account_name: seal(&account.holder)?,
            account_bank: &account.bank,
            bank_address_code: &account.area_code,
            bank_name: account.branch.as_deref(),
            account_number: seal(&account.number)?,
        },
        addition_info,
    })
}

#[derive(Serialize)]
struct ModifySettlementBody<'a> {
    modify_mode: &'static str,
    account_type: &'static str,
    account_bank: &'a str,
    bank_address_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bank_name: Option<&'a str>,
    account_number: String,
    account_name: String,
}

/// Whether a masked account number (`62************89`) shows the last digits of ours
/// (`last4`, which the gateway passes): its visible end must be the end of them. Nothing to
/// compare (no digits shown, or ours unknown) is no match.
pub fn shows_last_digits(masked: &str, last4: Option<&str>) -> bool {
    let Some(last4) = last4.filter(|l| !l.is_empty()) else {
        return false;
    };
    // ASCII letters and digits only, so a byte slice of it is a character slice.
    let shown = masked
        .rsplit(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    if shown.is_empty() {
        return false;
    }
    let compared = &shown[shown.len().saturating_sub(last4.len())..];
    last4.ends_with(compared)
}

/// An account number without the spaces and dashes people write in it.
pub fn without_separators(given: &str) -> String {
    given.chars().filter(|c| !matches!(c, ' ' | '-')).collect()
}

/// The account number without the spaces and dashes people write in it: 4-40 ASCII letters
/// or digits.
pub fn account_number(given: &str) -> Result<String, ProviderError> {
    let number = without_separators(given);
    let ok = (4..=40).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(number).ok_or_else(|| {
        ProviderError::InvalidRequest(
            "wechatpay bind-account: the account number must be 4 to 40 letters or digits".into(),
        )
    })
}

/// `POST /v3/apply4sub/sub_merchants/{sub_mchid}/modify-settlement`: a corporate account
/// (`ACCOUNT_TYPE_BUSINESS`), `account_bank` = the bank's name, `bank_name` = the branch
/// when given (WeChat Pay's "full name with branch"). The account's number and name are
/// sealed. The change has no business number of ours (WeChat Pay's API takes none): the
/// gateway never sends a change twice for one account (a retry resumes from what it
/// stored), and WeChat Pay refuses a second change while one is in review.
pub fn modify_settlement(
    settings: &Settings,
    request: &BindingRequest,
    seal: Seal<'_>,
) -> Result<String, ProviderError> {
    let area_code = settings.bank_area_code.as_deref().ok_or_else(|| {
        ProviderError::InvalidRequest(
            "wechatpay binding: the account's `bank_area_code` is required (WeChat Pay's bank_address_code: the 6-digit code of the branch's city)".into(),
        )
    })?;
    let holder = required("account_holder", Some(&request.account_holder), 128)?;
    let bank = required("bank_name", Some(&request.bank_name), 128)?;
    let branch = text_field("branch", request.branch.as_deref(), 128, false)?;
    let number = account_number(&request.account_number)?;
    to_json(&ModifySettlementBody {
        modify_mode: MODIFY_MODE,
        account_type: ACCOUNT_TYPE,
        account_bank: &bank,
        bank_address_code: area_code,
        bank_name: branch.as_deref(),
        account_number: seal(&number)?,
        account_name: seal(&holder)?,
    })
}

// ---------------------------------------------------------------------------------------
// Their side: interpreting verified answers.
// ---------------------------------------------------------------------------------------

/// An answer body as `T`, which must be a JSON object (serde would also read a struct from
/// an array of its fields).
fn parse_object<'de, T: Deserialize<'de>>(call: Call, body: &'de [u8]) -> Result<T, ProviderError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(body_error(call, "not a JSON object"));
    }
    parse_body(call, body)
}

/// The error of a failed call that may have had an effect (submit, modify-settlement):
/// refused at the door → unavailable; our request or the merchant's setup (including
/// WeChat Pay's business refusals) → invalid-request; anything else, 5xx included →
/// unknown outcome.
fn effect_error(call: Call, failure: &Failure) -> ProviderError {
    match classify(failure) {
        Class::RateLimited => generic_error(call, failure),
        Class::BadRequest | Class::BusinessRule | Class::Decline(_) | Class::NotFound => {
            ProviderError::InvalidRequest(format!(
                "wechatpay {}: {}",
                call.name(),
                failure.describe()
            ))
        }
        Class::Retry | Class::Unknown | Class::OrderExists | Class::UserPaying => {
            uncertain(call, failure.describe())
        }
    }
}

/// The error of a failed query: setup codes → invalid-request, anything else unavailable.
fn query_error(call: Call, failure: &Failure) -> ProviderError {
    generic_error(call, failure)
}

// --- the applyment ---------------------------------------------------------------------

#[derive(Deserialize)]
struct SubmitAnswer {
    applyment_id: Option<u64>,
}

/// How a submission ended.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// Accepted: `submitted`, with WeChat Pay's `applyment_id` as the reference.
    Applied(OnboardingResult),
    /// `PROCESSING`: an application under this business code is already in progress (or
    /// done); the flow queries it and reports its state.
    InProgress,
}

/// The answer to `POST /v3/applyment4sub/applyment/`: `200 {"applyment_id": 2000002124775691}`.
pub fn interpret_submit(answer: Answer<'_>) -> Result<Submitted, ProviderError> {
    let call = Call::Applyment;
    if answer.is_success() {
        let parsed: SubmitAnswer = parse_object(call, answer.body)?;
        let id = parsed
            .applyment_id
            .ok_or_else(|| body_error(call, "no applyment_id"))?;
        return Ok(Submitted::Applied(OnboardingResult {
            status: OnboardingStatus::Submitted,
            provider_reference: Some(id.to_string()),
            rejection_reason: None,
            next_step_json: None,
        }));
    }
    let failure = Failure::parse(answer);
    if failure.normalized() == "PROCESSING" {
        return Ok(Submitted::InProgress);
    }
    Err(effect_error(call, &failure))
}

/// `applyment_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplymentState {
    /// `APPLYMENT_STATE_EDITTING` (sic): the submission hit an error; submit again.
    Editing,
    Auditing,
    Rejected,
    /// Waiting for the account validation (a remittance from the merchant's account).
    ToBeConfirmed,
    /// Waiting for the super administrator to sign.
    ToBeSigned,
    /// Permissions being opened.
    Signing,
    Finished,
    Canceled,
}

impl ApplymentState {
    pub fn parse(text: &str) -> Option<ApplymentState> {
        Some(match text {
            "APPLYMENT_STATE_EDITTING" => ApplymentState::Editing,
            "APPLYMENT_STATE_AUDITING" => ApplymentState::Auditing,
            "APPLYMENT_STATE_REJECTED" => ApplymentState::Rejected,
            "APPLYMENT_STATE_TO_BE_CONFIRMED" => ApplymentState::ToBeConfirmed,
            "APPLYMENT_STATE_TO_BE_SIGNED" => ApplymentState::ToBeSigned,
            "APPLYMENT_STATE_SIGNING" => ApplymentState::Signing,
            "APPLYMENT_STATE_FINISHED" => ApplymentState::Finished,
            "APPLYMENT_STATE_CANCELED" => ApplymentState::Canceled,
            _ => return None,
        })
    }

    /// Our onboarding status: `EDITTING` submitted (received, not under review: submitting
    /// again under the same activation id is how it moves on); `AUDITING`,
    /// `TO_BE_CONFIRMED`, `TO_BE_SIGNED`, `SIGNING` under review (the merchant's own steps
    /// are part of it); `FINISHED` active; `REJECTED`, `CANCELED` rejected.
    pub fn status(self) -> OnboardingStatus {
        match self {
            ApplymentState::Editing => OnboardingStatus::Submitted,
            ApplymentState::Auditing
            | ApplymentState::ToBeConfirmed
            | ApplymentState::ToBeSigned
            | ApplymentState::Signing => OnboardingStatus::UnderReview,
            ApplymentState::Finished => OnboardingStatus::Active,
            ApplymentState::Rejected | ApplymentState::Canceled => OnboardingStatus::Rejected,
        }
    }
}

#[derive(Deserialize)]
struct RawAuditDetail {
    reject_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawApplyment {
    business_code: Option<String>,
    applyment_id: Option<u64>,
    sub_mchid: Option<String>,
    applyment_state: Option<String>,
    applyment_state_msg: Option<String>,
    audit_detail: Option<Vec<RawAuditDetail>>,
    /// Where the super administrator signs (`TO_BE_SIGNED`) or confirms.
    sign_url: Option<String>,
    /// Where the legal person confirms the account (`TO_BE_CONFIRMED`).
    legal_validation_url: Option<String>,
    /// The remittance that confirms the account instead (`TO_BE_CONFIRMED`).
    account_validation: Option<RawAccountValidation>,
}

/// A checked applyment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applyment {
    pub state: ApplymentState,
    pub applyment_id: Option<u64>,
    /// Given from `TO_BE_SIGNED` on; required when `FINISHED`.
    pub sub_mchid: Option<String>,
    /// For `REJECTED` and `CANCELED`: why.
    pub rejection_reason: Option<String>,
    /// For `TO_BE_SIGNED` and `TO_BE_CONFIRMED`: what the merchant must do (our
    /// `next-step-json`).
    pub next_step: Option<String>,
}

impl Applyment {
    /// The applyment as our onboarding result: `provider-reference` is the `sub_mchid` once
    /// active, the `applyment_id` before.
    pub fn result(&self) -> OnboardingResult {
        let status = self.state.status();
        let provider_reference = if status == OnboardingStatus::Active {
            self.sub_mchid.clone()
        } else {
            self.applyment_id.map(|id| id.to_string())
        };
        OnboardingResult {
            status,
            provider_reference,
            rejection_reason: self.rejection_reason.clone(),
            next_step_json: self.next_step.clone(),
        }
    }
}

/// The reasons of a rejection: the `reject_reason`s of `audit_detail` (trimmed, repeated
/// ones once, at most ten) joined with `; `, cut to 1000 bytes; `applyment_state_msg`
/// when there are none.
fn rejection_reason(state: ApplymentState, details: &[RawAuditDetail], state_msg: &str) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for reason in details
        .iter()
        .filter_map(|d| d.reject_reason.as_deref())
        .map(|r| clip(r.trim()))
        .filter(|r| !r.is_empty())
    {
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
        if reasons.len() == REJECTION_DETAILS_MAX {
            break;
        }
    }
    let joined = reasons.join("; ");
    let msg = clip(state_msg.trim());
    let text = match (state, joined.is_empty(), msg.is_empty()) {
        (_, false, _) => joined,
        (ApplymentState::Canceled, true, true) => "the application was cancelled".to_owned(),
        (ApplymentState::Canceled, true, false) => format!("the application was cancelled: {msg}"),
        (_, true, false) => msg,
        (_, true, true) => "rejected by WeChat Pay (no reason given)".to_owned(),
    };
    cut(&text, REJECTION_BYTES_MAX).to_owned()
}

/// The answer to `GET .../applyment/business_code/{business_code}`: the applyment, or
/// `None` when WeChat Pay has none under this business code (`APPLYMENT_NOTEXIST`,
/// `RESOURCE_NOT_EXISTS`, 404). An answer about another business code is not trusted.
pub fn interpret_applyment(
    answer: Answer<'_>,
    business_code: &str,
) -> Result<Option<Applyment>, ProviderError> {
    let call = Call::QueryApplyment;
    if !answer.is_success() {
        let failure = Failure::parse(answer);
        return match classify(&failure) {
            Class::NotFound => Ok(None),
            _ => Err(query_error(call, &failure)),
        };
    }
    let raw: RawApplyment = parse_object(call, answer.body)?;
    if present(&raw.business_code).is_some_and(|b| b != business_code) {
        return Err(uncertain(
            call,
            "the answer's business_code does not match the request",
        ));
    }
    let state_text = raw
        .applyment_state
        .ok_or_else(|| body_error(call, "no applyment_state"))?;
    let state = ApplymentState::parse(&state_text).ok_or_else(|| {
        body_error(
            call,
            format!("unknown applyment_state {:?}", clip(&state_text)),
        )
    })?;
    let sub_mchid = bounded(call, "sub_mchid", raw.sub_mchid, 64)?;
    if sub_mchid.as_deref().is_some_and(|s| !is_sub_mchid(s)) {
        return Err(body_error(call, "sub_mchid is not a number"));
    }
    if state == ApplymentState::Finished && sub_mchid.is_none() {
        return Err(body_error(call, "a finished applyment without sub_mchid"));
    }
    let rejection_reason = matches!(state, ApplymentState::Rejected | ApplymentState::Canceled)
        .then(|| {
            rejection_reason(
                state,
                raw.audit_detail.as_deref().unwrap_or_default(),
                raw.applyment_state_msg.as_deref().unwrap_or_default(),
            )
        });
    let next_step = match state {
        ApplymentState::ToBeSigned => {
            link(call, "sign_url", raw.sign_url)?.map(|url| step("sign_agreement", "url", url))
        }
        ApplymentState::ToBeConfirmed => match raw.account_validation {
            Some(validation) => {
                let remittance: serde_json::Value =
                    serde_json::from_str(&verification_json(call, validation)?)
                        .map_err(|e| body_error(call, e))?;
                Some(step("verify_account", "remittance", remittance))
            }
            None => match link(call, "legal_validation_url", raw.legal_validation_url)? {
                Some(url) => Some(url),
                None => link(call, "sign_url", raw.sign_url)?,
            }
            .map(|url| step("confirm_account", "url", url)),
        },
        _ => None,
    };
    Ok(Some(Applyment {
        state,
        applyment_id: raw.applyment_id,
        sub_mchid,
        rejection_reason,
        next_step,
    }))
}

/// A next step as our `next-step-json`: `{"type": kind, field: value}`.
fn step(kind: &str, field: &str, value: impl Into<serde_json::Value>) -> String {
    let mut step = serde_json::Map::new();
    step.insert("type".into(), kind.into());
    step.insert(field.into(), value.into());
    serde_json::Value::Object(step).to_string()
}

/// The longest link passed on to the merchant.
const LINK_BYTES_MAX: usize = 2048;

/// A link WeChat Pay gives for the merchant to open: `https://`, at most 2 KiB, no spaces
/// or control characters; absent when empty. Anything else makes the answer malformed
/// (nobody is sent to a link an answer cannot vouch for).
fn link(call: Call, field: &str, value: Option<String>) -> Result<Option<String>, ProviderError> {
    let Some(url) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let fits = url.len() <= LINK_BYTES_MAX
        && url.starts_with("https://")
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !fits {
        return Err(body_error(
            call,
            format!("{field} is not an https link of at most {LINK_BYTES_MAX} bytes"),
        ));
    }
    Ok(Some(url))
}

// --- the remittance step ------------------------------------------------------------------

/// `pay_amount`: fen, as a number or a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum PayAmount {
    Fen(u64),
    Text(String),
}

/// `account_validation`: the remittance that verifies an account (WeChat Pay's shape, from
/// the applyment query; the simulator also puts it on settlement answers while the account
/// is being verified).
#[derive(Deserialize)]
pub struct RawAccountValidation {
    account_name: Option<String>,
    account_no: Option<String>,
    pay_amount: Option<PayAmount>,
    destination_account_number: Option<String>,
    destination_account_name: Option<String>,
    destination_account_bank: Option<String>,
    city: Option<String>,
    remark: Option<String>,
    deadline: Option<String>,
}

/// The verification step as `binding-result.verification-json` (fields left out when the
/// answer has none):
/// `{"type":"remittance","amount":"0.01","amount_minor":1,"currency":"CNY",
///   "from_account_name","from_account_number","to_account","to_account_name","to_bank",
///   "to_city","memo","deadline"}` (`memo` is WeChat Pay's `remark`, the code to write on
///   the transfer; the names match the other wallets' steps).
#[derive(Serialize)]
struct Verification {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_minor: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_account_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_bank: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<String>,
}

/// A verification remittance is a small amount: anything above 1.00 CNY (or nothing at
/// all) is not believed, so nobody is asked to send real money on an answer's word.
const REMITTANCE_FEN_MAX: u64 = 100;

/// Provider text for the merchant's eyes: clipped, no control characters, `None` if empty.
fn shown(value: Option<String>) -> Option<String> {
    value.map(|v| clip(v.trim())).filter(|v| !v.is_empty())
}

/// The remittance step as our verification JSON. A `pay_amount` that is not a number of
/// fen in 1..=100 (0.01 to 1.00 CNY) makes the answer malformed.
pub fn verification_json(call: Call, raw: RawAccountValidation) -> Result<String, ProviderError> {
    let fen = match raw.pay_amount {
        None => None,
        Some(PayAmount::Fen(fen)) => Some(fen),
        Some(PayAmount::Text(text)) => Some(
            text.trim()
                .parse::<u64>()
                .ok()
                .filter(|_| text.trim().bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| body_error(call, "account_validation.pay_amount is not fen"))?,
        ),
    };
    if fen.is_some_and(|f| f == 0 || f > REMITTANCE_FEN_MAX) {
        return Err(body_error(
            call,
            "account_validation.pay_amount is not 0.01 to 1.00 CNY: not a verification remittance",
        ));
    }
    let verification = Verification {
        kind: "remittance",
        amount: fen.map(|f| format!("{}.{:02}", f / 100, f % 100)),
        amount_minor: fen,
        currency: fen.map(|_| crate::transform::CURRENCY),
        from_account_name: shown(raw.account_name),
        from_account_number: shown(raw.account_no),
        to_account: shown(raw.destination_account_number),
        to_account_name: shown(raw.destination_account_name),
        to_bank: shown(raw.destination_account_bank),
        to_city: shown(raw.city),
        memo: shown(raw.remark),
        deadline: shown(raw.deadline),
    };
    serde_json::to_string(&verification).map_err(|e| body_error(call, e))
}

// --- settlement accounts -------------------------------------------------------------------

#[derive(Deserialize)]
struct ModifyAnswer {
    application_no: Option<String>,
    account_validation: Option<RawAccountValidation>,
}

/// The answer to `modify-settlement`:
/// - `200 {"application_no": ...}`: pending verification, `provider-reference` =
///   `application_no`, and the remittance step when the answer has one;
/// - `204` (WeChat Pay's former synchronous mode: the change is in effect, its verification
///   follows): pending verification without a reference;
/// - errors: 429 / frequency codes unavailable; `PARAM_ERROR`, `INVALID_REQUEST`,
///   `NO_AUTH` and other refusals invalid-request; `SYSTEM_ERROR`, 5xx and unknown codes
///   unknown outcome.
pub fn interpret_modify(answer: Answer<'_>) -> Result<BindingResult, ProviderError> {
    let call = Call::ModifySettlement;
    if answer.status == 204 {
        return Ok(pending(None, None));
    }
    if !answer.is_success() {
        return Err(effect_error(call, &Failure::parse(answer)));
    }
    let parsed: ModifyAnswer = parse_object(call, answer.body)?;
    let application_no = present(&parsed.application_no)
        .filter(|no| is_application_no(no))
        .ok_or_else(|| body_error(call, "no valid application_no"))?
        .to_owned();
    let verification = parsed
        .account_validation
        .map(|v| verification_json(call, v))
        .transpose()?;
    Ok(pending(Some(application_no), verification))
}

fn pending(reference: Option<String>, verification: Option<String>) -> BindingResult {
    BindingResult {
        status: BindingStatus::PendingVerification,
        provider_reference: reference,
        verification_json: verification,
        failure: None,
    }
}

/// `verify_result` of a settlement change (`.../application/{application_no}`) or of the
/// current settlement account (`.../settlement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Change: `AUDITING`.
    Auditing,
    /// Change: `AUDIT_SUCCESS` (the account's own verification is on `.../settlement`).
    AuditSuccess,
    /// Change: `AUDIT_FAIL`.
    AuditFail,
    /// Account: `VERIFYING` (WeChat Pay's remittance check is under way).
    Verifying,
    /// Account: `VERIFY_SUCCESS`.
    VerifySuccess,
    /// Account: `VERIFY_FAIL`.
    VerifyFail,
}

impl AccountState {
    /// The vocabulary of each query: `AUDIT*` for a change, `VERIFY*` for the account.
    pub fn parse(call: Call, text: &str) -> Option<AccountState> {
        Some(match (call, text) {
            (Call::QuerySettlementApplication, "AUDITING") => AccountState::Auditing,
            (Call::QuerySettlementApplication, "AUDIT_SUCCESS") => AccountState::AuditSuccess,
            (Call::QuerySettlementApplication, "AUDIT_FAIL") => AccountState::AuditFail,
            (Call::QuerySettlement, "VERIFYING") => AccountState::Verifying,
            (Call::QuerySettlement, "VERIFY_SUCCESS") => AccountState::VerifySuccess,
            (Call::QuerySettlement, "VERIFY_FAIL") => AccountState::VerifyFail,
            _ => return None,
        })
    }

    /// Our binding status: `AUDITING` and `VERIFYING` pending verification,
    /// `VERIFY_SUCCESS` verified, `AUDIT_FAIL` and `VERIFY_FAIL` failed; `AUDIT_SUCCESS`
    /// none (the account's verification decides).
    pub fn status(self) -> Option<BindingStatus> {
        match self {
            AccountState::Auditing | AccountState::Verifying => {
                Some(BindingStatus::PendingVerification)
            }
            AccountState::VerifySuccess => Some(BindingStatus::Verified),
            AccountState::AuditFail | AccountState::VerifyFail => Some(BindingStatus::Failed),
            AccountState::AuditSuccess => None,
        }
    }
}

#[derive(Deserialize)]
struct RawAccount {
    account_number: Option<String>,
    verify_result: Option<String>,
    verify_fail_reason: Option<String>,
    account_validation: Option<RawAccountValidation>,
}

/// A checked settlement change or settlement account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub state: AccountState,
    /// Masked (`62*************78`).
    pub account_number: Option<String>,
    pub fail_reason: Option<String>,
    /// The remittance step, as our verification JSON, while it is pending.
    pub verification: Option<String>,
}

impl Account {
    /// Our binding result, or `None` for `AUDIT_SUCCESS` (ask `.../settlement`).
    pub fn binding(&self, reference: Option<String>) -> Option<BindingResult> {
        let status = self.state.status()?;
        let failure = (status == BindingStatus::Failed).then(|| {
            self.fail_reason.clone().unwrap_or_else(|| {
                match self.state {
                    AccountState::AuditFail => "WeChat Pay refused the settlement account change",
                    _ => "WeChat Pay could not verify the settlement account",
                }
                .to_owned()
            })
        });
        Some(BindingResult {
            status,
            provider_reference: reference,
            verification_json: (status == BindingStatus::PendingVerification)
                .then(|| self.verification.clone())
                .flatten(),
            failure,
        })
    }
}

/// The answer to a settlement change query (`Call::QuerySettlementApplication`) or a
/// settlement account query (`Call::QuerySettlement`), or `None` when WeChat Pay has no such
/// change or account (404, `RESOURCE_NOT_EXISTS`).
pub fn interpret_account(call: Call, answer: Answer<'_>) -> Result<Option<Account>, ProviderError> {
    if !answer.is_success() {
        let failure = Failure::parse(answer);
        return match classify(&failure) {
            Class::NotFound => Ok(None),
            _ => Err(query_error(call, &failure)),
        };
    }
    let raw: RawAccount = parse_object(call, answer.body)?;
    let text = raw
        .verify_result
        .ok_or_else(|| body_error(call, "no verify_result"))?;
    let state = AccountState::parse(call, &text)
        .ok_or_else(|| body_error(call, format!("unknown verify_result {:?}", clip(&text))))?;
    let verification = match raw.account_validation {
        Some(v) if state.status() == Some(BindingStatus::PendingVerification) => {
            Some(verification_json(call, v)?)
        }
        _ => None,
    };
    Ok(Some(Account {
        state,
        account_number: bounded(
            call,
            "account_number",
            raw.account_number,
            MASKED_ACCOUNT_CHARS_MAX,
        )?,
        fail_reason: shown(raw.verify_fail_reason),
        verification,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks what the flow's seal would encrypt, so that the tests see which fields it covers.
    const TEST_SEAL: Seal<'static> = &|text| Ok(format!("sealed({text})"));
    use crate::testkit::{ACTIVATION_ID, materials, merchant, settings};
    use serde_json::{Value, json};

    fn answer(status: u16, body: &[u8]) -> Answer<'_> {
        Answer { status, body }
    }

    fn binding_request() -> BindingRequest {
        crate::testkit::binding_request(merchant())
    }

    // --- our side ---

    #[test]
    fn business_numbers_sub_merchants_and_application_numbers_are_checked() {
        assert!(check_business_code("activation id", ACTIVATION_ID).is_ok());
        assert!(check_business_code("x", "1900013511_10000").is_ok());
        for bad in ["", "act-1", "act/1", "act 1", "活动", &"a".repeat(125)] {
            assert!(check_business_code("x", bad).is_err(), "{bad:?}");
        }
        assert!(is_application_no("102329389XXXX"));
        assert!(is_application_no("app-1_2"));
        for bad in ["", "a/b", "a b", "a?b", &"1".repeat(65)] {
            assert!(!is_application_no(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_materials_are_read_and_checked() {
        let m = Materials::parse(&materials().to_string()).unwrap();
        assert_eq!(m.name, "深圳市示例科技有限公司");
        assert_eq!(m.legal_person_id_number, "110101199003071234");
        assert_eq!(m.contact_email.as_deref(), Some("ops@example.cn"));
        assert_eq!(m.industry_code.as_deref(), Some("餐饮"));
        // Optional fields may be missing or null; unknown ones are ignored.
        let mut value = materials();
        value["contact"]["email"] = Value::Null;
        value.as_object_mut().unwrap().remove("tax_registration_no");
        value.as_object_mut().unwrap().remove("industry_code");
        value["extra"] = json!({"anything": 1});
        let m = Materials::parse(&value.to_string()).unwrap();
        assert_eq!(
            (m.contact_email, m.tax_registration_no, m.industry_code),
            (None, None, None)
        );
        let refused = |value: &Value| {
            matches!(
                Materials::parse(&value.to_string()),
                Err(ProviderError::InvalidRequest(_))
            )
        };
        assert!(matches!(
            Materials::parse("not json"),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(refused(&json!([])));
        for (pointer, bad) in [
            ("/name", json!("  ")),
            ("/name", json!(5)),
            ("/name", json!("x".repeat(129))),
            ("/business_license_no", Value::Null),
            ("/legal_person/id_number", json!("")),
            ("/legal_person", json!("张三")),
            ("/contact/phone", json!("138\n00138000")),
            ("/contact/name", Value::Null),
            ("/contact", Value::Null),
        ] {
            let mut value = materials();
            *value.pointer_mut(pointer).unwrap() = bad.clone();
            assert!(refused(&value), "{pointer} = {bad}");
        }
    }

    fn media_ids(m: &Materials) -> MediaIds {
        MediaIds(
            needed_images(m)
                .into_iter()
                .map(|(key, _)| (key.clone(), format!("V1_{}", key.to_uppercase())))
                .collect(),
        )
    }

    fn applyment_of(value: &Value) -> Result<Value, ProviderError> {
        let m = Materials::parse(&value.to_string())?;
        let documents = crate::media::Documents::parse(&value.to_string())?;
        let complete = check_complete(&m, &documents)?;
        let body = applyment(
            &settings(),
            ACTIVATION_ID,
            &complete,
            &media_ids(&m),
            TEST_SEAL,
        )?;
        Ok(serde_json::from_str(&body).unwrap())
    }

    fn with_documents(mut value: Value, extra: &[&str]) -> Value {
        let mut documents = crate::testkit::documents();
        for key in extra {
            documents[*key] = documents["business_license"].clone();
        }
        value["documents"] = documents;
        value
    }

    #[test]
    fn the_applyment_body_carries_the_materials_under_wechat_pays_names() {
        let body = applyment_of(&with_documents(materials(), &[])).unwrap();
        assert_eq!(
            body,
            json!({
                "business_code": ACTIVATION_ID,
                "contact_info": {
                    "contact_type": "LEGAL",
                    "contact_name": "sealed(张三)",
                    "mobile_phone": "sealed(13800138000)",
                    "contact_email": "sealed(ops@example.cn)",
                },
                "subject_info": {
                    "subject_type": "SUBJECT_TYPE_ENTERPRISE",
                    "business_license_info": {
                        "license_copy": "V1_BUSINESS_LICENSE",
                        "license_number": "91440300MA5FXXXX0X",
                        "merchant_name": "深圳市示例科技有限公司",
                        "legal_person": "张三",
                        "license_address": "广东省深圳市南山区科技园路1号",
                        "period_begin": "2018-03-01",
                        "period_end": "长期",
                    },
                    "identity_info": {
                        "id_holder_type": "LEGAL",
                        "id_doc_type": "IDENTIFICATION_TYPE_IDCARD",
                        "id_card_info": {"id_card_copy": "V1_ID_CARD_FRONT", "id_card_national": "V1_ID_CARD_BACK",
                                         "id_card_name": "sealed(张三)", "id_card_number": "sealed(110101199003071234)",
                                         "id_card_address": "sealed(北京市东城区示例路1号)",
                                         "card_period_begin": "2019-05-20", "card_period_end": "2039-05-20"},
                        "owner": true,
                    },
                },
                "business_info": {
                    "merchant_shortname": "深圳市示例科技有限公司",
                    "service_phone": "13800138000",
                    "sales_info": {
                        "sales_scenes_type": ["SALES_SCENES_STORE"],
                        "biz_store_info": {
                            "biz_store_name": "示例茶室",
                            "biz_address_code": "440305",
                            "biz_store_address": "广东省深圳市南山区科技园路1号101",
                            "store_entrance_pic": ["V1_STORE_ENTRANCE"],
                            "indoor_pic": ["V1_STORE_INDOOR"],
                        },
                    },
                },
                "settlement_info": {"settlement_id": "716", "qualification_type": "餐饮"},
                "bank_account_info": {
                    "bank_account_type": "BANK_ACCOUNT_TYPE_CORPORATE",
                    "account_name": "sealed(深圳市示例科技有限公司)",
                    "account_bank": "招商银行",
                    "bank_address_code": "440300",
                    "bank_name": "招商银行深圳分行科技园支行",
                    "account_number": "sealed(7550000000000001)",
                },
            })
        );
    }

    #[test]
    fn an_agent_contact_a_separate_tax_number_and_a_long_name_are_handled() {
        let mut value = materials();
        value["contact"]["name"] = "李四".into();
        value["tax_registration_no"] = "440300123456789".into();
        value["name"] = "很".repeat(40).into();
        value["details"]["settlement_account"]["account_holder"] = "很".repeat(40).into();
        value["details"]["contact"] = json!({"id_number": "110101199201011231", "id_valid_from": "2020-01-01", "id_valid_until": "long-term"});
        let value = with_documents(
            value,
            &[
                "contact_id_front",
                "contact_id_back",
                "authorization_letter",
            ],
        );
        let body = applyment_of(&value).unwrap();
        assert_eq!(
            body["contact_info"],
            json!({
                "contact_type": "SUPER",
                "contact_name": "sealed(李四)",
                "contact_id_doc_type": "IDENTIFICATION_TYPE_IDCARD",
                "contact_id_number": "sealed(110101199201011231)",
                "contact_id_doc_copy": "V1_CONTACT_ID_FRONT",
                "contact_id_doc_copy_back": "V1_CONTACT_ID_BACK",
                "contact_period_begin": "2020-01-01",
                "contact_period_end": "长期",
                "business_authorization_letter": "V1_AUTHORIZATION_LETTER",
                "mobile_phone": "sealed(13800138000)",
                "contact_email": "sealed(ops@example.cn)",
            })
        );
        assert_eq!(
            body["addition_info"]["business_addition_msg"],
            "税务登记证号 tax registration no: 440300123456789"
        );
        // 64 bytes at most, on a character boundary: 21 three-byte characters.
        assert_eq!(body["business_info"]["merchant_shortname"], "很".repeat(21));
        assert_eq!(
            body["subject_info"]["business_license_info"]["merchant_name"],
            "很".repeat(40)
        );
        let m = Materials::parse(&value.to_string()).unwrap();
        let documents = crate::media::Documents::parse(&value.to_string()).unwrap();
        let complete = check_complete(&m, &documents).unwrap();
        assert!(applyment(&settings(), "act-1", &complete, &media_ids(&m), TEST_SEAL).is_err());
    }

    #[test]
    fn beneficial_owners_are_named_when_the_legal_person_is_not_one() {
        let mut value = materials();
        value["details"]["legal_person"]["is_beneficial_owner"] = false.into();
        value["details"]["beneficial_owners"] = json!([
            {"name": "王五", "id_number": "110101198001011232", "id_address": "上海市示例路2号",
             "id_valid_from": "2015-01-01", "id_valid_until": "2035-01-01"}
        ]);
        let value = with_documents(
            value,
            &["beneficial_owner_1_id_front", "beneficial_owner_1_id_back"],
        );
        let body = applyment_of(&value).unwrap();
        assert_eq!(body["subject_info"]["identity_info"]["owner"], false);
        assert_eq!(
            body["subject_info"]["ubo_info_list"],
            json!([{
                "ubo_id_doc_type": "IDENTIFICATION_TYPE_IDCARD",
                "ubo_id_doc_copy": "V1_BENEFICIAL_OWNER_1_ID_FRONT",
                "ubo_id_doc_copy_back": "V1_BENEFICIAL_OWNER_1_ID_BACK",
                "ubo_id_doc_name": "sealed(王五)",
                "ubo_id_doc_number": "sealed(110101198001011232)",
                "ubo_id_doc_address": "sealed(上海市示例路2号)",
                "ubo_period_begin": "2015-01-01",
                "ubo_period_end": "2035-01-01",
            }])
        );
    }

    #[test]
    fn an_incomplete_application_is_refused_before_anything_is_sent_naming_what_is_missing() {
        let refusal = |value: Value| match applyment_of(&value) {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("expected invalid-request, got {other:?}"),
        };
        let complete = with_documents(materials(), &[]);
        type Change<'a> = &'a dyn Fn(&mut Value);
        let cases: [(Change, &str); 9] = [
            (
                &|v| {
                    v["details"]["legal_person"]
                        .as_object_mut()
                        .unwrap()
                        .clear()
                },
                "details.legal_person.id_address` is required",
            ),
            (
                &|v| {
                    v["details"]["legal_person"]["id_valid_from"] = Value::Null;
                    v["details"]["legal_person"]["id_valid_until"] = Value::Null;
                },
                "details.legal_person.id_valid_from` is required",
            ),
            (
                &|v| {
                    v["details"].as_object_mut().unwrap().remove("store");
                },
                "details.store` is required",
            ),
            (
                &|v| {
                    v["details"]
                        .as_object_mut()
                        .unwrap()
                        .remove("settlement_account");
                },
                "details.settlement_account` is required",
            ),
            (
                &|v| v["details"]["settlement_account"]["account_holder"] = "张三".into(),
                "must be the merchant's name",
            ),
            (
                &|v| v["contact"]["name"] = "李四".into(),
                "details.contact` is required",
            ),
            (
                &|v| v["details"]["legal_person"]["is_beneficial_owner"] = false.into(),
                "details.beneficial_owners` is required",
            ),
            (
                &|v| {
                    v["documents"]
                        .as_object_mut()
                        .unwrap()
                        .remove("store_indoor");
                },
                "documents.store_indoor` is required",
            ),
            (
                &|v| {
                    v.as_object_mut().unwrap().remove("details");
                },
                "details.legal_person.id_address` is required",
            ),
        ];
        for (change, expected) in cases {
            let mut value = complete.clone();
            change(&mut value);
            let message = refusal(value);
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
        }
        // An agent without the agent's photos.
        let mut value = complete.clone();
        value["contact"]["name"] = "李四".into();
        value["details"]["contact"] = json!({"id_number": "110101199201011231", "id_valid_from": "2020-01-01", "id_valid_until": "long-term"});
        assert!(refusal(value).contains("documents.contact_id_front` is required"));
    }

    fn binding_settings() -> Settings {
        Settings {
            bank_area_code: Some("440300".into()),
            ..settings()
        }
    }

    #[test]
    fn the_settlement_change_body_is_a_corporate_account_sealed() {
        let body: Value = serde_json::from_str(
            &modify_settlement(&binding_settings(), &binding_request(), TEST_SEAL).unwrap(),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "modify_mode": "MODIFY_MODE_ASYNC",
                "account_type": "ACCOUNT_TYPE_BUSINESS",
                "account_bank": "招商银行",
                "bank_address_code": "440300",
                "bank_name": "招商银行深圳分行科技园支行",
                "account_number": "sealed(6214830123456789)",
                "account_name": "sealed(深圳市示例科技有限公司)",
            })
        );
        let mut no_branch = binding_request();
        no_branch.branch = Some("  ".into());
        let body: Value = serde_json::from_str(
            &modify_settlement(&binding_settings(), &no_branch, TEST_SEAL).unwrap(),
        )
        .unwrap();
        assert!(body.get("bank_name").is_none());
        let no_area = modify_settlement(&settings(), &binding_request(), TEST_SEAL);
        assert!(
            matches!(&no_area, Err(ProviderError::InvalidRequest(m)) if m.contains("bank_area_code")),
            "{no_area:?}"
        );
        for change in [
            |r: &mut BindingRequest| r.account_number = "12".into(),
            |r: &mut BindingRequest| r.account_number = "6214/8301".into(),
            |r: &mut BindingRequest| r.account_number = "1".repeat(41),
            |r: &mut BindingRequest| r.account_holder = " ".into(),
            |r: &mut BindingRequest| r.bank_name = "".into(),
        ] {
            let mut request = binding_request();
            change(&mut request);
            assert!(
                matches!(
                    modify_settlement(&binding_settings(), &request, TEST_SEAL),
                    Err(ProviderError::InvalidRequest(_))
                ),
                "{request:?}"
            );
        }
    }

    #[test]
    fn a_masked_number_matches_only_the_digits_it_shows() {
        assert!(shows_last_digits("62************89", Some("6789")));
        assert!(shows_last_digits("6214********6789", Some("6789")));
        assert!(shows_last_digits("***123456789", Some("6789")));
        assert!(!shows_last_digits("62************01", Some("6789")));
        assert!(!shows_last_digits("62**************", Some("6789")));
        assert!(!shows_last_digits("62************89", None));
        assert!(!shows_last_digits("", Some("6789")));
    }

    // --- the applyment's answers ---

    #[test]
    fn a_submission_is_submitted_with_the_applyment_id() {
        let result = interpret_submit(answer(200, br#"{"applyment_id":2000002124775691}"#));
        let Ok(Submitted::Applied(result)) = result else {
            panic!("{result:?}");
        };
        assert_eq!(result.status, OnboardingStatus::Submitted);
        assert_eq!(
            result.provider_reference.as_deref(),
            Some("2000002124775691")
        );
        assert_eq!(result.rejection_reason, None);
        assert!(matches!(
            interpret_submit(answer(
                400,
                r#"{"code":"PROCESSING","message":"存在流程进行中的申请单"}"#.as_bytes()
            )),
            Ok(Submitted::InProgress)
        ));
    }

    #[test]
    fn submission_errors_follow_the_documented_mapping() {
        let err = |status: u16, body: &[u8]| interpret_submit(answer(status, body)).unwrap_err();
        for (status, code) in [
            (400, "PARAM_ERROR"),
            (400, "INVALID_REQUEST"),
            (403, "NO_AUTH"),
            (403, "REQUEST_BLOCKED"),
            (401, "SIGN_ERROR"),
        ] {
            let body = json!({"code": code, "message": "x"}).to_string();
            assert!(
                matches!(
                    err(status, body.as_bytes()),
                    ProviderError::InvalidRequest(_)
                ),
                "{code}"
            );
        }
        assert!(matches!(
            err(
                429,
                r#"{"code":"RATE_LIMITED","message":"频率限制"}"#.as_bytes()
            ),
            ProviderError::Unavailable(_)
        ));
        for (status, body) in [
            (500, &br#"{"code":"SYSTEM_ERROR","message":"x"}"#[..]),
            (502, b"<html>bad gateway</html>"),
            (400, br#"{"code":"SOMETHING_NEW","message":"x"}"#),
        ] {
            assert!(
                matches!(err(status, body), ProviderError::UnknownOutcome(_)),
                "{status}"
            );
        }
        // A success we cannot read: it may have been applied.
        for body in [
            &b""[..],
            b"{}",
            br#"{"applyment_id":"2000002124775691"}"#,
            br#"{"applyment_id":-1}"#,
            br#"{"applyment_id":1.5}"#,
            b"[1]",
        ] {
            assert!(
                matches!(err(200, body), ProviderError::UnknownOutcome(_)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    fn query(body: Value) -> Result<Option<Applyment>, ProviderError> {
        interpret_applyment(answer(200, body.to_string().as_bytes()), ACTIVATION_ID)
    }

    fn state(applyment_state: &str) -> Value {
        json!({
            "business_code": ACTIVATION_ID,
            "applyment_id": 2000002124775691u64,
            "sign_url": "https://pay.weixin.qq.com/public/apply4ec_sign/s?applymentId=2000002124775691",
            "applyment_state": applyment_state,
            "applyment_state_msg": "",
        })
    }

    #[test]
    fn every_applyment_state_maps_to_our_status() {
        for (text, status) in [
            ("APPLYMENT_STATE_EDITTING", OnboardingStatus::Submitted),
            ("APPLYMENT_STATE_AUDITING", OnboardingStatus::UnderReview),
            (
                "APPLYMENT_STATE_TO_BE_CONFIRMED",
                OnboardingStatus::UnderReview,
            ),
            (
                "APPLYMENT_STATE_TO_BE_SIGNED",
                OnboardingStatus::UnderReview,
            ),
            ("APPLYMENT_STATE_SIGNING", OnboardingStatus::UnderReview),
            ("APPLYMENT_STATE_REJECTED", OnboardingStatus::Rejected),
            ("APPLYMENT_STATE_CANCELED", OnboardingStatus::Rejected),
        ] {
            let result = query(state(text)).unwrap().unwrap().result();
            assert_eq!(result.status, status, "{text}");
            assert_eq!(
                result.provider_reference.as_deref(),
                Some("2000002124775691"),
                "{text}"
            );
            assert_eq!(
                result.rejection_reason.is_some(),
                status == OnboardingStatus::Rejected,
                "{text}"
            );
        }
    }

    #[test]
    fn a_finished_applyment_is_active_under_its_sub_merchant_number() {
        let mut body = state("APPLYMENT_STATE_FINISHED");
        body["sub_mchid"] = "1900006491".into();
        let result = query(body).unwrap().unwrap().result();
        assert_eq!(result.status, OnboardingStatus::Active);
        assert_eq!(result.provider_reference.as_deref(), Some("1900006491"));
        assert_eq!(result.rejection_reason, None);
        // Finished without a sub-merchant number: nothing to bind to, not trusted.
        assert!(matches!(
            query(state("APPLYMENT_STATE_FINISHED")),
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn what_the_merchant_must_do_next_is_told_while_the_applyment_waits_for_them() {
        let sign_url = "https://pay.weixin.qq.com/public/apply4ec_sign/s?applymentId=2000002124775691&sign=abc";
        let step = |body: Value| {
            let result = query(body).unwrap().unwrap().result();
            assert_eq!(result.status, OnboardingStatus::UnderReview);
            result
                .next_step_json
                .map(|s| serde_json::from_str::<Value>(&s).unwrap())
        };
        let mut body = state("APPLYMENT_STATE_TO_BE_SIGNED");
        body["sign_url"] = sign_url.into();
        body["sub_mchid"] = "1900006491".into();
        assert_eq!(
            step(body),
            Some(json!({"type": "sign_agreement", "url": sign_url}))
        );
        let mut body = state("APPLYMENT_STATE_TO_BE_CONFIRMED");
        body["account_validation"] = validation();
        body["sign_url"] = sign_url.into();
        let confirm = step(body).unwrap();
        assert_eq!(confirm["type"], "verify_account");
        assert_eq!(confirm["remittance"]["amount"], "0.01");
        assert_eq!(confirm["remittance"]["memo"], "PG382913");
        let mut body = state("APPLYMENT_STATE_TO_BE_CONFIRMED");
        body["legal_validation_url"] = "https://pay.weixin.qq.com/legal/v?x=1".into();
        body["sign_url"] = sign_url.into();
        assert_eq!(
            step(body),
            Some(
                json!({"type": "confirm_account", "url": "https://pay.weixin.qq.com/legal/v?x=1"})
            )
        );
        // The link used is the only one checked.
        let mut body = state("APPLYMENT_STATE_TO_BE_CONFIRMED");
        body["legal_validation_url"] = "https://pay.weixin.qq.com/legal/v?x=1".into();
        body["sign_url"] = "not a link".into();
        assert_eq!(step(body).unwrap()["type"], "confirm_account");
        // Under audit, the link WeChat Pay already gives asks nothing of the merchant yet.
        let mut body = state("APPLYMENT_STATE_AUDITING");
        body["sign_url"] = sign_url.into();
        assert_eq!(step(body), None);
        let mut unsigned = state("APPLYMENT_STATE_TO_BE_SIGNED");
        unsigned.as_object_mut().unwrap().remove("sign_url");
        assert_eq!(step(unsigned), None);
        // A link the answer cannot vouch for sends nobody anywhere.
        let long = format!("https://pay.weixin.qq.com/{}", "a".repeat(2100));
        for hostile in [
            "javascript:alert(1)",
            "http://pay.weixin.qq.com/s",
            "https://",
            "https://a b",
            long.as_str(),
        ] {
            let mut body = state("APPLYMENT_STATE_TO_BE_SIGNED");
            body["sign_url"] = hostile.into();
            assert!(
                matches!(query(body), Err(ProviderError::Unavailable(m)) if m.contains("sign_url")),
                "{hostile:?}"
            );
        }
        let mut body = state("APPLYMENT_STATE_TO_BE_CONFIRMED");
        body["account_validation"] = validation();
        body["account_validation"]["pay_amount"] = 500_000.into();
        assert!(
            query(body).is_err(),
            "a remittance of 5000 CNY is not believed"
        );
    }

    #[test]
    fn a_rejection_carries_the_joined_reasons() {
        let mut body = state("APPLYMENT_STATE_REJECTED");
        body["audit_detail"] = json!([
            {"field": "id_card_copy", "field_name": "身份证人像面照片", "reject_reason": " 照片模糊 "},
            {"field": "license_copy", "field_name": "营业执照", "reject_reason": "营业执照已过期"},
            {"field": "license_copy", "field_name": "营业执照", "reject_reason": "营业执照已过期"},
            {"field": "x", "field_name": "x", "reject_reason": ""},
            {"field": "y"},
        ]);
        let result = query(body).unwrap().unwrap().result();
        assert_eq!(result.status, OnboardingStatus::Rejected);
        assert_eq!(
            result.rejection_reason.as_deref(),
            Some("照片模糊; 营业执照已过期")
        );
        // No details: the state message, else a plain sentence.
        let mut body = state("APPLYMENT_STATE_REJECTED");
        body["applyment_state_msg"] = "资料不全".into();
        assert_eq!(
            query(body).unwrap().unwrap().rejection_reason.as_deref(),
            Some("资料不全")
        );
        assert_eq!(
            query(state("APPLYMENT_STATE_REJECTED"))
                .unwrap()
                .unwrap()
                .rejection_reason
                .as_deref(),
            Some("rejected by WeChat Pay (no reason given)")
        );
        assert_eq!(
            query(state("APPLYMENT_STATE_CANCELED"))
                .unwrap()
                .unwrap()
                .rejection_reason
                .as_deref(),
            Some("the application was cancelled")
        );
    }

    #[test]
    fn a_hostile_rejection_is_bounded() {
        let mut body = state("APPLYMENT_STATE_REJECTED");
        let details: Vec<Value> = (0..500)
            .map(|i| json!({"reject_reason": format!("{i}{}\u{7}", "理由".repeat(300))}))
            .collect();
        body["audit_detail"] = details.into();
        let reason = query(body).unwrap().unwrap().rejection_reason.unwrap();
        assert!(reason.len() <= REJECTION_BYTES_MAX);
        assert!(!reason.chars().any(char::is_control));
        assert!(reason.starts_with("0理由"));
    }

    #[test]
    fn malformed_or_foreign_applyments_are_not_trusted() {
        for body in [
            json!({}),
            json!({"applyment_state": "APPLYMENT_STATE_APPROVED"}),
            json!({"applyment_state": 5}),
            json!({"applyment_state": "APPLYMENT_STATE_AUDITING", "applyment_id": "200"}),
            json!({"applyment_state": "APPLYMENT_STATE_AUDITING", "business_code": "act_other"}),
            json!({"applyment_state": "APPLYMENT_STATE_FINISHED", "sub_mchid": "19000/6491"}),
            json!({"applyment_state": "APPLYMENT_STATE_FINISHED", "sub_mchid": "1".repeat(40)}),
            json!({"applyment_state": "APPLYMENT_STATE_REJECTED", "audit_detail": "no"}),
            json!({"applyment_state": "APPLYMENT_STATE_REJECTED", "audit_detail": [{"reject_reason": 1}]}),
            json!(["APPLYMENT_STATE_FINISHED"]),
        ] {
            assert!(
                matches!(query(body.clone()), Err(ProviderError::Unavailable(_))),
                "{body}"
            );
        }
        assert!(matches!(
            interpret_applyment(answer(200, b"<html>"), ACTIVATION_ID),
            Err(ProviderError::Unavailable(_))
        ));
        // Empty identity fields count as absent.
        let mut body = state("APPLYMENT_STATE_AUDITING");
        body["business_code"] = "".into();
        assert!(query(body).unwrap().is_some());
    }

    #[test]
    fn applyment_query_errors() {
        let run = |status: u16, body: Value| {
            interpret_applyment(answer(status, body.to_string().as_bytes()), ACTIVATION_ID)
        };
        let err = |code: &str| json!({"code": code, "message": "x"});
        assert_eq!(run(400, err("APPLYMENT_NOTEXIST")).unwrap(), None);
        assert_eq!(run(404, err("RESOURCE_NOT_EXISTS")).unwrap(), None);
        assert_eq!(run(404, Value::Null).unwrap(), None);
        assert!(matches!(
            run(400, err("PARAM_ERROR")),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(
            run(403, err("NO_AUTH")),
            Err(ProviderError::InvalidRequest(_))
        ));
        for (status, code) in [(500, "SYSTEM_ERROR"), (429, "RATE_LIMITED"), (400, "NEW")] {
            assert!(
                matches!(run(status, err(code)), Err(ProviderError::Unavailable(_))),
                "{code}"
            );
        }
    }

    // --- settlement answers ---

    fn validation() -> Value {
        json!({
            "account_name": "深圳市示例科技有限公司",
            "account_no": "62**********89",
            "pay_amount": 1,
            "destination_account_number": "7955000100001",
            "destination_account_name": "财付通支付科技有限公司",
            "destination_account_bank": "招商银行深圳分行",
            "city": "深圳",
            "remark": "PG382913",
            "deadline": "2024-03-21T23:59:59+08:00",
        })
    }

    #[test]
    fn a_settlement_change_is_pending_with_its_application_number() {
        let body = json!({"application_no": "102329389001"}).to_string();
        let result = interpret_modify(answer(200, body.as_bytes())).unwrap();
        assert_eq!(result.status, BindingStatus::PendingVerification);
        assert_eq!(result.provider_reference.as_deref(), Some("102329389001"));
        assert_eq!(result.verification_json, None);
        assert_eq!(result.failure, None);
        let result = interpret_modify(answer(204, b"")).unwrap();
        assert_eq!(result.status, BindingStatus::PendingVerification);
        assert_eq!(result.provider_reference, None);
        // With the remittance step.
        let body = json!({"application_no": "102329389001", "account_validation": validation()})
            .to_string();
        let result = interpret_modify(answer(200, body.as_bytes())).unwrap();
        let verification: Value = serde_json::from_str(&result.verification_json.unwrap()).unwrap();
        assert_eq!(
            verification,
            json!({
                "type": "remittance",
                "amount": "0.01",
                "amount_minor": 1,
                "currency": "CNY",
                "from_account_name": "深圳市示例科技有限公司",
                "from_account_number": "62**********89",
                "to_account": "7955000100001",
                "to_account_name": "财付通支付科技有限公司",
                "to_bank": "招商银行深圳分行",
                "to_city": "深圳",
                "memo": "PG382913",
                "deadline": "2024-03-21T23:59:59+08:00",
            })
        );
    }

    #[test]
    fn the_remittance_amount_is_fen_as_a_number_or_digits() {
        let convert = |pay_amount: Value| {
            let raw: RawAccountValidation =
                serde_json::from_value(json!({"pay_amount": pay_amount})).unwrap();
            verification_json(Call::QuerySettlement, raw)
        };
        let amount = |pay_amount: Value| -> Value {
            serde_json::from_str::<Value>(&convert(pay_amount).unwrap()).unwrap()["amount"].clone()
        };
        assert_eq!(amount(json!(1)), "0.01");
        assert_eq!(amount(json!("37")), "0.37");
        assert_eq!(amount(json!(100)), "1.00");
        for bad in [
            json!("0.01"),
            json!("-1"),
            json!("+1"),
            json!(""),
            json!(0),
            json!(101),
            json!(10_000_000),
            json!(u64::MAX),
        ] {
            assert!(convert(bad.clone()).is_err(), "{bad}");
        }
        // Only what the answer says: nothing but the type when it says nothing.
        let raw: RawAccountValidation = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            verification_json(Call::QuerySettlement, raw).unwrap(),
            r#"{"type":"remittance"}"#
        );
    }

    #[test]
    fn settlement_change_errors_follow_the_documented_mapping() {
        let err = |status: u16, body: &[u8]| interpret_modify(answer(status, body)).unwrap_err();
        for code in ["PARAM_ERROR", "INVALID_REQUEST", "NO_AUTH"] {
            let body = json!({"code": code, "message": "x"}).to_string();
            assert!(
                matches!(err(400, body.as_bytes()), ProviderError::InvalidRequest(_)),
                "{code}"
            );
        }
        assert!(matches!(err(429, b"{}"), ProviderError::Unavailable(_)));
        assert!(matches!(
            err(500, br#"{"code":"SYSTEM_ERROR"}"#),
            ProviderError::UnknownOutcome(_)
        ));
        for body in [
            &b"{}"[..],
            br#"{"application_no":""}"#,
            br#"{"application_no":"../settlement"}"#,
            br#"{"application_no":12}"#,
            br#"{"application_no":"1","account_validation":{"pay_amount":"lots"}}"#,
            b"not json",
        ] {
            assert!(
                matches!(err(200, body), ProviderError::UnknownOutcome(_)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    fn account(call: Call, body: Value) -> Result<Option<Account>, ProviderError> {
        interpret_account(call, answer(200, body.to_string().as_bytes()))
    }

    #[test]
    fn every_verify_result_maps_to_our_binding_status() {
        for (call, text, status) in [
            (
                Call::QuerySettlementApplication,
                "AUDITING",
                Some(BindingStatus::PendingVerification),
            ),
            (Call::QuerySettlementApplication, "AUDIT_SUCCESS", None),
            (
                Call::QuerySettlementApplication,
                "AUDIT_FAIL",
                Some(BindingStatus::Failed),
            ),
            (
                Call::QuerySettlement,
                "VERIFYING",
                Some(BindingStatus::PendingVerification),
            ),
            (
                Call::QuerySettlement,
                "VERIFY_SUCCESS",
                Some(BindingStatus::Verified),
            ),
            (
                Call::QuerySettlement,
                "VERIFY_FAIL",
                Some(BindingStatus::Failed),
            ),
        ] {
            let body = json!({
                "account_type": "ACCOUNT_TYPE_BUSINESS",
                "account_bank": "招商银行",
                "account_number": "62**************89",
                "verify_result": text,
                "verify_fail_reason": "",
                "account_validation": validation(),
            });
            let checked = account(call, body).unwrap().unwrap();
            assert_eq!(
                checked.account_number.as_deref(),
                Some("62**************89")
            );
            let result = checked.binding(Some("102329389001".into()));
            assert_eq!(result.as_ref().map(|r| r.status), status, "{text}");
            if let Some(result) = result {
                assert_eq!(result.provider_reference.as_deref(), Some("102329389001"));
                let pending = status == Some(BindingStatus::PendingVerification);
                assert_eq!(result.verification_json.is_some(), pending, "{text}");
                assert_eq!(
                    result.failure.is_some(),
                    status == Some(BindingStatus::Failed),
                    "{text}"
                );
            }
        }
        // Each query has its own words.
        assert!(
            account(
                Call::QuerySettlement,
                json!({"verify_result": "AUDIT_SUCCESS"})
            )
            .is_err()
        );
        assert!(
            account(
                Call::QuerySettlementApplication,
                json!({"verify_result": "VERIFY_SUCCESS"})
            )
            .is_err()
        );
    }

    #[test]
    fn a_failed_verification_carries_its_reason() {
        let body =
            json!({"verify_result": "VERIFY_FAIL", "verify_fail_reason": "账户名与开户名不一致"});
        let result = account(Call::QuerySettlement, body)
            .unwrap()
            .unwrap()
            .binding(None)
            .unwrap();
        assert_eq!(result.status, BindingStatus::Failed);
        assert_eq!(result.failure.as_deref(), Some("账户名与开户名不一致"));
        let result = account(
            Call::QuerySettlementApplication,
            json!({"verify_result": "AUDIT_FAIL"}),
        )
        .unwrap()
        .unwrap()
        .binding(None)
        .unwrap();
        assert_eq!(
            result.failure.as_deref(),
            Some("WeChat Pay refused the settlement account change")
        );
    }

    #[test]
    fn malformed_or_missing_settlement_answers() {
        for body in [
            json!({}),
            json!({"verify_result": "VERIFIED"}),
            json!({"verify_result": 1}),
            json!({"verify_result": "VERIFYING", "account_number": "6".repeat(200)}),
            json!({"verify_result": "VERIFYING", "account_validation": {"pay_amount": [1]}}),
            json!({"verify_result": "VERIFYING", "verify_fail_reason": {"a": 1}}),
        ] {
            assert!(
                matches!(
                    account(Call::QuerySettlement, body.clone()),
                    Err(ProviderError::Unavailable(_))
                ),
                "{body}"
            );
        }
        let run = |status: u16, body: &[u8]| {
            interpret_account(Call::QuerySettlement, answer(status, body))
        };
        assert_eq!(
            run(404, br#"{"code":"RESOURCE_NOT_EXISTS","message":"x"}"#).unwrap(),
            None
        );
        assert!(matches!(
            run(403, br#"{"code":"NO_AUTH","message":"x"}"#),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(run(500, b""), Err(ProviderError::Unavailable(_))));
        // A verified account shows no verification step even when the answer has one.
        let body = json!({"verify_result": "VERIFY_SUCCESS", "account_validation": validation()});
        let checked = account(Call::QuerySettlement, body).unwrap().unwrap();
        assert_eq!(checked.verification, None);
    }
}
