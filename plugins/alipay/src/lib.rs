//! The Alipay wallet plugin: face-to-face payment on the Alipay Open Platform gateway
//! (`gateway.do`, RSA2). See README.md for what it does and PROTOCOL.md for exactly what it
//! sends and reads.
//!
//! This file is the flow: which method each operation calls, signing and verifying through
//! the host's `keys`, and the HTTP exchange. Everything that can be decided without the
//! host lives in `transform` (our requests into Alipay's parameters, Alipay's answers into
//! our results), `onboarding` (the same for sub-merchant applications and settlement
//! accounts), `sign` (what signatures cover) and `notify` (trade notices).

use paygate_plugin_api::*;
use serde::Serialize;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod notify;
mod onboarding;
mod sign;
mod transform;

use transform::{
    ALIPAY_PUBLIC_KEY, APP_PRIVATE_KEY, Cancel, Close, CreateCall, Effect, RefundStep, Reply,
    Settings,
};

pub struct Alipay;

impl Provider for Alipay {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "alipay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "alipay".into(),
                display_name: "Alipay".into(),
                methods: vec![Method::Qr, Method::Barcode, Method::Link],
                currencies: vec!["CNY".into()],
                payment_codes: vec![CodePattern {
                    prefixes: transform::CODE_PREFIXES.map(String::from).to_vec(),
                    min_length: transform::CODE_MIN_LENGTH,
                    max_length: transform::CODE_MAX_LENGTH,
                }],
                operations: vec![
                    Operation::CreatePayment,
                    Operation::QueryPayment,
                    Operation::CancelPayment,
                    Operation::Refund,
                    Operation::QueryRefund,
                    Operation::ParseNotification,
                    Operation::Onboard,
                    Operation::QueryOnboarding,
                    Operation::BindAccount,
                    Operation::QueryBinding,
                ],
                // Alipay's rate is negotiated per merchant: nothing to state here.
                fees: Vec::new(),
            }],
        }
    }

    /// `qr`/`link`: `alipay.trade.precreate`, pending with the QR code. `barcode`:
    /// `alipay.trade.pay`, the outcome (or pending while the payer confirms).
    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        let settings = settings(&request.merchant, Effect::Charge)?;
        let call = transform::create_call(&settings, &request)?;
        let notify_url = Some(request.merchant.notify_url.as_str());
        let result = match &call {
            CreateCall::Precreate(biz) => {
                let reply = gateway(
                    &settings,
                    transform::METHOD_PRECREATE,
                    biz,
                    notify_url,
                    Effect::Charge,
                )?;
                transform::interpret_precreate(&reply)?
            }
            CreateCall::Pay(biz) => {
                let reply = gateway(
                    &settings,
                    transform::METHOD_PAY,
                    biz,
                    notify_url,
                    Effect::Charge,
                )?;
                transform::interpret_pay(&reply)?
            }
        };
        // ACQ.TRADE_HAS_SUCCESS says "already paid" without details: ask for them, and
        // keep "succeeded" whatever the query says (the fact does not change).
        if result.status == PaymentStatus::Succeeded
            && result.provider_reference.is_none()
            && let Ok(found) = query_trade(&settings, &request.payment_id)
            && found.status == PaymentStatus::Succeeded
        {
            return Ok(found);
        }
        Ok(result)
    }

    /// `alipay.trade.query` by `out_trade_no`.
    fn query_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        let settings = settings(&payment.merchant, Effect::Read)?;
        query_trade(&settings, &payment.payment_id)
    }

    /// Closes an unpaid trade, never refunding a paid one behind the gateway's back:
    ///
    /// 1. `alipay.trade.close`: closes a trade waiting for payment -> cancelled.
    /// 2. Refused because the trade is not waiting (paid, or already closed): report its
    ///    true state from `alipay.trade.query` (succeeded / cancelled).
    /// 3. No such trade (a QR code nobody scanned, or a barcode `pay` that never arrived
    ///    or is still on its way): `alipay.trade.cancel`, Alipay's reversal for
    ///    face-to-face trades, so that a `pay` arriving late is closed or refunded instead
    ///    of charging a cancelled payment -> cancelled.
    fn cancel_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        let settings = settings(&payment.merchant, Effect::Settle)?;
        let trade = transform::TradeBiz {
            out_trade_no: payment.payment_id.clone(),
        };
        let reply = gateway(
            &settings,
            transform::METHOD_CLOSE,
            &trade,
            None,
            Effect::Settle,
        )?;
        match transform::interpret_close(&reply) {
            Close::Closed(result) => Ok(result),
            Close::Failed(error) => Err(error),
            Close::CheckState(why) => true_state(&settings, &payment.payment_id, &why),
            Close::NotExist => {
                let reply = gateway(
                    &settings,
                    transform::METHOD_CANCEL,
                    &trade,
                    None,
                    Effect::Settle,
                )?;
                match transform::interpret_cancel(&reply) {
                    Cancel::Done(result) => Ok(result),
                    Cancel::Failed(error) => Err(error),
                    Cancel::CheckState(why) => true_state(&settings, &payment.payment_id, &why),
                }
            }
        }
    }

    /// `alipay.trade.refund` with `out_request_no` = our refund id; when funds did not move
    /// in this call (`fund_change` N), `alipay.trade.fastpay.refund.query` says whether
    /// the refund is done.
    fn refund(request: RefundRequest) -> Result<RefundResult, ProviderError> {
        let settings = settings(&request.payment.merchant, Effect::Charge)?;
        let invalid = ProviderError::InvalidRequest;
        let biz = transform::RefundBiz {
            out_trade_no: request.payment.payment_id.clone(),
            refund_amount: transform::alipay_amount(&request.amount).map_err(invalid)?,
            out_request_no: transform::out_no(&request.refund_id, "refund_id").map_err(invalid)?,
            refund_reason: request
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| r.chars().take(256).collect()),
        };
        let reply = gateway(
            &settings,
            transform::METHOD_REFUND,
            &biz,
            None,
            Effect::Charge,
        )?;
        match transform::interpret_refund(&reply) {
            RefundStep::Done(result) => Ok(result),
            RefundStep::Failed(error) => Err(error),
            // Alipay accepted the refund: whatever the query says (or fails to say), it is
            // at least pending, never unknown.
            RefundStep::Query => {
                Ok(
                    query_refund_state(&settings, &request.payment.payment_id, &request.refund_id)
                        .unwrap_or_else(|_| transform::refund_result(RefundStatus::Pending)),
                )
            }
        }
    }

    /// `alipay.trade.fastpay.refund.query` by `out_trade_no` and `out_request_no`.
    fn query_refund(refund: RefundRef) -> Result<RefundResult, ProviderError> {
        let settings = settings(&refund.payment.merchant, Effect::Read)?;
        query_refund_state(&settings, &refund.payment.payment_id, &refund.refund_id)
    }

    /// Verifies an Alipay trade notice (RSA2 with `alipay_public_key`), checks it is for
    /// this merchant's application, and reports what changed; answers `success`. A notice
    /// about a refund (`out_biz_no`) also reports the refund, with its own amount from
    /// `alipay.trade.fastpay.refund.query` (the notice's `refund_fee` is the trade's
    /// cumulative total: see `notify::RefundNotice`).
    fn parse_notification(
        notice: Notification,
    ) -> Result<NotificationResult, NotificationRejected> {
        let (parsed, reported) = notify::handle(&notice, |data, signature| {
            keys::verify(
                ALIPAY_PUBLIC_KEY,
                keys::Algorithm::RsaPkcs1Sha256,
                data,
                signature,
            )
        })?;
        let mut updates = reported.updates;
        if let Some(refund) = &reported.refund {
            let settings = settings(&notice.merchant, Effect::Read)
                .map_err(|e| notify::rejected(format!("{e:?}")))?;
            match query_refund_state(&settings, &refund.out_trade_no, &refund.refund_id) {
                Ok(outcome) => updates
                    .extend(notify::refund_update(refund, outcome).map_err(notify::rejected)?),
                Err(e) => log::warn(&format!(
                    "alipay notice names refund {}, but its query failed ({e:?}); query-refund settles it",
                    refund.refund_id
                )),
            }
        }
        if updates.is_empty() {
            log::info(&format!(
                "alipay notice acknowledged without a change (notify_type {:?}, trade_status {:?})",
                parsed.params.get("notify_type"),
                parsed.params.get("trade_status"),
            ));
        }
        Ok(NotificationResult {
            updates,
            reply: notify::accepted(),
        })
    }

    /// `ant.merchant.expand.indirect.zft.create` with `external_id` = our activation id:
    /// submitted, with Alipay's `order_id`.
    fn onboard(request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        let settings = settings(&request.merchant, onboarding::SUBMIT)?;
        let biz = onboarding::zft_create(&request.activation_id, &request.materials_json)?;
        let reply = gateway(
            &settings,
            onboarding::METHOD_ZFT_CREATE,
            &biz,
            None,
            onboarding::SUBMIT,
        )?;
        onboarding::interpret_create(&reply)
    }

    /// `ant.merchant.expand.indirect.zftorder.query` by `external_id` (our activation id).
    fn query_onboarding(application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        let settings = settings(&application.merchant, onboarding::READ)?;
        let external_id = transform::out_no(&application.activation_id, "activation_id")
            .map_err(|e| onboarding::READ.refused(e))?;
        let reply = gateway(
            &settings,
            onboarding::METHOD_ZFT_ORDER_QUERY,
            &onboarding::ZftOrderQueryBiz {
                external_id: external_id.clone(),
            },
            None,
            onboarding::READ,
        )?;
        onboarding::interpret_order_query(&reply, &external_id)
    }

    /// `ant.merchant.expand.indirect.zft.settlementmodify` with `out_biz_no` = our bank
    /// account id (and `smid` from the settings): pending verification, with the
    /// verification step when Alipay gives one.
    fn bind_account(request: BindingRequest) -> Result<BindingResult, ProviderError> {
        let settings = settings(&request.merchant, onboarding::SUBMIT)?;
        let biz = onboarding::settlement_modify(&settings, &request)?;
        let reply = gateway(
            &settings,
            onboarding::METHOD_SETTLEMENT_MODIFY,
            &biz,
            None,
            onboarding::SUBMIT,
        )?;
        onboarding::interpret_settlement(&reply)
    }

    /// `ant.merchant.expand.order.query` by the settlement change's `order_id` and our
    /// bank account id.
    fn query_binding(binding: BindingRef) -> Result<BindingResult, ProviderError> {
        let settings = settings(&binding.merchant, onboarding::READ)?;
        let biz = onboarding::order_query(
            &binding.bank_account_id,
            binding.provider_reference.as_deref(),
        )
        .map_err(|e| onboarding::READ.refused(e))?;
        let reply = gateway(
            &settings,
            onboarding::METHOD_ORDER_QUERY,
            &biz,
            None,
            onboarding::READ,
        )?;
        onboarding::interpret_binding_query(
            &reply,
            &binding.bank_account_id,
            binding.provider_reference.as_deref(),
        )
    }
}

/// The merchant's settings; broken settings are a refusal before anything is sent.
fn settings(merchant: &Merchant, effect: Effect) -> Result<Settings, ProviderError> {
    Settings::parse(&merchant.settings_json).map_err(|e| effect.refused(e))
}

fn query_trade(settings: &Settings, payment_id: &str) -> Result<PaymentResult, ProviderError> {
    let reply = gateway(
        settings,
        transform::METHOD_QUERY,
        &transform::TradeBiz {
            out_trade_no: payment_id.to_owned(),
        },
        None,
        Effect::Read,
    )?;
    transform::interpret_query(&reply)
}

fn query_refund_state(
    settings: &Settings,
    payment_id: &str,
    refund_id: &str,
) -> Result<RefundResult, ProviderError> {
    let reply = gateway(
        settings,
        transform::METHOD_REFUND_QUERY,
        &transform::RefundQueryBiz {
            out_trade_no: payment_id.to_owned(),
            out_request_no: refund_id.to_owned(),
        },
        None,
        Effect::Read,
    )?;
    transform::interpret_refund_query(&reply, refund_id)
}

/// After Alipay refused to close or cancel: the trade's true state from a query. Paid ->
/// succeeded; closed -> cancelled. Anything else means nothing changed and nothing is
/// known to be final, so the gateway may try again later ("unavailable").
fn true_state(
    settings: &Settings,
    payment_id: &str,
    why: &str,
) -> Result<PaymentResult, ProviderError> {
    match query_trade(settings, payment_id) {
        Ok(result)
            if matches!(
                result.status,
                PaymentStatus::Succeeded | PaymentStatus::Cancelled
            ) =>
        {
            Ok(result)
        }
        Ok(result) => Err(ProviderError::Unavailable(format!(
            "Alipay would not close the trade ({why}) and it is {:?}",
            result.status
        ))),
        Err(e) => Err(ProviderError::Unavailable(format!(
            "Alipay would not close the trade ({why}), and its state is unknown: {e:?}"
        ))),
    }
}

/// One signed call to `gateway.do` and its verified answer.
///
/// The request: the common parameters plus `biz_content`, signed RSA2 with
/// `app_private_key` over the sorted `k=v` string, all sent form-encoded in the POST body.
/// The answer: the `*_response` object, verified with `alipay_public_key` over its raw
/// text. Every failure is reported according to `effect` (see `transform::Effect`).
fn gateway(
    settings: &Settings,
    method: &str,
    biz: &impl Serialize,
    notify_url: Option<&str>,
    effect: Effect,
) -> Result<Reply, ProviderError> {
    let biz_content = serde_json::to_string(biz)
        .map_err(|e| effect.refused(format!("cannot encode biz_content: {e}")))?;
    let timestamp = transform::beijing_timestamp(clock::now_millis());
    let mut params =
        transform::request_params(settings, method, &timestamp, notify_url, &biz_content);
    let signing_string = sign::request_signing_string(&params);
    let signature = keys::sign(
        APP_PRIVATE_KEY,
        keys::Algorithm::RsaPkcs1Sha256,
        signing_string.as_bytes(),
    )
    .map_err(|e| effect.refused(format!("cannot sign with {APP_PRIVATE_KEY}: {e:?}")))?;
    params.push(("sign".into(), sign::encode_signature(&signature)));
    let body = form::encode(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let request = http::Request::new("POST", &settings.gateway_url)
        .header("content-type", transform::CONTENT_TYPE)
        .header("accept", "application/json")
        .body(body);

    let response = http::send(&request).map_err(|e| effect.transport(e))?;
    if !(200..300).contains(&response.status) {
        return Err(effect.uncertain(format!(
            "Alipay answered {method} with HTTP {}",
            response.status
        )));
    }
    let text = std::str::from_utf8(&response.body)
        .map_err(|_| effect.uncertain(format!("Alipay's answer to {method} is not UTF-8")))?;
    let signed = sign::split_response(text, method)
        .map_err(|e| effect.uncertain(format!("malformed answer to {method}: {e}")))?;
    let reply = Reply::parse(signed.node)
        .map_err(|e| effect.uncertain(format!("malformed answer to {method}: {e}")))?;
    match &signed.sign {
        Some(sign) => {
            let signature = sign::decode_signature(sign)
                .map_err(|e| effect.uncertain(format!("answer to {method}: {e}")))?;
            match keys::verify(
                ALIPAY_PUBLIC_KEY,
                keys::Algorithm::RsaPkcs1Sha256,
                signed.node.as_bytes(),
                &signature,
            ) {
                Ok(true) => {}
                Ok(false) => {
                    log::warn(&format!(
                        "alipay: the answer to {method} does not verify with {ALIPAY_PUBLIC_KEY}"
                    ));
                    return Err(effect.uncertain(format!(
                        "the signature of the answer to {method} does not verify"
                    )));
                }
                // The request went out: a key problem now cannot undo it.
                Err(e) => {
                    return Err(effect.uncertain(format!(
                        "cannot verify the answer to {method} with {ALIPAY_PUBLIC_KEY}: {e:?}"
                    )));
                }
            }
        }
        None if transform::accept_unsigned(&reply) => {}
        None => {
            return Err(
                effect.uncertain(format!("unsigned answer to {method}: {}", reply.describe()))
            );
        }
    }
    Ok(reply)
}

// Only the component exports: a native build (the tests, the fuzz targets) links the
// `cdylib` too, and the export names (`paygate:provider/provider@0.2.0#...`) are not
// symbol names a native linker takes.
#[cfg(target_arch = "wasm32")]
export_plugin!(Alipay);
