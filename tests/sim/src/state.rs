//! The simulator's shared state: keys, each provider's books and pending faults, and the
//! notifier.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::faults::{Fault, Faults};
use crate::keys::Keys;
use crate::ledger::Ledger;
use crate::notifier::Notifier;

/// One provider's books, faults, and merchant applications and accounts.
#[derive(Default)]
pub struct ProviderState {
    pub ledger: Mutex<Ledger>,
    pub faults: Mutex<Faults>,
    pub onboarding: Mutex<crate::onboarding::Onboarding>,
    /// Its trade bills: rates, published days, pending discrepancies.
    pub bills: Mutex<crate::bills::Bills>,
}

impl ProviderState {
    /// The fault to apply to the API call being served, if one is pending.
    pub fn call_fault(&self) -> Option<Fault> {
        self.faults.lock().expect("faults lock").take(false)
    }

    /// The fault to apply to the notification being sent, if one is pending.
    pub fn notification_fault(&self) -> Option<Fault> {
        self.faults.lock().expect("faults lock").take(true)
    }
}

/// Timings of simulated payers and refunds.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// How long a "confirms later" payer takes.
    pub confirm_after: Duration,
    /// How long a processing refund takes.
    pub refund_after: Duration,
}

/// The card behind an acquirer payment, as the acquirer answers it.
#[derive(Debug, Clone)]
pub struct CardSummary {
    pub network: String,
    pub last_four: String,
}

pub struct Sim {
    pub keys: Keys,
    pub alipay: ProviderState,
    pub wechatpay: ProviderState,
    /// The card acquirer Apple Pay payments are authorized at.
    pub acquirer: ProviderState,
    /// Toy Pay, the plugin kit's walkthrough wallet.
    pub toypay: ProviderState,
    /// Its payments' cards, by reference.
    pub acquirer_cards: Mutex<std::collections::BTreeMap<String, CardSummary>>,
    /// Where the acquirer's clock started (unix ms) and when, if set apart from the
    /// system's (`--acquirer-clock-ms`: tests that set the gateway's plugin clock to an old
    /// vector's time set this one alike, or signed timestamps would not agree).
    pub acquirer_clock: Option<(i64, std::time::Instant)>,
    pub notifier: Notifier,
    pub timings: Timings,
    /// The `Wechatpay-Serial` of the platform public key.
    pub wechatpay_public_key_id: String,
    /// Where Alipay's bill files are downloaded from (`http://host:port`): a host of its own,
    /// as Alipay's `dwbillcenter.alipay.com` is apart from its gateway.
    pub alipay_bill_origin: std::sync::OnceLock<String>,
}

pub type SharedSim = Arc<Sim>;

impl Sim {
    /// A simulator with empty books: `acquirer_clock_ms` starts the acquirer's clock there.
    pub fn new(
        keys: Keys,
        notifier: Notifier,
        timings: Timings,
        acquirer_clock_ms: Option<i64>,
    ) -> Sim {
        Sim {
            keys,
            alipay: Default::default(),
            wechatpay: Default::default(),
            acquirer: Default::default(),
            toypay: Default::default(),
            acquirer_cards: Default::default(),
            acquirer_clock: acquirer_clock_ms.map(|at| (at, std::time::Instant::now())),
            notifier,
            timings,
            wechatpay_public_key_id: crate::WECHATPAY_PUBLIC_KEY_ID.into(),
            alipay_bill_origin: std::sync::OnceLock::new(),
        }
    }

    /// The acquirer's now, in unix ms.
    pub fn acquirer_now_ms(&self) -> i64 {
        match self.acquirer_clock {
            Some((at, since)) => at + since.elapsed().as_millis() as i64,
            None => crate::ledger::now_ms(),
        }
    }

    /// The provider called `name`, if the simulator plays it.
    pub fn provider(&self, name: &str) -> Option<&ProviderState> {
        match name {
            "alipay" => Some(&self.alipay),
            "wechatpay" => Some(&self.wechatpay),
            "acquirer" => Some(&self.acquirer),
            "toypay" => Some(&self.toypay),
            _ => None,
        }
    }
}
