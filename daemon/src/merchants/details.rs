//! The details an application carries beyond the merchant's record, for providers whose
//! review needs them (WeChat Pay's applyment): the business licence's address and term, the
//! legal person's identity card address and term, the beneficial owners when the legal
//! person is not one, the agent's identity card when the contact is not the legal person,
//! the store, and the account the provider settles to from the start.
//!
//! Like the images (`documents.rs`), details live only as long as the request that carries
//! them: checked here, handed to the plugin inside the materials, then dropped. They are
//! personal data the gateway has no later use for, so it keeps none of them; the audit log
//! names the sections given, never their values. Which sections a provider requires is the
//! plugin's to say (it answers `invalid-request` naming the field).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::onboarding::OnboardingError;
use super::validate;

/// At most this many beneficial owners (WeChat Pay takes four).
pub const OWNERS_MAX: usize = 4;

/// The business licence beyond its number.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseDetails {
    /// The registered address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The licence's term: `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD` after `valid_from`, or `long-term`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// The legal person beyond name and number.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalPersonDetails {
    /// The address on the identity card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_valid_from: Option<String>,
    /// `YYYY-MM-DD` after `id_valid_from`, or `long-term`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_valid_until: Option<String>,
    /// Whether the legal person is a beneficial owner (default true); when false,
    /// `beneficial_owners` names those who are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_beneficial_owner: Option<bool>,
}

/// A beneficial owner (最终受益人) with a mainland identity card.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerDetails {
    pub name: String,
    /// Resident identity number (GB 11643-1999).
    pub id_number: String,
    pub id_address: String,
    pub id_valid_from: String,
    /// `YYYY-MM-DD` after `id_valid_from`, or `long-term`.
    pub id_valid_until: String,
}

/// The contact's identity card, when the contact applies as the merchant's agent (is not
/// the legal person).
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentDetails {
    /// Resident identity number (GB 11643-1999).
    pub id_number: String,
    pub id_valid_from: String,
    /// `YYYY-MM-DD` after `id_valid_from`, or `long-term`.
    pub id_valid_until: String,
}

/// The store the merchant collects in.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreDetails {
    pub name: String,
    /// Administrative division code (GB/T 2260) of where the store is, e.g. `440305`.
    pub area_code: String,
    pub address: String,
}

/// The account the provider settles to from the start (a corporate account).
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementAccountDetails {
    pub account_holder: String,
    /// The bank, as the provider's list names it (WeChat Pay: `招商银行`, ..., `其他银行`).
    pub bank_name: String,
    /// Administrative division code (GB/T 2260) of the branch's city, e.g. `440300`.
    pub bank_area_code: String,
    /// The branch's full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// 8 to 30 digits.
    pub account_number: String,
}

/// An application's details: each section optional here, required as the provider says.
#[derive(Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_license: Option<LicenseDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_person: Option<LegalPersonDetails>,
    /// At most 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beneficial_owners: Option<Vec<OwnerDetails>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<AgentDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_account: Option<SettlementAccountDetails>,
}

impl std::fmt::Debug for ApplicationDetails {
    /// The sections only (the values are personal data and may end up in a log line).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.sections()).finish()
    }
}

fn invalid(param: &'static str, message: String) -> OnboardingError {
    OnboardingError::Invalid { param, message }
}

/// A text of 1 to `max` characters, without control characters (as given: nothing is
/// trimmed, as for the merchant's own fields).
fn text(param: &'static str, what: &str, value: &str, max: usize) -> Result<(), OnboardingError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(invalid(
            param,
            format!("{what} must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// A term: `from` a date, `until` a later date or `long-term`; one without the other is
/// refused.
fn term(
    param: &'static str,
    what: &str,
    from: Option<&str>,
    until: Option<&str>,
) -> Result<(), OnboardingError> {
    let (Some(from), Some(until)) = (from, until) else {
        return Err(invalid(
            param,
            format!("{what}_from and {what}_until go together"),
        ));
    };
    validate::calendar_date(from).map_err(|m| invalid(param, format!("{what}_from {m}")))?;
    if until != "long-term" {
        validate::calendar_date(until)
            .map_err(|m| invalid(param, format!("{what}_until {m} (or long-term)")))?;
        if until <= from {
            return Err(invalid(
                param,
                format!("{what}_until must be after {what}_from"),
            ));
        }
    }
    Ok(())
}

impl ApplicationDetails {
    /// The sections given, for the audit log (`beneficial_owners` with their number).
    pub fn sections(&self) -> Vec<String> {
        let mut sections = Vec::new();
        let mut given = |name: &str, present: bool| {
            if present {
                sections.push(name.to_owned());
            }
        };
        given("business_license", self.business_license.is_some());
        given("legal_person", self.legal_person.is_some());
        given("contact", self.contact.is_some());
        given("store", self.store.is_some());
        given("settlement_account", self.settlement_account.is_some());
        if let Some(owners) = &self.beneficial_owners {
            sections.push(format!("beneficial_owners: {}", owners.len()));
        }
        sections
    }

    /// Checks every section given, naming the first field at fault; `today` bounds the
    /// birth dates in identity numbers.
    pub fn check(&self, today: (i32, u32, u32)) -> Result<(), OnboardingError> {
        if let Some(license) = &self.business_license {
            const P: &str = "details.business_license";
            if let Some(address) = &license.address {
                text(P, "address", address, 256)?;
            }
            if license.valid_from.is_some() || license.valid_until.is_some() {
                term(
                    P,
                    "valid",
                    license.valid_from.as_deref(),
                    license.valid_until.as_deref(),
                )?;
            }
        }
        if let Some(person) = &self.legal_person {
            const P: &str = "details.legal_person";
            if let Some(address) = &person.id_address {
                text(P, "id_address", address, 256)?;
            }
            if person.id_valid_from.is_some() || person.id_valid_until.is_some() {
                term(
                    P,
                    "id_valid",
                    person.id_valid_from.as_deref(),
                    person.id_valid_until.as_deref(),
                )?;
            }
        }
        if let Some(owners) = &self.beneficial_owners {
            const P: &str = "details.beneficial_owners";
            if owners.is_empty() || owners.len() > OWNERS_MAX {
                return Err(invalid(P, format!("name 1 to {OWNERS_MAX} people")));
            }
            for (i, owner) in owners.iter().enumerate() {
                let at = |m: OnboardingError| match m {
                    OnboardingError::Invalid { param, message } => OnboardingError::Invalid {
                        param,
                        message: format!("beneficial_owners[{i}]: {message}"),
                    },
                    other => other,
                };
                text(P, "name", &owner.name, 64).map_err(at)?;
                validate::resident_identity_number(&owner.id_number, today)
                    .map_err(|m| at(invalid(P, format!("id_number {m}"))))?;
                text(P, "id_address", &owner.id_address, 256).map_err(at)?;
                term(
                    P,
                    "id_valid",
                    Some(&owner.id_valid_from),
                    Some(&owner.id_valid_until),
                )
                .map_err(at)?;
            }
        }
        if let Some(agent) = &self.contact {
            const P: &str = "details.contact";
            validate::resident_identity_number(&agent.id_number, today)
                .map_err(|m| invalid(P, format!("id_number {m}")))?;
            term(
                P,
                "id_valid",
                Some(&agent.id_valid_from),
                Some(&agent.id_valid_until),
            )?;
        }
        if let Some(store) = &self.store {
            const P: &str = "details.store";
            text(P, "name", &store.name, 50)?;
            validate::area_code(&store.area_code)
                .map_err(|m| invalid(P, format!("area_code {m}")))?;
            text(P, "address", &store.address, 512)?;
        }
        if let Some(account) = &self.settlement_account {
            const P: &str = "details.settlement_account";
            text(P, "account_holder", &account.account_holder, 128)?;
            text(P, "bank_name", &account.bank_name, 128)?;
            validate::area_code(&account.bank_area_code)
                .map_err(|m| invalid(P, format!("bank_area_code {m}")))?;
            if let Some(branch) = &account.branch {
                text(P, "branch", branch, 128)?;
            }
            validate::corporate_account_number(&account.account_number)
                .map_err(|m| invalid(P, format!("account_number {m}")))?;
        }
        Ok(())
    }

    /// The details as the materials carry them to the plugin (`materials.details`).
    pub fn materials(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TODAY: (i32, u32, u32) = (2026, 12, 7);

    fn complete() -> Value {
        json!({
            "business_license": {"address": "深圳市南山区科技园路1号", "valid_from": "2018-03-01", "valid_until": "long-term"},
            "legal_person": {"id_address": "北京市东城区示例路1号", "id_valid_from": "2019-05-20", "id_valid_until": "2039-05-20", "is_beneficial_owner": false},
            "beneficial_owners": [{"name": "王五", "id_number": "11010519491231002X", "id_address": "上海市示例路2号", "id_valid_from": "2015-01-01", "id_valid_until": "2035-01-01"}],
            "contact": {"id_number": "11010519491231002X", "id_valid_from": "2020-02-29", "id_valid_until": "long-term"},
            "store": {"name": "示例茶室", "area_code": "440305", "address": "深圳市南山区科技园路1号101"},
            "settlement_account": {"account_holder": "示例科技有限公司", "bank_name": "招商银行", "bank_area_code": "440300", "account_number": "755000000000001"},
        })
    }

    fn parsed(value: Value) -> ApplicationDetails {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn complete_details_pass_and_go_to_the_plugin_as_given() {
        let details = parsed(complete());
        details.check(TODAY).unwrap();
        assert_eq!(details.materials(), complete());
        assert_eq!(
            details.sections(),
            [
                "business_license",
                "legal_person",
                "contact",
                "store",
                "settlement_account",
                "beneficial_owners: 1"
            ]
        );
        // Nothing given: nothing to check.
        ApplicationDetails::default().check(TODAY).unwrap();
    }

    #[test]
    fn the_debug_form_names_sections_never_values() {
        let shown = format!("{:?}", parsed(complete()));
        assert!(shown.contains("store"), "{shown}");
        for secret in ["11010519491231002X", "王五", "755000000000001", "北京"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn bad_details_are_refused_naming_the_section_and_field() {
        let cases: [(&str, Value, &str, &str); 12] = [
            (
                "/legal_person/id_valid_from",
                json!("2019-02-30"),
                "details.legal_person",
                "id_valid_from is not a date",
            ),
            (
                "/legal_person/id_valid_until",
                json!("2019-05-19"),
                "details.legal_person",
                "must be after",
            ),
            (
                "/legal_person/id_valid_until",
                json!("forever"),
                "details.legal_person",
                "long-term",
            ),
            (
                "/business_license/valid_until",
                Value::Null,
                "details.business_license",
                "go together",
            ),
            (
                "/business_license/address",
                json!("a\u{0}b"),
                "details.business_license",
                "address",
            ),
            (
                "/beneficial_owners/0/id_number",
                json!("110105194912310021"),
                "details.beneficial_owners",
                "beneficial_owners[0]: id_number",
            ),
            (
                "/beneficial_owners",
                json!([]),
                "details.beneficial_owners",
                "1 to 4",
            ),
            (
                "/contact/id_valid_from",
                json!("2020/02/29"),
                "details.contact",
                "YYYY-MM-DD",
            ),
            (
                "/store/area_code",
                json!("44030"),
                "details.store",
                "area_code",
            ),
            (
                "/store/area_code",
                json!("040305"),
                "details.store",
                "area_code",
            ),
            (
                "/store/name",
                json!("x".repeat(51)),
                "details.store",
                "name",
            ),
            (
                "/settlement_account/account_number",
                json!("7550 0000 0001"),
                "details.settlement_account",
                "account_number",
            ),
        ];
        for (pointer, bad, param, expected) in cases {
            let mut value = complete();
            *value.pointer_mut(pointer).unwrap() = bad.clone();
            let Err(OnboardingError::Invalid { param: p, message }) = parsed(value).check(TODAY)
            else {
                panic!("{pointer} = {bad} passed");
            };
            assert_eq!(p, param, "{pointer}");
            assert!(message.contains(expected), "{pointer}: {message}");
            assert!(!message.contains("11010519491231002"), "{message}");
        }
        let five = Value::Array(vec![complete()["beneficial_owners"][0].clone(); 5]);
        let mut value = complete();
        value["beneficial_owners"] = five;
        assert!(parsed(value).check(TODAY).is_err());
        // Unknown fields and wrong types are refused by the body's own reading.
        for bad in [
            json!({"store": {"name": "x", "area_code": "440305", "address": "y", "floor": 2}}),
            json!({"store": "here"}),
            json!({"surprise": {}}),
        ] {
            assert!(serde_json::from_value::<ApplicationDetails>(bad).is_err());
        }
    }
}
