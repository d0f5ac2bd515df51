//! `[webhooks]` and `[[webhooks.endpoints]]`: where events are delivered (API.md §9) and how
//! hard the outbox tries.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator, check_name};
use crate::settings::KeySource;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Delay before the first retry; each further retry doubles it, up to `retry_max_ms`.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: Spanned<u64>,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: Spanned<u64>,
    /// How long an event is retried before its delivery is abandoned (API.md §9: 24 h).
    #[serde(default = "default_retry_for_s")]
    pub retry_for_s: Spanned<u64>,
    /// Time allowed for one delivery (connect, send, answer).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: Spanned<u64>,
    #[serde(default)]
    pub endpoints: Vec<WebhookEndpointConfig>,
}

/// One receiver of events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointConfig {
    /// A short name, used in logs, metrics and the outbox.
    pub name: Spanned<String>,
    /// `http(s)://host[:port]/path`.
    pub url: Spanned<String>,
    /// The signing secret: `env:VAR`, `file:path` or `inline:text`.
    pub secret: Spanned<String>,
    /// Event types to deliver; empty: every type of API.md §9.
    #[serde(default = "no_strings")]
    pub events: Spanned<Vec<String>>,
    /// Merchants whose events to deliver; empty: every merchant.
    #[serde(default = "no_strings")]
    pub merchants: Spanned<Vec<String>>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            retry_for_s: default_retry_for_s(),
            timeout_ms: default_timeout_ms(),
            endpoints: Vec::new(),
        }
    }
}

fn default_retry_initial_ms() -> Spanned<u64> {
    Spanned::new(0..0, 1_000)
}
fn default_retry_max_ms() -> Spanned<u64> {
    Spanned::new(0..0, 3_600_000)
}
fn default_retry_for_s() -> Spanned<u64> {
    Spanned::new(0..0, 24 * 3600)
}
fn default_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 10_000)
}
fn no_strings() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

impl WebhooksConfig {
    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        let positive = |value: &Spanned<u64>, field: &str| {
            if *value.get_ref() == 0 {
                Err(at.error(value.span(), field, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        positive(&self.retry_initial_ms, "webhooks.retry_initial_ms")?;
        positive(&self.retry_max_ms, "webhooks.retry_max_ms")?;
        positive(&self.retry_for_s, "webhooks.retry_for_s")?;
        positive(&self.timeout_ms, "webhooks.timeout_ms")?;
        if self.retry_max_ms.get_ref() < self.retry_initial_ms.get_ref() {
            return Err(at.error(
                self.retry_max_ms.span(),
                "webhooks.retry_max_ms",
                "must not be smaller than webhooks.retry_initial_ms",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let field = |name: &str| format!("webhooks.endpoints[{i}].{name}");
            check_name(at, &endpoint.name, &field("name"), "")?;
            if !names.insert(endpoint.name.get_ref().as_str()) {
                return Err(at.error(
                    endpoint.name.span(),
                    field("name"),
                    format!("duplicate endpoint name \"{}\"", endpoint.name.get_ref()),
                ));
            }
            let url_ok = endpoint.url.get_ref().parse::<hyper::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !url_ok {
                return Err(at.error(
                    endpoint.url.span(),
                    field("url"),
                    format!(
                        "\"{}\" must be an http:// or https:// URL with a host",
                        endpoint.url.get_ref()
                    ),
                ));
            }
            match KeySource::parse(endpoint.secret.get_ref()) {
                Ok(KeySource::Env(var)) if std::env::var_os(&var).is_none() => {
                    return Err(at.error(
                        endpoint.secret.span(),
                        field("secret"),
                        format!("environment variable {var} is not set"),
                    ));
                }
                Ok(KeySource::File(path)) if !path.is_file() => {
                    return Err(at.error(
                        endpoint.secret.span(),
                        field("secret"),
                        format!("secret file {} does not exist", path.display()),
                    ));
                }
                Ok(_) => {}
                Err(message) => {
                    return Err(at.error(endpoint.secret.span(), field("secret"), message));
                }
            }
            for kind in endpoint.events.get_ref() {
                if !crate::domain::events::EventKind::parse(kind).is_some_and(|k| k.is_webhook()) {
                    return Err(at.error(
                        endpoint.events.span(),
                        field("events"),
                        format!(
                            "unknown event type \"{kind}\"; use one of {}",
                            crate::domain::events::EventKind::webhook_names().join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl WebhooksConfig {
    /// The dispatcher's settings.
    pub fn settings(&self) -> crate::webhooks::WebhookSettings {
        crate::webhooks::WebhookSettings {
            endpoints: self
                .endpoints
                .iter()
                .map(|e| crate::webhooks::EndpointSettings {
                    name: e.name.get_ref().clone(),
                    url: e.url.get_ref().clone(),
                    secret: KeySource::parse(e.secret.get_ref())
                        .expect("validation checked the secret source"),
                    events: e.events.get_ref().clone(),
                    merchants: e.merchants.get_ref().clone(),
                })
                .collect(),
            retry_initial_ms: *self.retry_initial_ms.get_ref() as i64,
            retry_max_ms: *self.retry_max_ms.get_ref() as i64,
            retry_for_ms: (*self.retry_for_s.get_ref() as i64).saturating_mul(1000),
            timeout: std::time::Duration::from_millis(*self.timeout_ms.get_ref()),
        }
    }
}
