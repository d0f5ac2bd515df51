//! Plugins built for `paygate:provider@0.1.0`, the first world, kept loading and running.
//!
//! Such a plugin is linked with the 0.1.0 bindings (`bindings::v0_1`) and called through
//! them; the rest of the daemon never sees 0.1.0 types:
//! - requests go down: the host's (0.2.0) requests are converted to 0.1.0 ones (the two
//!   are identical);
//! - answers come up: 0.1.0 results become 0.2.0 results with the fields 0.1.0 lacks left
//!   absent (`payment-result.amount`, `refund-result.amount`: "the provider reported no
//!   amount");
//! - its imports (`http`, `keys`, `clock`, `log` @0.1.0) are the host's 0.2.0 imports
//!   (`imports.rs`), with their arguments and answers converted.
//!
//! Every conversion is a struct literal or an exhaustive match, so a field or case that
//! differs between the versions is a compile error here, not a silent loss.

use wasmtime::Store;

use super::bindings::v0_1::{self, paygate::provider as old};
use super::bindings::v0_2::paygate::provider as new;
use super::imports::CallState;
use super::{Op, Output};

/// A value of one world version's types as the other version's.
trait Convert<T> {
    fn convert(self) -> T;
}

macro_rules! identity {
    ($($t:ty),*) => {$(
        impl Convert<$t> for $t {
            fn convert(self) -> $t {
                self
            }
        }
    )*};
}
identity!(String, bool, u8, u16, u32, u64, i64);

impl<A: Convert<B>, B> Convert<Vec<B>> for Vec<A> {
    fn convert(self) -> Vec<B> {
        self.into_iter().map(Convert::convert).collect()
    }
}

impl<A: Convert<B>, B> Convert<Option<B>> for Option<A> {
    fn convert(self) -> Option<B> {
        self.map(Convert::convert)
    }
}

impl<A: Convert<C>, B: Convert<D>, C, D> Convert<(C, D)> for (A, B) {
    fn convert(self) -> (C, D) {
        (self.0.convert(), self.1.convert())
    }
}

impl<A: Convert<C>, B: Convert<D>, C, D> Convert<Result<C, D>> for Result<A, B> {
    fn convert(self) -> Result<C, D> {
        match self {
            Ok(v) => Ok(v.convert()),
            Err(e) => Err(e.convert()),
        }
    }
}

/// Records of the same fields in both versions, converted field by field from `$from`'s
/// interface `$iface` to `$to`'s.
macro_rules! records {
    ($from:ident => $to:ident, $iface:ident: $($name:ident { $($field:ident),* $(,)? })*) => {$(
        impl Convert<$to::$iface::$name> for $from::$iface::$name {
            fn convert(self) -> $to::$iface::$name {
                $to::$iface::$name { $($field: self.$field.convert()),* }
            }
        }
    )*};
}

/// Enums and variants of the same cases in both versions, case by case.
macro_rules! variants {
    ($from:ident => $to:ident, $iface:ident: $($name:ident { $($case:ident $(($payload:ident))?),* $(,)? })*) => {$(
        impl Convert<$to::$iface::$name> for $from::$iface::$name {
            fn convert(self) -> $to::$iface::$name {
                match self {
                    $($from::$iface::$name::$case $(($payload))? => {
                        $to::$iface::$name::$case $(($payload.convert()))?
                    })*
                }
            }
        }
    )*};
}

// Requests, down to 0.1.0.
records!(new => old, types:
    Money { minor, currency, exponent }
    Merchant { id, settings_json, notify_url }
    CreatePaymentRequest {
        payment_id, provider, merchant, amount, method, auth_code, description, terminal_id,
        expires_in_seconds,
    }
    PaymentRef { payment_id, provider, merchant, amount, provider_reference }
    RefundRequest { refund_id, payment, amount, reason }
    RefundRef { refund_id, payment, amount, provider_reference }
    Notification { provider, merchant, headers, body }
    OnboardingRequest { activation_id, provider, merchant, materials_json }
    OnboardingRef { activation_id, provider, merchant, provider_reference }
    BindingRequest {
        bank_account_id, provider, merchant, account_holder, account_number, bank_name, branch,
    }
    BindingRef { bank_account_id, provider, merchant, provider_reference }
    BillRequest { provider, merchant, date, content }
);
variants!(new => old, types: Method { Qr, Barcode, Link });

// Answers, up to 0.2.0.
records!(old => new, types:
    Money { minor, currency, exponent }
    Declined { code, message }
    Reply { status, content_type, body }
    NotificationResult { updates, reply }
    NotificationRejected { reason, reply }
    PaymentUpdate { payment_id, outcome }
    RefundUpdate { refund_id, outcome }
    OnboardingResult { status, provider_reference, rejection_reason }
    OnboardingUpdate { activation_id, outcome }
    BindingResult { status, provider_reference, verification_json, failure }
    BindingUpdate { bank_account_id, outcome }
    BillEntry { kind, payment_id, refund_id, provider_reference, amount, fee, occurred_at }
    CodePattern { prefixes, min_length, max_length }
    Fee { method, rate_basis_points }
    ProviderInfo { name, display_name, methods, currencies, payment_codes, operations, fees }
    PluginInfo { name, version, providers }
);
variants!(old => new, types:
    Method { Qr, Barcode, Link }
    Operation {
        CreatePayment, QueryPayment, CancelPayment, Refund, QueryRefund, ParseNotification,
        Onboard, QueryOnboarding, BindAccount, QueryBinding, ParseBill,
    }
    PaymentStatus { Pending, Succeeded, Failed, Cancelled, Expired }
    RefundStatus { Pending, Succeeded, Failed }
    OnboardingStatus { Submitted, UnderReview, Active, Rejected }
    BindingStatus { PendingVerification, Verified, Failed }
    BillEntryKind { Payment, Refund }
    ProviderError {
        Declined(d), InvalidRequest(m), Unavailable(m), UnknownOutcome(m),
    }
    Update { Payment(u), Refund(u), Onboarding(u), Binding(u) }
);

/// 0.1.0 has no reported amount: the provider said nothing about it, as far as the host
/// can tell.
impl Convert<new::types::PaymentResult> for old::types::PaymentResult {
    fn convert(self) -> new::types::PaymentResult {
        new::types::PaymentResult {
            status: self.status.convert(),
            provider_reference: self.provider_reference,
            qr_code: self.qr_code,
            failure: self.failure.convert(),
            payer: self.payer,
            amount: None,
        }
    }
}

/// As for payments: no reported refund amount in 0.1.0.
impl Convert<new::types::RefundResult> for old::types::RefundResult {
    fn convert(self) -> new::types::RefundResult {
        new::types::RefundResult {
            status: self.status.convert(),
            provider_reference: self.provider_reference,
            failure: self.failure.convert(),
            amount: None,
        }
    }
}

// The imports: arguments up to the host's (0.2.0) types, answers down.
records!(old => new, http: Request { method, url, headers, body });
records!(new => old, http: Response { status, headers, body });
variants!(new => old, http: Error { Denied(m), Timeout, Connection(m), TooLarge });
variants!(old => new, keys: Algorithm { RsaPkcs1Sha256, EcdsaP256Sha256 });
variants!(old => new, keys: Cipher { AesGcm, RsaOaepSha1, RsaOaepSha256 });
variants!(new => old, keys: KeyError { UnknownKey(m), Unsupported(m), Failed(m) });
variants!(old => new, log: Level { Debug, Info, Warn, Error });

impl old::types::Host for CallState {}

impl old::http::Host for CallState {
    async fn send(
        &mut self,
        request: old::http::Request,
    ) -> Result<old::http::Response, old::http::Error> {
        new::http::Host::send(self, request.convert())
            .await
            .convert()
    }
}

impl old::keys::Host for CallState {
    async fn sign(
        &mut self,
        key_name: String,
        alg: old::keys::Algorithm,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, old::keys::KeyError> {
        new::keys::Host::sign(self, key_name, alg.convert(), data)
            .await
            .convert()
    }

    async fn verify(
        &mut self,
        key_name: String,
        alg: old::keys::Algorithm,
        data: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool, old::keys::KeyError> {
        new::keys::Host::verify(self, key_name, alg.convert(), data, signature)
            .await
            .convert()
    }

    async fn decrypt(
        &mut self,
        key_name: String,
        cipher: old::keys::Cipher,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, old::keys::KeyError> {
        new::keys::Host::decrypt(self, key_name, cipher.convert(), nonce, aad, ciphertext)
            .await
            .convert()
    }

    async fn hmac_sha256(
        &mut self,
        key_name: String,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, old::keys::KeyError> {
        new::keys::Host::hmac_sha256(self, key_name, data)
            .await
            .convert()
    }
}

impl old::clock::Host for CallState {
    async fn now_millis(&mut self) -> u64 {
        new::clock::Host::now_millis(self).await
    }
}

impl old::log::Host for CallState {
    async fn write(&mut self, level: old::log::Level, message: String) {
        new::log::Host::write(self, level.convert(), message).await
    }
}

/// Instantiates a 0.1.0 plugin and makes the call `op` asks for, converting the request
/// down and the answer up.
pub(super) async fn dispatch(
    pre: &v0_1::PluginPre<CallState>,
    store: &mut Store<CallState>,
    op: Op,
) -> wasmtime::Result<Output> {
    let instance = pre.instantiate_async(&mut *store).await?;
    let provider = instance.paygate_provider_provider();
    let store = &mut *store;
    Ok(match op {
        Op::Info => Output::Info(provider.call_info(&mut *store).await?.convert()),
        Op::CreatePayment(r) => Output::Payment(
            provider
                .call_create_payment(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::QueryPayment(r) => Output::Payment(
            provider
                .call_query_payment(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::CancelPayment(r) => Output::Payment(
            provider
                .call_cancel_payment(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::Refund(r) => Output::Refund(
            provider
                .call_refund(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::QueryRefund(r) => Output::Refund(
            provider
                .call_query_refund(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::ParseNotification(r) => Output::Notification(
            provider
                .call_parse_notification(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::Onboard(r) => Output::Onboarding(
            provider
                .call_onboard(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::QueryOnboarding(r) => Output::Onboarding(
            provider
                .call_query_onboarding(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::BindAccount(r) => Output::Binding(
            provider
                .call_bind_account(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::QueryBinding(r) => Output::Binding(
            provider
                .call_query_binding(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
        Op::ParseBill(r) => Output::Bill(
            provider
                .call_parse_bill(&mut *store, &r.convert())
                .await?
                .convert(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money() -> old::types::Money {
        old::types::Money {
            minor: 1250,
            currency: "CNY".into(),
            exponent: 2,
        }
    }

    #[test]
    fn answers_come_up_with_no_reported_amount() {
        let result: Result<new::types::PaymentResult, new::types::ProviderError> =
            Ok::<_, old::types::ProviderError>(old::types::PaymentResult {
                status: old::types::PaymentStatus::Succeeded,
                provider_reference: Some("T1".into()),
                qr_code: None,
                failure: None,
                payer: Some("p".into()),
            })
            .convert();
        let result = result.unwrap();
        assert_eq!(result.status, new::types::PaymentStatus::Succeeded);
        assert_eq!(result.provider_reference.as_deref(), Some("T1"));
        assert_eq!(result.payer.as_deref(), Some("p"));
        assert!(result.amount.is_none());

        let notice: new::types::NotificationResult = old::types::NotificationResult {
            updates: vec![
                old::types::Update::Payment(old::types::PaymentUpdate {
                    payment_id: "pay_1".into(),
                    outcome: old::types::PaymentResult {
                        status: old::types::PaymentStatus::Failed,
                        provider_reference: None,
                        qr_code: None,
                        failure: Some(old::types::Declined {
                            code: "risk_rejected".into(),
                            message: "no".into(),
                        }),
                        payer: None,
                    },
                }),
                old::types::Update::Refund(old::types::RefundUpdate {
                    refund_id: "re_1".into(),
                    outcome: old::types::RefundResult {
                        status: old::types::RefundStatus::Succeeded,
                        provider_reference: None,
                        failure: None,
                    },
                }),
            ],
            reply: old::types::Reply {
                status: 200,
                content_type: "text/plain".into(),
                body: b"success".to_vec(),
            },
        }
        .convert();
        match &notice.updates[..] {
            [
                new::types::Update::Payment(p),
                new::types::Update::Refund(r),
            ] => {
                assert_eq!(p.payment_id, "pay_1");
                assert_eq!(p.outcome.status, new::types::PaymentStatus::Failed);
                assert_eq!(p.outcome.failure.as_ref().unwrap().code, "risk_rejected");
                assert!(p.outcome.amount.is_none());
                assert_eq!(r.refund_id, "re_1");
                assert!(r.outcome.amount.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(notice.reply.body, b"success");

        let error: new::types::ProviderError =
            old::types::ProviderError::UnknownOutcome("lost".into()).convert();
        assert!(matches!(error, new::types::ProviderError::UnknownOutcome(m) if m == "lost"));
        let entry: new::types::BillEntry = old::types::BillEntry {
            kind: old::types::BillEntryKind::Refund,
            payment_id: "pay_1".into(),
            refund_id: Some("re_1".into()),
            provider_reference: None,
            amount: money(),
            fee: Some(money()),
            occurred_at: None,
        }
        .convert();
        assert_eq!(entry.kind, new::types::BillEntryKind::Refund);
        assert_eq!(entry.amount.minor, 1250);
    }

    #[test]
    fn requests_go_down_unchanged() {
        let merchant = new::types::Merchant {
            id: "m_1".into(),
            settings_json: "{}".into(),
            notify_url: "http://x".into(),
        };
        let request: old::types::RefundRequest = new::types::RefundRequest {
            refund_id: "re_1".into(),
            payment: new::types::PaymentRef {
                payment_id: "pay_1".into(),
                provider: "legacy".into(),
                merchant,
                amount: new::types::Money {
                    minor: 1250,
                    currency: "CNY".into(),
                    exponent: 2,
                },
                provider_reference: Some("T1".into()),
            },
            amount: new::types::Money {
                minor: 500,
                currency: "CNY".into(),
                exponent: 2,
            },
            reason: Some("broken".into()),
        }
        .convert();
        assert_eq!(request.refund_id, "re_1");
        assert_eq!(request.payment.merchant.notify_url, "http://x");
        assert_eq!(request.payment.amount.minor, 1250);
        assert_eq!(request.amount.minor, 500);
        assert_eq!(request.reason.as_deref(), Some("broken"));
    }
}
