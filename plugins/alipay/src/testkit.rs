//! Test support: fixtures, native RSA2 (the host's `keys` in production), and `FakeEnv`, a
//! scripted Alipay gateway that checks the common parameters and the signature of every
//! request it gets, signs (or forges) its answers, and signs trade notices. It plays Alipay
//! with the sandbox keys of `config/sandbox-keys/` (the application's key signs requests,
//! the platform's key answers and notices), so a key swapped in the flow fails here.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use paygate_plugin_api::keys::KeyError;
use paygate_plugin_api::{
    BindingRef, BindingRequest, CreatePaymentRequest, Merchant, Method, Money, Notification,
    OnboardingRef, OnboardingRequest, PaymentRef, RefundRef, RefundRequest, form, http,
};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::env::Env;
use crate::settings::key_names;

// --- fixtures ----------------------------------------------------------------------------

pub const APP_ID: &str = "2021000000000001";
pub const GATEWAY_URL: &str = "http://127.0.0.1:8430/alipay/gateway.do";
pub const SELLER_ID: &str = "2088102146225135";
pub const PAYMENT_ID: &str = "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const REFUND_ID: &str = "re_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const NOTIFY_URL: &str = "https://gw.example/v1/notify/alipay/m_demo";
/// A payer's payment code (prefix 28, 18 digits).
pub const AUTH_CODE: &str = "287654321012345678";
pub const TRADE_NO: &str = "2024031422001404330000121536";
pub const BUYER_ID: &str = "2088101117955611";
pub const ACTIVATION_ID: &str = "act_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const BANK_ACCOUNT_ID: &str = "ba_0Fq3Zx9AbCdEfGhIjKlMnOpQ";
pub const ORDER_ID: &str = "2024031400502000000001234567";
pub const SMID: &str = "2088000000000042";
/// 2024-03-14T15:50:00Z.
pub const NOW_MILLIS: u64 = 1_710_431_400_000;
/// [`NOW_MILLIS`] as Alipay's `timestamp` (Beijing time).
pub const NOW_BEIJING: &str = "2024-03-14 23:50:00";

pub fn settings_json() -> String {
    json!({
        "app_id": APP_ID,
        "gateway_url": GATEWAY_URL,
        "seller_id": SELLER_ID,
    })
    .to_string()
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

/// A 12.50 CNY payment; `barcode` carries [`AUTH_CODE`].
pub fn create(method: Method) -> CreatePaymentRequest {
    CreatePaymentRequest {
        payment_id: PAYMENT_ID.into(),
        provider: "alipay".into(),
        merchant: merchant(),
        amount: cny(1250),
        method,
        auth_code: (method == Method::Barcode).then(|| AUTH_CODE.into()),
        description: Some("Coffee".into()),
        terminal_id: Some("till-7".into()),
        expires_in_seconds: Some(900),
        wallet_token: None,
    }
}

pub fn payment_ref() -> PaymentRef {
    PaymentRef {
        payment_id: PAYMENT_ID.into(),
        provider: "alipay".into(),
        merchant: merchant(),
        amount: cny(1250),
        provider_reference: Some(TRADE_NO.into()),
    }
}

/// A refund of 5.00 of the 12.50 payment.
pub fn refund_request() -> RefundRequest {
    RefundRequest {
        refund_id: REFUND_ID.into(),
        payment: payment_ref(),
        amount: cny(500),
        reason: Some("  damaged  ".into()),
    }
}

pub fn refund_ref() -> RefundRef {
    RefundRef {
        refund_id: REFUND_ID.into(),
        payment: payment_ref(),
        amount: cny(500),
        provider_reference: None,
    }
}

/// The materials the gateway sends with `onboard`.
pub fn materials() -> Value {
    json!({
        "name": "杭州示例科技有限公司",
        "business_license_no": "91330100MA2AXXXX1X",
        "legal_person": {"name": "张三", "id_number": "33010219900101123X"},
        "contact": {"name": "李四", "phone": "13800000000"},
        "industry_code": "B0001",
    })
}

pub fn onboarding_request() -> OnboardingRequest {
    OnboardingRequest {
        activation_id: ACTIVATION_ID.into(),
        provider: "alipay".into(),
        merchant: merchant(),
        materials_json: materials().to_string(),
    }
}

pub fn onboarding_ref() -> OnboardingRef {
    OnboardingRef {
        activation_id: ACTIVATION_ID.into(),
        provider: "alipay".into(),
        merchant: merchant(),
        provider_reference: Some(ORDER_ID.into()),
    }
}

/// The merchant once onboarded: its settings name the sub-merchant.
pub fn onboarded_merchant() -> Merchant {
    let mut settings: Value = serde_json::from_str(&settings_json()).unwrap();
    settings["sub_merchant_id"] = SMID.into();
    Merchant {
        settings_json: settings.to_string(),
        ..merchant()
    }
}

pub fn binding_request() -> BindingRequest {
    BindingRequest {
        bank_account_id: BANK_ACCOUNT_ID.into(),
        provider: "alipay".into(),
        merchant: onboarded_merchant(),
        account_holder: "杭州示例科技有限公司".into(),
        account_number: "6222 0212 3456 7890".into(),
        bank_name: "中国工商银行".into(),
        branch: None,
    }
}

pub fn binding_ref(provider_reference: Option<&str>) -> BindingRef {
    BindingRef {
        bank_account_id: BANK_ACCOUNT_ID.into(),
        provider: "alipay".into(),
        merchant: onboarded_merchant(),
        provider_reference: provider_reference.map(String::from),
    }
}

// --- native RSA2 -------------------------------------------------------------------------

fn sandbox_key(file: &str) -> String {
    let path = format!(
        "{}/../../config/sandbox-keys/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn rsa2_sign(key: &RsaPrivateKey, data: &[u8]) -> Vec<u8> {
    SigningKey::<Sha256>::new(key.clone()).sign(data).to_vec()
}

pub fn rsa2_verify(key: &RsaPublicKey, data: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::try_from(signature) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(data, &signature)
        .is_ok()
}

/// Signs `data` with a PEM (PKCS#8) private key.
pub fn rsa2_sign_pem(private_key_pem: &str, data: &[u8]) -> Vec<u8> {
    rsa2_sign(
        &RsaPrivateKey::from_pkcs8_pem(private_key_pem).expect("a private key"),
        data,
    )
}

/// Verifies `signature` over `data` with a PEM (SubjectPublicKeyInfo) public key.
pub fn rsa2_verifies(public_key_pem: &str, data: &[u8], signature: &[u8]) -> bool {
    let key = RsaPublicKey::from_public_key_pem(public_key_pem).expect("a public key");
    rsa2_verify(&key, data, signature)
}

/// What an Alipay signature covers, written here independently of `auth`: every non-empty
/// parameter but `excluded`, sorted by key, `k=v` joined with `&`, raw values.
fn signed_string(params: &[(String, String)], excluded: &[&str]) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !excluded.contains(&k.as_str()))
        .collect();
    kept.sort();
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

// --- a fake Alipay -----------------------------------------------------------------------

/// How the fake signs an answer or a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    Good,
    /// Signed with Alipay's key, but over other bytes than the ones sent.
    Forged,
    /// Signed over the right bytes with another key (the application's).
    WrongKey,
    /// No `sign` at all.
    Unsigned,
}

pub enum Scripted {
    /// HTTP 200 with `{"<method>_response": <node>, "sign": ...}`, `node` sent as written.
    Answer {
        method: String,
        node: String,
        signing: Signing,
    },
    /// A body exactly as given.
    Raw {
        status: u16,
        body: Vec<u8>,
    },
    Fail(http::Error),
}

/// A well-signed answer to `method`.
pub fn answer(method: &str, node: Value) -> Scripted {
    answer_signed(method, node, Signing::Good)
}

pub fn answer_signed(method: &str, node: Value, signing: Signing) -> Scripted {
    answer_text(method, &node.to_string(), signing)
}

/// An answer whose `*_response` is `node` byte for byte (odd spacing, escapes...).
pub fn answer_text(method: &str, node: &str, signing: Signing) -> Scripted {
    Scripted::Answer {
        method: method.into(),
        node: node.into(),
        signing,
    }
}

pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Scripted {
    Scripted::Raw {
        status,
        body: body.into(),
    }
}

/// A business failure (`40004`) with its `sub_code`.
pub fn failure(sub_code: &str, sub_msg: &str) -> Value {
    json!({"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg})
}

/// The host, with Alipay's gateway behind it.
pub struct FakeEnv {
    pub now_millis: Cell<u64>,
    app_key: RsaPrivateKey,
    alipay_key: RsaPrivateKey,
    alipay_public: RsaPublicKey,
    pub script: RefCell<VecDeque<Scripted>>,
    pub sent: RefCell<Vec<http::Request>>,
    pub infos: RefCell<Vec<String>>,
    pub warnings: RefCell<Vec<String>>,
    /// When false, `sign` fails (no application key configured).
    pub has_app_key: Cell<bool>,
}

impl FakeEnv {
    pub fn new(script: Vec<Scripted>) -> FakeEnv {
        let private = |file| RsaPrivateKey::from_pkcs8_pem(&sandbox_key(file)).unwrap();
        let alipay_public =
            RsaPublicKey::from_public_key_pem(&sandbox_key("alipay_public_key.pem")).unwrap();
        FakeEnv {
            now_millis: Cell::new(NOW_MILLIS),
            app_key: private("alipay_app_private_key.pem"),
            alipay_key: private("alipay_platform_private_key.pem"),
            alipay_public,
            script: RefCell::new(script.into()),
            sent: RefCell::new(Vec::new()),
            infos: RefCell::new(Vec::new()),
            warnings: RefCell::new(Vec::new()),
            has_app_key: Cell::new(true),
        }
    }

    /// Checks a request as Alipay's gateway does: a form POST to `gateway.do` with the
    /// common parameters, each once, and a `sign` that verifies with the application's
    /// public key over the sorted parameters but `sign`.
    fn check_request(&self, request: &http::Request) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, GATEWAY_URL);
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("request without {name}"))
        };
        assert_eq!(
            header("content-type"),
            "application/x-www-form-urlencoded;charset=utf-8"
        );
        assert_eq!(header("accept"), "application/json");
        let pairs = form::decode(&request.body);
        let params = Self::params_of(&pairs);
        for (key, value) in [
            ("app_id", APP_ID),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
        ] {
            assert_eq!(params.get(key).map(String::as_str), Some(value), "{key}");
        }
        let timestamp = crate::time::beijing_timestamp(self.now_millis.get());
        assert_eq!(params["timestamp"], timestamp);
        let biz: Value = serde_json::from_str(&params["biz_content"]).expect("biz_content JSON");
        assert!(biz.is_object());
        let signature = BASE64.decode(&params["sign"]).expect("sign is base64");
        let signed = signed_string(&pairs, &["sign"]);
        assert!(
            rsa2_verify(&self.app_key.to_public_key(), signed.as_bytes(), &signature),
            "request signature does not verify over {signed:?}"
        );
    }

    fn params_of(pairs: &[(String, String)]) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        for (key, value) in pairs {
            assert!(
                params.insert(key.clone(), value.clone()).is_none(),
                "{key} sent twice"
            );
        }
        params
    }

    /// The form parameters of the `n`th request sent.
    pub fn sent_params(&self, n: usize) -> BTreeMap<String, String> {
        Self::params_of(&form::decode(&self.sent.borrow()[n].body))
    }

    /// The `biz_content` of the `n`th request sent.
    pub fn sent_biz(&self, n: usize) -> Value {
        serde_json::from_str(&self.sent_params(n)["biz_content"]).unwrap()
    }

    /// The `method` of every request sent, in order.
    pub fn sent_methods(&self) -> Vec<String> {
        (0..self.sent.borrow().len())
            .map(|n| self.sent_params(n)["method"].clone())
            .collect()
    }

    fn signature(&self, data: &[u8], signing: Signing) -> Option<String> {
        let signature = match signing {
            Signing::Good => rsa2_sign(&self.alipay_key, data),
            Signing::Forged => rsa2_sign(&self.alipay_key, b"something else"),
            Signing::WrongKey => rsa2_sign(&self.app_key, data),
            Signing::Unsigned => return None,
        };
        Some(BASE64.encode(signature))
    }

    fn render(&self, method: &str, node: &str, signing: Signing) -> Vec<u8> {
        let key = format!("{}_response", method.replace('.', "_"));
        match self.signature(node.as_bytes(), signing) {
            Some(sign) => format!("{{\"{key}\":{node},\"sign\":\"{sign}\"}}"),
            None => format!("{{\"{key}\":{node}}}"),
        }
        .into_bytes()
    }

    /// A trade notice for [`merchant`] with these parameters, plus `sign_type` RSA2 and a
    /// `sign` over the others (but `sign_type`) as `signing` says.
    pub fn notice(&self, params: &[(&str, &str)], signing: Signing) -> Notification {
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("sign_type".to_string(), "RSA2".to_string())])
            .collect();
        let signed = signed_string(&pairs, &["sign", "sign_type"]);
        if let Some(sign) = self.signature(signed.as_bytes(), signing) {
            pairs.push(("sign".into(), sign));
        }
        Notification {
            provider: "alipay".into(),
            merchant: merchant(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            )],
            body: form::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_bytes(),
        }
    }
}

/// The parameters of Alipay's notice that [`PAYMENT_ID`] (12.50) was paid.
pub fn paid_notice() -> Vec<(&'static str, &'static str)> {
    vec![
        ("notify_time", "2024-03-14 23:50:05"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "2024031400222235005123456789"),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("app_id", APP_ID),
        ("seller_id", SELLER_ID),
        ("buyer_id", BUYER_ID),
        ("out_trade_no", PAYMENT_ID),
        ("trade_no", TRADE_NO),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "12.50"),
        ("receipt_amount", "12.50"),
        ("subject", "Coffee"),
        ("gmt_payment", "2024-03-14 23:50:04"),
    ]
}

impl Env for FakeEnv {
    fn now_millis(&self) -> u64 {
        self.now_millis.get()
    }

    fn send(&self, request: &http::Request) -> Result<http::Response, http::Error> {
        self.check_request(request);
        self.sent.borrow_mut().push(request.clone());
        let next = self
            .script
            .borrow_mut()
            .pop_front()
            .expect("an unexpected request");
        let (status, body) = match next {
            Scripted::Fail(error) => return Err(error),
            Scripted::Raw { status, body } => (status, body),
            Scripted::Answer {
                method,
                node,
                signing,
            } => (200, self.render(&method, &node, signing)),
        };
        Ok(http::Response {
            status,
            headers: vec![("content-type".into(), "text/html;charset=utf-8".into())],
            body,
        })
    }

    fn sign(&self, key_name: &str, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        assert_eq!(key_name, key_names::APP_PRIVATE_KEY);
        if !self.has_app_key.get() {
            return Err(KeyError::UnknownKey(key_name.into()));
        }
        Ok(rsa2_sign(&self.app_key, data))
    }

    fn verify(&self, key_name: &str, data: &[u8], signature: &[u8]) -> Result<bool, KeyError> {
        assert_eq!(key_name, key_names::ALIPAY_PUBLIC_KEY);
        Ok(rsa2_verify(&self.alipay_public, data, signature))
    }

    fn info(&self, message: &str) {
        self.infos.borrow_mut().push(message.to_owned());
    }

    fn warn(&self, message: &str) {
        self.warnings.borrow_mut().push(message.to_owned());
    }
}
