//! Plugin world versions: plugins built for `paygate:provider@0.1.0` to `@0.4.0`
//! (`tests/plugins/world-0.1` to `world-0.4`, generated from the frozen
//! `plugin-api/wit/0.1.0/` to `0.4.0/`) still load next to the 0.5.0 plugins and
//! serve payments, refunds, notices, applications and bills, their answers read as 0.5.0
//! ones (0.1.0: no reported amounts; before 0.3.0: no card; before 0.4.0: no next step;
//! before 0.5.0: bill entries with no line, and no bill fetched); no world before 0.3.0 is
//! ever handed a wallet token, and a 0.3.0 plugin inspects and charges one and seals with
//! `keys.encrypt`; a version this daemon does not link is refused naming the versions it
//! does.

use std::path::Path;
use std::sync::Arc;

use paygate_daemon::config::Config;
use paygate_daemon::metrics::Metrics;
use paygate_daemon::plugins::types::*;
use paygate_daemon::plugins::{CallError, PluginHost, SUPPORTED_WORLD_VERSIONS, WORLD_VERSION};
use serde_json::json;

use crate::support::*;

const LEGACY: &str = "paygate-test-plugin-world-0-1";
const LEGACY2: &str = "paygate-test-plugin-world-0-2";
const LEGACY3: &str = "paygate-test-plugin-world-0-3";
const LEGACY4: &str = "paygate-test-plugin-world-0-4";
const LEGACY_SECRET: &str = "legacy-s3cret";

fn host_config(legacy: &Path) -> Config {
    let text = format!(
        r#"
[plugin_host]
max_concurrent_calls = 8
cache_dir = "{cache}"

[[plugins]]
name = "mock"
path = "{mock}"

[[plugins]]
name = "legacy"
path = "{legacy}"

[[plugins]]
name = "legacy2"
path = "{legacy2}"

[[plugins]]
name = "legacy3"
path = "{legacy3}"

[[plugins]]
name = "legacy4"
path = "{legacy4}"

[[merchants]]
id = "m_a"
name = "A"
[merchants.providers.mock]
keys = {{ notify_secret = "inline:s3cret" }}
[merchants.providers.legacy]
keys = {{ notify_secret = "inline:{LEGACY_SECRET}" }}
[merchants.providers.legacy2]
keys = {{ notify_secret = "inline:{LEGACY_SECRET}" }}
[merchants.providers.legacy3]
keys = {{ platform_public_key = "file:{public_key}" }}
[merchants.providers.legacy4]
keys = {{}}
"#,
        cache = shared_plugin_cache().display(),
        mock = plugin_dir().join("paygate-plugin-mock.wasm").display(),
        legacy = legacy.display(),
        legacy2 = test_plugin(LEGACY2).display(),
        legacy3 = test_plugin(LEGACY3).display(),
        legacy4 = test_plugin(LEGACY4).display(),
        public_key = repo_root()
            .join("config/sandbox-keys/wechatpay_public_key.pem")
            .display(),
    );
    Config::parse(Path::new("worlds.toml"), &text).unwrap()
}

async fn host() -> PluginHost {
    PluginHost::start(&host_config(&test_plugin(LEGACY)), Arc::new(Metrics::new()))
        .await
        .unwrap()
}

fn payment_ref(host: &PluginHost, provider: &str, minor: i64) -> PaymentRef {
    PaymentRef {
        payment_id: "pay_world0001".into(),
        provider: provider.into(),
        merchant: merchant_record(host, provider, "m_a"),
        amount: cny(minor),
        provider_reference: None,
    }
}

fn barcode_request(
    host: &PluginHost,
    provider: &str,
    code: &str,
    minor: i64,
) -> CreatePaymentRequest {
    CreatePaymentRequest {
        payment_id: "pay_world0001".into(),
        provider: provider.into(),
        merchant: merchant_record(host, provider, "m_a"),
        amount: cny(minor),
        method: Method::Barcode,
        auth_code: Some(code.into()),
        description: None,
        terminal_id: Some("T-1".into()),
        expires_in_seconds: None,
        wallet_token: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_of_older_worlds_load_next_to_0_5_plugins_and_remember_their_world() {
    assert_eq!(
        SUPPORTED_WORLD_VERSIONS,
        ["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0"]
    );
    assert_eq!(WORLD_VERSION, "0.5.0");
    let host = host().await;
    let plugins = host.plugins();
    let world = |name: &str| {
        plugins
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.world_version.clone())
    };
    assert_eq!(world("legacy").as_deref(), Some("0.1.0"));
    assert_eq!(world("legacy2").as_deref(), Some("0.2.0"));
    assert_eq!(world("legacy3").as_deref(), Some("0.3.0"));
    assert_eq!(world("legacy4").as_deref(), Some("0.4.0"));
    assert_eq!(world("mock").as_deref(), Some("0.5.0"));
    let legacy2 = host.provider("legacy2").unwrap();
    assert_eq!(legacy2.display_name, "Legacy Wallet (world 0.2.0)");
    assert_eq!(legacy2.operations.len(), 4);
    // Its info came up through the conversion whole.
    let legacy = host.provider("legacy").unwrap();
    assert_eq!(legacy.display_name, "Legacy Wallet (world 0.1.0)");
    assert_eq!(legacy.methods, vec![Method::Qr, Method::Barcode]);
    assert_eq!(legacy.payment_codes[0].prefixes, vec!["97".to_owned()]);
    assert_eq!(legacy.operations.len(), 6);
    assert!(legacy.operations.contains(&Operation::ParseNotification));
    assert_eq!(legacy.fees[0].rate_basis_points, 38);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_plugin_serves_every_call_with_no_reported_amounts() {
    let host = host().await;
    let paid = host
        .create_payment(barcode_request(&host, "legacy", "970000000000001234", 1250))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(
        paid.provider_reference.as_deref(),
        Some("legacy_pay_world0001")
    );
    assert_eq!(paid.payer.as_deref(), Some("legacy_payer_1234"));
    assert!(paid.amount.is_none(), "0.1.0 reports no amount");

    let declined = host
        .create_payment(barcode_request(&host, "legacy", "990000000000001234", 1250))
        .await
        .unwrap();
    assert!(
        matches!(&declined, Err(ProviderError::Declined(d)) if d.code == "auth_code_invalid"),
        "{declined:?}"
    );

    let queried = host
        .query_payment(payment_ref(&host, "legacy", 1250))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queried.status, PaymentStatus::Succeeded);
    assert!(queried.amount.is_none());
    let cancelled = host
        .cancel_payment(payment_ref(&host, "legacy", 1250))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, PaymentStatus::Cancelled);

    let refund = RefundRequest {
        refund_id: "re_world0001".into(),
        payment: payment_ref(&host, "legacy", 1250),
        amount: cny(500),
        reason: Some("broken cup".into()),
    };
    let refunded = host.refund(refund).await.unwrap().unwrap();
    assert_eq!(refunded.status, RefundStatus::Succeeded);
    assert_eq!(
        refunded.provider_reference.as_deref(),
        Some("legacy_re_world0001")
    );
    assert!(refunded.amount.is_none());
    let refund_ref = RefundRef {
        refund_id: "re_world0001".into(),
        payment: payment_ref(&host, "legacy", 1250),
        amount: cny(500),
        provider_reference: None,
    };
    let queried = host.query_refund(refund_ref).await.unwrap().unwrap();
    assert_eq!(queried.status, RefundStatus::Succeeded);
    assert!(queried.amount.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_plugins_notices_use_the_0_1_imports_and_come_up_without_amounts() {
    let host = host().await;
    let notice = |body: &[u8], signature: &str| Notification {
        provider: "legacy".into(),
        merchant: merchant_record(&host, "legacy", "m_a"),
        headers: vec![("Legacy-Signature".into(), signature.into())],
        body: body.to_vec(),
    };
    // keys.hmac-sha256@0.1.0 with the merchant's key, http.send@0.1.0 refused (no host is
    // allow-listed), both answered through the host's 0.2.0 imports.
    let body = br#"{"payment_id":"pay_world0001","status":"failed"}"#;
    let accepted = host
        .parse_notification(notice(body, &hmac_sha256_hex(LEGACY_SECRET, body)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.reply.status, 200);
    match &accepted.updates[..] {
        [Update::Payment(u)] => {
            assert_eq!(u.payment_id, "pay_world0001");
            assert_eq!(u.outcome.status, PaymentStatus::Failed);
            assert_eq!(
                u.outcome.failure.as_ref().map(|f| f.code.as_str()),
                Some("provider_declined")
            );
            assert!(u.outcome.amount.is_none());
        }
        other => panic!("{other:?}"),
    }
    let body = br#"{"refund_id":"re_world0001","status":"succeeded"}"#;
    let accepted = host
        .parse_notification(notice(body, &hmac_sha256_hex(LEGACY_SECRET, body)))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        &accepted.updates[..],
        [Update::Refund(u)] if u.refund_id == "re_world0001"
            && u.outcome.status == RefundStatus::Succeeded
            && u.outcome.amount.is_none()
    ));
    // Signed with another key: rejected through the conversion too.
    let forged = host
        .parse_notification(notice(body, &hmac_sha256_hex("s3cret", body)))
        .await
        .unwrap();
    assert!(
        matches!(&forged, Err(r) if r.reply.status == 400 && r.reason.contains("does not verify")),
        "{forged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_2_plugin_reports_amounts_no_card_and_is_never_handed_a_wallet_token() {
    let host = host().await;
    let paid = host
        .create_payment(barcode_request(
            &host,
            "legacy2",
            "960000000000001234",
            1250,
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(paid.amount.as_ref().map(|m| m.minor), Some(1250));
    assert!(paid.card.is_none());
    // Its 0.2.0 keys import answered with the merchant's key, through the conversion.
    let expected = &hmac_sha256_hex(LEGACY_SECRET, b"pay_world0001")[..8];
    assert_eq!(
        paid.provider_reference.as_deref(),
        Some(format!("l2_{expected}").as_str())
    );
    let refunded = host
        .refund(RefundRequest {
            refund_id: "re_world0002".into(),
            payment: payment_ref(&host, "legacy2", 1250),
            amount: cny(300),
            reason: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refunded.amount.map(|m| m.minor), Some(300));

    let mut token = barcode_request(&host, "legacy2", "960000000000001234", 1250);
    token.method = Method::WalletToken;
    token.auth_code = None;
    token.wallet_token = Some("{}".into());
    // Refused by the host's conversion, never sent to the plugin; and an export 0.2.0 has
    // not is an operation it does not support.
    let refused = host.create_payment(token.clone()).await;
    assert!(
        matches!(&refused, Ok(Err(ProviderError::InvalidRequest(m))) if m.contains("no wallet tokens")),
        "{refused:?}"
    );
    let refused = host.inspect_wallet_token(token).await;
    assert!(
        matches!(&refused, Err(CallError::Unsupported { operation, .. }) if *operation == "inspect-wallet-token"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_plugin_inspects_and_charges_wallet_tokens_seals_and_tells_no_next_step() {
    let host = host().await;
    let legacy3 = host.provider("legacy3").unwrap();
    assert_eq!(legacy3.methods, vec![Method::WalletToken]);
    assert!(legacy3.operations.contains(&Operation::InspectWalletToken));
    let token = CreatePaymentRequest {
        method: Method::WalletToken,
        auth_code: None,
        wallet_token: Some("legacy3:tok_42".into()),
        amount: Money {
            minor: 1999,
            currency: "USD".into(),
            exponent: 2,
        },
        ..barcode_request(&host, "legacy3", "", 1999)
    };
    let facts = host
        .inspect_wallet_token(token.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (facts.token_id.as_str(), facts.amount.minor),
        ("tok_42", 1999)
    );
    let paid = host.create_payment(token).await.unwrap().unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let card = paid.card.unwrap();
    assert_eq!(
        (card.network.as_str(), card.last_four.as_str()),
        ("visa", "4242")
    );

    let application = OnboardingRequest {
        activation_id: "act_world0001".into(),
        provider: "legacy3".into(),
        merchant: merchant_record(&host, "legacy3", "m_a"),
        materials_json: "{}".into(),
    };
    let result = host.onboard(application).await.unwrap().unwrap();
    // Sealed through the 0.3.0 `keys.encrypt` with the 2048-bit key: 256 bytes.
    assert_eq!(result.provider_reference.as_deref(), Some("l3_256"));
    assert_eq!(result.status, OnboardingStatus::UnderReview);
    assert_eq!(result.next_step_json, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_4_plugin_tells_the_next_step_and_parses_bills_without_lines() {
    let host = host().await;
    let application = OnboardingRequest {
        activation_id: "act_world0004".into(),
        provider: "legacy4".into(),
        merchant: merchant_record(&host, "legacy4", "m_a"),
        materials_json: "{}".into(),
    };
    let result = host.onboard(application).await.unwrap().unwrap();
    assert_eq!(result.status, OnboardingStatus::UnderReview);
    assert_eq!(
        result.next_step_json.as_deref(),
        Some(r#"{"type":"sign_agreement","url":"https://legacy4.example/sign/act_world0004"}"#)
    );
    let bill = |content: &[u8]| BillRequest {
        provider: "legacy4".into(),
        merchant: merchant_record(&host, "legacy4", "m_a"),
        date: "2026-12-07".into(),
        content: content.to_vec(),
    };
    let entries = host
        .parse_bill(bill(
            b"payment,pay_1,1250
refund,pay_1,re_1,500
",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].kind, BillEntryKind::Payment);
    assert_eq!((entries[0].amount.minor, entries[0].line), (1250, None));
    assert_eq!(entries[1].refund_id.as_deref(), Some("re_1"));
    let refused = host
        .parse_bill(bill(
            b"payment,pay_1,12.50
",
        ))
        .await
        .unwrap();
    assert!(
        matches!(&refused, Err(ProviderError::InvalidRequest(m)) if m.contains("bill line 1")),
        "{refused:?}"
    );
    // 0.4.0 has no `fetch-bill`: the host never asks.
    let fetch = BillFetchRequest {
        provider: "legacy4".into(),
        merchant: merchant_record(&host, "legacy4", "m_a"),
        date: "2026-12-07".into(),
    };
    let refused = host.fetch_bill(fetch).await;
    assert!(
        matches!(&refused, Err(CallError::Unsupported { operation, .. }) if *operation == "fetch-bill"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_5_plugin_reports_the_amounts() {
    let host = host().await;
    let paid = host
        .create_payment(barcode_request(&host, "mock", "990000000000001234", 1250))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let amount = paid.amount.unwrap();
    assert_eq!(
        (amount.minor, amount.currency.as_str(), amount.exponent),
        (1250, "CNY", 2)
    );
    let body =
        br#"{"refund_id":"re_world0001","status":"succeeded","amount":"5.00","currency":"CNY"}"#;
    let notice = Notification {
        provider: "mock".into(),
        merchant: merchant_record(&host, "mock", "m_a"),
        headers: vec![("Mock-Signature".into(), hmac_sha256_hex("s3cret", body))],
        body: body.to_vec(),
    };
    let accepted = host.parse_notification(notice).await.unwrap().unwrap();
    assert!(matches!(
        &accepted.updates[..],
        [Update::Refund(u)] if u.outcome.amount.as_ref().is_some_and(|m| m.minor == 500)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_this_daemon_does_not_link_is_refused_naming_the_ones_it_does() {
    let config = host_config(&test_plugin("paygate-test-plugin-future-world"));
    let message = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("plugins[1].path"), "{message}");
    assert!(
        message.contains("targets paygate:provider@0.9.0")
            && message.contains(
                "supports paygate:provider@0.1.0, paygate:provider@0.2.0, paygate:provider@0.3.0, paygate:provider@0.4.0 and paygate:provider@0.5.0"
            ),
        "{message}"
    );
}

/// The real daemon, with the 0.1.0 plugin serving `m_other` (default config + the plugin).
#[tokio::test]
async fn the_daemon_serves_a_payment_through_a_0_1_plugin() {
    let config = format!(
        "{}\n[merchants.providers.legacy]\nkeys = {{ notify_secret = \"inline:{LEGACY_SECRET}\" }}\n\n[[plugins]]\nname = \"legacy\"\npath = \"{}\"\n",
        default_config_text(),
        test_plugin(LEGACY).display()
    );
    let daemon = Daemon::with_config(config);
    let (status, plugins) = daemon.get("/v1/plugins", Some(ADMIN)).await;
    assert_eq!(status, 200, "{plugins}");
    let world_of = |name: &str| {
        plugins["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["world_version"].clone())
    };
    assert_eq!(world_of("legacy"), Some(json!("0.1.0")));
    assert_eq!(world_of("mock"), Some(json!("0.5.0")));

    // The provider is found from the payment code's prefix, as for any plugin.
    let (status, _, payment) = daemon
        .post_idempotent(
            "/v1/payments",
            OTHER_ERP,
            Some("world-0.1-barcode"),
            &json!({"merchant_id": "m_other", "amount": "12.50", "currency": "CNY",
                    "method": "barcode", "auth_code": "970000000000005678"}),
        )
        .await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["provider"], "legacy");
    assert_eq!(payment["status"], "succeeded", "{payment}");
    let id = payment["id"].as_str().unwrap();
    let (status, fetched) = daemon
        .get(&format!("/v1/payments/{id}"), Some(OTHER_ERP))
        .await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["status"], "succeeded");
    assert_eq!(fetched["amount"], "12.50");

    // A qr payment: pending with the 0.1.0 plugin's code.
    let (status, _, qr) = daemon
        .post_idempotent(
            "/v1/payments",
            OTHER_ERP,
            Some("world-0.1-qr"),
            &json!({"merchant_id": "m_other", "amount": "3.00", "currency": "CNY",
                    "method": "qr", "provider": "legacy"}),
        )
        .await;
    assert_eq!(status, 201, "{qr}");
    assert_eq!(qr["status"], "pending", "{qr}");
}
