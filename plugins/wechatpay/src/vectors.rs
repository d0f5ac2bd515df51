//! WeChat Pay's published vectors (tests/vectors/wechatpay/, from wechatpay-apiv3's SDK
//! test suites): the plugin's message construction, header checks and resource decoding
//! must agree with them, with the RSA and AES-GCM maths done natively here as the host does
//! it in production.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use paygate_plugin_api::{Merchant, Notification};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::auth::{self, SignedHeaders};
use crate::env::Env;
use crate::flow::Client;
use crate::notify::{self, Envelope};
use crate::settings::Settings;
use crate::testkit::*;

const VECTOR_NOW_MILLIS: u64 = 1_624_523_846_000;
const VECTOR_MCHID: &str = "1234567890";

#[test]
fn the_request_signing_vector_signs_to_the_published_signature() {
    let v = vector("sign_sha256withrsa.json");
    let signature = rsa_sign(&vector_private_key(), text(&v, "message").as_bytes());
    assert_eq!(BASE64.encode(&signature), text(&v, "signature_base64"));
}

#[test]
fn the_published_signature_verifies_with_the_certificate_key() {
    let v = vector("sign_sha256withrsa.json");
    let (certificate_key, serial) = platform_certificate_key();
    // The SDK's test certificate and test private key are one key pair.
    assert_eq!(
        certificate_key.n(),
        vector_private_key().to_public_key().n()
    );
    assert_eq!(
        serial,
        text(&vector("notification.json"), "platform_certificate_serial")
    );
    let signature = BASE64.decode(text(&v, "signature_base64")).unwrap();
    assert!(rsa_verify(&certificate_key, b"source", &signature));
    assert!(!rsa_verify(&certificate_key, b"sourcE", &signature));
}

#[test]
fn a_request_signed_by_the_flow_verifies_with_the_vector_key() {
    // The flow's Authorization header, checked independently of how it was built.
    let env = FakeEnv::new(vec![]);
    let settings = settings();
    let client = Client::new(&env, &settings, PAYMENT_ID);
    let body = r#"{"mchid":"1900000109"}"#;
    let request = client
        .signed_request(
            "POST",
            "/v3/pay/transactions/out-trade-no/pay_1abcde/close",
            Some(body),
        )
        .unwrap();
    let authorization = &request.headers[0].1;
    let field = |name: &str| {
        authorization
            .split(&format!("{name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned()
    };
    assert!(authorization.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\","));
    let message = format!(
        "POST\n/wechatpay/v3/pay/transactions/out-trade-no/pay_1abcde/close\n{}\n{}\n{body}\n",
        field("timestamp"),
        field("nonce_str")
    );
    let (certificate_key, _) = platform_certificate_key();
    let signature = BASE64.decode(field("signature")).unwrap();
    assert!(rsa_verify(&certificate_key, message.as_bytes(), &signature));
    assert_eq!(field("serial_no"), MERCHANT_SERIAL);
    assert_eq!(field("timestamp"), (NOW_MILLIS / 1000).to_string());
}

#[test]
fn the_aead_vector_decrypts_with_a_16_byte_key() {
    let v = vector("aead.json");
    let key = text(&v, "key");
    assert_eq!(key.len(), 16);
    let ciphertext = BASE64.decode(text(&v, "ciphertext_base64")).unwrap();
    let plain = gcm_decrypt(
        key.as_bytes(),
        text(&v, "nonce").as_bytes(),
        text(&v, "associated_data").as_bytes(),
        &ciphertext,
    )
    .unwrap();
    assert_eq!(plain, text(&v, "plaintext").as_bytes());
    // Through the env the plugin decrypts with.
    let env = FakeEnv::new(vec![])
        .with_platform_key(vector_private_key().to_public_key(), key.as_bytes());
    let plain = env
        .decrypt(
            "apiv3_key",
            text(&v, "nonce").as_bytes(),
            text(&v, "associated_data").as_bytes(),
            &ciphertext,
        )
        .unwrap();
    assert_eq!(plain, b"Hello World");
    // One flipped bit anywhere, or another AAD: refused.
    for at in [0, ciphertext.len() - 1] {
        let mut bad = ciphertext.clone();
        bad[at] ^= 0x01;
        assert!(
            gcm_decrypt(
                key.as_bytes(),
                text(&v, "nonce").as_bytes(),
                text(&v, "associated_data").as_bytes(),
                &bad
            )
            .is_err()
        );
    }
    assert!(
        gcm_decrypt(
            key.as_bytes(),
            text(&v, "nonce").as_bytes(),
            b"other",
            &ciphertext
        )
        .is_err()
    );
}

fn vector_env() -> FakeEnv {
    let v = vector("notification.json");
    let (certificate_key, _) = platform_certificate_key();
    let env =
        FakeEnv::new(vec![]).with_platform_key(certificate_key, text(&v, "apiv3_key").as_bytes());
    env.now_millis.set(VECTOR_NOW_MILLIS);
    env
}

fn vector_settings(mchid: &str, serial: &str) -> String {
    json!({
        "mchid": mchid,
        "appid": APPID,
        "merchant_serial_no": MERCHANT_SERIAL,
        "wechatpay_public_key_id": serial,
        "base_url": "https://api.mch.weixin.qq.com",
    })
    .to_string()
}

fn vector_notice(settings_json: String) -> Notification {
    let v = vector("notification.json");
    let headers = v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    Notification {
        provider: "wechatpay".into(),
        merchant: Merchant {
            id: "m_vector".into(),
            settings_json,
            notify_url: "https://gw.example/v1/notify/wechatpay/m_vector".into(),
        },
        headers,
        body: text(&v, "body").into_bytes(),
    }
}

#[test]
fn the_notification_vector_authenticates_at_its_own_time() {
    let v = vector("notification.json");
    let env = vector_env();
    let notice = vector_notice(vector_settings(VECTOR_MCHID, "D7CE59D1F522D701"));
    let settings = Settings::parse(&notice.merchant.settings_json).unwrap();
    notify::authenticate(
        &env,
        &settings,
        &notice.headers,
        &notice.body,
        VECTOR_NOW_MILLIS,
    )
    .unwrap();
    // The message the signature covers, built from the headers as the plugin does.
    let signed =
        SignedHeaders::from_headers(&notice.headers, "D7CE59D1F522D701", VECTOR_NOW_MILLIS)
            .unwrap();
    let message = auth::verification_message(
        v["headers"]["Wechatpay-Timestamp"].as_str().unwrap(),
        v["headers"]["Wechatpay-Nonce"].as_str().unwrap(),
        text(&v, "body").as_bytes(),
    );
    assert_eq!(signed.message(&notice.body), message);
    let (certificate_key, _) = platform_certificate_key();
    assert!(rsa_verify(&certificate_key, &message, &signed.signature));
}

#[test]
fn the_notification_vector_resource_decrypts_to_the_merchants_json() {
    let env = vector_env();
    let notice = vector_notice(vector_settings(VECTOR_MCHID, "D7CE59D1F522D701"));
    let envelope = Envelope::decode(&notice.body).unwrap();
    assert_eq!(envelope.event_type, "PAYSCORE.USER_OPEN_SERVICE");
    assert_eq!(envelope.nonce, b"Kj7QIyUiYx1q");
    assert_eq!(envelope.associated_data, b"payscore");
    let plaintext = env
        .decrypt(
            "apiv3_key",
            &envelope.nonce,
            &envelope.associated_data,
            &envelope.ciphertext,
        )
        .unwrap();
    let resource: Value = serde_json::from_slice(&plaintext).unwrap();
    assert_eq!(resource["mchid"], VECTOR_MCHID);
}

#[test]
fn the_notification_vector_is_accepted_end_to_end() {
    let env = vector_env();
    let notice = vector_notice(vector_settings(VECTOR_MCHID, "D7CE59D1F522D701"));
    let result = notify::parse_notification(&env, &notice).unwrap();
    // A pay-score event: acknowledged, nothing for the gateway to change.
    assert!(result.updates.is_empty());
    assert_eq!(result.reply.status, 200);
}

#[test]
fn the_notification_vector_is_refused_when_anything_is_off() {
    let rejected =
        |env: &FakeEnv, notice: &Notification| match notify::parse_notification(env, notice) {
            Err(r) => (r.reply.status, r.reason),
            Ok(_) => panic!("accepted"),
        };
    let good = || vector_notice(vector_settings(VECTOR_MCHID, "D7CE59D1F522D701"));

    // Today's clock: years too late.
    let env = vector_env();
    env.now_millis.set(1_750_000_000_000);
    assert_eq!(rejected(&env, &good()).0, 401);

    // Another serial configured.
    let env = vector_env();
    let notice = vector_notice(vector_settings(VECTOR_MCHID, "PUB_KEY_ID_0114"));
    assert_eq!(rejected(&env, &notice).0, 401);

    // One byte of the body changed.
    let mut notice = good();
    let at = notice.body.len() / 2;
    notice.body[at] ^= 0x20;
    assert_eq!(rejected(&env, &notice).0, 401);

    // A signature from another key (the right headers otherwise).
    let mut notice = good();
    for (k, v) in notice.headers.iter_mut() {
        if k == "Wechatpay-Signature" {
            *v = BASE64.encode(rsa_sign(&vector_private_key(), b"other message"));
        }
    }
    assert_eq!(rejected(&env, &notice).0, 401);

    // Another APIv3 key: authenticated, but the resource does not decrypt.
    let (certificate_key, _) = platform_certificate_key();
    let wrong_key = FakeEnv::new(vec![]).with_platform_key(certificate_key, b"testMchAPIv3Key1");
    wrong_key.now_millis.set(VECTOR_NOW_MILLIS);
    let (status, reason) = rejected(&wrong_key, &good());
    assert_eq!(status, 400);
    assert!(reason.contains("decrypt"), "{reason}");

    // Another merchant's notice.
    let notice = vector_notice(vector_settings("1900000109", "D7CE59D1F522D701"));
    let (status, reason) = rejected(&env, &notice);
    assert_eq!(status, 400);
    assert!(reason.contains("mchid"), "{reason}");
}
