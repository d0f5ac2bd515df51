//! For the use cases' unit tests: the real store in a temp dir, a native fake provider
//! behind the provider port, and a clock moved by hand. No HTTP, no wasm.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::auth::{ApiKey, Role};
use crate::clock::{Clock, ManualClock};
use crate::domain::method::Method;
use crate::domain::money::Money;
use crate::domain::records::PaymentRecord;
use crate::merchants::onboarding::Onboarding;
use crate::merchants::sealed::MasterKey;
use crate::merchants::{Merchant, MerchantDirectory, MerchantSource};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::payments::service::{NewPayment, PaymentSettings, Payments};
use crate::plugins::CallError;
use crate::plugins::port::{Answer, Providers};
use crate::plugins::types as wit;
use crate::store::{Claim, Store};

/// The provider the fake serves, and the merchant that collects through it.
pub const PROVIDER: &str = "fake";
pub const MERCHANT: &str = "m_shop";

/// A provider that answers from scripts, then by default: payments and refunds succeed
/// with the amount asked. It records every call (`"create pay_..."`, `"query pay_..."`).
pub struct FakeProvider {
    info: Arc<wit::ProviderInfo>,
    /// Next answers to create or query a payment, in order.
    pub payment_answers: Mutex<VecDeque<Answer<wit::PaymentResult, wit::ProviderError>>>,
    /// Next answers to a refund or its query, in order.
    pub refund_answers: Mutex<VecDeque<Answer<wit::RefundResult, wit::ProviderError>>>,
    /// Next answers to a notice.
    pub notice_answers: Mutex<VecDeque<Answer<wit::NotificationResult, wit::NotificationRejected>>>,
    pub calls: Mutex<Vec<String>>,
}

impl FakeProvider {
    fn new() -> FakeProvider {
        FakeProvider {
            info: Arc::new(wit::ProviderInfo {
                name: PROVIDER.into(),
                display_name: "Fake Pay".into(),
                methods: vec![wit::Method::Qr, wit::Method::Barcode],
                currencies: vec!["CNY".into()],
                payment_codes: vec![wit::CodePattern {
                    prefixes: vec!["13".into()],
                    min_length: 18,
                    max_length: 18,
                }],
                operations: Vec::new(),
                fees: Vec::new(),
            }),
            payment_answers: Mutex::default(),
            refund_answers: Mutex::default(),
            notice_answers: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    pub fn next_payment(&self, answer: Answer<wit::PaymentResult, wit::ProviderError>) {
        self.payment_answers.lock().unwrap().push_back(answer);
    }

    pub fn next_refund(&self, answer: Answer<wit::RefundResult, wit::ProviderError>) {
        self.refund_answers.lock().unwrap().push_back(answer);
    }

    pub fn next_notice(&self, answer: Answer<wit::NotificationResult, wit::NotificationRejected>) {
        self.notice_answers.lock().unwrap().push_back(answer);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn called(&self, what: &str, id: &str) {
        self.calls.lock().unwrap().push(format!("{what} {id}"));
    }

    fn payment(&self, amount: &wit::Money) -> Answer<wit::PaymentResult, wit::ProviderError> {
        self.payment_answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(Ok(paid(wit::PaymentStatus::Succeeded, amount))))
    }

    fn refund(&self, amount: &wit::Money) -> Answer<wit::RefundResult, wit::ProviderError> {
        self.refund_answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| {
                Ok(Ok(wit::RefundResult {
                    status: wit::RefundStatus::Succeeded,
                    provider_reference: Some("fake-refund".into()),
                    failure: None,
                    amount: Some(amount.clone()),
                }))
            })
    }
}

/// A provider's payment result with `status` for `amount`.
pub fn paid(status: wit::PaymentStatus, amount: &wit::Money) -> wit::PaymentResult {
    wit::PaymentResult {
        status,
        provider_reference: Some("fake-ref".into()),
        qr_code: None,
        failure: None,
        payer: None,
        amount: Some(amount.clone()),
        card: None,
    }
}

#[async_trait::async_trait]
impl Providers for FakeProvider {
    fn provider(&self, name: &str) -> Option<Arc<wit::ProviderInfo>> {
        (name == PROVIDER).then(|| self.info.clone())
    }

    fn reports_amounts(&self, _provider: &str) -> bool {
        true
    }

    fn merchant_record(
        &self,
        provider: &str,
        merchant_id: &str,
        _settings: &toml::Table,
        notify_url: String,
    ) -> Result<wit::Merchant, CallError> {
        if provider != PROVIDER {
            return Err(CallError::NoSuchProvider(provider.into()));
        }
        Ok(wit::Merchant {
            id: merchant_id.into(),
            settings_json: "{}".into(),
            notify_url,
        })
    }

    async fn create_payment(
        &self,
        request: wit::CreatePaymentRequest,
    ) -> Answer<wit::PaymentResult, wit::ProviderError> {
        self.called("create", &request.payment_id);
        self.payment(&request.amount)
    }

    /// The fake takes no wallet tokens (its info lists none).
    async fn inspect_wallet_token(
        &self,
        request: wit::CreatePaymentRequest,
    ) -> Answer<wit::TokenFacts, wit::ProviderError> {
        self.called("inspect", &request.payment_id);
        Ok(Err(wit::ProviderError::InvalidRequest(
            "the fake provider takes no wallet tokens".into(),
        )))
    }

    async fn query_payment(
        &self,
        request: wit::PaymentRef,
    ) -> Answer<wit::PaymentResult, wit::ProviderError> {
        self.called("query", &request.payment_id);
        self.payment(&request.amount)
    }

    async fn cancel_payment(
        &self,
        request: wit::PaymentRef,
    ) -> Answer<wit::PaymentResult, wit::ProviderError> {
        // A cancel always works: the provider closes the charge.
        self.called("cancel", &request.payment_id);
        Ok(Ok(paid(wit::PaymentStatus::Cancelled, &request.amount)))
    }

    async fn refund(
        &self,
        request: wit::RefundRequest,
    ) -> Answer<wit::RefundResult, wit::ProviderError> {
        self.called("refund", &request.refund_id);
        self.refund(&request.amount)
    }

    async fn query_refund(
        &self,
        request: wit::RefundRef,
    ) -> Answer<wit::RefundResult, wit::ProviderError> {
        self.called("query_refund", &request.refund_id);
        self.refund(&request.amount)
    }

    async fn parse_notification(
        &self,
        request: wit::Notification,
    ) -> Answer<wit::NotificationResult, wit::NotificationRejected> {
        self.called("notice", &request.merchant.id);
        self.notice_answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("a test that sends a notice scripts its answer")
    }

    async fn onboard(
        &self,
        request: wit::OnboardingRequest,
    ) -> Answer<wit::OnboardingResult, wit::ProviderError> {
        self.called("onboard", &request.activation_id);
        // A merchant named "Refused Shop" is refused before anything is sent.
        if request.materials_json.contains(r#""name":"Refused Shop""#) {
            return Ok(Err(wit::ProviderError::InvalidRequest(
                "the fake provider needs `details.store`".into(),
            )));
        }
        // A merchant named "Unsigned Shop" must sign the provider's agreement first.
        let next_step_json = request
            .materials_json
            .contains(r#""name":"Unsigned Shop""#)
            .then(|| {
                format!(
                    r#"{{"type":"sign_agreement","url":"https://fake.example/sign/{}"}}"#,
                    request.activation_id
                )
            });
        Ok(Ok(wit::OnboardingResult {
            status: wit::OnboardingStatus::Submitted,
            provider_reference: None,
            rejection_reason: None,
            next_step_json,
        }))
    }

    async fn query_onboarding(
        &self,
        request: wit::OnboardingRef,
    ) -> Answer<wit::OnboardingResult, wit::ProviderError> {
        self.called("query_onboarding", &request.activation_id);
        Ok(Err(wit::ProviderError::Unavailable("not scripted".into())))
    }

    async fn bind_account(
        &self,
        request: wit::BindingRequest,
    ) -> Answer<wit::BindingResult, wit::ProviderError> {
        self.called("bind", &request.bank_account_id);
        // An account at "Refused Bank" is refused before anything is sent.
        if request.bank_name == "Refused Bank" {
            return Ok(Err(wit::ProviderError::InvalidRequest(
                "the fake provider takes no account at Refused Bank".into(),
            )));
        }
        Ok(Err(wit::ProviderError::Unavailable("not scripted".into())))
    }

    async fn query_binding(
        &self,
        request: wit::BindingRef,
    ) -> Answer<wit::BindingResult, wit::ProviderError> {
        self.called("query_binding", &request.bank_account_id);
        Ok(Err(wit::ProviderError::Unavailable("not scripted".into())))
    }

    async fn fetch_bill(
        &self,
        request: wit::BillFetchRequest,
    ) -> Answer<wit::BillDownload, wit::ProviderError> {
        self.called("fetch_bill", &request.date);
        Ok(Err(wit::ProviderError::Unavailable("not scripted".into())))
    }

    async fn parse_bill(
        &self,
        request: wit::BillRequest,
    ) -> Answer<Vec<wit::BillEntry>, wit::ProviderError> {
        self.called("parse_bill", &request.date);
        Ok(Err(wit::ProviderError::Unavailable("not scripted".into())))
    }
}

/// Everything a use case works with, over a fresh store.
pub struct Harness {
    pub store: Arc<Store>,
    pub provider: Arc<FakeProvider>,
    pub clock: Arc<ManualClock>,
    pub payments: Arc<Payments>,
    pub onboarding: Arc<Onboarding>,
    pub caller: ApiKey,
    _dir: tempfile::TempDir,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let provider = Arc::new(FakeProvider::new());
        let clock = ManualClock::at(1_800_000_000_000);
        let merchants = Arc::new(MerchantDirectory::new(
            vec![shop()],
            // The shop is also the platform that onboarded merchants collect under.
            Some(MERCHANT),
        ));
        let metrics = Arc::new(Metrics::new());
        let monitor = Arc::new(Monitor::new(
            &crate::monitor::settings::MonitorSettings::default(),
            metrics.clone(),
            store.clone(),
            (store.bus().clone(), store.bus().clone()),
            merchants.clone(),
        ));
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let payments = Arc::new(Payments {
            store: store.clone(),
            plugins: provider.clone(),
            merchants: merchants.clone(),
            monitor,
            metrics,
            in_flight: Default::default(),
            settings: PaymentSettings {
                qr_expires_in_s: 7_200,
                link_expires_in_s: 900,
                public_url: "http://127.0.0.1:8080".into(),
                amount_max: BTreeMap::new(),
                amount_max_default: rust_decimal::Decimal::new(1_000_000, 0),
            },
            clock: clock_dyn.clone(),
        });
        let onboarding = Arc::new(Onboarding {
            store: store.clone(),
            merchants,
            plugins: provider.clone(),
            master_key: Some(Arc::new(
                MasterKey::from_hex(&"11".repeat(32)).expect("a valid test key"),
            )),
            public_url: "http://127.0.0.1:8080".into(),
            clock: clock_dyn,
        });
        Harness {
            store,
            provider,
            clock,
            payments,
            onboarding,
            caller: ApiKey {
                id: "key_pos".into(),
                role: Role::Pos,
                merchants: [MERCHANT.to_owned()].into(),
                is_demo: false,
                digest: "00".repeat(8),
                second_factor: None,
            },
            _dir: dir,
        }
    }

    /// An idempotency claim for `key` by the harness's caller.
    pub fn claim(&self, key: &str) -> Claim {
        Claim {
            api_key_id: self.caller.id.clone(),
            key: key.into(),
            fingerprint: format!("fp-{key}"),
            lease: Default::default(),
        }
    }

    pub fn payment(&self, id: &str) -> PaymentRecord {
        self.store.payment(id).unwrap().expect("the payment exists")
    }
}

/// The shop: a config merchant collecting through the fake provider.
pub fn shop() -> Merchant {
    Merchant {
        id: MERCHANT.into(),
        name: "Shop".into(),
        source: MerchantSource::Config,
        providers: BTreeMap::from([(PROVIDER.to_owned(), toml::Table::new())]),
        opening_hours: None,
        keys_of: MERCHANT.into(),
        utc_offset_min: 0,
    }
}

/// `amount` CNY.
pub fn cny(amount: &str) -> Money {
    Money::parse(amount, "CNY").unwrap()
}

/// A payment request of `amount` CNY by `method` to the fake provider.
pub fn new_payment(amount: &str, method: Method) -> NewPayment {
    NewPayment {
        merchant_id: MERCHANT.into(),
        merchant: Arc::new(shop()),
        amount: cny(amount),
        method,
        provider: Some(PROVIDER.into()),
        auth_code: (method == Method::Barcode).then(|| "134567890123456789".into()),
        order_id: None,
        description: None,
        terminal_id: Some("till-1".into()),
        expires_in_seconds: None,
        metadata: BTreeMap::new(),
        wallet_token: None,
    }
}

/// Renders the answer as the id and status, so tests can read what was recorded.
pub fn render_payment(
    payment: &PaymentRecord,
    error: Option<&crate::payments::service::PaymentError>,
) -> (u16, String) {
    let status = if error.is_some() { 402 } else { 201 };
    (
        status,
        format!("{} {}", payment.id, payment.status.as_str()),
    )
}

pub fn render_refund(
    refund: &crate::domain::records::RefundRecord,
    error: Option<&crate::payments::service::PaymentError>,
) -> (u16, String) {
    let status = if error.is_some() { 402 } else { 201 };
    (status, format!("{} {}", refund.id, refund.status.as_str()))
}
