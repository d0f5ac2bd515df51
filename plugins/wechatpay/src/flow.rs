//! The flow (the Hyperswitch connector file of this plugin): which endpoint each operation
//! calls, in which order, with which headers, how requests are signed and how answers are
//! authenticated before `transform` reads them.
//!
//! Invariant: no answer is interpreted before its `Wechatpay-Signature` verifies with the
//! merchant's `wechatpay_public_key`, under the configured `Wechatpay-Serial` and within
//! five minutes of our clock. An answer that does not verify is never read: for a call
//! that may have had an effect it is an unknown outcome (the gateway queries), for a query
//! it is unavailable (ask again).

use std::cell::Cell;

use paygate_plugin_api::{
    CreatePaymentRequest, Method, PaymentRef, PaymentResult, PaymentStatus, ProviderError,
    RefundRef, RefundRequest, RefundResult, http,
};

use crate::auth::{self, SignatureError, SignedHeaders};
use crate::env::Env;
use crate::settings::{Settings, key_names};
use crate::transform::{
    self, Answer, Call, Ended, ExpectedOrder, ExpectedRefund, RefundParams, Trade, TradeState,
    paths,
};

/// Sent on every request (WeChat Pay asks for a User-Agent).
pub const USER_AGENT: &str = concat!("paygate-plugin-wechatpay/", env!("CARGO_PKG_VERSION"));

/// Signs, sends and authenticates the requests of one call.
pub struct Client<'a, E: Env> {
    env: &'a E,
    settings: &'a Settings,
    /// Our payment or refund id: the seed of the request nonces.
    seed: &'a str,
    /// How many requests this call has sent (part of each nonce).
    sent: Cell<u32>,
}

impl<'a, E: Env> Client<'a, E> {
    pub fn new(env: &'a E, settings: &'a Settings, seed: &'a str) -> Client<'a, E> {
        Client {
            env,
            settings,
            seed,
            sent: Cell::new(0),
        }
    }

    /// Sends one signed request and returns the answer once its signature verifies.
    pub fn send(
        &self,
        call: Call,
        method: &str,
        path_and_query: &str,
        body: Option<&str>,
    ) -> Result<http::Response, ProviderError> {
        let request = self.signed_request(method, path_and_query, body)?;
        let response = self
            .env
            .send(&request)
            .map_err(|e| transform::transport_error(call, e))?;
        self.authenticate(call, &response)?;
        Ok(response)
    }

    /// The request with its `Authorization` header: SHA256withRSA with
    /// `merchant_private_key` over `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`.
    pub fn signed_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&str>,
    ) -> Result<http::Request, ProviderError> {
        let now_millis = self.env.now_millis();
        let timestamp = now_millis / 1000;
        let number = self.sent.get();
        self.sent.set(number.wrapping_add(1));
        let nonce = auth::nonce_str(self.seed, now_millis, number);
        let message = auth::request_message(
            method,
            &self.settings.signed_path(path_and_query),
            timestamp,
            &nonce,
            body.unwrap_or(""),
        );
        let signature = self
            .env
            .sign(key_names::MERCHANT_PRIVATE_KEY, message.as_bytes())
            .map_err(|e| {
                ProviderError::InvalidRequest(format!(
                    "wechatpay: cannot sign with key {}: {e:?}",
                    key_names::MERCHANT_PRIVATE_KEY
                ))
            })?;
        let authorization = auth::authorization(
            &self.settings.mchid,
            &nonce,
            &signature,
            timestamp,
            &self.settings.merchant_serial_no,
        );
        let mut request = http::Request::new(method, &self.settings.url(path_and_query))
            .header("Authorization", &authorization)
            .header("Accept", "application/json")
            .header("User-Agent", USER_AGENT);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.as_bytes().to_vec());
        }
        Ok(request)
    }

    fn authenticate(&self, call: Call, response: &http::Response) -> Result<(), ProviderError> {
        let untrusted = |error: SignatureError| {
            self.env.warn(&format!(
                "wechatpay {}: HTTP {} answer not trusted: {error}",
                call.name(),
                response.status
            ));
            transform::uncertain(
                call,
                format!("HTTP {} answer not trusted: {error}", response.status),
            )
        };
        let signed = SignedHeaders::from_headers(
            &response.headers,
            &self.settings.wechatpay_public_key_id,
            self.env.now_millis(),
        )
        .map_err(untrusted)?;
        match self.env.verify(
            key_names::WECHATPAY_PUBLIC_KEY,
            &signed.message(&response.body),
            &signed.signature,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(untrusted(SignatureError::Invalid)),
            Err(e) => Err(untrusted(SignatureError::Key(format!("{e:?}")))),
        }
    }
}

fn answer(response: &http::Response) -> Answer<'_> {
    Answer {
        status: response.status,
        body: &response.body,
    }
}

/// `create-payment`: `qr` and `link` place a Native order and answer pending with its
/// `code_url`; `barcode` charges the payer's payment code.
pub fn create_payment(
    env: &impl Env,
    request: &CreatePaymentRequest,
) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::parse(&request.merchant.settings_json)?;
    let client = Client::new(env, &settings, &request.payment_id);
    match request.method {
        Method::Qr | Method::Link => {
            let body = transform::native_order(&settings, request, env.now_millis())?;
            let response = client.send(Call::NativeOrder, "POST", paths::NATIVE, Some(&body))?;
            transform::interpret_native(answer(&response))
        }
        Method::Barcode => {
            let body = transform::codepay_order(&settings, request)?;
            let total = transform::fen(&request.amount)?;
            let response = client.send(Call::Codepay, "POST", paths::CODEPAY, Some(&body))?;
            let expected = expected_order(&settings, &request.payment_id, total);
            transform::interpret_codepay(answer(&response), &expected)
        }
    }
}

fn expected_order<'a>(
    settings: &'a Settings,
    out_trade_no: &'a str,
    total: i64,
) -> ExpectedOrder<'a> {
    ExpectedOrder {
        mchid: &settings.mchid,
        appid: &settings.appid,
        out_trade_no,
        total: Some(total),
    }
}

/// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=...`: the order, or `None`
/// when WeChat Pay has none under that number.
fn query(
    client: &Client<'_, impl Env>,
    settings: &Settings,
    payment: &PaymentRef,
) -> Result<Option<Trade>, ProviderError> {
    transform::check_out_trade_no(&payment.payment_id)?;
    let total = transform::fen(&payment.amount)?;
    let response = client.send(
        Call::QueryPayment,
        "GET",
        &paths::query(&payment.payment_id, &settings.mchid),
        None,
    )?;
    let expected = expected_order(settings, &payment.payment_id, total);
    transform::interpret_query(answer(&response), &expected)
}

/// `query-payment`: the order's `trade_state` as our status. An order WeChat Pay does not
/// have is `unavailable`: nothing was charged under its number, and the gateway may send
/// the payment again under the same number.
pub fn query_payment(env: &impl Env, payment: &PaymentRef) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::parse(&payment.merchant.settings_json)?;
    let client = Client::new(env, &settings, &payment.payment_id);
    match query(&client, &settings, payment)? {
        Some(trade) => Ok(trade.result()),
        None => Err(transform::order_not_found(&payment.payment_id)),
    }
}

/// `cancel-payment`, safely: query first, and
/// - `NOTPAY` (Native): close it; `NOTPAY` / `USERPAYING` (payment code): reverse it;
///   either way it is cancelled;
/// - already `CLOSED` / `REVOKED`, or no such order: cancelled (nothing can be charged);
/// - `SUCCESS` / `REFUND`: succeeded (a paid order is never reversed here);
/// - `PAYERROR`: failed; `ACCEPT` (debit in progress): pending, ask again later.
///
/// If the close or reverse is refused because the order got paid in between, the order
/// is queried again and its state reported.
pub fn cancel_payment(
    env: &impl Env,
    payment: &PaymentRef,
) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::parse(&payment.merchant.settings_json)?;
    let client = Client::new(env, &settings, &payment.payment_id);
    let Some(trade) = query(&client, &settings, payment)? else {
        return Ok(PaymentResult::with_status(PaymentStatus::Cancelled));
    };
    if !matches!(trade.state, TradeState::NotPay | TradeState::UserPaying) {
        return Ok(trade.result());
    }
    let (call, path, body) = if trade.is_payment_code_order() {
        (
            Call::Reverse,
            paths::reverse(&payment.payment_id),
            transform::reverse_order(&settings)?,
        )
    } else {
        (
            Call::Close,
            paths::close(&payment.payment_id),
            transform::close_order(&settings)?,
        )
    };
    let response = client.send(call, "POST", &path, Some(&body))?;
    match transform::interpret_end(call, answer(&response))? {
        Ended::Cancelled => Ok(PaymentResult {
            provider_reference: trade.transaction_id,
            ..PaymentResult::with_status(PaymentStatus::Cancelled)
        }),
        Ended::Paid => match query(&client, &settings, payment)? {
            Some(trade) => Ok(trade.result()),
            None => Err(transform::uncertain(
                call,
                "refused as paid, but the order is not found",
            )),
        },
    }
}

/// `refund`: `POST /v3/refund/domestic/refunds` with `out_refund_no` = our refund id and
/// `amount.total` = the payment's amount.
pub fn refund(env: &impl Env, request: &RefundRequest) -> Result<RefundResult, ProviderError> {
    let merchant = &request.payment.merchant;
    let settings = Settings::parse(&merchant.settings_json)?;
    let params = RefundParams {
        refund_id: &request.refund_id,
        payment_id: &request.payment.payment_id,
        refund: &request.amount,
        total: &request.payment.amount,
        reason: request.reason.as_deref(),
        notify_url: &merchant.notify_url,
    };
    let body = transform::refund_order(&params)?;
    let amounts = params.fen()?;
    let client = Client::new(env, &settings, &request.refund_id);
    let response = client.send(Call::Refund, "POST", paths::REFUNDS, Some(&body))?;
    let expected = ExpectedRefund {
        mchid: &settings.mchid,
        out_refund_no: &request.refund_id,
        out_trade_no: &request.payment.payment_id,
        amounts: Some(amounts),
    };
    transform::interpret_refund(Call::Refund, answer(&response), &expected)
}

/// `query-refund`: `GET /v3/refund/domestic/refunds/{out_refund_no}`.
pub fn query_refund(env: &impl Env, refund: &RefundRef) -> Result<RefundResult, ProviderError> {
    let settings = Settings::parse(&refund.payment.merchant.settings_json)?;
    transform::check_out_refund_no(&refund.refund_id)?;
    let params = RefundParams {
        refund_id: &refund.refund_id,
        payment_id: &refund.payment.payment_id,
        refund: &refund.amount,
        total: &refund.payment.amount,
        reason: None,
        notify_url: "",
    };
    let amounts = params.fen()?;
    let client = Client::new(env, &settings, &refund.refund_id);
    let response = client.send(
        Call::QueryRefund,
        "GET",
        &paths::refund(&refund.refund_id),
        None,
    )?;
    let expected = ExpectedRefund {
        mchid: &settings.mchid,
        out_refund_no: &refund.refund_id,
        out_trade_no: &refund.payment.payment_id,
        amounts: Some(amounts),
    };
    transform::interpret_refund(Call::QueryRefund, answer(&response), &expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use paygate_plugin_api::{Method, RefundStatus};
    use serde_json::{Value, json};

    const BASE: &str = "http://127.0.0.1:8430/wechatpay";

    fn order(state: &str, trade_type: &str) -> Value {
        json!({
            "appid": APPID,
            "mchid": MCHID,
            "out_trade_no": PAYMENT_ID,
            "transaction_id": "4200000000202403140000000001",
            "trade_type": trade_type,
            "trade_state": state,
            "trade_state_desc": "",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": 1250, "payer_total": 1250, "currency": "CNY", "payer_currency": "CNY"},
        })
    }

    fn refund_answer(status: &str) -> Value {
        json!({
            "refund_id": "50000000382019052709732678859",
            "out_refund_no": REFUND_ID,
            "transaction_id": "4200000000202403140000000001",
            "out_trade_no": PAYMENT_ID,
            "channel": "ORIGINAL",
            "status": status,
            "amount": {"total": 1250, "refund": 500, "payer_total": 1250, "payer_refund": 500, "currency": "CNY"},
        })
    }

    fn refund_request() -> RefundRequest {
        RefundRequest {
            refund_id: REFUND_ID.into(),
            payment: payment_ref(),
            amount: cny(500),
            reason: Some("damaged".into()),
        }
    }

    fn refund_ref() -> RefundRef {
        RefundRef {
            refund_id: REFUND_ID.into(),
            payment: payment_ref(),
            amount: cny(500),
            provider_reference: None,
        }
    }

    fn declined_code(error: ProviderError) -> String {
        match error {
            ProviderError::Declined(d) => d.code,
            other => panic!("expected a decline, got {other:?}"),
        }
    }

    #[test]
    fn a_qr_payment_is_a_signed_native_order_pending_with_its_code_url() {
        let env = FakeEnv::new(vec![reply(
            200,
            json!({"code_url": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}),
        )]);
        let result = create_payment(&env, &create(Method::Qr)).unwrap();
        assert_eq!(result.status, PaymentStatus::Pending);
        assert_eq!(
            result.qr_code.as_deref(),
            Some("weixin://wxpay/bizpayurl?pr=p4lpSuKzz")
        );
        assert_eq!(
            env.sent_lines(),
            [format!("POST {BASE}/v3/pay/transactions/native")]
        );
        let body = env.sent_json(0);
        assert_eq!(body["out_trade_no"], PAYMENT_ID);
        assert_eq!(body["amount"], json!({"total": 1250, "currency": "CNY"}));
        // NOW_MILLIS is 2024-03-14T15:50:00Z; +900 s is 00:05 on the 15th in Beijing.
        assert_eq!(body["time_expire"], "2024-03-15T00:05:00+08:00");
        assert_eq!(body["notify_url"], NOTIFY_URL);
    }

    #[test]
    fn a_link_payment_is_a_native_order_too() {
        let env = FakeEnv::new(vec![reply(200, json!({"code_url": "weixin://x"}))]);
        let result = create_payment(&env, &create(Method::Link)).unwrap();
        assert_eq!(result.qr_code.as_deref(), Some("weixin://x"));
        assert!(env.sent_lines()[0].ends_with("/v3/pay/transactions/native"));
    }

    #[test]
    fn a_barcode_payment_charges_the_payment_code() {
        let env = FakeEnv::new(vec![reply(200, order("SUCCESS", "MICROPAY"))]);
        let result = create_payment(&env, &create(Method::Barcode)).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(
            result.provider_reference.as_deref(),
            Some("4200000000202403140000000001")
        );
        assert_eq!(
            result.payer.as_deref(),
            Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        );
        assert_eq!(
            env.sent_lines(),
            [format!("POST {BASE}/v3/pay/transactions/codepay")]
        );
        let body = env.sent_json(0);
        assert_eq!(body["payer"]["auth_code"], "134567890123456789");
        assert_eq!(body["scene_info"]["device_id"], "till-7");
    }

    #[test]
    fn barcode_outcomes_follow_the_documented_mapping() {
        let run = |scripted: Scripted| {
            let env = FakeEnv::new(vec![scripted]);
            create_payment(&env, &create(Method::Barcode))
        };
        let pending = run(reply(202, error_body("USERPAYING", "需要用户输入支付密码"))).unwrap();
        assert_eq!(pending.status, PaymentStatus::Pending);
        assert_eq!(
            declined_code(run(reply(403, error_body("NOT_ENOUGH", "余额不足"))).unwrap_err()),
            "insufficient_funds"
        );
        assert_eq!(
            declined_code(
                run(reply(403, error_body("AUTH_CODE_EXPIRE", "条码已过期"))).unwrap_err()
            ),
            "auth_code_expired"
        );
        assert_eq!(
            declined_code(run(reply(400, error_body("AUTH_CODE_INVALID", "x"))).unwrap_err()),
            "auth_code_invalid"
        );
        assert!(matches!(
            run(reply(500, error_body("SYSTEM_ERROR", "系统繁忙"))).unwrap_err(),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            run(Scripted::Fail(http::Error::Timeout)).unwrap_err(),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            run(Scripted::Fail(http::Error::Connection("refused".into()))).unwrap_err(),
            ProviderError::Unavailable(_)
        ));
    }

    #[test]
    fn an_answer_that_does_not_verify_is_never_read() {
        for signing in [
            Signing::Forged,
            Signing::WrongSerial,
            Signing::Stale,
            Signing::Unsigned,
        ] {
            // Money-moving: unknown outcome, whatever the body claims.
            let env = FakeEnv::new(vec![reply_signed(
                403,
                error_body("NOT_ENOUGH", "forged decline"),
                signing,
            )]);
            assert!(
                matches!(
                    create_payment(&env, &create(Method::Barcode)),
                    Err(ProviderError::UnknownOutcome(_))
                ),
                "{signing:?}"
            );
            assert_eq!(env.warnings.borrow().len(), 1, "{signing:?}");
            let env = FakeEnv::new(vec![reply_signed(200, refund_answer("SUCCESS"), signing)]);
            assert!(matches!(
                refund(&env, &refund_request()),
                Err(ProviderError::UnknownOutcome(_))
            ));
            // A query: nothing is known, ask again.
            let env = FakeEnv::new(vec![reply_signed(200, order("SUCCESS", "NATIVE"), signing)]);
            assert!(matches!(
                query_payment(&env, &payment_ref()),
                Err(ProviderError::Unavailable(_))
            ));
        }
    }

    #[test]
    fn nothing_is_sent_when_the_request_cannot_be_right() {
        let env = FakeEnv::new(vec![]);
        let mut request = create(Method::Barcode);
        request.auth_code = Some("280000000000000000".into());
        assert_eq!(
            declined_code(create_payment(&env, &request).unwrap_err()),
            "auth_code_invalid"
        );
        let mut request = create(Method::Qr);
        request.amount.currency = "USD".into();
        assert!(matches!(
            create_payment(&env, &request),
            Err(ProviderError::InvalidRequest(_))
        ));
        let mut request = create(Method::Qr);
        request.merchant.settings_json = "{\"mchid\": 5}".into();
        assert!(matches!(
            create_payment(&env, &request),
            Err(ProviderError::InvalidRequest(_))
        ));
        env.has_merchant_key.set(false);
        assert!(matches!(
            create_payment(&env, &create(Method::Qr)),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(env.sent.borrow().is_empty());
    }

    #[test]
    fn a_query_reads_the_trade_state() {
        let env = FakeEnv::new(vec![reply(200, order("SUCCESS", "NATIVE"))]);
        let result = query_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(
            env.sent_lines(),
            [format!(
                "GET {BASE}/v3/pay/transactions/out-trade-no/{PAYMENT_ID}?mchid={MCHID}"
            )]
        );
        assert!(env.sent.borrow()[0].body.is_empty());
        let env = FakeEnv::new(vec![reply(200, order("CLOSED", "NATIVE"))]);
        assert_eq!(
            query_payment(&env, &payment_ref()).unwrap().status,
            PaymentStatus::Cancelled
        );
    }

    #[test]
    fn a_query_for_an_order_wechat_pay_does_not_have_is_unavailable() {
        let env = FakeEnv::new(vec![reply(
            404,
            error_body("ORDER_NOT_EXIST", "订单不存在"),
        )]);
        assert!(matches!(
            query_payment(&env, &payment_ref()),
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn cancelling_an_unpaid_native_order_queries_then_closes_it() {
        let env = FakeEnv::new(vec![
            reply(200, order("NOTPAY", "NATIVE")),
            reply(204, Value::Null),
        ]);
        let result = cancel_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Cancelled);
        assert_eq!(
            env.sent_lines(),
            [
                format!("GET {BASE}/v3/pay/transactions/out-trade-no/{PAYMENT_ID}?mchid={MCHID}"),
                format!("POST {BASE}/v3/pay/transactions/out-trade-no/{PAYMENT_ID}/close"),
            ]
        );
        assert_eq!(env.sent_json(1), json!({"mchid": MCHID}));
        // Two requests in the same millisecond still get different nonces.
        let sent = env.sent.borrow();
        let auth = |n: usize| sent[n].headers[0].1.clone();
        let nonce = |a: &str| a.split("nonce_str=\"").nth(1).unwrap()[..32].to_owned();
        assert_ne!(nonce(&auth(0)), nonce(&auth(1)));
    }

    #[test]
    fn cancelling_a_paying_barcode_order_reverses_it() {
        let env = FakeEnv::new(vec![
            reply(200, order("USERPAYING", "MICROPAY")),
            reply(
                200,
                json!({"appid": APPID, "mchid": MCHID, "out_trade_no": PAYMENT_ID}),
            ),
        ]);
        let result = cancel_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Cancelled);
        assert_eq!(
            env.sent_lines()[1],
            format!("POST {BASE}/v3/pay/transactions/out-trade-no/{PAYMENT_ID}/reverse")
        );
        assert_eq!(env.sent_json(1), json!({"appid": APPID, "mchid": MCHID}));
    }

    #[test]
    fn a_paid_order_is_reported_never_reversed() {
        for state in ["SUCCESS", "REFUND"] {
            let env = FakeEnv::new(vec![reply(200, order(state, "MICROPAY"))]);
            let result = cancel_payment(&env, &payment_ref()).unwrap();
            assert_eq!(result.status, PaymentStatus::Succeeded);
            assert_eq!(env.sent.borrow().len(), 1, "only the query");
        }
    }

    #[test]
    fn cancelling_ended_or_missing_orders_sends_nothing_more() {
        for (scripted, expected) in [
            (
                reply(200, order("CLOSED", "NATIVE")),
                PaymentStatus::Cancelled,
            ),
            (
                reply(200, order("REVOKED", "MICROPAY")),
                PaymentStatus::Cancelled,
            ),
            (
                reply(200, order("PAYERROR", "MICROPAY")),
                PaymentStatus::Failed,
            ),
            (
                reply(200, order("ACCEPT", "NATIVE")),
                PaymentStatus::Pending,
            ),
            (
                reply(404, error_body("ORDER_NOT_EXIST", "订单不存在")),
                PaymentStatus::Cancelled,
            ),
        ] {
            let env = FakeEnv::new(vec![scripted]);
            assert_eq!(
                cancel_payment(&env, &payment_ref()).unwrap().status,
                expected
            );
            assert_eq!(env.sent.borrow().len(), 1);
        }
    }

    #[test]
    fn an_order_paid_while_closing_is_queried_again() {
        let env = FakeEnv::new(vec![
            reply(200, order("NOTPAY", "NATIVE")),
            reply(400, error_body("ORDER_PAID", "订单已支付")),
            reply(200, order("SUCCESS", "NATIVE")),
        ]);
        let result = cancel_payment(&env, &payment_ref()).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(env.sent.borrow().len(), 3);
    }

    #[test]
    fn a_close_that_fails_is_an_unknown_outcome() {
        let env = FakeEnv::new(vec![
            reply(200, order("NOTPAY", "NATIVE")),
            reply(500, error_body("SYSTEM_ERROR", "系统繁忙")),
        ]);
        assert!(matches!(
            cancel_payment(&env, &payment_ref()),
            Err(ProviderError::UnknownOutcome(_))
        ));
        let env = FakeEnv::new(vec![
            reply(200, order("NOTPAY", "NATIVE")),
            reply_signed(204, Value::Null, Signing::Forged),
        ]);
        assert!(matches!(
            cancel_payment(&env, &payment_ref()),
            Err(ProviderError::UnknownOutcome(_))
        ));
    }

    #[test]
    fn a_refund_sends_our_refund_id_and_the_payments_total() {
        let env = FakeEnv::new(vec![reply(200, refund_answer("PROCESSING"))]);
        let result = refund(&env, &refund_request()).unwrap();
        assert_eq!(result.status, RefundStatus::Pending);
        assert_eq!(
            result.provider_reference.as_deref(),
            Some("50000000382019052709732678859")
        );
        assert_eq!(
            env.sent_lines(),
            [format!("POST {BASE}/v3/refund/domestic/refunds")]
        );
        assert_eq!(
            env.sent_json(0),
            json!({
                "out_trade_no": PAYMENT_ID,
                "out_refund_no": REFUND_ID,
                "reason": "damaged",
                "notify_url": NOTIFY_URL,
                "amount": {"refund": 500, "total": 1250, "currency": "CNY"},
            })
        );
        let env = FakeEnv::new(vec![reply(200, refund_answer("SUCCESS"))]);
        assert_eq!(
            refund(&env, &refund_request()).unwrap().status,
            RefundStatus::Succeeded
        );
    }

    #[test]
    fn refund_errors_follow_the_documented_mapping() {
        let run = |scripted: Scripted| {
            let env = FakeEnv::new(vec![scripted]);
            refund(&env, &refund_request())
        };
        assert_eq!(
            declined_code(run(reply(403, error_body("NOT_ENOUGH", "余额不足"))).unwrap_err()),
            "insufficient_funds"
        );
        assert!(matches!(
            run(reply(500, error_body("SYSTEM_ERROR", "x"))).unwrap_err(),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            run(Scripted::Fail(http::Error::Timeout)).unwrap_err(),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            run(reply(
                400,
                error_body("INVALID_REQUEST", "退款金额超过订单金额")
            ))
            .unwrap_err(),
            ProviderError::InvalidRequest(_)
        ));
        let env = FakeEnv::new(vec![]);
        let mut too_much = refund_request();
        too_much.amount = cny(1251);
        assert!(refund(&env, &too_much).is_err());
        assert!(env.sent.borrow().is_empty());
    }

    #[test]
    fn a_refund_query_reads_the_status() {
        let env = FakeEnv::new(vec![reply(200, refund_answer("ABNORMAL"))]);
        let result = query_refund(&env, &refund_ref()).unwrap();
        assert_eq!(result.status, RefundStatus::Failed);
        assert_eq!(result.failure.unwrap().code, "provider_declined");
        assert_eq!(
            env.sent_lines(),
            [format!("GET {BASE}/v3/refund/domestic/refunds/{REFUND_ID}")]
        );
        let env = FakeEnv::new(vec![reply(
            404,
            error_body("RESOURCE_NOT_EXISTS", "退款单不存在"),
        )]);
        assert!(matches!(
            query_refund(&env, &refund_ref()),
            Err(ProviderError::Unavailable(_))
        ));
    }
}
