//! `kit.toml`, beside a plugin's cassettes: the provider, the merchant the calls are for
//! (its settings and keys), the origins the plugin may call, and the scenarios `paygated
//! plugin record` plays against the provider.
//!
//! ```toml
//! provider = "toypay"
//! allowed_hosts = ["http://127.0.0.1:8430"]
//!
//! [merchant]
//! id = "m_kit"
//! settings = { base_url = "http://127.0.0.1:8430/toypay", merchant = "toy_m_1" }
//! keys = { toypay_secret = "file:../../../config/sandbox-keys/toypay_secret.txt" }
//!
//! [[scenario]]
//! name = "code-payment-succeeds"
//! operation = "create-payment"
//! request = { payment_id = "pay_kit_1", method = "Barcode", auth_code = "880000000000000001",
//!             amount = { minor = 1234, currency = "CNY", exponent = 2 } }
//! ```
//!
//! A scenario's `request` is the operation's record as in `provider.wit` (`_` for `-`,
//! enum cases in `UpperCamelCase`), without `provider` and `merchant`: the kit fills them
//! in (inside `payment` for refunds). A scenario's `clock_ms` (Unix ms) fixes the instant
//! it is recorded at (a wallet token is good only near its signing time); by default it is
//! the time of recording. An `onboard` gives `materials` as a table, handed over
//! as `materials_json`. `file:` key paths are relative to `kit.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use super::cassette::Call;
use crate::plugins::types as wit;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKit {
    provider: String,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    merchant: RawMerchant,
    #[serde(default)]
    scenario: Vec<RawScenario>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMerchant {
    #[serde(default = "default_merchant_id")]
    id: String,
    #[serde(default)]
    settings: toml::Table,
    #[serde(default)]
    keys: BTreeMap<String, String>,
    #[serde(default)]
    notify_url: String,
}

fn default_merchant_id() -> String {
    "m_kit".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    operation: String,
    #[serde(default)]
    clock_ms: Option<u64>,
    request: toml::Table,
}

/// A scenario: a named call to record.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub call: Call,
    /// The instant the call is recorded at (Unix ms), when the scenario fixes one (a wallet
    /// token is only good near its signing time); else the time of recording.
    pub clock_ms: Option<u64>,
}

/// The kit's setup for one plugin.
#[derive(Debug, Clone)]
pub struct Kit {
    pub dir: PathBuf,
    pub provider: String,
    pub allowed_hosts: Vec<String>,
    pub merchant: wit::Merchant,
    /// Key name → source (`file:` made absolute, `env:`, `inline:`).
    pub keys: BTreeMap<String, String>,
    pub scenarios: Vec<Scenario>,
}

/// A cassette or scenario name: it becomes a file name.
fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(())
        .ok_or_else(|| format!("scenario name {name:?}: 1-80 of [0-9A-Za-z_-]"))
}

impl Kit {
    /// Reads `dir/kit.toml`.
    pub fn load(dir: &Path) -> Result<Kit, String> {
        let path = dir.join("kit.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Kit::parse(dir, &text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(dir: &Path, text: &str) -> Result<Kit, String> {
        let raw: RawKit = toml::from_str(text).map_err(|e| e.to_string())?;
        let settings_json = serde_json::to_string(&raw.merchant.settings)
            .map_err(|e| format!("merchant.settings: {e}"))?;
        let merchant = wit::Merchant {
            id: raw.merchant.id,
            settings_json,
            notify_url: raw.merchant.notify_url,
        };
        let keys = raw
            .merchant
            .keys
            .into_iter()
            .map(|(name, source)| {
                let source = match source.strip_prefix("file:") {
                    Some(file) if Path::new(file).is_relative() => {
                        format!("file:{}", dir.join(file).display())
                    }
                    _ => source,
                };
                (name, source)
            })
            .collect();
        let mut kit = Kit {
            dir: dir.to_owned(),
            provider: raw.provider,
            allowed_hosts: raw.allowed_hosts,
            merchant,
            keys,
            scenarios: Vec::new(),
        };
        for (n, scenario) in raw.scenario.into_iter().enumerate() {
            check_name(&scenario.name).map_err(|e| format!("scenario {}: {e}", n + 1))?;
            if kit.scenarios.iter().any(|s| s.name == scenario.name) {
                return Err(format!(
                    "scenario {}: the name {:?} is taken",
                    n + 1,
                    scenario.name
                ));
            }
            let call = kit
                .call(&scenario.operation, scenario.request)
                .map_err(|e| format!("scenario {:?}: {e}", scenario.name))?;
            kit.scenarios.push(Scenario {
                name: scenario.name,
                call,
                clock_ms: scenario.clock_ms,
            });
        }
        Ok(kit)
    }

    /// A call from an operation's name and its request without provider and merchant.
    fn call(&self, operation: &str, request: toml::Table) -> Result<Call, String> {
        let mut request = serde_json::to_value(request).map_err(|e| e.to_string())?;
        let fill = |value: &mut Value| {
            value["provider"] = json!(self.provider);
            value["merchant"] = json!({
                "id": self.merchant.id,
                "settings_json": self.merchant.settings_json,
                "notify_url": self.merchant.notify_url,
            });
        };
        match operation {
            "create-payment" | "query-payment" | "cancel-payment" | "query-onboarding"
            | "bind-account" | "query-binding" => fill(&mut request),
            // The materials as a table, handed over as the JSON text the world carries.
            "onboard" => {
                let materials = request
                    .as_object_mut()
                    .and_then(|r| r.remove("materials"))
                    .ok_or("an onboarding's request needs its `materials` table")?;
                request["materials_json"] = json!(materials.to_string());
                fill(&mut request);
            }
            "refund" | "query-refund" => match request.get_mut("payment") {
                Some(payment) if payment.is_object() => fill(payment),
                _ => return Err("a refund's request needs its `payment` table".into()),
            },
            other => {
                return Err(format!(
                    "operation {other:?}: the kit records create-payment, query-payment, cancel-payment, refund, query-refund, onboard, query-onboarding, bind-account and query-binding"
                ));
            }
        }
        serde_json::from_value(json!({"operation": operation, "request": request}))
            .map_err(|e| format!("request: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIT: &str = r#"
provider = "toypay"
allowed_hosts = ["http://127.0.0.1:8430"]
[merchant]
settings = { base_url = "http://127.0.0.1:8430/toypay" }
keys = { toypay_secret = "file:secret.txt", other = "env:X" }
[[scenario]]
name = "pay"
operation = "create-payment"
request = { payment_id = "pay_1", method = "Barcode", auth_code = "880000000000000001", amount = { minor = 1234, currency = "CNY", exponent = 2 } }
[[scenario]]
name = "refund"
operation = "refund"
request = { refund_id = "re_1", amount = { minor = 100, currency = "CNY", exponent = 2 }, payment = { payment_id = "pay_1", amount = { minor = 1234, currency = "CNY", exponent = 2 } } }
"#;

    #[test]
    fn scenarios_get_the_provider_and_merchant_filled_in() {
        let kit = Kit::parse(Path::new("/kit"), KIT).unwrap();
        assert_eq!(kit.merchant.id, "m_kit");
        assert_eq!(kit.keys["toypay_secret"], "file:/kit/secret.txt");
        assert_eq!(kit.keys["other"], "env:X");
        let Call::CreatePayment(pay) = &kit.scenarios[0].call else {
            panic!("a payment")
        };
        assert_eq!(
            (pay.provider.as_str(), pay.method),
            ("toypay", wit::Method::Barcode)
        );
        assert_eq!(
            pay.merchant.settings_json,
            r#"{"base_url":"http://127.0.0.1:8430/toypay"}"#
        );
        assert_eq!(pay.description, None);
        let Call::Refund(refund) = &kit.scenarios[1].call else {
            panic!("a refund")
        };
        assert_eq!(refund.payment.merchant.id, "m_kit");
    }

    #[test]
    fn an_onboarding_scenario_carries_its_materials_as_json_text() {
        let text = format!(
            "{KIT}\n[[scenario]]\nname = \"apply\"\noperation = \"onboard\"\nrequest = {{ activation_id = \"act_1\", materials = {{ name = \"Tea\", documents = {{ business_license = {{ content_type = \"image/jpeg\", data = \"/9j/\" }} }} }} }}\n"
        );
        let kit = Kit::parse(Path::new("/kit"), &text).unwrap();
        let Call::Onboard(apply) = &kit.scenarios[2].call else {
            panic!("an onboarding")
        };
        let materials: serde_json::Value = serde_json::from_str(&apply.materials_json).unwrap();
        assert_eq!(materials["documents"]["business_license"]["data"], "/9j/");
        assert_eq!(apply.merchant.id, "m_kit");
        let bare = text.replace("materials = {", "material = {");
        assert!(
            Kit::parse(Path::new("/kit"), &bare)
                .unwrap_err()
                .contains("materials")
        );
    }

    #[test]
    fn bad_setups_are_refused_naming_what_is_wrong() {
        let dir = Path::new("/kit");
        let cases = [
            (KIT.replace("name = \"refund\"", "name = \"pay\""), "taken"),
            (
                KIT.replace("name = \"pay\"", "name = \"../x\""),
                "scenario name",
            ),
            (
                KIT.replace("\"create-payment\"", "\"parse-bill\""),
                "operation \"parse-bill\"",
            ),
            (
                KIT.replace("method = \"Barcode\"", "method = \"Cash\""),
                "request",
            ),
            (KIT.replace(", payment = {", ", payments = {"), "payment"),
            (KIT.replace("provider = \"toypay\"", ""), "provider"),
            (format!("{KIT}\nunknown = 1\n"), "unknown"),
        ];
        for (text, expected) in cases {
            let error = Kit::parse(dir, &text).unwrap_err();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }
}
