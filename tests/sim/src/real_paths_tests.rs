//! Each provider at its real paths and under its prefix, as clients address them: Alipay's
//! gateway by GET and POST, WeChat Pay's requests signed over the path as requested or
//! relative to the prefix, and the platform certificate download. (The providers' own SDKs
//! drive the same routes end to end in `tests/sdk/`.)

use std::collections::BTreeMap;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};
use sha2::Sha256;
use tower::ServiceExt as _;

use crate::tests::{keys_dir, sim};
use crate::{keys, ledger, router};

fn private_key(name: &str) -> SigningKey<Sha256> {
    let pem = std::fs::read_to_string(keys_dir().join(name)).unwrap();
    SigningKey::new(rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap())
}

/// Sends one request to a fresh simulator; the status, headers and body text.
async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router(sim()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// The `Authorization` of a WeChat Pay v3 request whose signature covers `signed_path`.
pub(crate) fn wechatpay_authorization(method: &str, signed_path: &str, body: &str) -> String {
    let timestamp = ledger::now_ms() / 1000;
    let nonce = keys::random_token(32);
    let message = format!("{method}\n{signed_path}\n{timestamp}\n{nonce}\n{body}\n");
    let signature = keys::sign(
        &private_key("wechatpay_merchant_private_key.pem"),
        message.as_bytes(),
    );
    format!(
        "WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str=\"{nonce}\",\
         signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"SIM0001\""
    )
}

fn wechatpay_get(path: &str, signed_path: &str) -> Request<Body> {
    Request::get(path)
        .header(
            "authorization",
            wechatpay_authorization("GET", signed_path, ""),
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn wechatpay_answers_at_its_real_path_and_under_the_prefix_signed_either_way() {
    let query = "/v3/pay/transactions/out-trade-no/pay_none?mchid=1900000001";
    let prefixed = format!("/wechatpay{query}");
    for (path, signed) in [
        (query, query),
        (prefixed.as_str(), prefixed.as_str()),
        // What an SDK with base URL `.../wechatpay/` signs: the path relative to it.
        (prefixed.as_str(), query),
    ] {
        let (status, headers, body) = send(wechatpay_get(path, signed)).await;
        // Authenticated: the order is simply not there.
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} signed over {signed}: {body}"
        );
        assert_eq!(headers["wechatpay-serial"], crate::WECHATPAY_PUBLIC_KEY_ID);
    }
    // A signature over any other path is refused, prefixed or not.
    for (path, signed) in [
        (query, prefixed.as_str()),
        (
            prefixed.as_str(),
            "/v3/pay/transactions/out-trade-no/other?mchid=1900000001",
        ),
    ] {
        let (status, _, body) = send(wechatpay_get(path, signed)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} signed over {signed}"
        );
        assert!(body.contains("SIGN_ERROR"), "{body}");
    }
}

#[tokio::test]
async fn the_platform_certificate_unseals_under_the_apiv3_key_and_names_the_answers_serial() {
    let (status, headers, body) = send(wechatpay_get("/v3/certificates", "/v3/certificates")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let item = &body["data"][0];
    let sealed = &item["encrypt_certificate"];
    assert_eq!(sealed["algorithm"], "AEAD_AES_256_GCM");
    assert_eq!(sealed["associated_data"], "certificate");
    let apiv3 = std::fs::read_to_string(keys_dir().join("wechatpay_apiv3_key.txt")).unwrap();
    let key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, apiv3.trim().as_bytes()).unwrap(),
    );
    let nonce: [u8; 12] = sealed["nonce"]
        .as_str()
        .unwrap()
        .as_bytes()
        .try_into()
        .unwrap();
    let mut buffer = base64::engine::general_purpose::STANDARD
        .decode(sealed["ciphertext"].as_str().unwrap())
        .unwrap();
    let pem = key
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(b"certificate"),
            &mut buffer,
        )
        .unwrap();
    let committed = std::fs::read(keys_dir().join("wechatpay_platform_cert.pem")).unwrap();
    assert_eq!(pem, committed.as_slice());
    let serial = item["serial_no"].as_str().unwrap();
    assert_eq!(serial.len(), 40);
    assert_eq!(headers["wechatpay-serial"], serial);
    // A client that trusts the certificate and names it gets answers under its serial.
    let mut request = wechatpay_get(
        "/v3/pay/transactions/out-trade-no/pay_none?mchid=1900000001",
        "/v3/pay/transactions/out-trade-no/pay_none?mchid=1900000001",
    );
    request
        .headers_mut()
        .insert("wechatpay-serial", serial.parse().unwrap());
    let (_, headers, _) = send(request).await;
    assert_eq!(headers["wechatpay-serial"], serial);
}

/// Alipay's common parameters for `method`, signed with the sandbox app key.
pub(crate) fn alipay_params(method: &str, biz_content: &Value) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = [
        ("app_id", "2021000000000001"),
        ("method", method),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2026-12-06 12:00:00"),
        ("version", "1.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    params.insert("biz_content".into(), biz_content.to_string());
    let signed = crate::alipay::signing_string(&params, &["sign"]);
    let sign = keys::sign(
        &private_key("alipay_app_private_key.pem"),
        signed.as_bytes(),
    );
    params.insert("sign".into(), sign);
    params
}

pub(crate) fn form(params: &BTreeMap<String, String>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

#[tokio::test]
async fn alipays_gateway_takes_get_and_post_at_its_real_path_and_under_the_prefix() {
    let params = alipay_params("alipay.trade.query", &json!({"out_trade_no": "pay_none"}));
    let query = form(&params);
    // Common parameters in the query string, the rest in the form, as alipay-sdk sends them.
    let (common, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = params
        .clone()
        .into_iter()
        .partition(|(k, _)| k != "biz_content");
    let requests = [
        Request::get(format!("/gateway.do?{query}")).body(Body::empty()),
        Request::get(format!("/alipay/gateway.do?{query}")).body(Body::empty()),
        Request::post("/gateway.do")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(query.clone())),
        Request::post(format!("/alipay/gateway.do?{}", form(&common)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form(&rest))),
    ];
    for request in requests {
        let request = request.unwrap();
        let what = format!("{} {}", request.method(), request.uri());
        let (status, _, body) = send(request).await;
        assert_eq!(status, StatusCode::OK, "{what}");
        // Past the signature check: the trade is simply unknown.
        assert!(body.contains("ACQ.TRADE_NOT_EXIST"), "{what}: {body}");
    }
    // A parameter changed after signing is refused, by GET as by POST.
    let mut tampered = params.clone();
    tampered.insert(
        "biz_content".into(),
        json!({"out_trade_no": "pay_other"}).to_string(),
    );
    let request = Request::get(format!("/gateway.do?{}", form(&tampered)))
        .body(Body::empty())
        .unwrap();
    let (_, _, body) = send(request).await;
    assert!(body.contains("isv.invalid-signature"), "{body}");
}
