//! What every older world shares with the host: converting a value of one world version's
//! types into the other's, the older world's imports served by the current host, and the
//! call of an older plugin with its request converted down and its answer up.
//!
//! Every conversion is a struct literal or an exhaustive match, so a field or case that
//! differs between the versions is a compile error in the world's module (`world_0_1.rs`
//! to `world_0_4.rs`), not a silent loss. What differs is written there by
//! hand, or chosen here: [`common_conversions`] is what every older world shares,
//! [`keys_host`] and [`dispatch_calls`] take what a world adds, and [`shared_conversions`]
//! is the whole of a world before wallet tokens (0.1.0, 0.2.0).

/// A value of one world version's types as the other version's.
pub(super) trait Convert<T> {
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
pub(super) use records;

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
pub(super) use variants;

/// The conversions every older world (0.1.0 to 0.4.0) shares with the current one:
/// requests down (all but the payment request, which may carry what an older world lacks)
/// and answers up (all but the payment and refund results, which gained fields, and the
/// onboarding result, which only 0.4.0 gives a next step: [`no_next_step`]; bill entries
/// come up with no line), and the imports' arguments up and answers down (all but `keys`:
/// [`keys_host`]).
macro_rules! common_conversions {
    ($old:ident, $new:ident) => {
        records!($new => $old, types:
            Money { minor, currency, exponent }
            Merchant { id, settings_json, notify_url }
            PaymentRef { payment_id, provider, merchant, amount, provider_reference }
            RefundRequest { refund_id, payment, amount, reason }
            RefundRef { refund_id, payment, amount, provider_reference }
            Notification { provider, merchant, headers, body }
            OnboardingRequest { activation_id, provider, merchant, materials_json }
            OnboardingRef { activation_id, provider, merchant, provider_reference }
            BindingRequest {
                bank_account_id, provider, merchant, account_holder, account_number, bank_name,
                branch,
            }
            BindingRef { bank_account_id, provider, merchant, provider_reference }
            BillRequest { provider, merchant, date, content }
        );
        records!($old => $new, types:
            Money { minor, currency, exponent }
            Declined { code, message }
            Reply { status, content_type, body }
            NotificationResult { updates, reply }
            NotificationRejected { reason, reply }
            PaymentUpdate { payment_id, outcome }
            RefundUpdate { refund_id, outcome }
            OnboardingUpdate { activation_id, outcome }
            BindingResult { status, provider_reference, verification_json, failure }
            BindingUpdate { bank_account_id, outcome }
            CodePattern { prefixes, min_length, max_length }
            Fee { method, rate_basis_points }
            ProviderInfo { name, display_name, methods, currencies, payment_codes, operations, fees }
            PluginInfo { name, version, providers }
        );
        variants!($old => $new, types:
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

        records!($old => $new, http: Request { method, url, headers, body });
        records!($new => $old, http: Response { status, headers, body });
        variants!($new => $old, http: Error { Denied(m), Timeout, Connection(m), TooLarge });
        variants!($old => $new, keys: Algorithm { RsaPkcs1Sha256, EcdsaP256Sha256 });
        variants!($old => $new, keys: Cipher { AesGcm, RsaOaepSha1, RsaOaepSha256 });
        variants!($new => $old, keys: KeyError { UnknownKey(m), Unsupported(m), Failed(m) });
        variants!($old => $new, log: Level { Debug, Info, Warn, Error });

        /// No world before 0.5.0 says where in the file a bill row is.
        impl Convert<$new::types::BillEntry> for $old::types::BillEntry {
            fn convert(self) -> $new::types::BillEntry {
                $new::types::BillEntry {
                    kind: self.kind.convert(),
                    payment_id: self.payment_id,
                    refund_id: self.refund_id,
                    provider_reference: self.provider_reference,
                    amount: self.amount.convert(),
                    fee: self.fee.convert(),
                    occurred_at: self.occurred_at,
                    line: None,
                }
            }
        }

        impl $old::types::Host for CallState {}

        impl $old::http::Host for CallState {
            async fn send(
                &mut self,
                request: $old::http::Request,
            ) -> Result<$old::http::Response, $old::http::Error> {
                $new::http::Host::send(self, request.convert())
                    .await
                    .convert()
            }
        }

        impl $old::clock::Host for CallState {
            async fn now_millis(&mut self) -> u64 {
                $new::clock::Host::now_millis(self).await
            }
        }

        impl $old::log::Host for CallState {
            async fn write(&mut self, level: $old::log::Level, message: String) {
                $new::log::Host::write(self, level.convert(), message).await
            }
        }
    };
}
pub(super) use common_conversions;

/// An onboarding result of a world before 0.4.0, which tells no next step.
macro_rules! no_next_step {
    ($old:ident, $new:ident) => {
        impl Convert<$new::types::OnboardingResult> for $old::types::OnboardingResult {
            fn convert(self) -> $new::types::OnboardingResult {
                $new::types::OnboardingResult {
                    status: self.status.convert(),
                    provider_reference: self.provider_reference,
                    rejection_reason: self.rejection_reason,
                    next_step_json: None,
                }
            }
        }
    };
}
pub(super) use no_next_step;

/// Everything of a world before wallet tokens (0.1.0, 0.2.0): [`common_conversions`], the
/// methods and operations it knows, a payment request refused before it reaches the plugin
/// if it carries a token, the four key operations, and calls that never inspect a token.
macro_rules! shared_conversions {
    ($old:ident, $new:ident) => {
        super::world_convert::common_conversions!($old, $new);
        super::world_convert::no_next_step!($old, $new);

        variants!($old => $new, types:
            Method { Qr, Barcode, Link }
            Operation {
                CreatePayment, QueryPayment, CancelPayment, Refund, QueryRefund, ParseNotification,
                Onboard, QueryOnboarding, BindAccount, QueryBinding, ParseBill,
            }
        );

        /// A payment request down to a world that has no wallet tokens: refused, not sent,
        /// if it carries one (the host asks only plugins that declare the method, so this
        /// is a plugin declaring what its world cannot express).
        fn create_payment_request(
            r: $new::types::CreatePaymentRequest,
        ) -> Result<$old::types::CreatePaymentRequest, $new::types::ProviderError> {
            let method = match r.method {
                $new::types::Method::Qr => $old::types::Method::Qr,
                $new::types::Method::Barcode => $old::types::Method::Barcode,
                $new::types::Method::Link => $old::types::Method::Link,
                $new::types::Method::WalletToken => {
                    return Err($new::types::ProviderError::InvalidRequest(
                        "this plugin's world has no wallet tokens".into(),
                    ));
                }
            };
            Ok($old::types::CreatePaymentRequest {
                payment_id: r.payment_id,
                provider: r.provider,
                merchant: r.merchant.convert(),
                amount: r.amount.convert(),
                method,
                auth_code: r.auth_code,
                description: r.description,
                terminal_id: r.terminal_id,
                expires_in_seconds: r.expires_in_seconds,
            })
        }

        super::world_convert::keys_host!($old, $new, {});

        super::world_convert::dispatch_calls!($old, $new, |_provider, _store, _request| Err(
            $new::types::ProviderError::InvalidRequest(
                "this plugin's world has no wallet tokens".into(),
            )
        ));
    };
}
pub(super) use shared_conversions;

/// What every world with wallet tokens (0.3.0, 0.4.0) shares beyond
/// [`common_conversions`]: the payment request down whole, payment and refund results with
/// their card and amounts up, the token's facts, the methods, the six key operations, and
/// calls that inspect a token.
macro_rules! wallet_token_conversions {
    ($old:ident, $new:ident) => {
        records!($new => $old, types:
            CreatePaymentRequest {
                payment_id, provider, merchant, amount, method, auth_code, description,
                terminal_id, expires_in_seconds, wallet_token,
            }
        );
        records!($old => $new, types:
            PaymentResult { status, provider_reference, qr_code, failure, payer, amount, card }
            RefundResult { status, provider_reference, failure, amount }
            Card { network, last_four }
            TokenFacts { token_id, amount }
        );
        variants!($new => $old, types: Method { Qr, Barcode, Link, WalletToken });
        variants!($old => $new, types:
            Method { Qr, Barcode, Link, WalletToken }
            Operation {
                CreatePayment, QueryPayment, CancelPayment, Refund, QueryRefund,
                ParseNotification, Onboard, QueryOnboarding, BindAccount, QueryBinding,
                ParseBill, InspectWalletToken,
            }
        );

        /// A payment request down: this world takes every request the host makes.
        fn create_payment_request(
            r: $new::types::CreatePaymentRequest,
        ) -> Result<$old::types::CreatePaymentRequest, $new::types::ProviderError> {
            Ok(r.convert())
        }

        super::world_convert::keys_host!($old, $new, {
            async fn encrypt(
                &mut self,
                key_name: String,
                cipher: $old::keys::Cipher,
                plaintext: Vec<u8>,
            ) -> Result<Vec<u8>, $old::keys::KeyError> {
                $new::keys::Host::encrypt(self, key_name, cipher.convert(), plaintext)
                    .await
                    .convert()
            }

            async fn decrypt_apple_pay_token(
                &mut self,
                key_name: String,
                ephemeral_public_key: Vec<u8>,
                merchant_id_hash: Vec<u8>,
                data: Vec<u8>,
            ) -> Result<Vec<u8>, $old::keys::KeyError> {
                $new::keys::Host::decrypt_apple_pay_token(
                    self,
                    key_name,
                    ephemeral_public_key,
                    merchant_id_hash,
                    data,
                )
                .await
                .convert()
            }
        });

        super::world_convert::dispatch_calls!($old, $new, |provider, store, request| provider
            .call_inspect_wallet_token(store, &create_payment_request(request)?)
            .await?
            .convert());
    };
}
pub(super) use wallet_token_conversions;

/// The `keys` import of an older world: the four operations every version has, served by
/// the current host, and `$extra`, the functions the world added.
macro_rules! keys_host {
    ($old:ident, $new:ident, { $($extra:tt)* }) => {
        impl $old::keys::Host for CallState {
            async fn sign(
                &mut self,
                key_name: String,
                alg: $old::keys::Algorithm,
                data: Vec<u8>,
            ) -> Result<Vec<u8>, $old::keys::KeyError> {
                $new::keys::Host::sign(self, key_name, alg.convert(), data)
                    .await
                    .convert()
            }

            async fn verify(
                &mut self,
                key_name: String,
                alg: $old::keys::Algorithm,
                data: Vec<u8>,
                signature: Vec<u8>,
            ) -> Result<bool, $old::keys::KeyError> {
                $new::keys::Host::verify(self, key_name, alg.convert(), data, signature)
                    .await
                    .convert()
            }

            async fn decrypt(
                &mut self,
                key_name: String,
                cipher: $old::keys::Cipher,
                nonce: Vec<u8>,
                aad: Vec<u8>,
                ciphertext: Vec<u8>,
            ) -> Result<Vec<u8>, $old::keys::KeyError> {
                $new::keys::Host::decrypt(self, key_name, cipher.convert(), nonce, aad, ciphertext)
                    .await
                    .convert()
            }

            async fn hmac_sha256(
                &mut self,
                key_name: String,
                data: Vec<u8>,
            ) -> Result<Vec<u8>, $old::keys::KeyError> {
                $new::keys::Host::hmac_sha256(self, key_name, data)
                    .await
                    .convert()
            }

            $($extra)*
        }
    };
}
pub(super) use keys_host;

/// `dispatch` for an older world: instantiates its plugin and makes the call `op` asks for,
/// converting the request down and the answer up. The world's `create_payment_request`
/// converts a payment request down (or refuses it); `$inspect` answers
/// `inspect-wallet-token` given the plugin's exports, the store and the request.
macro_rules! dispatch_calls {
    ($old:ident, $new:ident, |$provider:ident, $store:ident, $request:ident| $inspect:expr) => {
        /// Instantiates an older world's plugin and makes the call `op` asks for,
        /// converting the request down and the answer up.
        pub(super) async fn dispatch(
            pre: &PluginPre<CallState>,
            store: &mut Store<CallState>,
            op: Op,
        ) -> wasmtime::Result<Output> {
            let instance = pre.instantiate_async(&mut *store).await?;
            let provider = instance.paygate_provider_provider();
            let store = &mut *store;
            Ok(match op {
                Op::Info => Output::Info(provider.call_info(&mut *store).await?.convert()),
                Op::CreatePayment(r) => Output::Payment(match create_payment_request(r) {
                    Ok(r) => provider
                        .call_create_payment(&mut *store, &r)
                        .await?
                        .convert(),
                    Err(refused) => Err(refused),
                }),
                Op::InspectWalletToken($request) => {
                    let $provider = &provider;
                    let $store = &mut *store;
                    Output::TokenFacts($inspect)
                }
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
                // No world before 0.5.0 lists `fetch-bill`, so the host never asks.
                Op::FetchBill(_) => {
                    Output::BillDownload(Err($new::types::ProviderError::InvalidRequest(
                        "this plugin's world has no fetch-bill".into(),
                    )))
                }
            })
        }
    };
}
pub(super) use dispatch_calls;
