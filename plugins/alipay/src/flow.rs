//! The flow (the Hyperswitch connector file of this plugin): which gateway method each
//! operation calls, in which order, and the signed exchange with `gateway.do`. It is written
//! against `Env`, so the tests run every operation natively against a fake Alipay. What is
//! sent and how an answer reads is `transform`'s (payments, refunds) and `onboarding`'s
//! (sub-merchants, settlement accounts); what a signature covers is `auth`'s.
//!
//! Invariant: no answer is interpreted before its `sign` verifies with the merchant's
//! `alipay_public_key` over the raw text of its `*_response` member. The only answers read
//! unsigned are the gateway's own refusals (`transform::accept_unsigned`), which say that
//! nothing happened. Every failure is reported according to what the call may have done
//! (`transform::Effect`): an unusable answer to a charge is an unknown outcome, to a read
//! "unavailable".

use paygate_plugin_api::{
    BindingRef, BindingRequest, BindingResult, CreatePaymentRequest, Merchant, OnboardingRef,
    OnboardingRequest, OnboardingResult, PaymentRef, PaymentResult, PaymentStatus, ProviderError,
    RefundRef, RefundRequest, RefundResult, RefundStatus, form, http,
};
use serde::Serialize;

use crate::auth;
use crate::env::Env;
use crate::onboarding;
use crate::settings::{Settings, key_names};
use crate::time;
use crate::transform::{self, Cancel, Close, CreateCall, Effect, RefundStep, Reply};

/// The merchant's settings; broken settings are a refusal before anything is sent.
pub fn settings(merchant: &Merchant, effect: Effect) -> Result<Settings, ProviderError> {
    Settings::parse(&merchant.settings_json).map_err(|e| effect.refused(e))
}

/// Signs, sends and verifies the gateway calls of one operation.
pub struct Client<'a, E: Env> {
    env: &'a E,
    settings: &'a Settings,
}

impl<'a, E: Env> Client<'a, E> {
    pub fn new(env: &'a E, settings: &'a Settings) -> Client<'a, E> {
        Client { env, settings }
    }

    /// One signed call to `gateway.do` and its verified answer.
    ///
    /// The request: the common parameters plus `biz_content`, signed RSA2 with
    /// `app_private_key` over the sorted `k=v` string, all sent form-encoded in the POST
    /// body. The answer: the `*_response` object, verified with `alipay_public_key` over its
    /// raw text. Every failure is reported according to `effect`.
    pub fn call(
        &self,
        method: &str,
        biz: &impl Serialize,
        notify_url: Option<&str>,
        effect: Effect,
    ) -> Result<Reply, ProviderError> {
        let settings = self.settings;
        let biz_content = serde_json::to_string(biz)
            .map_err(|e| effect.refused(format!("cannot encode biz_content: {e}")))?;
        let timestamp = time::beijing_timestamp(self.env.now_millis());
        let mut params =
            transform::request_params(settings, method, &timestamp, notify_url, &biz_content);
        let signing_string = auth::request_signing_string(&params);
        let signature = self
            .env
            .sign(key_names::APP_PRIVATE_KEY, signing_string.as_bytes())
            .map_err(|e| {
                effect.refused(format!(
                    "cannot sign with {}: {e:?}",
                    key_names::APP_PRIVATE_KEY
                ))
            })?;
        params.push(("sign".into(), auth::encode_signature(&signature)));
        let body = form::encode(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let request = http::Request::new("POST", &settings.gateway_url)
            .header("content-type", transform::CONTENT_TYPE)
            .header("accept", "application/json")
            .body(body);

        let response = self.env.send(&request).map_err(|e| effect.transport(e))?;
        self.verified_reply(method, &response, effect)
    }

    /// The `*_response` of `method`'s answer, once its signature verifies (or, unsigned,
    /// when it is a refusal by the gateway itself).
    fn verified_reply(
        &self,
        method: &str,
        response: &http::Response,
        effect: Effect,
    ) -> Result<Reply, ProviderError> {
        if !(200..300).contains(&response.status) {
            return Err(effect.uncertain(format!(
                "Alipay answered {method} with HTTP {}",
                response.status
            )));
        }
        let text = std::str::from_utf8(&response.body)
            .map_err(|_| effect.uncertain(format!("Alipay's answer to {method} is not UTF-8")))?;
        let signed = auth::split_response(text, method)
            .map_err(|e| effect.uncertain(format!("malformed answer to {method}: {e}")))?;
        let reply = Reply::parse(signed.node)
            .map_err(|e| effect.uncertain(format!("malformed answer to {method}: {e}")))?;
        let alipay_public_key = key_names::ALIPAY_PUBLIC_KEY;
        match &signed.sign {
            Some(sign) => {
                let signature = auth::decode_signature(sign)
                    .map_err(|e| effect.uncertain(format!("answer to {method}: {e}")))?;
                match self
                    .env
                    .verify(alipay_public_key, signed.node.as_bytes(), &signature)
                {
                    Ok(true) => {}
                    Ok(false) => {
                        self.env.warn(&format!(
                            "alipay: the answer to {method} does not verify with {alipay_public_key}"
                        ));
                        return Err(effect.uncertain(format!(
                            "the signature of the answer to {method} does not verify"
                        )));
                    }
                    // The request went out: a key problem now cannot undo it.
                    Err(e) => {
                        return Err(effect.uncertain(format!(
                            "cannot verify the answer to {method} with {alipay_public_key}: {e:?}"
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
}

/// `create-payment`. `qr`/`link`: `alipay.trade.precreate`, pending with the QR code.
/// `barcode`: `alipay.trade.pay`, the outcome (or pending while the payer confirms).
pub fn create_payment(
    env: &impl Env,
    request: &CreatePaymentRequest,
) -> Result<PaymentResult, ProviderError> {
    let settings = settings(&request.merchant, Effect::Charge)?;
    let call = transform::create_call(&settings, request)?;
    let client = Client::new(env, &settings);
    let notify_url = Some(request.merchant.notify_url.as_str());
    let result = match &call {
        CreateCall::Precreate(biz) => {
            let reply =
                client.call(transform::METHOD_PRECREATE, biz, notify_url, Effect::Charge)?;
            transform::interpret_precreate(&reply)?
        }
        CreateCall::Pay(biz) => {
            let reply = client.call(transform::METHOD_PAY, biz, notify_url, Effect::Charge)?;
            transform::interpret_pay(&reply)?
        }
    };
    // ACQ.TRADE_HAS_SUCCESS says "already paid" without details: ask for them, and keep
    // "succeeded" whatever the query says (the fact does not change).
    if result.status == PaymentStatus::Succeeded
        && result.provider_reference.is_none()
        && let Ok(found) = query_trade(&client, &request.payment_id)
        && found.status == PaymentStatus::Succeeded
    {
        return Ok(found);
    }
    Ok(result)
}

/// `query-payment`: `alipay.trade.query` by `out_trade_no`.
pub fn query_payment(env: &impl Env, payment: &PaymentRef) -> Result<PaymentResult, ProviderError> {
    let settings = settings(&payment.merchant, Effect::Read)?;
    query_trade(&Client::new(env, &settings), &payment.payment_id)
}

/// `cancel-payment`: closes an unpaid trade, never refunding a paid one behind the
/// gateway's back:
///
/// 1. `alipay.trade.close`: closes a trade waiting for payment -> cancelled.
/// 2. Refused because the trade is not waiting (paid, or already closed): report its true
///    state from `alipay.trade.query` (succeeded / cancelled).
/// 3. No such trade (a QR code nobody scanned, or a barcode `pay` that never arrived or is
///    still on its way): `alipay.trade.cancel`, Alipay's reversal for face-to-face trades,
///    so that a `pay` arriving late is closed or refunded instead of charging a cancelled
///    payment -> cancelled.
pub fn cancel_payment(
    env: &impl Env,
    payment: &PaymentRef,
) -> Result<PaymentResult, ProviderError> {
    let settings = settings(&payment.merchant, Effect::Settle)?;
    let client = Client::new(env, &settings);
    let trade = transform::TradeBiz {
        out_trade_no: payment.payment_id.clone(),
    };
    let reply = client.call(transform::METHOD_CLOSE, &trade, None, Effect::Settle)?;
    match transform::interpret_close(&reply) {
        Close::Closed(result) => Ok(result),
        Close::Failed(error) => Err(error),
        Close::CheckState(why) => true_state(&client, &payment.payment_id, &why),
        Close::NotExist => {
            let reply = client.call(transform::METHOD_CANCEL, &trade, None, Effect::Settle)?;
            match transform::interpret_cancel(&reply) {
                Cancel::Done(result) => Ok(result),
                Cancel::Failed(error) => Err(error),
                Cancel::CheckState(why) => true_state(&client, &payment.payment_id, &why),
            }
        }
    }
}

/// `refund`: `alipay.trade.refund` with `out_request_no` = our refund id; when funds did
/// not move in this call (`fund_change` N), `alipay.trade.fastpay.refund.query` says
/// whether the refund is done.
pub fn refund(env: &impl Env, request: &RefundRequest) -> Result<RefundResult, ProviderError> {
    let settings = settings(&request.payment.merchant, Effect::Charge)?;
    let biz = transform::refund_call(request)?;
    let client = Client::new(env, &settings);
    let reply = client.call(transform::METHOD_REFUND, &biz, None, Effect::Charge)?;
    match transform::interpret_refund(&reply) {
        RefundStep::Done(result) => Ok(result),
        RefundStep::Failed(error) => Err(error),
        // Alipay accepted the refund: whatever the query says (or fails to say), it is at
        // least pending, never unknown.
        RefundStep::Query => {
            Ok(
                query_refund_state(&client, &request.payment.payment_id, &request.refund_id)
                    .unwrap_or_else(|_| transform::refund_result(RefundStatus::Pending)),
            )
        }
    }
}

/// `query-refund`: `alipay.trade.fastpay.refund.query` by `out_trade_no` and
/// `out_request_no`.
pub fn query_refund(env: &impl Env, refund: &RefundRef) -> Result<RefundResult, ProviderError> {
    let settings = settings(&refund.payment.merchant, Effect::Read)?;
    query_refund_state(
        &Client::new(env, &settings),
        &refund.payment.payment_id,
        &refund.refund_id,
    )
}

/// `alipay.trade.query` by `out_trade_no`.
fn query_trade(
    client: &Client<'_, impl Env>,
    payment_id: &str,
) -> Result<PaymentResult, ProviderError> {
    let reply = client.call(
        transform::METHOD_QUERY,
        &transform::TradeBiz {
            out_trade_no: payment_id.to_owned(),
        },
        None,
        Effect::Read,
    )?;
    transform::interpret_query(&reply)
}

/// `alipay.trade.fastpay.refund.query`: this refund's own state and amount (also what a
/// refund's notice is settled with: `notify`).
pub fn query_refund_state(
    client: &Client<'_, impl Env>,
    payment_id: &str,
    refund_id: &str,
) -> Result<RefundResult, ProviderError> {
    let reply = client.call(
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
    client: &Client<'_, impl Env>,
    payment_id: &str,
    why: &str,
) -> Result<PaymentResult, ProviderError> {
    match query_trade(client, payment_id) {
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

// ---------------------------------------------------------------------------------------
// Onboarding: sub-merchant applications (直付通) and settlement accounts.
// ---------------------------------------------------------------------------------------

/// `onboard`: `ant.merchant.expand.indirect.zft.create` with `external_id` = our activation
/// id: submitted, with Alipay's `order_id`.
pub fn onboard(
    env: &impl Env,
    request: &OnboardingRequest,
) -> Result<OnboardingResult, ProviderError> {
    let settings = settings(&request.merchant, onboarding::SUBMIT)?;
    let biz = onboarding::zft_create(&request.activation_id, &request.materials_json)?;
    let reply = Client::new(env, &settings).call(
        onboarding::METHOD_ZFT_CREATE,
        &biz,
        None,
        onboarding::SUBMIT,
    )?;
    onboarding::interpret_create(&reply)
}

/// `query-onboarding`: `ant.merchant.expand.indirect.zftorder.query` by `external_id` (our
/// activation id).
pub fn query_onboarding(
    env: &impl Env,
    application: &OnboardingRef,
) -> Result<OnboardingResult, ProviderError> {
    let settings = settings(&application.merchant, onboarding::READ)?;
    let external_id = transform::out_no(&application.activation_id, "activation_id")
        .map_err(|e| onboarding::READ.refused(e))?;
    let reply = Client::new(env, &settings).call(
        onboarding::METHOD_ZFT_ORDER_QUERY,
        &onboarding::ZftOrderQueryBiz {
            external_id: external_id.clone(),
        },
        None,
        onboarding::READ,
    )?;
    onboarding::interpret_order_query(&reply, &external_id)
}

/// `bind-account`: `ant.merchant.expand.indirect.zft.settlementmodify` with `out_biz_no` =
/// our bank account id (and `smid` from the settings): pending verification, with the
/// verification step when Alipay gives one.
pub fn bind_account(
    env: &impl Env,
    request: &BindingRequest,
) -> Result<BindingResult, ProviderError> {
    let settings = settings(&request.merchant, onboarding::SUBMIT)?;
    let biz = onboarding::settlement_modify(&settings, request)?;
    let reply = Client::new(env, &settings).call(
        onboarding::METHOD_SETTLEMENT_MODIFY,
        &biz,
        None,
        onboarding::SUBMIT,
    )?;
    onboarding::interpret_settlement(&reply)
}

/// `query-binding`: `ant.merchant.expand.order.query` by the settlement change's
/// `order_id` and our bank account id.
pub fn query_binding(env: &impl Env, binding: &BindingRef) -> Result<BindingResult, ProviderError> {
    let settings = settings(&binding.merchant, onboarding::READ)?;
    let biz = onboarding::order_query(
        &binding.bank_account_id,
        binding.provider_reference.as_deref(),
    )
    .map_err(|e| onboarding::READ.refused(e))?;
    let reply = Client::new(env, &settings).call(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use crate::transform::{
        METHOD_CANCEL, METHOD_CLOSE, METHOD_PAY, METHOD_PRECREATE, METHOD_QUERY, METHOD_REFUND,
        METHOD_REFUND_QUERY,
    };
    use paygate_plugin_api::{BindingStatus, Method, Money, OnboardingStatus};
    use serde_json::{Value, json};

    fn paid(trade_status: &str) -> Value {
        json!({
            "code": "10000",
            "msg": "Success",
            "trade_no": TRADE_NO,
            "out_trade_no": PAYMENT_ID,
            "buyer_logon_id": "159****5620",
            "buyer_user_id": BUYER_ID,
            "trade_status": trade_status,
            "total_amount": "12.50",
        })
    }

    fn refund_queried(status: Option<&str>) -> Value {
        let mut answer = json!({
            "code": "10000",
            "msg": "Success",
            "trade_no": TRADE_NO,
            "out_trade_no": PAYMENT_ID,
            "out_request_no": REFUND_ID,
            "total_amount": "12.50",
            "refund_amount": "5.00",
        });
        if let Some(status) = status {
            answer["refund_status"] = status.into();
        }
        answer
    }

    fn declined(result: Result<impl std::fmt::Debug, ProviderError>) -> (String, String) {
        match result {
            Err(ProviderError::Declined(d)) => (d.code, d.message),
            other => panic!("expected a decline, got {other:?}"),
        }
    }

    fn unknown(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
        match result {
            Err(ProviderError::UnknownOutcome(m)) => m,
            other => panic!("expected an unknown outcome, got {other:?}"),
        }
    }

    fn unavailable(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
        match result {
            Err(ProviderError::Unavailable(m)) => m,
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    fn invalid(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
        match result {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    fn minor(amount: &Option<Money>) -> Option<(i64, &str, u8)> {
        amount
            .as_ref()
            .map(|m| (m.minor, m.currency.as_str(), m.exponent))
    }

    // --- create-payment ------------------------------------------------------------------

    #[test]
    fn a_qr_payment_is_a_signed_precreate_pending_with_its_qr_code() {
        let env = FakeEnv::new(vec![answer(
            METHOD_PRECREATE,
            json!({"code": "10000", "msg": "Success", "out_trade_no": PAYMENT_ID,
                   "qr_code": "https://qr.alipay.com/bax01234abcd"}),
        )]);
        let result = create_payment(&env, &create(Method::Qr)).unwrap();
        assert_eq!(result.status, PaymentStatus::Pending);
        assert_eq!(
            result.qr_code.as_deref(),
            Some("https://qr.alipay.com/bax01234abcd")
        );
        assert_eq!(env.sent_methods(), [METHOD_PRECREATE]);
        let params = env.sent_params(0);
        assert_eq!(params["timestamp"], NOW_BEIJING);
        assert_eq!(params["notify_url"], NOTIFY_URL);
        assert_eq!(
            env.sent_biz(0),
            json!({
                "out_trade_no": PAYMENT_ID,
                "total_amount": "12.50",
                "subject": "Coffee",
                "product_code": "FACE_TO_FACE_PAYMENT",
                "seller_id": SELLER_ID,
                "terminal_id": "till-7",
                "timeout_express": "15m",
                "qr_code_timeout_express": "15m",
            })
        );
    }

    #[test]
    fn a_link_payment_is_a_precreate_too() {
        let env = FakeEnv::new(vec![answer(
            METHOD_PRECREATE,
            json!({"code": "10000", "qr_code": "https://qr.alipay.com/x"}),
        )]);
        let result = create_payment(&env, &create(Method::Link)).unwrap();
        assert_eq!(result.qr_code.as_deref(), Some("https://qr.alipay.com/x"));
        assert_eq!(env.sent_methods(), [METHOD_PRECREATE]);
    }

    #[test]
    fn a_barcode_payment_is_a_pay_with_the_payers_code() {
        let env = FakeEnv::new(vec![answer(
            METHOD_PAY,
            json!({"code": "10000", "msg": "Success", "trade_no": TRADE_NO,
                   "out_trade_no": PAYMENT_ID, "buyer_logon_id": "159****5620",
                   "buyer_user_id": BUYER_ID, "total_amount": "12.50",
                   "receipt_amount": "11.50"}),
        )]);
        let result = create_payment(&env, &create(Method::Barcode)).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(result.provider_reference.as_deref(), Some(TRADE_NO));
        assert_eq!(result.payer.as_deref(), Some(BUYER_ID));
        // The order's amount, not what the payer paid after a discount.
        assert_eq!(minor(&result.amount), Some((1250, "CNY", 2)));
        assert_eq!(env.sent_methods(), [METHOD_PAY]);
        assert_eq!(env.sent_params(0)["notify_url"], NOTIFY_URL);
        assert_eq!(
            env.sent_biz(0),
            json!({
                "out_trade_no": PAYMENT_ID,
                "scene": "bar_code",
                "auth_code": AUTH_CODE,
                "total_amount": "12.50",
                "subject": "Coffee",
                "product_code": "FACE_TO_FACE_PAYMENT",
                "seller_id": SELLER_ID,
                "terminal_id": "till-7",
            })
        );
    }

    #[test]
    fn a_barcode_payment_waiting_for_the_payer_is_pending_until_the_query_says_paid() {
        let env = FakeEnv::new(vec![
            answer(
                METHOD_PAY,
                json!({"code": "10003", "msg": "Waiting for user payment",
                       "trade_no": TRADE_NO, "out_trade_no": PAYMENT_ID}),
            ),
            answer(METHOD_QUERY, paid("WAIT_BUYER_PAY")),
            answer(METHOD_QUERY, paid("TRADE_SUCCESS")),
        ]);
        let pending = create_payment(&env, &create(Method::Barcode)).unwrap();
        assert_eq!(pending.status, PaymentStatus::Pending);
        assert_eq!(pending.provider_reference.as_deref(), Some(TRADE_NO));
        let still = query_payment(&env, &payment_ref()).unwrap();
        assert_eq!(still.status, PaymentStatus::Pending);
        let done = query_payment(&env, &payment_ref()).unwrap();
        assert_eq!(done.status, PaymentStatus::Succeeded);
        assert_eq!(done.payer.as_deref(), Some(BUYER_ID));
        assert_eq!(minor(&done.amount), Some((1250, "CNY", 2)));
        assert_eq!(env.sent_methods(), [METHOD_PAY, METHOD_QUERY, METHOD_QUERY]);
        // A query is by our id, and asks for no notice.
        assert_eq!(env.sent_biz(1), json!({"out_trade_no": PAYMENT_ID}));
        assert!(!env.sent_params(1).contains_key("notify_url"));
    }

    #[test]
    fn an_already_paid_trade_takes_its_details_from_the_query() {
        let already = || answer(METHOD_PAY, failure("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"));
        let env = FakeEnv::new(vec![already(), answer(METHOD_QUERY, paid("TRADE_SUCCESS"))]);
        let result = create_payment(&env, &create(Method::Barcode)).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(result.provider_reference.as_deref(), Some(TRADE_NO));
        assert_eq!(env.sent_methods(), [METHOD_PAY, METHOD_QUERY]);
        // The query failing does not undo the fact: succeeded, without details.
        let env = FakeEnv::new(vec![
            already(),
            Scripted::Fail(http::Error::Connection("reset".into())),
        ]);
        let result = create_payment(&env, &create(Method::Barcode)).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(result.provider_reference, None);
    }

    #[test]
    fn provider_errors_follow_the_documented_mapping() {
        let pay = |scripted: Scripted| {
            let env = FakeEnv::new(vec![scripted]);
            create_payment(&env, &create(Method::Barcode))
        };
        let query = |scripted: Scripted| {
            let env = FakeEnv::new(vec![scripted]);
            query_payment(&env, &payment_ref())
        };
        assert_eq!(
            declined(pay(answer(
                METHOD_PAY,
                failure("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
            ))),
            (
                "insufficient_funds".to_owned(),
                "ACQ.BUYER_BALANCE_NOT_ENOUGH: 买家余额不足".to_owned()
            )
        );
        for (sub_code, code) in [
            ("ACQ.PAYMENT_AUTH_CODE_INVALID", "auth_code_invalid"),
            ("ACQ.TRADE_HAS_CLOSE", "payer_cancelled"),
            ("ACQ.RISK_CONTROL_REJECT", "risk_rejected"),
            ("ACQ.PULL_MOBILE_CASHIER_FAIL", "provider_declined"),
        ] {
            let (got, _) = declined(pay(answer(METHOD_PAY, failure(sub_code, "x"))));
            assert_eq!(got, code, "{sub_code}");
        }
        // Alipay does not know: the gateway queries, never charges again.
        unknown(pay(answer(
            METHOD_PAY,
            failure("ACQ.SYSTEM_ERROR", "系统错误"),
        )));
        unknown(pay(answer(
            METHOD_PAY,
            json!({"code": "20000", "msg": "Service Currently Unavailable",
                   "sub_code": "isp.unknow-error"}),
        )));
        unknown(pay(Scripted::Fail(http::Error::Timeout)));
        unknown(pay(Scripted::Fail(http::Error::TooLarge)));
        assert!(unknown(pay(raw(502, "Bad Gateway"))).contains("HTTP 502"));
        // Nothing was sent or nothing happened.
        unavailable(pay(Scripted::Fail(http::Error::Connection(
            "refused".into(),
        ))));
        invalid(pay(Scripted::Fail(http::Error::Denied(
            "not allowed".into(),
        ))));
        // The gateway's own refusal may come unsigned, and says nothing happened.
        let refusal = || {
            raw(
                200,
                r#"{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}}"#,
            )
        };
        assert!(invalid(pay(refusal())).contains("isv.invalid-app-id"));
        // A read never fails or declines a payment: every failure is "unavailable".
        unavailable(query(refusal()));
        unavailable(query(Scripted::Fail(http::Error::Timeout)));
        unavailable(query(raw(500, "")));
        unavailable(query(answer(
            METHOD_QUERY,
            failure("ACQ.SYSTEM_ERROR", "x"),
        )));
        assert!(
            unavailable(query(answer(
                METHOD_QUERY,
                failure("ACQ.TRADE_NOT_EXIST", "交易不存在")
            )))
            .contains("nothing was charged")
        );
    }

    #[test]
    fn nothing_is_sent_when_the_request_cannot_be_right() {
        let env = FakeEnv::new(vec![]);
        let mut request = create(Method::Barcode);
        request.auth_code = Some("990000000000001234".into());
        assert_eq!(
            declined(create_payment(&env, &request)).0,
            "auth_code_invalid"
        );
        let mut request = create(Method::Qr);
        request.amount.currency = "USD".into();
        assert!(invalid(create_payment(&env, &request)).contains("CNY"));
        // Broken settings: refused by what the call may do.
        let mut request = create(Method::Qr);
        request.merchant.settings_json = r#"{"app_id": "1"}"#.into();
        assert!(invalid(create_payment(&env, &request)).contains("gateway_url"));
        let mut payment = payment_ref();
        payment.merchant.settings_json = "not json".into();
        unavailable(query_payment(&env, &payment));
        unavailable(cancel_payment(&env, &payment));
        // No application key: nothing can be signed.
        env.has_app_key.set(false);
        assert!(
            invalid(create_payment(&env, &create(Method::Qr)))
                .contains("cannot sign with app_private_key")
        );
        unavailable(query_payment(&env, &payment_ref()));
        assert!(env.sent.borrow().is_empty());
    }

    // --- what Alipay answers, and whether to believe it ----------------------------------

    #[test]
    fn an_answer_that_does_not_verify_is_never_read() {
        for signing in [Signing::Forged, Signing::WrongKey] {
            // A charge: unknown outcome, whatever the body claims (even a decline).
            let env = FakeEnv::new(vec![answer_signed(
                METHOD_PAY,
                failure("ACQ.BUYER_BALANCE_NOT_ENOUGH", "forged decline"),
                signing,
            )]);
            let message = unknown(create_payment(&env, &create(Method::Barcode)));
            assert!(
                message.contains("does not verify"),
                "{signing:?}: {message}"
            );
            let warnings = env.warnings.borrow();
            assert_eq!(warnings.len(), 1, "{signing:?}");
            assert!(warnings[0].contains("alipay_public_key"), "{}", warnings[0]);
            // A refund claimed done: unknown outcome too.
            let env = FakeEnv::new(vec![answer_signed(
                METHOD_REFUND,
                json!({"code": "10000", "fund_change": "Y"}),
                signing,
            )]);
            unknown(refund(&env, &refund_request()));
            // A query: nothing is known, ask again.
            let env = FakeEnv::new(vec![answer_signed(
                METHOD_QUERY,
                paid("TRADE_SUCCESS"),
                signing,
            )]);
            unavailable(query_payment(&env, &payment_ref()));
        }
        // Unsigned: only the gateway's refusals may be; a success may not.
        let env = FakeEnv::new(vec![answer_signed(
            METHOD_PAY,
            paid("TRADE_SUCCESS"),
            Signing::Unsigned,
        )]);
        assert!(
            unknown(create_payment(&env, &create(Method::Barcode))).contains("unsigned answer")
        );
        let env = FakeEnv::new(vec![answer_signed(
            METHOD_QUERY,
            paid("TRADE_SUCCESS"),
            Signing::Unsigned,
        )]);
        unavailable(query_payment(&env, &payment_ref()));
    }

    #[test]
    fn the_signature_covers_the_answer_text_exactly_as_sent() {
        // Spacing, escapes and key order that a re-serialisation would change.
        let node = "{ \"code\" : \"10000\", \"msg\":\"Success\",\n  \"trade_no\":\"2024031422001404330000121536\", \
                    \"out_trade_no\":\"pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ\", \"subject\":\"\\u5496\\u5561 \\\"VIP\\\" {1}\", \
                    \"trade_status\":\"TRADE_SUCCESS\", \"total_amount\":\"12.50\" }";
        let env = FakeEnv::new(vec![answer_text(METHOD_QUERY, node, Signing::Good)]);
        let result = query_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(result.provider_reference.as_deref(), Some(TRADE_NO));
    }

    #[test]
    fn malformed_or_hostile_answers_are_clear_errors() {
        let pay = |scripted: Scripted| {
            let env = FakeEnv::new(vec![scripted]);
            unknown(create_payment(&env, &create(Method::Barcode)))
        };
        let expect = |message: String, parts: &[&str]| {
            for part in parts {
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
        };
        // Not JSON, not UTF-8, not the answer to this method.
        expect(
            pay(raw(200, "<html>502 Bad Gateway</html>")),
            &["malformed answer to alipay.trade.pay", "not JSON"],
        );
        expect(pay(raw(200, vec![0xff, 0xfe, b'{'])), &["not UTF-8"]);
        expect(
            pay(answer(METHOD_QUERY, paid("TRADE_SUCCESS"))),
            &["has no \"alipay_trade_pay_response\""],
        );
        // Missing or wrongly typed fields, signed or not.
        expect(
            pay(answer(METHOD_PAY, json!({"msg": "Success"}))),
            &["malformed answer to alipay.trade.pay", "no code"],
        );
        expect(
            pay(answer(
                METHOD_PAY,
                json!({"code": "10000", "trade_no": 2024}),
            )),
            &["trade_no", "should be a string"],
        );
        expect(
            pay(answer(
                METHOD_PAY,
                json!({"code": "10000", "trade_no": TRADE_NO, "total_amount": "-12.50"}),
            )),
            &["total_amount"],
        );
        let env = FakeEnv::new(vec![answer(
            METHOD_PRECREATE,
            json!({"code": "10000", "msg": "Success"}),
        )]);
        expect(
            unknown(create_payment(&env, &create(Method::Qr))),
            &["without a qr_code"],
        );
        // A signature that is not base64, a repeated member, a non-string sign.
        expect(
            pay(raw(
                200,
                r#"{"alipay_trade_pay_response":{"code":"10000"},"sign":"%%%"}"#,
            )),
            &["not base64"],
        );
        expect(
            pay(raw(
                200,
                r#"{"alipay_trade_pay_response":{"code":"40004"},"alipay_trade_pay_response":{"code":"10000"},"sign":"QUJD"}"#,
            )),
            &["repeats"],
        );
        expect(
            pay(raw(
                200,
                r#"{"alipay_trade_pay_response":{"code":"10000"},"sign":7}"#,
            )),
            &["\"sign\" is not a string"],
        );
        // A read with a missing field: unavailable, and says which.
        let env = FakeEnv::new(vec![answer(
            METHOD_QUERY,
            json!({"code": "10000", "trade_no": TRADE_NO}),
        )]);
        assert!(unavailable(query_payment(&env, &payment_ref())).contains("trade_status"));
    }

    // --- cancel-payment ------------------------------------------------------------------

    #[test]
    fn cancelling_a_waiting_trade_closes_it() {
        let env = FakeEnv::new(vec![answer(
            METHOD_CLOSE,
            json!({"code": "10000", "msg": "Success", "trade_no": TRADE_NO,
                   "out_trade_no": PAYMENT_ID}),
        )]);
        let result = cancel_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Cancelled);
        assert_eq!(result.provider_reference.as_deref(), Some(TRADE_NO));
        assert_eq!(env.sent_methods(), [METHOD_CLOSE]);
        assert_eq!(env.sent_biz(0), json!({"out_trade_no": PAYMENT_ID}));
    }

    #[test]
    fn cancelling_a_trade_alipay_does_not_have_reverses_it() {
        let env = FakeEnv::new(vec![
            answer(METHOD_CLOSE, failure("ACQ.TRADE_NOT_EXIST", "交易不存在")),
            answer(
                METHOD_CANCEL,
                json!({"code": "10000", "out_trade_no": PAYMENT_ID, "retry_flag": "N",
                       "action": "close"}),
            ),
        ]);
        let result = cancel_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Cancelled);
        assert_eq!(env.sent_methods(), [METHOD_CLOSE, METHOD_CANCEL]);
        // Alipay asking for the reversal to be retried: not known to be cancelled.
        let env = FakeEnv::new(vec![
            answer(METHOD_CLOSE, failure("ACQ.TRADE_NOT_EXIST", "交易不存在")),
            answer(METHOD_CANCEL, json!({"code": "10000", "retry_flag": "Y"})),
        ]);
        unknown(cancel_payment(&env, &payment_ref()));
    }

    #[test]
    fn a_trade_that_will_not_close_reports_its_true_state() {
        let refused = || {
            answer(
                METHOD_CLOSE,
                failure("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
            )
        };
        let env = FakeEnv::new(vec![refused(), answer(METHOD_QUERY, paid("TRADE_SUCCESS"))]);
        let result = cancel_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(env.sent_methods(), [METHOD_CLOSE, METHOD_QUERY]);
        let env = FakeEnv::new(vec![refused(), answer(METHOD_QUERY, paid("TRADE_CLOSED"))]);
        assert_eq!(
            cancel_payment(&env, &payment_ref()).unwrap().status,
            PaymentStatus::Cancelled
        );
        // Still waiting, or unknown: nothing final, try again later.
        let env = FakeEnv::new(vec![
            refused(),
            answer(METHOD_QUERY, paid("WAIT_BUYER_PAY")),
        ]);
        assert!(unavailable(cancel_payment(&env, &payment_ref())).contains("Pending"));
        let env = FakeEnv::new(vec![refused(), Scripted::Fail(http::Error::Timeout)]);
        assert!(unavailable(cancel_payment(&env, &payment_ref())).contains("unknown"));
    }

    // --- refunds -------------------------------------------------------------------------

    #[test]
    fn a_refund_that_moved_funds_succeeded() {
        let env = FakeEnv::new(vec![answer(
            METHOD_REFUND,
            json!({"code": "10000", "msg": "Success", "trade_no": TRADE_NO,
                   "out_trade_no": PAYMENT_ID, "fund_change": "Y", "refund_fee": "5.00"}),
        )]);
        let result = refund(&env, &refund_request()).unwrap();
        assert_eq!(result.status, RefundStatus::Succeeded);
        // `refund_fee` is the trade's cumulative total: not reported as this refund's.
        assert!(result.amount.is_none());
        assert_eq!(env.sent_methods(), [METHOD_REFUND]);
        assert_eq!(
            env.sent_biz(0),
            json!({
                "out_trade_no": PAYMENT_ID,
                "refund_amount": "5.00",
                "out_request_no": REFUND_ID,
                "refund_reason": "damaged",
            })
        );
        assert!(!env.sent_params(0).contains_key("notify_url"));
    }

    #[test]
    fn a_refund_without_a_fund_change_asks_the_refund_query() {
        let accepted = || {
            answer(
                METHOD_REFUND,
                json!({"code": "10000", "trade_no": TRADE_NO, "fund_change": "N"}),
            )
        };
        let env = FakeEnv::new(vec![
            accepted(),
            answer(METHOD_REFUND_QUERY, refund_queried(Some("REFUND_SUCCESS"))),
        ]);
        let result = refund(&env, &refund_request()).unwrap();
        assert_eq!(result.status, RefundStatus::Succeeded);
        assert_eq!(minor(&result.amount), Some((500, "CNY", 2)));
        assert_eq!(env.sent_methods(), [METHOD_REFUND, METHOD_REFUND_QUERY]);
        assert_eq!(
            env.sent_biz(1),
            json!({"out_trade_no": PAYMENT_ID, "out_request_no": REFUND_ID})
        );
        // Accepted, and the query says nothing usable: at least pending, never unknown.
        let env = FakeEnv::new(vec![
            accepted(),
            answer_signed(
                METHOD_REFUND_QUERY,
                refund_queried(Some("REFUND_SUCCESS")),
                Signing::Forged,
            ),
        ]);
        assert_eq!(
            refund(&env, &refund_request()).unwrap().status,
            RefundStatus::Pending
        );
    }

    #[test]
    fn refund_errors_follow_the_documented_mapping() {
        let run = |scripted: Scripted| {
            let env = FakeEnv::new(vec![scripted]);
            refund(&env, &refund_request())
        };
        let (code, message) = declined(run(answer(
            METHOD_REFUND,
            failure("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足"),
        )));
        assert_eq!(code, "provider_declined");
        assert!(message.starts_with("ACQ.SELLER_BALANCE_NOT_ENOUGH"));
        unknown(run(answer(METHOD_REFUND, failure("ACQ.SYSTEM_ERROR", "x"))));
        unknown(run(Scripted::Fail(http::Error::Timeout)));
        unknown(run(raw(200, "not json")));
        // An amount Alipay cannot take is never sent.
        let env = FakeEnv::new(vec![]);
        let mut request = refund_request();
        request.amount = cny(0);
        assert!(invalid(refund(&env, &request)).contains("positive"));
        assert!(env.sent.borrow().is_empty());
    }

    #[test]
    fn query_refund_reads_this_refunds_state() {
        let run = |node: Value| {
            let env = FakeEnv::new(vec![answer(METHOD_REFUND_QUERY, node)]);
            query_refund(&env, &refund_ref())
        };
        let done = run(refund_queried(Some("REFUND_SUCCESS"))).unwrap();
        assert_eq!(done.status, RefundStatus::Succeeded);
        assert_eq!(minor(&done.amount), Some((500, "CNY", 2)));
        assert_eq!(
            run(refund_queried(None)).unwrap().status,
            RefundStatus::Pending
        );
        // About another refund: not believed.
        let mut other = refund_queried(Some("REFUND_SUCCESS"));
        other["out_request_no"] = "re_other".into();
        assert!(unavailable(run(other)).contains("re_other"));
    }

    // --- onboarding ----------------------------------------------------------------------

    #[test]
    fn onboarding_submits_the_application_then_reads_its_orders() {
        let env = FakeEnv::new(vec![
            answer(
                onboarding::METHOD_ZFT_CREATE,
                json!({"code": "10000", "msg": "Success", "order_id": ORDER_ID}),
            ),
            answer(
                onboarding::METHOD_ZFT_ORDER_QUERY,
                json!({"code": "10000", "orders": [{
                    "order_id": ORDER_ID, "external_id": ACTIVATION_ID,
                    "apply_type": "ZHIFUTONG_CREATE", "status": "99", "smid": SMID,
                    "apply_time": "2024-03-14 23:50:00"}]}),
            ),
        ]);
        let submitted = onboard(&env, &onboarding_request()).unwrap();
        assert_eq!(submitted.status, OnboardingStatus::Submitted);
        assert_eq!(submitted.provider_reference.as_deref(), Some(ORDER_ID));
        let biz = env.sent_biz(0);
        assert_eq!(biz["external_id"], ACTIVATION_ID);
        assert_eq!(biz["cert_no"], "91330100MA2AXXXX1X");
        let active = query_onboarding(&env, &onboarding_ref()).unwrap();
        assert_eq!(active.status, OnboardingStatus::Active);
        assert_eq!(active.provider_reference.as_deref(), Some(SMID));
        assert_eq!(env.sent_biz(1), json!({"external_id": ACTIVATION_ID}));
        assert_eq!(
            env.sent_methods(),
            [
                onboarding::METHOD_ZFT_CREATE,
                onboarding::METHOD_ZFT_ORDER_QUERY
            ]
        );
        // Bad materials never leave.
        let env = FakeEnv::new(vec![]);
        let mut request = onboarding_request();
        request.materials_json = "{}".into();
        invalid(onboard(&env, &request));
        assert!(env.sent.borrow().is_empty());
    }

    #[test]
    fn binding_changes_the_settlement_card_then_reads_its_order() {
        let env = FakeEnv::new(vec![
            answer(
                onboarding::METHOD_SETTLEMENT_MODIFY,
                json!({"code": "10000", "order_id": ORDER_ID, "verify_type": "REMITTANCE",
                       "verify_amount": "0.37", "verify_payee_account_no": "2088000000000001"}),
            ),
            answer(
                onboarding::METHOD_ORDER_QUERY,
                json!({"code": "10000", "order_id": ORDER_ID,
                       "out_biz_no": BANK_ACCOUNT_ID, "status": "99"}),
            ),
        ]);
        let pending = bind_account(&env, &binding_request()).unwrap();
        assert_eq!(pending.status, BindingStatus::PendingVerification);
        assert_eq!(pending.provider_reference.as_deref(), Some(ORDER_ID));
        let step: Value =
            serde_json::from_str(pending.verification_json.as_deref().unwrap()).unwrap();
        assert_eq!(step["amount"], "0.37");
        let biz = env.sent_biz(0);
        assert_eq!(biz["out_biz_no"], BANK_ACCOUNT_ID);
        assert_eq!(biz["smid"], SMID);
        assert_eq!(biz["biz_cards"]["account_no"], "6222021234567890");
        let verified = query_binding(&env, &binding_ref(Some(ORDER_ID))).unwrap();
        assert_eq!(verified.status, BindingStatus::Verified);
        assert_eq!(
            env.sent_biz(1),
            json!({"order_id": ORDER_ID, "out_biz_no": BANK_ACCOUNT_ID})
        );
    }
}
