//! The plugin host against real components: the mock plugin answers every operation, and
//! each hostile behaviour is contained to its own call. In-process, against the daemon's
//! own `PluginHost` (real wasmtime, real components built by `cargo xtask build`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paygate_daemon::config::Config;
use paygate_daemon::metrics::Metrics;
use paygate_daemon::plugins::types::*;
use paygate_daemon::plugins::{CallError, FaultKind, PluginHost};

use crate::support::*;

/// The hostile plugin's deadline in these tests.
const DEADLINE_MS: u64 = 300;

fn sandbox_config_text(hostile_path: &Path, extra: &str) -> String {
    format!(
        r#"
[plugin_host]
max_concurrent_calls = 32
cache_dir = "{cache}"
{extra}

[[plugins]]
name = "mock"
path = "{mock}"

[[plugins]]
name = "hostile"
path = "{hostile}"
[plugins.limits]
deadline_ms = {DEADLINE_MS}
memory_bytes = 33554432
output_bytes = 65536
log_lines_per_call = 20

[[merchants]]
id = "m_a"
name = "A"
[merchants.providers.mock]
keys = {{ notify_secret = "inline:s3cret" }}
[merchants.providers.hostile]
keys = {{ own_key = "inline:mine" }}

[[merchants]]
id = "m_b"
name = "B"
[merchants.providers.hostile]
keys = {{ other_merchant_key = "inline:theirs" }}
"#,
        cache = shared_plugin_cache().display(),
        mock = plugin_dir().join("paygate-plugin-mock.wasm").display(),
        hostile = hostile_path.display(),
    )
}

fn parse(text: &str) -> Config {
    Config::parse(Path::new("sandbox.toml"), text).unwrap()
}

async fn host() -> PluginHost {
    let config = parse(&sandbox_config_text(
        &test_plugin("paygate-test-plugin-hostile"),
        "",
    ));
    PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap()
}

fn payment(
    host: &PluginHost,
    provider: &str,
    merchant_id: &str,
    method: Method,
    minor: i64,
    description: &str,
) -> CreatePaymentRequest {
    CreatePaymentRequest {
        payment_id: "pay_test0001".into(),
        provider: provider.into(),
        merchant: merchant_record(host, provider, merchant_id),
        amount: cny(minor),
        method,
        auth_code: (method == Method::Barcode).then(|| MOCK_AUTH_CODE.into()),
        description: Some(description.into()),
        terminal_id: Some("T-1".into()),
        expires_in_seconds: None,
        wallet_token: None,
    }
}

fn payment_ref(host: &PluginHost, minor: i64) -> PaymentRef {
    PaymentRef {
        payment_id: "pay_test0001".into(),
        provider: "mock".into(),
        merchant: merchant_record(host, "mock", "m_a"),
        amount: cny(minor),
        provider_reference: None,
    }
}

async fn hostile(
    host: &PluginHost,
    merchant_id: &str,
    behaviour: &str,
) -> Result<Result<PaymentResult, ProviderError>, CallError> {
    host.create_payment(payment(
        host,
        "hostile",
        merchant_id,
        Method::Qr,
        100,
        behaviour,
    ))
    .await
}

/// Asserts a fault of `kind`, answered within the deadline + 100 ms, and that the plugin
/// serves a normal call right after.
async fn assert_contained(host: &PluginHost, behaviour: &str, kind: FaultKind) {
    let started = Instant::now();
    let result = hostile(host, "m_a", behaviour).await;
    let elapsed = started.elapsed();
    match result {
        Err(CallError::Fault(fault)) => assert_eq!(fault.kind, kind, "{behaviour}: {fault}"),
        other => panic!("{behaviour}: expected a {kind:?} fault, got {other:?}"),
    }
    assert!(
        elapsed < Duration::from_millis(DEADLINE_MS + 100),
        "{behaviour}: answered after {elapsed:?}"
    );
    let next = hostile(host, "m_a", "normal").await;
    assert!(
        matches!(next, Ok(Ok(ref r)) if r.qr_code.as_deref() == Some("hostile://pay_test0001")),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_answers_every_operation() {
    let host = host().await;
    let qr = host
        .create_payment(payment(&host, "mock", "m_a", Method::Qr, 1250, "coffee"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(qr.status, PaymentStatus::Pending);
    assert_eq!(qr.qr_code.as_deref(), Some("mock://pay/pay_test0001"));
    let barcode = host
        .create_payment(payment(
            &host,
            "mock",
            "m_a",
            Method::Barcode,
            1250,
            "coffee",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(barcode.status, PaymentStatus::Succeeded);
    assert_eq!(
        barcode.provider_reference.as_deref(),
        Some("mock_pay_test0001")
    );

    let queried = host
        .query_payment(payment_ref(&host, 1250))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queried.status, PaymentStatus::Succeeded);
    let cancelled = host
        .cancel_payment(payment_ref(&host, 1250))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, PaymentStatus::Cancelled);

    let refund = RefundRequest {
        refund_id: "re_1".into(),
        payment: payment_ref(&host, 1250),
        amount: cny(500),
        reason: None,
    };
    assert_eq!(
        host.refund(refund).await.unwrap().unwrap().status,
        RefundStatus::Succeeded
    );
    let refund_ref = RefundRef {
        refund_id: "re_1".into(),
        payment: payment_ref(&host, 1250),
        amount: cny(572),
        provider_reference: None,
    };
    assert_eq!(
        host.query_refund(refund_ref).await.unwrap().unwrap().status,
        RefundStatus::Succeeded
    );

    let onboarding = OnboardingRequest {
        activation_id: "act_1".into(),
        provider: "mock".into(),
        merchant: merchant_record(&host, "mock", "m_a"),
        materials_json: "{}".into(),
    };
    assert_eq!(
        host.onboard(onboarding).await.unwrap().unwrap().status,
        OnboardingStatus::UnderReview
    );
    let onboarding_ref = OnboardingRef {
        activation_id: "act_1".into(),
        provider: "mock".into(),
        merchant: merchant_record(&host, "mock", "m_a"),
        provider_reference: None,
    };
    assert_eq!(
        host.query_onboarding(onboarding_ref)
            .await
            .unwrap()
            .unwrap()
            .status,
        OnboardingStatus::Active
    );

    let binding = BindingRequest {
        bank_account_id: "ba_1".into(),
        provider: "mock".into(),
        merchant: merchant_record(&host, "mock", "m_a"),
        account_holder: "A".into(),
        account_number: "6222020200000000000".into(),
        bank_name: "ICBC".into(),
        branch: None,
    };
    let bound = host.bind_account(binding).await.unwrap().unwrap();
    assert_eq!(bound.status, BindingStatus::PendingVerification);
    assert!(bound.verification_json.unwrap().contains("remittance"));
    let binding_ref = BindingRef {
        bank_account_id: "ba_1".into(),
        provider: "mock".into(),
        merchant: merchant_record(&host, "mock", "m_a"),
        provider_reference: None,
    };
    assert_eq!(
        host.query_binding(binding_ref)
            .await
            .unwrap()
            .unwrap()
            .status,
        BindingStatus::Verified
    );

    let bill = BillRequest {
        provider: "mock".into(),
        merchant: merchant_record(&host, "mock", "m_a"),
        date: "2026-11-25".into(),
        content: b"payment,pay_1,,1250,CNY,8\n".to_vec(),
    };
    let entries = host.parse_bill(bill).await.unwrap().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].amount.minor, 1250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_behaviours_follow_the_amount() {
    let host = host().await;
    let declined = host
        .create_payment(payment(&host, "mock", "m_a", Method::Barcode, 1251, ""))
        .await
        .unwrap();
    assert!(
        matches!(declined, Err(ProviderError::Declined(ref d)) if d.code == "insufficient_funds"),
        "{declined:?}"
    );
    let unknown = host
        .create_payment(payment(&host, "mock", "m_a", Method::Barcode, 1262, ""))
        .await
        .unwrap();
    assert!(
        matches!(unknown, Err(ProviderError::UnknownOutcome(_))),
        "{unknown:?}"
    );
    let unavailable = host
        .create_payment(payment(&host, "mock", "m_a", Method::Qr, 1263, ""))
        .await
        .unwrap();
    assert!(
        matches!(unavailable, Err(ProviderError::Unavailable(_))),
        "{unavailable:?}"
    );
    let failed_at_query = host
        .query_payment(payment_ref(&host, 1255))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed_at_query.status, PaymentStatus::Failed);
    assert_eq!(failed_at_query.failure.unwrap().code, "risk_rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_verified_with_the_merchants_key() {
    let host = host().await;
    let body = br#"{"payment_id":"pay_x","status":"succeeded"}"#.to_vec();
    let signature = hmac_sha256_hex("s3cret", &body);
    let notice = |signature: &str, body: Vec<u8>| Notification {
        provider: "mock".into(),
        merchant: merchant_record(&host, "mock", "m_a"),
        headers: vec![("Mock-Signature".into(), signature.into())],
        body,
    };
    let accepted = host
        .parse_notification(notice(&signature, body.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.reply.status, 200);
    assert!(
        matches!(&accepted.updates[..], [Update::Payment(u)] if u.payment_id == "pay_x" && u.outcome.status == PaymentStatus::Succeeded)
    );

    let forged = host
        .parse_notification(notice(&"0".repeat(64), body.clone()))
        .await
        .unwrap();
    assert!(
        matches!(forged, Err(ref r) if r.reply.status == 400),
        "{forged:?}"
    );
    let tampered = host
        .parse_notification(notice(
            &signature,
            br#"{"payment_id":"pay_y","status":"succeeded"}"#.to_vec(),
        ))
        .await
        .unwrap();
    assert!(tampered.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    assert_contained(&host().await, "loop", FaultKind::Timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_cap() {
    assert_contained(&host().await, "memory-bomb", FaultKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps() {
    assert_contained(&host().await, "recursion", FaultKind::Trap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_breaks_the_contract() {
    assert_contained(&host().await, "huge-output", FaultKind::Contract).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_traps() {
    assert_contained(&host().await, "panic", FaultKind::Trap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_calls_trap() {
    let host = host().await;
    assert_contained(&host, "wasi-file", FaultKind::Trap).await;
    assert_contained(&host, "wasi-env", FaultKind::Trap).await;
    match hostile(&host, "m_a", "wasi-env").await {
        Err(CallError::Fault(fault)) => {
            assert!(fault.message.contains("wasi:"), "{}", fault.message)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_off_the_allowlist_are_refused_inside_the_host() {
    let host = host().await;
    let result = hostile(&host, "m_a", "forbidden-host")
        .await
        .unwrap()
        .unwrap();
    let qr = result.qr_code.unwrap();
    assert!(qr.starts_with("refused: Error::Denied"), "{qr}");
    assert!(
        qr.contains("https://example.com:443 is not on the plugin's allowlist"),
        "{qr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_merchants_key_does_not_exist_for_the_call() {
    let host = host().await;
    let result = hostile(&host, "m_a", "steal-key").await.unwrap().unwrap();
    assert_eq!(
        result.qr_code.as_deref(),
        Some("refused: KeyError::UnknownKey(\"other_merchant_key\")")
    );
    // The key is real, and usable in its own merchant's calls (an HMAC secret cannot RSA-sign).
    let own = hostile(&host, "m_b", "steal-key").await.unwrap().unwrap();
    assert!(
        own.qr_code
            .unwrap()
            .starts_with("refused: KeyError::Unsupported")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_gets_a_fresh_instance() {
    let host = host().await;
    for _ in 0..3 {
        let result = hostile(&host, "m_a", "state").await.unwrap().unwrap();
        assert_eq!(
            result.qr_code.as_deref(),
            Some("calls=1"),
            "state leaked between calls"
        );
    }
    // A call that wrote far more memory than a freed slot resets in place (the rest is
    // decommitted) leaves nothing behind either.
    let bomb = hostile(&host, "m_a", "memory-bomb").await;
    assert!(bomb.is_err(), "{bomb:?}");
    for _ in 0..3 {
        let result = hostile(&host, "m_a", "state").await.unwrap().unwrap();
        assert_eq!(result.qr_code.as_deref(), Some("calls=1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_floods_are_capped_and_the_call_still_answers() {
    let host = host().await;
    let result = hostile(&host, "m_a", "log-flood").await.unwrap().unwrap();
    assert_eq!(result.qr_code.as_deref(), Some("flooded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_operations_and_unknown_providers_are_refused_before_calling() {
    let host = host().await;
    let query = PaymentRef {
        provider: "hostile".into(),
        merchant: merchant_record(&host, "hostile", "m_a"),
        ..payment_ref(&host, 100)
    };
    assert_eq!(
        host.query_payment(query).await.unwrap_err(),
        CallError::Unsupported {
            provider: "hostile".into(),
            operation: "query-payment"
        }
    );
    let mut request = payment(&host, "mock", "m_a", Method::Qr, 100, "");
    request.provider = "alipay".into();
    assert_eq!(
        host.create_payment(request).await.unwrap_err(),
        CallError::NoSuchProvider("alipay".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_do_not_disturb_concurrent_calls() {
    let host = Arc::new(host().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let behaviour = ["loop", "memory-bomb", "panic", "normal"][i % 4];
            (behaviour, hostile(&host, "m_a", behaviour).await)
        }));
    }
    for task in tasks {
        let (behaviour, result) = task.await.unwrap();
        match behaviour {
            "normal" => assert!(matches!(result, Ok(Ok(_))), "{result:?}"),
            _ => assert!(
                matches!(result, Err(CallError::Fault(_))),
                "{behaviour}: {result:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_for_another_world_version_is_refused_naming_both() {
    let config = parse(&sandbox_config_text(
        &test_plugin("paygate-test-plugin-future-world"),
        "",
    ));
    let error = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(message.contains("plugins[1].path"), "{message}");
    assert!(
        message.contains("targets paygate:provider@0.9.0")
            && message.contains(
                "supports paygate:provider@0.1.0, paygate:provider@0.2.0, paygate:provider@0.3.0, paygate:provider@0.4.0 and paygate:provider@0.5.0"
            ),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_plugins_are_verified_at_start_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hostile.wasm");
    std::fs::copy(test_plugin("paygate-test-plugin-hostile"), &copy).unwrap();
    let hash = sha256_file(&copy);
    let pinned = sandbox_config_text(&copy, "").replace(
        &format!("path = \"{}\"", copy.display()),
        &format!("path = \"{}\"\nsha256 = \"{hash}\"", copy.display()),
    );
    let config = parse(&pinned);
    let host = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();

    // Tamper with the file: one flipped byte in the middle.
    let mut bytes = std::fs::read(&copy).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&copy, &bytes).unwrap();

    let reload = host.reload(&config, &config).await.unwrap_err();
    assert!(
        reload.contains("SHA-256") && reload.contains(&hash),
        "{reload}"
    );
    // The old plugin keeps serving.
    assert!(matches!(hostile(&host, "m_a", "normal").await, Ok(Ok(_))));

    let start = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .err()
        .unwrap();
    assert!(start.to_string().contains("plugins[1].sha256"), "{start}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_pinned_refuses_unpinned_plugins() {
    let text = sandbox_config_text(
        &test_plugin("paygate-test-plugin-hostile"),
        "require_pinned = true",
    );
    let error = Config::parse(Path::new("sandbox.toml"), &text).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("plugins[0].sha256"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_plugins_need_a_valid_signature_by_a_trusted_key() {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let signer = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in ["paygate-plugin-mock", "paygate-test-plugin-hostile"] {
        let source = if name == "paygate-plugin-mock" {
            plugin_dir().join(format!("{name}.wasm"))
        } else {
            test_plugin(name)
        };
        let copy = dir.path().join(format!("{name}.wasm"));
        std::fs::copy(source, &copy).unwrap();
        let signature = signer.sign(&std::fs::read(&copy).unwrap());
        std::fs::write(
            dir.path().join(format!("{name}.wasm.sig")),
            hex::encode(signature.as_ref()),
        )
        .unwrap();
        paths.push(copy);
    }
    let trusted = format!(
        "trusted_signers = [\"{}\"]",
        hex::encode(signer.public_key().as_ref())
    );
    let text = sandbox_config_text(&paths[1], &trusted).replace(
        &plugin_dir()
            .join("paygate-plugin-mock.wasm")
            .display()
            .to_string(),
        &paths[0].display().to_string(),
    );
    let config = parse(&text);
    let host = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    assert!(matches!(hostile(&host, "m_a", "normal").await, Ok(Ok(_))));

    // A signature by an untrusted key, then no signature at all.
    let stranger =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let sig_path = dir.path().join("paygate-test-plugin-hostile.wasm.sig");
    std::fs::write(
        &sig_path,
        hex::encode(stranger.sign(&std::fs::read(&paths[1]).unwrap()).as_ref()),
    )
    .unwrap();
    let error = host.reload(&config, &config).await.unwrap_err();
    assert!(error.contains("valid signature"), "{error}");
    std::fs::remove_file(&sig_path).unwrap();
    let error = host.reload(&config, &config).await.unwrap_err();
    assert!(error.contains(".sig"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_without_dropping_calls_in_flight() {
    let config = parse(&sandbox_config_text(
        &test_plugin("paygate-test-plugin-hostile"),
        "",
    ));
    let host = Arc::new(
        PluginHost::start(&config, Arc::new(Metrics::new()))
            .await
            .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let (host, stop) = (host.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let mut answered = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let result = host
                    .create_payment(payment(&host, "mock", "m_a", Method::Barcode, 1250, ""))
                    .await;
                assert!(
                    matches!(result, Ok(Ok(ref r)) if r.status == PaymentStatus::Succeeded),
                    "{result:?}"
                );
                answered += 1;
            }
            answered
        }));
    }
    // Two slow calls (the mock answers amount .64 after 1.5 s) straddle the reloads.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                host.create_payment(payment(&host, "mock", "m_a", Method::Barcode, 1264, ""))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let report = host.reload(&config, &config).await.unwrap();
        assert_eq!(report.plugins, ["mock", "hostile"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for call in slow {
        let result = call.await.unwrap();
        assert!(
            matches!(result, Ok(Ok(ref r)) if r.status == PaymentStatus::Succeeded),
            "{result:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for caller in callers {
        total += caller.await.unwrap();
    }
    assert!(total > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let text = sandbox_config_text(&test_plugin("paygate-test-plugin-hostile"), "").replace(
        &shared_plugin_cache().display().to_string(),
        &dir.path().display().to_string(),
    );
    let config = parse(&text);
    drop(
        PluginHost::start(&config, Arc::new(Metrics::new()))
            .await
            .unwrap(),
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "one cached artifact per plugin: {entries:?}"
    );
    for entry in &entries {
        std::fs::write(entry, b"garbage").unwrap();
    }
    let host = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    assert!(matches!(hostile(&host, "m_a", "normal").await, Ok(Ok(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_wallet_example_loads_with_the_readme_snippet_and_answers_a_payment() {
    let block = readme_toml_block("<!-- hello-wallet config");
    let example = repo_root().join("target/examples/hello-wallet.wasm");
    assert!(example.is_file(), "run cargo xtask build first");
    let text = format!(
        "[plugin_host]\ncache_dir = \"{}\"\n{}",
        shared_plugin_cache().display(),
        block.replace(
            "target/examples/hello-wallet.wasm",
            &example.display().to_string()
        )
    );
    let config = parse(&text);
    let host = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let settings: toml::Table =
        toml::from_str("pay_base = \"https://hello.example/shop-7\"").unwrap();
    let request = CreatePaymentRequest {
        payment_id: "pay_hello1".into(),
        provider: "hello".into(),
        merchant: host
            .merchant_record("hello", "m_hello", &settings, "http://x".into())
            .unwrap(),
        amount: cny(990),
        method: Method::Qr,
        auth_code: None,
        description: None,
        terminal_id: None,
        expires_in_seconds: None,
        wallet_token: None,
    };
    let result = host.create_payment(request).await.unwrap().unwrap();
    assert_eq!(result.status, PaymentStatus::Pending);
    assert_eq!(
        result.qr_code.as_deref(),
        Some("https://hello.example/shop-7/pay_hello1")
    );
}
