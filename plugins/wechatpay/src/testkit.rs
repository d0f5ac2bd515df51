//! Test support: fixtures, WeChat Pay's published vectors, native versions of the host's
//! cryptography (RSA with `rsa`, AES-GCM with `ring`), and `FakeEnv`, a scripted WeChat
//! Pay that checks the signature of every request it gets and signs its answers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use paygate_plugin_api::keys::KeyError;
use paygate_plugin_api::{
    BindingRef, BindingRequest, CreatePaymentRequest, Merchant, Method, Money, OnboardingRef,
    OnboardingRequest, PaymentRef, http,
};
use ring::aead;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::env::Env;
use crate::settings::{Settings, key_names};

// --- fixtures ----------------------------------------------------------------------------

pub const MCHID: &str = "1900000109";
pub const APPID: &str = "wxd678efh567hg6787";
pub const MERCHANT_SERIAL: &str = "F5765756002FDD77";
pub const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0114";
pub const PAYMENT_ID: &str = "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const REFUND_ID: &str = "re_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const NOTIFY_URL: &str = "https://gw.example/v1/notify/wechatpay/m_demo";
pub const ACTIVATION_ID: &str = "act_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const BANK_ACCOUNT_ID: &str = "ba_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const SUB_MCHID: &str = "1900006491";
pub const APPLYMENT_ID: u64 = 2_000_002_124_775_691;
/// 2024-03-14T15:50:00Z.
pub const NOW_MILLIS: u64 = 1_710_431_400_000;

pub fn settings_json() -> String {
    json!({
        "mchid": MCHID,
        "appid": APPID,
        "merchant_serial_no": MERCHANT_SERIAL,
        "wechatpay_public_key_id": PUBLIC_KEY_ID,
        "base_url": "http://127.0.0.1:8430/wechatpay",
    })
    .to_string()
}

pub fn settings() -> Settings {
    Settings::parse(&settings_json()).unwrap()
}

pub fn cny(minor: i64) -> Money {
    Money {
        minor,
        currency: "CNY".into(),
        exponent: 2,
    }
}

pub fn merchant() -> Merchant {
    Merchant {
        id: "m_demo".into(),
        settings_json: settings_json(),
        notify_url: NOTIFY_URL.into(),
    }
}

pub fn create(method: Method) -> CreatePaymentRequest {
    CreatePaymentRequest {
        payment_id: PAYMENT_ID.into(),
        provider: "wechatpay".into(),
        merchant: merchant(),
        amount: cny(1250),
        method,
        auth_code: (method == Method::Barcode).then(|| "134567890123456789".into()),
        description: Some("Coffee".into()),
        terminal_id: Some("till-7".into()),
        expires_in_seconds: Some(900),
        wallet_token: None,
    }
}

pub fn payment_ref() -> PaymentRef {
    PaymentRef {
        payment_id: PAYMENT_ID.into(),
        provider: "wechatpay".into(),
        merchant: merchant(),
        amount: cny(1250),
        provider_reference: None,
    }
}

/// The merchant with the gateway's `activation_id` in its settings (after onboarding).
pub fn onboarded_merchant() -> Merchant {
    let mut settings: Value = serde_json::from_str(&settings_json()).unwrap();
    settings["activation_id"] = ACTIVATION_ID.into();
    // What the gateway passes with a binding: the account's branch city.
    settings["bank_area_code"] = "440300".into();
    Merchant {
        settings_json: settings.to_string(),
        ..merchant()
    }
}

/// An onboarded merchant as the gateway passes it once its application is finished: the
/// platform's settings, its `activation_id` and its `sub_merchant_id`.
pub fn sub_merchant_record() -> Merchant {
    let mut settings: Value = serde_json::from_str(&onboarded_merchant().settings_json).unwrap();
    settings["sub_merchant_id"] = SUB_MCHID.into();
    Merchant {
        id: "m_onboarded".into(),
        settings_json: settings.to_string(),
        ..merchant()
    }
}

/// `value` (an order, a refund or a notice's resource of the merchant's own) as WeChat Pay
/// describes a sub-merchant's to its service provider: `sp_appid` / `sp_mchid` /
/// `sub_mchid` instead of `appid` / `mchid`, the payer by `sp_openid`.
pub fn as_sub_merchants(mut value: Value) -> Value {
    let object = value.as_object_mut().unwrap();
    if object.remove("appid").is_some() {
        object.insert("sp_appid".into(), APPID.into());
    }
    object.remove("mchid");
    object.insert("sp_mchid".into(), MCHID.into());
    object.insert("sub_mchid".into(), SUB_MCHID.into());
    if let Some(payer) = object.get_mut("payer").and_then(Value::as_object_mut)
        && let Some(openid) = payer.remove("openid")
    {
        payer.insert("sp_openid".into(), openid);
    }
    value
}

/// The materials the gateway sends with `onboard`.
pub fn materials() -> Value {
    json!({
        "name": "深圳市示例科技有限公司",
        "business_license_no": "91440300MA5FXXXX0X",
        "tax_registration_no": "91440300MA5FXXXX0X",
        "legal_person": {"name": "张三", "id_number": "110101199003071234"},
        "contact": {"name": "张三", "phone": "13800138000", "email": "ops@example.cn"},
        "industry_code": "餐饮",
        "details": details(),
    })
}

/// The materials' `details`: what the applyment needs beyond the merchant's record.
pub fn details() -> Value {
    json!({
        "business_license": {"address": "广东省深圳市南山区科技园路1号", "valid_from": "2018-03-01", "valid_until": "long-term"},
        "legal_person": {"id_address": "北京市东城区示例路1号", "id_valid_from": "2019-05-20", "id_valid_until": "2039-05-20"},
        "store": {"name": "示例茶室", "area_code": "440305", "address": "广东省深圳市南山区科技园路1号101"},
        "settlement_account": {"account_holder": "深圳市示例科技有限公司", "bank_name": "招商银行", "bank_area_code": "440300", "branch": "招商银行深圳分行科技园支行", "account_number": "7550 0000 0000 0001"},
    })
}

pub fn onboarding_request() -> OnboardingRequest {
    let mut materials = materials();
    materials["documents"] = documents();
    OnboardingRequest {
        activation_id: ACTIVATION_ID.into(),
        provider: "wechatpay".into(),
        merchant: merchant(),
        materials_json: materials.to_string(),
    }
}

/// The smallest JPEG header the plugin's check accepts: what the tests upload.
pub const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];

/// The images the gateway passes under the materials' `documents`.
pub fn documents() -> Value {
    let jpeg = json!({"content_type": "image/jpeg", "data": BASE64.encode(JPEG)});
    json!({"business_license": jpeg, "id_card_front": jpeg, "id_card_back": jpeg,
           "store_entrance": jpeg, "store_indoor": jpeg})
}

/// The media ids WeChat Pay answers the five uploads with, in order.
pub const MEDIA_IDS: [&str; 5] = [
    "V1_LICENCE",
    "V1_FRONT",
    "V1_BACK",
    "V1_ENTRANCE",
    "V1_INDOOR",
];

/// The five uploads' answers.
pub fn uploads() -> Vec<Scripted> {
    MEDIA_IDS
        .iter()
        .map(|id| reply(200, json!({"media_id": id})))
        .collect()
}

pub fn onboarding_ref() -> OnboardingRef {
    OnboardingRef {
        activation_id: ACTIVATION_ID.into(),
        provider: "wechatpay".into(),
        merchant: merchant(),
        provider_reference: Some(APPLYMENT_ID.to_string()),
    }
}

pub fn binding_request(merchant: Merchant) -> BindingRequest {
    BindingRequest {
        bank_account_id: BANK_ACCOUNT_ID.into(),
        provider: "wechatpay".into(),
        merchant,
        account_holder: "深圳市示例科技有限公司".into(),
        account_number: "6214 8301 2345 6789".into(),
        bank_name: "招商银行".into(),
        branch: Some("招商银行深圳分行科技园支行".into()),
    }
}

pub fn binding_ref(provider_reference: Option<&str>) -> BindingRef {
    let mut merchant = onboarded_merchant();
    let mut settings: Value = serde_json::from_str(&merchant.settings_json).unwrap();
    // What the gateway passes with a binding query: the account's last digits.
    settings["account_number_last4"] = "6789".into();
    merchant.settings_json = settings.to_string();
    BindingRef {
        bank_account_id: BANK_ACCOUNT_ID.into(),
        provider: "wechatpay".into(),
        merchant,
        provider_reference: provider_reference.map(String::from),
    }
}

// --- vectors -----------------------------------------------------------------------------

/// A published WeChat Pay vector (tests/vectors/wechatpay/, a copy of shared/vectors/).
pub fn vector(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/vectors/wechatpay/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

pub fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing"))
        .to_owned()
}

/// The private key of the SDK's signing vector (merchant certificate F5765756002FDD77).
pub fn vector_private_key() -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(&text(&vector("sign_sha256withrsa.json"), "private_key_pem"))
        .unwrap()
}

/// The public key of the notification vector's platform certificate.
pub fn platform_certificate_key() -> (RsaPublicKey, String) {
    let pem = text(&vector("notification.json"), "platform_certificate_pem");
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let key = RsaPublicKey::from_public_key_der(cert.public_key().raw).unwrap();
    let serial = format!("{:X}", cert.tbs_certificate.serial);
    (key, serial)
}

// --- native cryptography -----------------------------------------------------------------

pub fn rsa_sign(key: &RsaPrivateKey, data: &[u8]) -> Vec<u8> {
    SigningKey::<Sha256>::new(key.clone()).sign(data).to_vec()
}

pub fn rsa_verify(key: &RsaPublicKey, data: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::try_from(signature) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(data, &signature)
        .is_ok()
}

fn gcm_key(key: &[u8]) -> Result<aead::LessSafeKey, String> {
    let algorithm = match key.len() {
        16 => &aead::AES_128_GCM,
        32 => &aead::AES_256_GCM,
        n => return Err(format!("AES-GCM key of {n} bytes")),
    };
    Ok(aead::LessSafeKey::new(
        aead::UnboundKey::new(algorithm, key).map_err(|e| e.to_string())?,
    ))
}

pub fn gcm_decrypt(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, String> {
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|e| e.to_string())?;
    let mut buffer = ciphertext.to_vec();
    let plain = gcm_key(key)?
        .open_in_place(nonce, aead::Aad::from(aad), &mut buffer)
        .map_err(|_| "tag mismatch".to_string())?;
    Ok(plain.to_vec())
}

pub fn gcm_encrypt(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).unwrap();
    let mut buffer = plaintext.to_vec();
    gcm_key(key)
        .unwrap()
        .seal_in_place_append_tag(nonce, aead::Aad::from(aad), &mut buffer)
        .unwrap();
    buffer
}

// --- a fake WeChat Pay -------------------------------------------------------------------

/// How the fake signs an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    Good,
    /// Signed, but over other bytes than the body.
    Forged,
    WrongSerial,
    /// Timestamp ten minutes old.
    Stale,
    /// No `Wechatpay-*` headers at all.
    Unsigned,
}

pub enum Scripted {
    Answer {
        status: u16,
        body: String,
        signing: Signing,
    },
    Fail(http::Error),
}

pub fn reply(status: u16, body: Value) -> Scripted {
    Scripted::Answer {
        status,
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
        signing: Signing::Good,
    }
}

pub fn reply_signed(status: u16, body: Value, signing: Signing) -> Scripted {
    match reply(status, body) {
        Scripted::Answer { status, body, .. } => Scripted::Answer {
            status,
            body,
            signing,
        },
        other => other,
    }
}

pub fn error_body(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

/// The host, with WeChat Pay behind it: the merchant key signs requests, the platform key
/// signs answers; every request's `Authorization` is checked against what was sent.
pub struct FakeEnv {
    pub now_millis: Cell<u64>,
    merchant_key: RsaPrivateKey,
    platform_key: RsaPrivateKey,
    platform_public: RsaPublicKey,
    pub apiv3_key: Vec<u8>,
    pub script: RefCell<VecDeque<Scripted>>,
    pub sent: RefCell<Vec<http::Request>>,
    pub warnings: RefCell<Vec<String>>,
    /// When false, `sign` fails (no merchant key configured).
    pub has_merchant_key: Cell<bool>,
}

impl FakeEnv {
    pub fn new(script: Vec<Scripted>) -> FakeEnv {
        let key = vector_private_key();
        FakeEnv {
            now_millis: Cell::new(NOW_MILLIS),
            merchant_key: key.clone(),
            platform_public: key.to_public_key(),
            platform_key: key,
            apiv3_key: b"0123456789abcdef0123456789abcdef".to_vec(),
            script: RefCell::new(script.into()),
            sent: RefCell::new(Vec::new()),
            warnings: RefCell::new(Vec::new()),
            has_merchant_key: Cell::new(true),
        }
    }

    /// With the published notification vector's platform key and APIv3 key.
    pub fn with_platform_key(mut self, key: RsaPublicKey, apiv3_key: &[u8]) -> FakeEnv {
        self.platform_public = key;
        self.apiv3_key = apiv3_key.to_vec();
        self
    }

    /// `Wechatpay-*` headers signing `body` as WeChat Pay would at `now_millis`.
    pub fn wechatpay_headers(&self, body: &[u8], signing: Signing) -> Vec<(String, String)> {
        if signing == Signing::Unsigned {
            return Vec::new();
        }
        let mut seconds = self.now_millis.get() / 1000;
        if signing == Signing::Stale {
            seconds -= 600;
        }
        let timestamp = seconds.to_string();
        let nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
        let signed_body: &[u8] = if signing == Signing::Forged {
            b"something else"
        } else {
            body
        };
        let message = crate::auth::verification_message(&timestamp, nonce, signed_body);
        let serial = if signing == Signing::WrongSerial {
            "PUB_KEY_ID_ROGUE"
        } else {
            PUBLIC_KEY_ID
        };
        vec![
            ("Wechatpay-Timestamp".into(), timestamp),
            ("Wechatpay-Nonce".into(), nonce.into()),
            (
                "Wechatpay-Signature".into(),
                BASE64.encode(rsa_sign(&self.platform_key, &message)),
            ),
            ("Wechatpay-Serial".into(), serial.into()),
            (
                "Wechatpay-Signature-Type".into(),
                "WECHATPAY2-SHA256-RSA2048".into(),
            ),
        ]
    }

    /// Checks a request as WeChat Pay does: the `Authorization` header's fields and its
    /// signature over the request as received.
    fn check_request(&self, request: &http::Request) {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("request without {name}"))
        };
        let authorization = header("Authorization");
        let fields = authorization
            .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
            .expect("scheme");
        let field = |name: &str| {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("Authorization without {name}: {authorization}"))
                .to_owned()
        };
        assert_eq!(field("mchid"), MCHID);
        assert_eq!(field("serial_no"), MERCHANT_SERIAL);
        let nonce = field("nonce_str");
        assert_eq!(nonce.len(), 32);
        let timestamp = field("timestamp");
        assert_eq!(timestamp, (self.now_millis.get() / 1000).to_string());
        let path = request
            .url
            .strip_prefix("http://127.0.0.1:8430")
            .expect("the configured origin");
        assert!(path.starts_with("/wechatpay/v3/"), "{path}");
        // A media upload signs its form's `meta` part (the first part), anything else its
        // body.
        let multipart = request
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("multipart/"));
        let signed = if multipart {
            let form = String::from_utf8_lossy(&request.body);
            let (_, rest) = form.split_once("\r\n\r\n").expect("a part");
            let (meta, _) = rest.split_once("\r\n--").expect("the part's end");
            assert!(form.contains("name=\"meta\""), "{form}");
            meta.to_owned()
        } else {
            String::from_utf8(request.body.clone()).unwrap()
        };
        let message = format!(
            "{}\n{path}\n{timestamp}\n{nonce}\n{signed}\n",
            request.method,
        );
        let signature = BASE64.decode(field("signature")).unwrap();
        assert!(
            rsa_verify(
                &self.merchant_key.to_public_key(),
                message.as_bytes(),
                &signature
            ),
            "request signature does not verify over {message:?}"
        );
        assert_eq!(header("Accept"), "application/json");
        assert!(header("User-Agent").starts_with("paygate-plugin-wechatpay/"));
        if multipart {
            assert_eq!(request.method, "POST");
        } else if request.method == "POST" {
            assert_eq!(header("Content-Type"), "application/json");
        } else {
            assert!(request.body.is_empty());
        }
    }

    /// The JSON body of the `n`th request sent.
    pub fn sent_json(&self, n: usize) -> Value {
        serde_json::from_slice(&self.sent.borrow()[n].body).unwrap()
    }

    /// A field the plugin sealed, opened with the platform's private key (as WeChat Pay
    /// does).
    pub fn open_sealed(&self, base64_text: &str) -> String {
        let sealed = BASE64.decode(base64_text).unwrap();
        let opened = self
            .platform_key
            .decrypt(rsa::Oaep::new::<sha1::Sha1>(), &sealed)
            .unwrap();
        String::from_utf8(opened).unwrap()
    }

    /// `METHOD URL` of every request sent.
    pub fn sent_lines(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect()
    }
}

impl Env for FakeEnv {
    fn now_millis(&self) -> u64 {
        self.now_millis.get()
    }

    fn send(&self, request: &http::Request) -> Result<http::Response, http::Error> {
        self.check_request(request);
        self.sent.borrow_mut().push(request.clone());
        match self
            .script
            .borrow_mut()
            .pop_front()
            .expect("an unexpected request")
        {
            Scripted::Fail(error) => Err(error),
            Scripted::Answer {
                status,
                body,
                signing,
            } => Ok(http::Response {
                status,
                headers: self.wechatpay_headers(body.as_bytes(), signing),
                body: body.into_bytes(),
            }),
        }
    }

    fn sign(&self, key_name: &str, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        assert_eq!(key_name, key_names::MERCHANT_PRIVATE_KEY);
        if !self.has_merchant_key.get() {
            return Err(KeyError::UnknownKey(key_name.into()));
        }
        Ok(rsa_sign(&self.merchant_key, data))
    }

    fn verify(&self, key_name: &str, data: &[u8], signature: &[u8]) -> Result<bool, KeyError> {
        assert_eq!(key_name, key_names::WECHATPAY_PUBLIC_KEY);
        Ok(rsa_verify(&self.platform_public, data, signature))
    }

    fn decrypt(
        &self,
        key_name: &str,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        assert_eq!(key_name, key_names::APIV3_KEY);
        gcm_decrypt(&self.apiv3_key, nonce, aad, ciphertext).map_err(KeyError::Failed)
    }

    /// Encrypts with the platform public key, as the host does (RSA-OAEP, SHA-1).
    fn encrypt(&self, key_name: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        assert_eq!(key_name, key_names::WECHATPAY_PUBLIC_KEY);
        self.platform_public
            .encrypt(
                &mut rsa::rand_core::OsRng,
                rsa::Oaep::new::<sha1::Sha1>(),
                plaintext,
            )
            .map_err(|e| KeyError::Failed(e.to_string()))
    }

    fn warn(&self, message: &str) {
        self.warnings.borrow_mut().push(message.to_owned());
    }
}
