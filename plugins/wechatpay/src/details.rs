//! The application's details beyond the merchant's record (`materials.details`, sent by the
//! gateway with each submission and never stored there): the business licence's address and
//! term, the legal person's identity card address and term, the beneficial owners when the
//! legal person is not one, the agent's identity when the contact is not the legal person,
//! the store, and the settlement account WeChat Pay settles to from the start. Checked here,
//! before anything is sent; which of them an applyment requires is decided in `onboarding`.

use paygate_plugin_api::ProviderError;
use serde::Deserialize;

/// At most this many beneficial owners (WeChat Pay's `ubo_info_list` takes four).
pub const OWNERS_MAX: usize = 4;
/// How WeChat Pay writes a term without an end.
pub const LONG_TERM: &str = "长期";

/// A document's term: `begin` a date (`YYYY-MM-DD`), `end` a later date or [`LONG_TERM`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub begin: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub id_number: String,
    pub id_address: String,
    pub id_term: Term,
}

/// The agent who applies for the merchant (WeChat Pay's `SUPER` contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id_number: String,
    pub id_term: Term,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub name: String,
    /// The administrative division code (6 digits) of where the store is.
    pub area_code: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub holder: String,
    /// The bank, as WeChat Pay's list names it (`工商银行`, ..., or `其他银行`).
    pub bank: String,
    /// The administrative division code (6 digits) of the account's branch.
    pub area_code: String,
    /// The branch's full name (required by WeChat Pay for `其他银行`).
    pub branch: Option<String>,
    pub number: String,
}

/// The details, each section checked when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub license_address: Option<String>,
    pub license_term: Option<Term>,
    pub id_address: Option<String>,
    pub id_term: Option<Term>,
    /// Whether the legal person is a beneficial owner (`identity_info.owner`); default yes.
    pub legal_person_is_owner: bool,
    pub owners: Vec<Owner>,
    pub agent: Option<Agent>,
    pub store: Option<Store>,
    pub account: Option<Account>,
}

#[derive(Debug, Default, Deserialize)]
struct RawLicense {
    address: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawLegalPerson {
    id_address: Option<String>,
    id_valid_from: Option<String>,
    id_valid_until: Option<String>,
    is_beneficial_owner: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RawOwner {
    name: Option<String>,
    id_number: Option<String>,
    id_address: Option<String>,
    id_valid_from: Option<String>,
    id_valid_until: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAgent {
    id_number: Option<String>,
    id_valid_from: Option<String>,
    id_valid_until: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawStore {
    name: Option<String>,
    area_code: Option<String>,
    address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAccount {
    account_holder: Option<String>,
    bank_name: Option<String>,
    bank_area_code: Option<String>,
    branch: Option<String>,
    account_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawDetails {
    business_license: Option<RawLicense>,
    legal_person: Option<RawLegalPerson>,
    beneficial_owners: Option<Vec<RawOwner>>,
    contact: Option<RawAgent>,
    store: Option<RawStore>,
    settlement_account: Option<RawAccount>,
}

fn invalid(what: &str, rule: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!("wechatpay onboarding: `details.{what}` {rule}"))
}

/// A text of 1 to `chars_max` characters (trimmed), without control characters.
fn text(what: &str, value: Option<&str>, chars_max: usize) -> Result<String, ProviderError> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(invalid(what, "is required"));
    }
    if value.chars().count() > chars_max || value.chars().any(char::is_control) {
        return Err(invalid(
            what,
            &format!("must be at most {chars_max} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

fn optional_text(
    what: &str,
    value: Option<&str>,
    chars_max: usize,
) -> Result<Option<String>, ProviderError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(what, Some(v), chars_max).map(Some),
    }
}

/// `YYYY-MM-DD` with a month 01-12 and a day 01-31 (the gateway checks the calendar).
fn is_date(value: &str) -> bool {
    let b = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let number = |range: std::ops::Range<usize>| {
        std::str::from_utf8(&b[range])
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0)
    };
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && (1..=12).contains(&number(5..7))
        && (1..=31).contains(&number(8..10))
}

/// A term from `valid_from` and `valid_until` (`long-term` for none).
fn term(what: &str, from: Option<&str>, until: Option<&str>) -> Result<Term, ProviderError> {
    let begin = text(&format!("{what}_from"), from, 10)?;
    if !is_date(&begin) {
        return Err(invalid(
            &format!("{what}_from"),
            "must be a date (YYYY-MM-DD)",
        ));
    }
    let until = text(&format!("{what}_until"), until, 10)?;
    let end = if until == "long-term" {
        LONG_TERM.to_owned()
    } else if is_date(&until) && until > begin {
        until
    } else {
        return Err(invalid(
            &format!("{what}_until"),
            "must be a date (YYYY-MM-DD) after the start, or `long-term`",
        ));
    };
    Ok(Term { begin, end })
}

/// An administrative division code: six digits.
fn area_code(what: &str, value: Option<&str>) -> Result<String, ProviderError> {
    let code = text(what, value, 6)?;
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(code)
    } else {
        Err(invalid(
            what,
            "must be a 6-digit administrative division code",
        ))
    }
}

fn owner(index: usize, raw: RawOwner) -> Result<Owner, ProviderError> {
    let field = |name: &str| format!("beneficial_owners[{index}].{name}");
    Ok(Owner {
        name: text(&field("name"), raw.name.as_deref(), 100)?,
        id_number: text(&field("id_number"), raw.id_number.as_deref(), 32)?,
        id_address: text(&field("id_address"), raw.id_address.as_deref(), 256)?,
        id_term: term(
            &field("id_valid"),
            raw.id_valid_from.as_deref(),
            raw.id_valid_until.as_deref(),
        )?,
    })
}

impl Details {
    /// The materials' `details` (absent: none given). Sections are checked when present;
    /// a field of the wrong type is `invalid-request`.
    pub(crate) fn check(raw: Option<RawDetails>) -> Result<Details, ProviderError> {
        let raw = raw.unwrap_or_default();
        let mut details = Details {
            legal_person_is_owner: true,
            ..Details::default()
        };
        if let Some(license) = raw.business_license {
            details.license_address =
                optional_text("business_license.address", license.address.as_deref(), 256)?;
            if license.valid_from.is_some() || license.valid_until.is_some() {
                details.license_term = Some(term(
                    "business_license.valid",
                    license.valid_from.as_deref(),
                    license.valid_until.as_deref(),
                )?);
            }
        }
        if let Some(person) = raw.legal_person {
            details.id_address =
                optional_text("legal_person.id_address", person.id_address.as_deref(), 256)?;
            if person.id_valid_from.is_some() || person.id_valid_until.is_some() {
                details.id_term = Some(term(
                    "legal_person.id_valid",
                    person.id_valid_from.as_deref(),
                    person.id_valid_until.as_deref(),
                )?);
            }
            details.legal_person_is_owner = person.is_beneficial_owner.unwrap_or(true);
        }
        let owners = raw.beneficial_owners.unwrap_or_default();
        if owners.len() > OWNERS_MAX {
            return Err(invalid(
                "beneficial_owners",
                &format!("may name at most {OWNERS_MAX} people"),
            ));
        }
        details.owners = owners
            .into_iter()
            .enumerate()
            .map(|(i, raw)| owner(i, raw))
            .collect::<Result<_, _>>()?;
        if let Some(agent) = raw.contact {
            details.agent = Some(Agent {
                id_number: text("contact.id_number", agent.id_number.as_deref(), 32)?,
                id_term: term(
                    "contact.id_valid",
                    agent.id_valid_from.as_deref(),
                    agent.id_valid_until.as_deref(),
                )?,
            });
        }
        if let Some(store) = raw.store {
            details.store = Some(Store {
                name: text("store.name", store.name.as_deref(), 50)?,
                area_code: area_code("store.area_code", store.area_code.as_deref())?,
                address: text("store.address", store.address.as_deref(), 512)?,
            });
        }
        if let Some(account) = raw.settlement_account {
            let number = crate::onboarding::without_separators(&text(
                "settlement_account.account_number",
                account.account_number.as_deref(),
                64,
            )?);
            if !(4..=40).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "settlement_account.account_number",
                    "must be 4 to 40 digits",
                ));
            }
            details.account = Some(Account {
                holder: text(
                    "settlement_account.account_holder",
                    account.account_holder.as_deref(),
                    128,
                )?,
                bank: text(
                    "settlement_account.bank_name",
                    account.bank_name.as_deref(),
                    128,
                )?,
                area_code: area_code(
                    "settlement_account.bank_area_code",
                    account.bank_area_code.as_deref(),
                )?,
                branch: optional_text("settlement_account.branch", account.branch.as_deref(), 128)?,
                number,
            });
        }
        Ok(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn check(value: Value) -> Result<Details, ProviderError> {
        Details::check(Some(serde_json::from_value(value).map_err(|e| {
            ProviderError::InvalidRequest(format!("not valid: {e}"))
        })?))
    }

    fn refusal(value: Value) -> String {
        match check(value) {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("expected invalid-request, got {other:?}"),
        }
    }

    #[test]
    fn every_section_is_read() {
        let d = check(crate::testkit::details()).unwrap();
        assert_eq!(d.license_term.as_ref().unwrap().end, LONG_TERM);
        assert_eq!(d.id_term.as_ref().unwrap().begin, "2019-05-20");
        assert!(d.legal_person_is_owner);
        assert_eq!(d.store.as_ref().unwrap().area_code, "440305");
        assert_eq!(d.account.as_ref().unwrap().number, "7550000000000001");
        assert!(d.agent.is_none() && d.owners.is_empty());
        // Nothing given: nothing checked, the legal person an owner.
        let none = Details::check(None).unwrap();
        assert!(none.legal_person_is_owner && none.store.is_none());
    }

    #[test]
    fn bad_details_are_refused_naming_the_field() {
        let cases = [
            (
                json!({"legal_person": {"id_valid_from": "2019-02-30x", "id_valid_until": "long-term"}}),
                "details.legal_person.id_valid_from",
            ),
            (
                json!({"legal_person": {"id_valid_from": "2019-05-20", "id_valid_until": "2019-05-19"}}),
                "details.legal_person.id_valid_until",
            ),
            (
                json!({"legal_person": {"id_valid_from": "2019-05-20"}}),
                "details.legal_person.id_valid_until` is required",
            ),
            (
                json!({"store": {"name": "Tea", "area_code": "44030", "address": "1 Road"}}),
                "details.store.area_code",
            ),
            (
                json!({"store": {"name": "Tea\u{0}", "area_code": "440305", "address": "1 Road"}}),
                "details.store.name",
            ),
            (
                json!({"settlement_account": {"account_holder": "A", "bank_name": "B", "bank_area_code": "440305", "account_number": "12ab"}}),
                "details.settlement_account.account_number",
            ),
            (
                json!({"beneficial_owners": [{"name": "Wang Wu"}]}),
                "details.beneficial_owners[0].id_number",
            ),
            (
                json!({"beneficial_owners": [{}, {}, {}, {}, {}]}),
                "at most 4",
            ),
            (json!({"contact": {}}), "details.contact.id_number"),
        ];
        for (value, expected) in cases {
            let message = refusal(value.clone());
            assert!(message.contains(expected), "{value}: {message}");
        }
        // Wrong types: refused, not a panic.
        assert!(refusal(json!({"store": "here"})).contains("not valid"));
        assert!(refusal(json!({"beneficial_owners": {}})).contains("not valid"));
    }
}
