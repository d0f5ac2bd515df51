//! The flow natively, with the published token (tests/vectors/applepay/), a stand-in host
//! that opens tokens as the daemon does, and a fake acquirer that checks every signature.

use std::cell::RefCell;

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use p256::pkcs8::DecodePublicKey;
use paygate_plugin_api::http::{Error as HttpError, Request, Response};
use paygate_plugin_api::keys::KeyError;
use paygate_plugin_api::*;
use sha2::{Digest, Sha256};

use crate::acquirer;
use crate::env::Env;
use crate::flow;

/// 2021-09-01 19:03:06 UTC: the vector's signing time.
const SIGNED_AT_MS: u64 = 1_630_522_986_000;
const SECRET: &[u8] = b"acq-s3cret";

fn vector(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/applepay")
            .join(name),
    )
    .unwrap()
}

fn hmac(data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// What the fake acquirer answers next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Acquirer {
    Approve,
    Decline,
    Fail500,
    BadSignature,
    Timeout,
}

struct Fake {
    now_ms: u64,
    acquirer: Acquirer,
    sent: RefCell<Vec<Request>>,
}

impl Fake {
    fn at(now_ms: u64) -> Fake {
        Fake {
            now_ms,
            acquirer: Acquirer::Approve,
            sent: RefCell::new(Vec::new()),
        }
    }
}

impl Env for Fake {
    fn now_millis(&self) -> u64 {
        self.now_ms
    }

    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        self.sent.borrow_mut().push(request.clone());
        // The request's signature, checked as the acquirer does.
        let header = request
            .headers
            .iter()
            .find(|(k, _)| k == "Acquirer-Signature")
            .map(|(_, v)| v.clone())
            .unwrap();
        let (t, mac) = acquirer::parse_signature_header(&header).unwrap();
        let path = request.url.strip_prefix("http://acquirer.test").unwrap();
        let message = acquirer::request_message(
            t,
            &request.method,
            path,
            std::str::from_utf8(&request.body).unwrap(),
        );
        assert_eq!(mac, hmac(message.as_bytes()), "request signature");
        if self.acquirer == Acquirer::Timeout {
            return Err(HttpError::Timeout);
        }
        let (status, body) = match (self.acquirer, request.method.as_str()) {
            (Acquirer::Fail500, _) => (500, b"{}".to_vec()),
            // The fake knows no payment by reference: a void finds none.
            (_, "POST") if path.ends_with("/void") => (404, b"{}".to_vec()),
            (_, "POST") if path.ends_with("/refunds") => {
                let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                let body = serde_json::json!({"id": "acq_re_1", "reference": asked["reference"],
                    "status": "succeeded", "amount": asked["amount"]});
                (201, body.to_string().into_bytes())
            }
            (_, "POST") => {
                let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                let declined = self.acquirer == Acquirer::Decline;
                let body = serde_json::json!({"id": "acq_pay_1", "reference": asked["reference"],
                    "status": if declined { "declined" } else { "authorized" },
                    "decline_code": if declined { Some("insufficient_funds") } else { None },
                    "amount": asked["amount"], "network": "mastercard", "last_four": "1169"});
                (201, body.to_string().into_bytes())
            }
            _ => (404, b"{}".to_vec()),
        };
        let t = (self.now_ms / 1000) as i64;
        let mut mac = hmac(&acquirer::answer_message(t, status, &body));
        if self.acquirer == Acquirer::BadSignature {
            mac[0] ^= 1;
        }
        Ok(Response {
            status,
            headers: vec![(
                "Acquirer-Signature".into(),
                acquirer::signature_header(t, &mac),
            )],
            body,
        })
    }

    fn hmac(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(hmac(data))
    }

    /// Opens the token as the daemon's `keys.decrypt-apple-pay-token` does.
    fn decrypt_token(
        &self,
        ephemeral_public_key: &[u8],
        merchant_id_hash: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let secret = p256::SecretKey::from_sec1_pem(&vector("merchant_private_key.pem")).unwrap();
        let ephemeral = p256::PublicKey::from_public_key_der(ephemeral_public_key)
            .map_err(|_| KeyError::Failed("bad ephemeral key".into()))?;
        let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), ephemeral.as_affine());
        let mut kdf = Sha256::new();
        kdf.update([0, 0, 0, 1]);
        kdf.update(shared.raw_secret_bytes());
        kdf.update(b"\x0did-aes256-GCM");
        kdf.update(b"Apple");
        kdf.update(merchant_id_hash);
        let cipher =
            aes_gcm::AesGcm::<aes_gcm::aes::Aes256, U16>::new_from_slice(&kdf.finalize()).unwrap();
        cipher
            .decrypt(&[0u8; 16].into(), data)
            .map_err(|_| KeyError::Failed("does not decrypt".into()))
    }
}

fn settings(merchant_identifier: &str) -> String {
    serde_json::json!({
        "merchant_identifier": merchant_identifier,
        "acquirer_url": "http://acquirer.test",
        "acquirer_merchant_id": "acq_m_1",
    })
    .to_string()
}

fn request(minor: i64, currency: &str, token: &str) -> CreatePaymentRequest {
    CreatePaymentRequest {
        payment_id: "pay_apple0001".into(),
        provider: "applepay".into(),
        merchant: Merchant {
            id: "m_1".into(),
            settings_json: settings("merchant.test.spreedly.123merchant"),
            notify_url: "http://gateway.test/notify".into(),
        },
        amount: Money {
            minor,
            currency: currency.into(),
            exponent: 2,
        },
        method: Method::WalletToken,
        auth_code: None,
        description: None,
        terminal_id: None,
        expires_in_seconds: None,
        wallet_token: Some(token.into()),
    }
}

fn declined_code(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
    match result {
        Err(ProviderError::Declined(d)) => d.code,
        other => panic!("not declined: {other:?}"),
    }
}

#[test]
fn the_published_token_is_verified_opened_and_its_id_and_amount_told() {
    let fake = Fake::at(SIGNED_AT_MS + 10_000);
    let facts = flow::inspect(&fake, &request(100, "USD", &vector("token.json"))).unwrap();
    assert_eq!(
        facts.token_id,
        "f7f133694685bab2f44ae3a7b54e2c0d0d39a3bc73fa2e6b14a2baf628d6ce87"
    );
    assert_eq!(
        (
            facts.amount.minor,
            facts.amount.currency.as_str(),
            facts.amount.exponent
        ),
        (100, "USD", 2)
    );
    assert!(fake.sent.borrow().is_empty(), "inspecting sends nothing");
}

#[test]
fn a_payment_is_authorized_and_only_the_network_and_last_four_come_back() {
    let fake = Fake::at(SIGNED_AT_MS + 10_000);
    let result = flow::create_payment(&fake, &request(100, "USD", &vector("token.json"))).unwrap();
    assert_eq!(result.status, PaymentStatus::Succeeded);
    assert_eq!(result.provider_reference.as_deref(), Some("acq_pay_1"));
    let card = result.card.clone().unwrap();
    assert_eq!(
        (card.network.as_str(), card.last_four.as_str()),
        ("mastercard", "1169")
    );
    assert_eq!(result.amount.as_ref().map(|m| m.minor), Some(100));
    assert!(!format!("{result:?}").contains("5353756319181169"));
    // The acquirer got the device account number, expiry and cryptogram, under our id.
    let sent = fake.sent.borrow();
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(sent[0].url, "http://acquirer.test/v1/payments");
    assert_eq!(body["reference"], "pay_apple0001");
    assert_eq!(body["source"]["number"], "5353756319181169");
    assert_eq!(body["source"]["expiry_month"], "09");
    assert_eq!(body["source"]["expiry_year"], "2024");
    assert_eq!(body["source"]["cryptogram"], "AMwBRjPWDnAgAA7Rls7mAoABFA==");
    assert_eq!(
        body["amount"],
        serde_json::json!({"value": 100, "currency": "USD"})
    );
}

#[test]
fn a_token_for_another_amount_currency_or_merchant_charges_nothing() {
    let fake = Fake::at(SIGNED_AT_MS);
    let token = vector("token.json");
    assert_eq!(
        declined_code(flow::create_payment(&fake, &request(200, "USD", &token))),
        "token_amount_mismatch"
    );
    assert_eq!(
        declined_code(flow::create_payment(&fake, &request(100, "EUR", &token))),
        "token_amount_mismatch"
    );
    let mut other = request(100, "USD", &token);
    other.merchant.settings_json = settings("merchant.com.example.other");
    assert_eq!(
        declined_code(flow::create_payment(&fake, &other)),
        "token_invalid"
    );
    assert!(fake.sent.borrow().is_empty());
}

#[test]
fn a_token_too_old_or_from_the_future_is_refused() {
    let token = vector("token.json");
    for (now, ok) in [
        (SIGNED_AT_MS + 299_000, true),
        (SIGNED_AT_MS + 301_000, false),
        (SIGNED_AT_MS - 59_000, true),
        (SIGNED_AT_MS - 61_000, false),
        // Today: years after the vector was made.
        (1_796_000_000_000, false),
    ] {
        let result = flow::inspect(&Fake::at(now), &request(100, "USD", &token));
        assert_eq!(result.is_ok(), ok, "at {now}: {result:?}");
    }
}

#[test]
fn a_tampered_token_fails_its_signature() {
    let good: serde_json::Value = serde_json::from_str(&vector("token.json")).unwrap();
    let fake = Fake::at(SIGNED_AT_MS);
    let flip = |pointer: &str| {
        let mut token = good.clone();
        let text = token.pointer(pointer).unwrap().as_str().unwrap().to_owned();
        let mut bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &text).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        *token.pointer_mut(pointer).unwrap() =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes).into();
        token.to_string()
    };
    for pointer in ["/data", "/header/ephemeralPublicKey", "/signature"] {
        let result = flow::inspect(&fake, &request(100, "USD", &flip(pointer)));
        assert_eq!(declined_code(result), "token_invalid", "{pointer}");
    }
    let mut other_id = good.clone();
    other_id["header"]["transactionId"] = "00".repeat(32).into();
    let result = flow::inspect(&fake, &request(100, "USD", &other_id.to_string()));
    assert_eq!(declined_code(result), "token_invalid");
    for junk in ["", "{}", "not json", "{\"version\":\"EC_v1\"}"] {
        assert_eq!(
            declined_code(flow::inspect(&fake, &request(100, "USD", junk))),
            "token_invalid"
        );
    }
}

/// The published token's payment (1.00 USD) as the host names it.
fn payment_ref() -> PaymentRef {
    PaymentRef {
        payment_id: "pay_apple0001".into(),
        provider: "applepay".into(),
        merchant: request(100, "USD", "").merchant,
        amount: Money {
            minor: 100,
            currency: "USD".into(),
            exponent: 2,
        },
        provider_reference: None,
    }
}

#[test]
fn acquirer_failures_are_classified_safely() {
    let token = vector("token.json");
    for (acquirer, expected) in [
        (Acquirer::Fail500, "unknown"),
        (Acquirer::BadSignature, "unknown"),
        (Acquirer::Timeout, "unknown"),
        (Acquirer::Decline, "declined"),
    ] {
        let mut fake = Fake::at(SIGNED_AT_MS);
        fake.acquirer = acquirer;
        let result = flow::create_payment(&fake, &request(100, "USD", &token));
        match (expected, result) {
            ("unknown", Err(ProviderError::UnknownOutcome(_))) => {}
            ("declined", Ok(r)) => {
                assert_eq!(r.status, PaymentStatus::Failed);
                assert_eq!(r.failure.unwrap().code, "insufficient_funds");
            }
            (expected, other) => panic!("{expected}: {other:?}"),
        }
    }
    // A query changes nothing: the same failures leave it `unavailable`, never unknown.
    for acquirer in [Acquirer::Fail500, Acquirer::BadSignature, Acquirer::Timeout] {
        let mut fake = Fake::at(SIGNED_AT_MS);
        fake.acquirer = acquirer;
        let result = flow::query_payment(&fake, &payment_ref());
        assert!(
            matches!(result, Err(ProviderError::Unavailable(_))),
            "{acquirer:?}: {result:?}"
        );
    }
}

#[test]
fn refunds_and_queries_go_to_the_acquirer_under_our_ids() {
    let fake = Fake::at(SIGNED_AT_MS);
    let payment = PaymentRef {
        provider_reference: Some("acq_pay_1".into()),
        ..payment_ref()
    };
    let refund = flow::refund(
        &fake,
        &RefundRequest {
            refund_id: "re_apple0001".into(),
            payment: payment.clone(),
            amount: Money {
                minor: 40,
                currency: "USD".into(),
                exponent: 2,
            },
            reason: None,
        },
    )
    .unwrap();
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!(refund.amount.map(|m| m.minor), Some(40));
    assert_eq!(
        fake.sent.borrow()[0].url,
        "http://acquirer.test/v1/payments/pay_apple0001/refunds"
    );
    // Unknown at the acquirer: nothing was charged; a cancel ends it as it is.
    assert!(matches!(
        flow::query_payment(&fake, &payment),
        Err(ProviderError::Unavailable(m)) if m.contains("nothing was charged")
    ));
    assert_eq!(
        flow::cancel_payment(&fake, &payment).unwrap().status,
        PaymentStatus::Cancelled
    );
    let mut hostile = payment.clone();
    hostile.payment_id = "../admin".into();
    assert!(matches!(
        flow::query_payment(&fake, &hostile),
        Err(ProviderError::InvalidRequest(m)) if m.contains("unusable reference")
    ));
}
