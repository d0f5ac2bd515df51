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
    BindingRef, BindingRequest, BindingResult, BindingStatus, CreatePaymentRequest, Method,
    OnboardingRef, OnboardingRequest, OnboardingResult, PaymentRef, PaymentResult, PaymentStatus,
    ProviderError, RefundRef, RefundRequest, RefundResult, http,
};

use crate::auth::{self, SignatureError, SignedHeaders};
use crate::env::Env;
use crate::media;
use crate::onboarding::{self, Applyment, ApplymentState, Submitted};
use crate::payee::{self, Payee};
use crate::settings::{Settings, key_names};
use crate::transform::{
    self, Answer, Call, Ended, ExpectedOrder, ExpectedRefund, RefundParams, Trade, TradeState,
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
        let request = self.build_request(method, path_and_query, body, false)?;
        self.exchange(call, &request)
    }

    /// Like `send`, for a request whose body has fields sealed under WeChat Pay's public
    /// key: it also carries `Wechatpay-Serial: {wechatpay_public_key_id}`, the key they are
    /// sealed with.
    pub fn send_sensitive(
        &self,
        call: Call,
        path_and_query: &str,
        body: &str,
    ) -> Result<http::Response, ProviderError> {
        let request = self.build_request("POST", path_and_query, Some(body), true)?;
        self.exchange(call, &request)
    }

    /// Uploads an image (`POST`, a multipart form): the signature covers the form's `meta`
    /// part, as WeChat Pay's media upload defines.
    pub fn send_upload(
        &self,
        call: Call,
        path: &str,
        upload: media::Upload,
    ) -> Result<http::Response, ProviderError> {
        let request = self
            .signed_over("POST", path, &upload.meta, false)?
            .header("Content-Type", &upload.content_type)
            .body(upload.body);
        self.exchange(call, &request)
    }

    fn exchange(
        &self,
        call: Call,
        request: &http::Request,
    ) -> Result<http::Response, ProviderError> {
        let response = self
            .env
            .send(request)
            .map_err(|e| transform::transport_error(call, e))?;
        self.authenticate(call, &response)?;
        Ok(response)
    }

    /// The request with its `Authorization` header: SHA256withRSA with
    /// `merchant_private_key` over `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`.
    #[cfg(test)]
    pub fn signed_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&str>,
    ) -> Result<http::Request, ProviderError> {
        self.build_request(method, path_and_query, body, false)
    }

    fn build_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&str>,
        sensitive: bool,
    ) -> Result<http::Request, ProviderError> {
        let request = self.signed_over(method, path_and_query, body.unwrap_or(""), sensitive)?;
        Ok(match body {
            Some(body) => request
                .header("Content-Type", "application/json")
                .body(body.as_bytes().to_vec()),
            None => request,
        })
    }

    /// GETs `url`, a download link WeChat Pay gave (a bill's), signed over its path and
    /// query like any call. The answer is not authenticated: WeChat Pay does not sign
    /// downloads; the caller checks the digest it stated for the file.
    pub fn download(&self, call: Call, url: &str) -> Result<http::Response, ProviderError> {
        let path = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .filter(|path| url.bytes().all(|b| b.is_ascii_graphic()) && !path.is_empty())
            .ok_or_else(|| {
                transform::uncertain(call, format!("the download link {url:?} is not a URL"))
            })?;
        let request = self.signed_to("GET", url.to_owned(), path.to_owned(), "", false)?;
        self.env
            .send(&request)
            .map_err(|e| transform::transport_error(call, e))
    }

    /// The request, without a body, with its `Authorization` over `signed` as the body.
    fn signed_over(
        &self,
        method: &str,
        path_and_query: &str,
        signed: &str,
        sensitive: bool,
    ) -> Result<http::Request, ProviderError> {
        self.signed_to(
            method,
            self.settings.url(path_and_query),
            self.settings.signed_path(path_and_query),
            signed,
            sensitive,
        )
    }

    /// A request to `url` with its `Authorization` over `signed_path` and `signed`.
    fn signed_to(
        &self,
        method: &str,
        url: String,
        signed_path: String,
        signed: &str,
        sensitive: bool,
    ) -> Result<http::Request, ProviderError> {
        let now_millis = self.env.now_millis();
        let timestamp = now_millis / 1000;
        let number = self.sent.get();
        self.sent.set(number.wrapping_add(1));
        let nonce = auth::nonce_str(self.seed, now_millis, number);
        let message = auth::request_message(method, &signed_path, timestamp, &nonce, signed);
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
        let mut request = http::Request::new(method, &url)
            .header("Authorization", &authorization)
            .header("Accept", "application/json")
            .header("User-Agent", USER_AGENT);
        if sensitive {
            request = request.header(auth::HEADER_SERIAL, &self.settings.wechatpay_public_key_id);
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
    let payee = Payee::of(&settings)?;
    let client = Client::new(env, &settings, &request.payment_id);
    match request.method {
        Method::Qr | Method::Link => {
            let body = transform::native_order(&payee, request, env.now_millis())?;
            let path = payee.native_path();
            let response = client.send(Call::NativeOrder, "POST", &path, Some(&body))?;
            transform::interpret_native(answer(&response))
        }
        Method::Barcode => {
            let body = transform::codepay_order(&settings, &payee, request)?;
            let total = transform::fen(&request.amount)?;
            let path = payee.codepay_path();
            let response = client.send(Call::Codepay, "POST", &path, Some(&body))?;
            let expected = ExpectedOrder {
                payee,
                out_trade_no: &request.payment_id,
                total: Some(total),
            };
            transform::interpret_codepay(answer(&response), &expected)
        }
        Method::WalletToken => Err(ProviderError::InvalidRequest(
            "WeChat Pay takes no wallet tokens (the host never sends one: info lists none)".into(),
        )),
    }
}

/// The order by our number (`Payee::query_path`), or `None` when WeChat Pay has none
/// under that number.
fn query(
    client: &Client<'_, impl Env>,
    payee: Payee<'_>,
    payment: &PaymentRef,
) -> Result<Option<Trade>, ProviderError> {
    transform::check_out_trade_no(&payment.payment_id)?;
    let total = transform::fen(&payment.amount)?;
    let response = client.send(
        Call::QueryPayment,
        "GET",
        &payee.query_path(&payment.payment_id),
        None,
    )?;
    let expected = ExpectedOrder {
        payee,
        out_trade_no: &payment.payment_id,
        total: Some(total),
    };
    transform::interpret_query(answer(&response), &expected)
}

/// The order and the payee it is under: for a sub-merchant, its own order, or else one its
/// service provider placed as its own before this merchant collected as a sub-merchant
/// (an order of an earlier release of this plugin: it must still be found, closed and
/// reported, or a payer could pay an order the gateway thinks cancelled).
fn find<'a>(
    client: &Client<'_, impl Env>,
    settings: &'a Settings,
    payee: Payee<'a>,
    payment: &PaymentRef,
) -> Result<Option<(Trade, Payee<'a>)>, ProviderError> {
    if let Some(trade) = query(client, payee, payment)? {
        return Ok(Some((trade, payee)));
    }
    if payee.sub_mchid().is_none() {
        return Ok(None);
    }
    let own = Payee::own(settings);
    Ok(query(client, own, payment)?.map(|trade| (trade, own)))
}

/// `query-payment`: the order's `trade_state` as our status. An order WeChat Pay does not
/// have is `unavailable`: nothing was charged under its number, and the gateway may send
/// the payment again under the same number.
pub fn query_payment(env: &impl Env, payment: &PaymentRef) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::parse(&payment.merchant.settings_json)?;
    let payee = Payee::of(&settings)?;
    let client = Client::new(env, &settings, &payment.payment_id);
    match find(&client, &settings, payee, payment)? {
        Some((trade, _)) => Ok(trade.result()),
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
    let payee = Payee::of(&settings)?;
    let client = Client::new(env, &settings, &payment.payment_id);
    let Some((trade, payee)) = find(&client, &settings, payee, payment)? else {
        return Ok(PaymentResult::with_status(PaymentStatus::Cancelled));
    };
    if !matches!(trade.state, TradeState::NotPay | TradeState::UserPaying) {
        return Ok(trade.result());
    }
    let (call, path, body) = if trade.is_payment_code_order() {
        (
            Call::Reverse,
            payee.reverse_path(&payment.payment_id),
            transform::reverse_order(&payee)?,
        )
    } else {
        (
            Call::Close,
            payee.close_path(&payment.payment_id),
            transform::close_order(&payee)?,
        )
    };
    let response = client.send(call, "POST", &path, Some(&body))?;
    match transform::interpret_end(call, answer(&response))? {
        Ended::Cancelled => Ok(PaymentResult {
            provider_reference: trade.transaction_id,
            amount: trade.total_fen.map(transform::money_of_fen),
            ..PaymentResult::with_status(PaymentStatus::Cancelled)
        }),
        Ended::Paid => match query(&client, payee, payment)? {
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
    let payee = Payee::of(&settings)?;
    let params = RefundParams {
        refund_id: &request.refund_id,
        payment_id: &request.payment.payment_id,
        refund: &request.amount,
        total: &request.payment.amount,
        reason: request.reason.as_deref(),
        notify_url: &merchant.notify_url,
        sub_mchid: payee.sub_mchid(),
    };
    let body = transform::refund_order(&params)?;
    let amounts = params.fen()?;
    let client = Client::new(env, &settings, &request.refund_id);
    let response = client.send(Call::Refund, "POST", payee::REFUNDS_PATH, Some(&body))?;
    let expected = ExpectedRefund {
        payee,
        out_refund_no: &request.refund_id,
        out_trade_no: &request.payment.payment_id,
        amounts: Some(amounts),
    };
    transform::interpret_refund(Call::Refund, answer(&response), &expected)
}

/// `query-refund`: `GET /v3/refund/domestic/refunds/{out_refund_no}` (`?sub_mchid=` for a
/// partner refund).
pub fn query_refund(env: &impl Env, refund: &RefundRef) -> Result<RefundResult, ProviderError> {
    let settings = Settings::parse(&refund.payment.merchant.settings_json)?;
    let payee = Payee::of(&settings)?;
    transform::check_out_refund_no(&refund.refund_id)?;
    let params = RefundParams {
        refund_id: &refund.refund_id,
        payment_id: &refund.payment.payment_id,
        refund: &refund.amount,
        total: &refund.payment.amount,
        reason: None,
        notify_url: "",
        sub_mchid: payee.sub_mchid(),
    };
    let amounts = params.fen()?;
    let client = Client::new(env, &settings, &refund.refund_id);
    let response = client.send(
        Call::QueryRefund,
        "GET",
        &payee.refund_query_path(&refund.refund_id),
        None,
    )?;
    let expected = ExpectedRefund {
        payee,
        out_refund_no: &refund.refund_id,
        out_trade_no: &refund.payment.payment_id,
        amounts: Some(amounts),
    };
    transform::interpret_refund(Call::QueryRefund, answer(&response), &expected)
}

// ---------------------------------------------------------------------------------------
// Onboarding: applyments (特约商户进件) and settlement accounts.
// ---------------------------------------------------------------------------------------

/// `GET /v3/applyment4sub/applyment/business_code/{business_code}`: the applyment, or
/// `None` when WeChat Pay has none under this business code.
fn query_applyment(
    client: &Client<'_, impl Env>,
    business_code: &str,
) -> Result<Option<Applyment>, ProviderError> {
    onboarding::check_business_code("activation id", business_code)?;
    let response = client.send(
        Call::QueryApplyment,
        "GET",
        &onboarding::paths::applyment(business_code),
        None,
    )?;
    onboarding::interpret_applyment(answer(&response), business_code)
}

/// Seals a sensitive field under WeChat Pay's public key (the host encrypts; the plugin
/// never holds the key), base64 as WeChat Pay takes it.
fn seal(env: &impl Env, text: &str) -> Result<String, ProviderError> {
    use base64::Engine as _;
    let sealed = env.encrypt(key_names::WECHATPAY_PUBLIC_KEY, text.as_bytes())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
}

/// Uploads one image; its media id.
fn upload(client: &Client<'_, impl Env>, image: &media::Image) -> Result<String, ProviderError> {
    let response = client.send_upload(Call::MediaUpload, media::PATH, media::upload(image))?;
    media::interpret_upload(answer(&response))
}

/// `onboard`: checks the materials are complete, uploads the images the applyment names
/// (`onboarding::needed_images`), then submits the applyment with `business_code` =
/// our activation id, naming them. Submitting again under the same id is safe: WeChat Pay
/// answers `PROCESSING` while the application is in progress (or done), and the plugin then
/// queries it and reports its state; after a rejection, the same business code resubmits
/// it. Everything is checked before the first request is sent.
pub fn onboard(
    env: &impl Env,
    request: &OnboardingRequest,
) -> Result<OnboardingResult, ProviderError> {
    let settings = Settings::parse(&request.merchant.settings_json)?;
    let materials = onboarding::Materials::parse(&request.materials_json)?;
    let documents = media::Documents::parse(&request.materials_json)?;
    onboarding::check_business_code("activation id", &request.activation_id)?;
    let complete = onboarding::check_complete(&materials, &documents)?;
    let client = Client::new(env, &settings, &request.activation_id);
    let mut media = media::MediaIds::default();
    for (key, why) in onboarding::needed_images(&materials) {
        let id = upload(&client, documents.get(&key, why)?)?;
        media.0.insert(key, id);
    }
    let body = onboarding::applyment(
        &settings,
        &request.activation_id,
        &complete,
        &media,
        &|text| seal(env, text),
    )?;
    let response = client.send_sensitive(Call::Applyment, onboarding::paths::APPLYMENT, &body)?;
    match onboarding::interpret_submit(answer(&response))? {
        Submitted::Applied(result) => Ok(result),
        Submitted::InProgress => match query_applyment(&client, &request.activation_id)? {
            Some(found) => Ok(found.result()),
            None => Err(transform::uncertain(
                Call::Applyment,
                "PROCESSING, but no application is found under this business code",
            )),
        },
    }
}

/// `query-onboarding`: the applyment's state under our activation id. An application
/// WeChat Pay does not have is `unavailable`: nothing was submitted under this business
/// code, and submitting it again is safe.
pub fn query_onboarding(
    env: &impl Env,
    application: &OnboardingRef,
) -> Result<OnboardingResult, ProviderError> {
    let settings = Settings::parse(&application.merchant.settings_json)?;
    let client = Client::new(env, &settings, &application.activation_id);
    match query_applyment(&client, &application.activation_id)? {
        Some(found) => Ok(found.result()),
        None => Err(ProviderError::Unavailable(format!(
            "wechatpay applyment query: WeChat Pay has no application {} (nothing was submitted under it)",
            application.activation_id
        ))),
    }
}

/// The sub-merchant whose settlement account a binding is about: the `sub_mchid` of the
/// applyment under the merchant's `activation_id` setting (queried: it must be finished),
/// or, without an `activation_id`, the `sub_mchid` / `sub_merchant_id` setting. When both
/// are given and differ, the applyment's wins (and it is logged).
fn sub_merchant(
    client: &Client<'_, impl Env>,
    settings: &Settings,
) -> Result<String, ProviderError> {
    let configured = settings.sub_mchid.as_deref();
    let Some(activation_id) = settings.activation_id.as_deref() else {
        return match configured {
            Some(s) if payee::is_sub_mchid(s) => Ok(s.to_owned()),
            Some(_) => Err(ProviderError::InvalidRequest(
                "wechatpay merchant settings: `sub_mchid` must be digits".into(),
            )),
            None => Err(ProviderError::InvalidRequest(
                "wechatpay: the merchant's settings have no activation_id (nor sub_mchid): no sub-merchant to bind an account to"
                    .into(),
            )),
        };
    };
    let Some(found) = query_applyment(client, activation_id)? else {
        return Err(ProviderError::InvalidRequest(format!(
            "wechatpay: WeChat Pay has no application {activation_id} (the activation_id setting)"
        )));
    };
    match found.state {
        ApplymentState::Finished => {
            let sub_mchid = found.sub_mchid.ok_or_else(|| {
                transform::uncertain(Call::QueryApplyment, "finished without sub_mchid")
            })?;
            if configured.is_some_and(|c| c != sub_mchid) {
                client.env.warn(&format!(
                    "wechatpay: the settings' sub-merchant is not application {activation_id}'s ({sub_mchid}); using the application's"
                ));
            }
            Ok(sub_mchid)
        }
        ApplymentState::Rejected | ApplymentState::Canceled => {
            Err(ProviderError::InvalidRequest(format!(
                "wechatpay: application {activation_id} was rejected or cancelled: there is no sub-merchant"
            )))
        }
        other => Err(ProviderError::Unavailable(format!(
            "wechatpay: application {activation_id} is not finished yet ({other:?}): bind the account once it is active"
        ))),
    }
}

/// `bind-account`: finds the sub-merchant, then `POST .../{sub_mchid}/modify-settlement`.
/// Pending verification with the change's `application_no` as `provider-reference`.
pub fn bind_account(
    env: &impl Env,
    request: &BindingRequest,
) -> Result<BindingResult, ProviderError> {
    let settings = Settings::parse(&request.merchant.settings_json)?;
    let body = onboarding::modify_settlement(&settings, request, &|text| seal(env, text))?;
    let client = Client::new(env, &settings, &request.bank_account_id);
    let sub_mchid = sub_merchant(&client, &settings)?;
    let response = client.send_sensitive(
        Call::ModifySettlement,
        &onboarding::paths::modify_settlement(&sub_mchid),
        &body,
    )?;
    onboarding::interpret_modify(answer(&response))
}

/// `query-binding`: finds the sub-merchant; with an `application_no` (our
/// `provider-reference`), queries the change: `AUDITING` pending, `AUDIT_FAIL` failed,
/// `AUDIT_SUCCESS` on to the account. Then queries the sub-merchant's current settlement
/// account: `VERIFYING` pending, `VERIFY_SUCCESS` verified, `VERIFY_FAIL` failed. A current
/// account that is not the changed one (their masked numbers differ) means a later change
/// replaced it before it was verified: failed.
pub fn query_binding(env: &impl Env, binding: &BindingRef) -> Result<BindingResult, ProviderError> {
    let settings = Settings::parse(&binding.merchant.settings_json)?;
    let reference = binding.provider_reference.clone().filter(|r| !r.is_empty());
    if reference
        .as_deref()
        .is_some_and(|r| !onboarding::is_application_no(r))
    {
        return Err(ProviderError::InvalidRequest(format!(
            "wechatpay: {:?} is not a settlement application_no",
            transform::clip(reference.as_deref().unwrap_or_default())
        )));
    }
    let client = Client::new(env, &settings, &binding.bank_account_id);
    let sub_mchid = sub_merchant(&client, &settings)?;
    let mut changed_to = None;
    if let Some(application_no) = reference.as_deref() {
        let call = Call::QuerySettlementApplication;
        let response = client.send(
            call,
            "GET",
            &onboarding::paths::settlement_application(&sub_mchid, application_no),
            None,
        )?;
        let change = onboarding::interpret_account(call, answer(&response))?.ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "wechatpay {}: WeChat Pay has no settlement change {application_no} for sub-merchant {sub_mchid}",
                call.name()
            ))
        })?;
        if let Some(result) = change.binding(reference.clone()) {
            return Ok(result);
        }
        changed_to = change.account_number;
    }
    let call = Call::QuerySettlement;
    let response = client.send(
        call,
        "GET",
        &onboarding::paths::settlement(&sub_mchid),
        None,
    )?;
    let current = onboarding::interpret_account(call, answer(&response))?.ok_or_else(|| {
        ProviderError::Unavailable(format!(
            "wechatpay {}: sub-merchant {sub_mchid} has no settlement account",
            call.name()
        ))
    })?;
    // Without the change's number (its answer never came), WeChat Pay's current account is
    // ours only if it shows our account's last digits; else the change is unknown to us.
    if reference.is_none()
        && !current.account_number.as_deref().is_some_and(|masked| {
            onboarding::shows_last_digits(masked, settings.account_number_last4.as_deref())
        })
    {
        return Err(ProviderError::Unavailable(format!(
            "wechatpay {}: sub-merchant {sub_mchid}'s current settlement account is not this one, and no settlement change of it is known (its answer was lost, or it never arrived)",
            call.name()
        )));
    }
    if let (Some(ours), Some(theirs)) = (&changed_to, &current.account_number)
        && ours != theirs
    {
        return Ok(BindingResult {
            status: BindingStatus::Failed,
            provider_reference: reference,
            verification_json: None,
            failure: Some(
                "the sub-merchant's settlement account was changed again before this one was verified"
                    .into(),
            ),
        });
    }
    current
        .binding(reference)
        .ok_or_else(|| transform::uncertain(call, "no binding status"))
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

    /// The sub-merchant's order query, as sent.
    fn partner_query_line() -> String {
        format!(
            "GET {BASE}/v3/pay/partner/transactions/out-trade-no/{PAYMENT_ID}?sp_mchid={MCHID}&sub_mchid={SUB_MCHID}"
        )
    }

    /// A sub-merchant's order as WeChat Pay describes it to its service provider.
    fn partner_order(state: &str, trade_type: &str) -> Value {
        as_sub_merchants(order(state, trade_type))
    }

    #[test]
    fn an_onboarded_merchant_collects_refunds_and_cancels_as_a_sub_merchant() {
        let merchant = sub_merchant_record();
        let with = |mut request: CreatePaymentRequest| {
            request.merchant = merchant.clone();
            request
        };
        let payment = PaymentRef {
            merchant: merchant.clone(),
            ..payment_ref()
        };
        let ids = [
            ("sp_appid", APPID),
            ("sp_mchid", MCHID),
            ("sub_mchid", SUB_MCHID),
        ];
        let env = FakeEnv::new(vec![reply(200, json!({"code_url": "weixin://x"}))]);
        create_payment(&env, &with(create(Method::Qr))).unwrap();
        assert_eq!(
            env.sent_lines(),
            [format!("POST {BASE}/v3/pay/partner/transactions/native")]
        );
        let body = env.sent_json(0);
        for (k, v) in ids {
            assert_eq!(body[k], v, "{k}");
        }
        assert!(body.get("mchid").is_none() && body.get("appid").is_none());

        let env = FakeEnv::new(vec![reply(200, partner_order("SUCCESS", "MICROPAY"))]);
        let result = create_payment(&env, &with(create(Method::Barcode))).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(
            result.payer.as_deref(),
            Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        );
        assert_eq!(
            env.sent_lines(),
            [format!("POST {BASE}/v3/pay/partner/transactions/codepay")]
        );
        assert_eq!(env.sent_json(0)["sub_mchid"], SUB_MCHID);

        // An answer about the provider's own order, or another sub-merchant's, is not ours.
        let mut other = partner_order("SUCCESS", "MICROPAY");
        other["sub_mchid"] = "1900006492".into();
        for answer in [order("SUCCESS", "MICROPAY"), other] {
            let env = FakeEnv::new(vec![reply(200, answer)]);
            assert!(matches!(
                create_payment(&env, &with(create(Method::Barcode))),
                Err(ProviderError::UnknownOutcome(_))
            ));
        }

        let env = FakeEnv::new(vec![
            reply(200, partner_order("USERPAYING", "MICROPAY")),
            reply(200, json!({"sp_mchid": MCHID, "sub_mchid": SUB_MCHID})),
        ]);
        let result = cancel_payment(&env, &payment).unwrap();
        assert_eq!(result.status, PaymentStatus::Cancelled);
        assert_eq!(
            env.sent_lines(),
            [
                partner_query_line(),
                format!(
                    "POST {BASE}/v3/pay/partner/transactions/out-trade-no/{PAYMENT_ID}/reverse"
                ),
            ]
        );
        assert_eq!(
            env.sent_json(1),
            json!({"sp_appid": APPID, "sp_mchid": MCHID, "sub_mchid": SUB_MCHID})
        );

        let env = FakeEnv::new(vec![reply(200, refund_answer("SUCCESS"))]);
        let request = RefundRequest {
            payment: payment.clone(),
            ..refund_request()
        };
        assert_eq!(
            refund(&env, &request).unwrap().status,
            RefundStatus::Succeeded
        );
        assert_eq!(env.sent_json(0)["sub_mchid"], SUB_MCHID);
        let env = FakeEnv::new(vec![reply(200, refund_answer("SUCCESS"))]);
        let query = RefundRef {
            payment,
            ..refund_ref()
        };
        query_refund(&env, &query).unwrap();
        assert_eq!(
            env.sent_lines(),
            [format!(
                "GET {BASE}/v3/refund/domestic/refunds/{REFUND_ID}?sub_mchid={SUB_MCHID}"
            )]
        );
    }

    #[test]
    fn an_order_placed_before_the_merchant_collected_as_a_sub_merchant_is_still_found() {
        let not_found = || reply(404, error_body("ORDER_NOT_EXIST", "订单不存在"));
        let payment = PaymentRef {
            merchant: sub_merchant_record(),
            ..payment_ref()
        };
        // Unpaid under the service provider's own number: closed there, not left payable.
        let env = FakeEnv::new(vec![
            not_found(),
            reply(200, order("NOTPAY", "NATIVE")),
            reply(204, Value::Null),
        ]);
        let result = cancel_payment(&env, &payment).unwrap();
        assert_eq!(result.status, PaymentStatus::Cancelled);
        assert_eq!(
            env.sent_lines(),
            [
                partner_query_line(),
                format!("GET {BASE}/v3/pay/transactions/out-trade-no/{PAYMENT_ID}?mchid={MCHID}"),
                format!("POST {BASE}/v3/pay/transactions/out-trade-no/{PAYMENT_ID}/close"),
            ]
        );
        assert_eq!(env.sent_json(2), json!({"mchid": MCHID}));
        // Paid there: reported paid.
        let env = FakeEnv::new(vec![not_found(), reply(200, order("SUCCESS", "NATIVE"))]);
        assert_eq!(
            query_payment(&env, &payment).unwrap().status,
            PaymentStatus::Succeeded
        );
        // Under neither: nothing was ever charged.
        let env = FakeEnv::new(vec![not_found(), not_found()]);
        assert_eq!(
            cancel_payment(&env, &payment).unwrap().status,
            PaymentStatus::Cancelled
        );
        assert_eq!(env.sent.borrow().len(), 2);
    }

    #[test]
    fn an_onboarded_merchant_without_its_sub_merchant_number_collects_nothing() {
        let env = FakeEnv::new(vec![]);
        let mut request = create(Method::Barcode);
        request.merchant = onboarded_merchant();
        assert!(matches!(
            create_payment(&env, &request),
            Err(ProviderError::InvalidRequest(m)) if m.contains("sub_merchant_id")
        ));
        assert!(env.sent.borrow().is_empty(), "nothing is sent");
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

#[cfg(test)]
mod onboarding_tests {
    use super::*;
    use crate::testkit::*;
    use paygate_plugin_api::OnboardingStatus;
    use serde_json::{Value, json};

    const BASE: &str = "http://127.0.0.1:8430/wechatpay";
    const APPLICATION_NO: &str = "102329389001";

    fn applyment_state(state: &str) -> Value {
        let mut body = json!({
            "business_code": ACTIVATION_ID,
            "applyment_id": APPLYMENT_ID,
            "sign_url": "https://pay.weixin.qq.com/public/apply4ec_sign/s?applymentId=2000002124775691",
            "applyment_state": state,
            "applyment_state_msg": "",
        });
        if state == "APPLYMENT_STATE_FINISHED" {
            body["sub_mchid"] = SUB_MCHID.into();
        }
        body
    }

    fn header(env: &FakeEnv, n: usize, name: &str) -> Option<String> {
        env.sent.borrow()[n]
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn settlement(verify_result: &str, number: &str) -> Value {
        json!({
            "account_type": "ACCOUNT_TYPE_BUSINESS",
            "account_bank": "招商银行",
            "bank_name": "招商银行深圳分行科技园支行",
            "account_number": number,
            "verify_result": verify_result,
            "verify_fail_reason": if verify_result.ends_with("FAIL") { "汇款验证失败" } else { "" },
        })
    }

    #[test]
    fn onboarding_submits_the_applyment_with_the_activation_id_as_business_code() {
        let mut script = uploads();
        script.push(reply(200, json!({"applyment_id": APPLYMENT_ID})));
        let env = FakeEnv::new(script);
        let result = onboard(&env, &onboarding_request()).unwrap();
        assert_eq!(result.status, OnboardingStatus::Submitted);
        assert_eq!(result.provider_reference, Some(APPLYMENT_ID.to_string()));
        let upload = format!("POST {BASE}/v3/merchant/media/upload");
        assert_eq!(
            env.sent_lines(),
            [
                upload.clone(),
                upload.clone(),
                upload.clone(),
                upload.clone(),
                upload,
                format!("POST {BASE}/v3/applyment4sub/applyment/")
            ]
        );
        // Each upload: a multipart form of the signed meta and the image; no serial (it
        // carries nothing sealed).
        for n in 0..5 {
            let content_type = header(&env, n, "Content-Type").unwrap();
            assert!(content_type.starts_with("multipart/form-data; boundary=paygate-"));
            let sent = &env.sent.borrow()[n].body;
            assert!(sent.windows(JPEG.len()).any(|w| w == JPEG));
            assert!(String::from_utf8_lossy(sent).contains(r#""sha256":""#));
            assert_eq!(header(&env, n, "Wechatpay-Serial"), None);
        }
        let body = env.sent_json(5);
        assert_eq!(body["business_code"], ACTIVATION_ID);
        // The images by the media ids the uploads answered.
        assert_eq!(
            body["subject_info"]["business_license_info"]["license_copy"],
            MEDIA_IDS[0]
        );
        let card = &body["subject_info"]["identity_info"]["id_card_info"];
        assert_eq!(
            (&card["id_card_copy"], &card["id_card_national"]),
            (&json!(MEDIA_IDS[1]), &json!(MEDIA_IDS[2]))
        );
        let store = &body["business_info"]["sales_info"]["biz_store_info"];
        assert_eq!(
            (&store["store_entrance_pic"], &store["indoor_pic"]),
            (&json!([MEDIA_IDS[3]]), &json!([MEDIA_IDS[4]]))
        );
        assert_eq!(
            env.open_sealed(
                body["bank_account_info"]["account_number"]
                    .as_str()
                    .unwrap()
            ),
            "7550000000000001"
        );
        // Sealed under the platform public key, named by its serial: only its private key
        // opens it, and the clear number is nowhere in the request.
        let sealed = body["subject_info"]["identity_info"]["id_card_info"]["id_card_number"]
            .as_str()
            .unwrap();
        assert_eq!(env.open_sealed(sealed), "110101199003071234");
        assert_eq!(
            env.open_sealed(body["contact_info"]["mobile_phone"].as_str().unwrap()),
            "13800138000"
        );
        assert!(
            !String::from_utf8_lossy(&env.sent.borrow()[5].body).contains("110101199003071234")
        );
        assert_eq!(
            header(&env, 5, "Wechatpay-Serial").as_deref(),
            Some(PUBLIC_KEY_ID)
        );
    }

    #[test]
    fn a_submission_already_in_progress_reports_the_applications_state() {
        let mut script = uploads();
        script.extend([
            reply(
                400,
                error_body("PROCESSING", "存在流程进行中的申请单,请检查是否重入"),
            ),
            reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
        ]);
        let env = FakeEnv::new(script);
        let result = onboard(&env, &onboarding_request()).unwrap();
        assert_eq!(result.status, OnboardingStatus::Active);
        assert_eq!(result.provider_reference.as_deref(), Some(SUB_MCHID));
        assert_eq!(
            env.sent_lines()[6],
            format!("GET {BASE}/v3/applyment4sub/applyment/business_code/{ACTIVATION_ID}")
        );
        // The query carries no sensitive fields, so no serial.
        assert_eq!(header(&env, 6, "Wechatpay-Serial"), None);
    }

    #[test]
    fn onboarding_errors_and_bad_materials() {
        let run = |scripted: Scripted| {
            let mut script = uploads();
            script.push(scripted);
            let env = FakeEnv::new(script);
            onboard(&env, &onboarding_request())
        };
        assert!(matches!(
            run(reply(
                400,
                error_body(
                    "PARAM_ERROR",
                    "输入源“/business_code”映射到字段“业务申请编号”必填性规则校验失败"
                )
            )),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(
            run(reply(500, error_body("SYSTEM_ERROR", "系统繁忙"))),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            run(Scripted::Fail(http::Error::Timeout)),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            run(reply_signed(
                200,
                json!({"applyment_id": 1}),
                Signing::Forged
            )),
            Err(ProviderError::UnknownOutcome(_))
        ));
        // An image refused by WeChat Pay, or an upload that fails: nothing is submitted,
        // and nothing happened that a retry could double.
        let env = FakeEnv::new(vec![
            uploads().remove(0),
            reply(400, error_body("PARAM_ERROR", "文件大小不能超过2M")),
        ]);
        let refused = onboard(&env, &onboarding_request());
        assert!(matches!(refused, Err(ProviderError::InvalidRequest(m)) if m.contains("2M")));
        assert_eq!(env.sent.borrow().len(), 2);
        for failed in [
            reply(500, error_body("SYSTEM_ERROR", "系统繁忙")),
            Scripted::Fail(http::Error::Timeout),
            reply(200, json!({"no_media_id": 1})),
        ] {
            let env = FakeEnv::new(vec![failed]);
            assert!(matches!(
                onboard(&env, &onboarding_request()),
                Err(ProviderError::Unavailable(_))
            ));
            assert_eq!(env.sent.borrow().len(), 1);
        }
        // Materials without the images: refused before anything is sent.
        let env = FakeEnv::new(vec![]);
        let mut request = onboarding_request();
        request.materials_json = materials().to_string();
        assert!(matches!(
            onboard(&env, &request),
            Err(ProviderError::InvalidRequest(m)) if m.contains("documents.business_license")
        ));
        let mut request = onboarding_request();
        request.materials_json = json!({"name": "x"}).to_string();
        assert!(matches!(
            onboard(&env, &request),
            Err(ProviderError::InvalidRequest(_))
        ));
        let mut request = onboarding_request();
        request.activation_id = "act-1".into();
        assert!(matches!(
            onboard(&env, &request),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(env.sent.borrow().is_empty());
    }

    #[test]
    fn query_onboarding_maps_the_applyment_state() {
        for (state, status) in [
            ("APPLYMENT_STATE_AUDITING", OnboardingStatus::UnderReview),
            (
                "APPLYMENT_STATE_TO_BE_SIGNED",
                OnboardingStatus::UnderReview,
            ),
            ("APPLYMENT_STATE_FINISHED", OnboardingStatus::Active),
            ("APPLYMENT_STATE_CANCELED", OnboardingStatus::Rejected),
        ] {
            let env = FakeEnv::new(vec![reply(200, applyment_state(state))]);
            assert_eq!(
                query_onboarding(&env, &onboarding_ref()).unwrap().status,
                status,
                "{state}"
            );
        }
        let mut rejected = applyment_state("APPLYMENT_STATE_REJECTED");
        rejected["audit_detail"] = json!([{"field": "license_copy", "field_name": "营业执照", "reject_reason": "营业执照已过期"}]);
        let env = FakeEnv::new(vec![reply(200, rejected)]);
        let result = query_onboarding(&env, &onboarding_ref()).unwrap();
        assert_eq!(result.status, OnboardingStatus::Rejected);
        assert_eq!(result.rejection_reason.as_deref(), Some("营业执照已过期"));
        // Nothing under this business code; an unverifiable answer.
        let env = FakeEnv::new(vec![reply(
            404,
            error_body("APPLYMENT_NOTEXIST", "申请单不存在"),
        )]);
        assert!(matches!(
            query_onboarding(&env, &onboarding_ref()),
            Err(ProviderError::Unavailable(_))
        ));
        let env = FakeEnv::new(vec![reply_signed(
            200,
            applyment_state("APPLYMENT_STATE_FINISHED"),
            Signing::WrongSerial,
        )]);
        assert!(matches!(
            query_onboarding(&env, &onboarding_ref()),
            Err(ProviderError::Unavailable(_))
        ));
        assert_eq!(env.warnings.borrow().len(), 1);
    }

    #[test]
    fn binding_finds_the_sub_merchant_by_the_activation_then_changes_its_settlement_account() {
        let env = FakeEnv::new(vec![
            reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
            reply(
                200,
                json!({"application_no": APPLICATION_NO, "account_validation": {"pay_amount": 1, "destination_account_number": "7955000100001"}}),
            ),
        ]);
        let result = bind_account(&env, &binding_request(onboarded_merchant())).unwrap();
        assert_eq!(result.status, BindingStatus::PendingVerification);
        assert_eq!(result.provider_reference.as_deref(), Some(APPLICATION_NO));
        let verification: Value = serde_json::from_str(&result.verification_json.unwrap()).unwrap();
        assert_eq!(verification["amount"], "0.01");
        assert_eq!(verification["to_account"], "7955000100001");
        assert_eq!(
            env.sent_lines(),
            [
                format!("GET {BASE}/v3/applyment4sub/applyment/business_code/{ACTIVATION_ID}"),
                format!("POST {BASE}/v3/apply4sub/sub_merchants/{SUB_MCHID}/modify-settlement"),
            ]
        );
        let body = env.sent_json(1);
        assert!(
            body.get("out_request_no").is_none(),
            "not a field of the real API"
        );
        assert_eq!(
            env.open_sealed(body["account_number"].as_str().unwrap()),
            "6214830123456789"
        );
        assert_eq!(
            env.open_sealed(body["account_name"].as_str().unwrap()),
            "深圳市示例科技有限公司"
        );
        assert_eq!(
            header(&env, 1, "Wechatpay-Serial").as_deref(),
            Some(PUBLIC_KEY_ID)
        );
    }

    #[test]
    fn a_configured_sub_merchant_is_used_without_a_query() {
        let mut merchant = merchant();
        let mut settings: Value = serde_json::from_str(&merchant.settings_json).unwrap();
        settings["sub_mchid"] = SUB_MCHID.into();
        settings["bank_area_code"] = "440300".into();
        merchant.settings_json = settings.to_string();
        let env = FakeEnv::new(vec![reply(204, Value::Null)]);
        let result = bind_account(&env, &binding_request(merchant)).unwrap();
        assert_eq!(result.status, BindingStatus::PendingVerification);
        assert_eq!(result.provider_reference, None);
        assert_eq!(
            env.sent_lines(),
            [format!(
                "POST {BASE}/v3/apply4sub/sub_merchants/{SUB_MCHID}/modify-settlement"
            )]
        );
    }

    #[test]
    fn binding_needs_a_finished_application() {
        let run = |scripted: Vec<Scripted>, merchant: paygate_plugin_api::Merchant| {
            let env = FakeEnv::new(scripted);
            let result = bind_account(&env, &binding_request(merchant));
            (result, env.sent.borrow().len())
        };
        // No activation id and no sub_mchid: nothing to ask.
        let (result, sent) = run(vec![], merchant());
        assert!(matches!(result, Err(ProviderError::InvalidRequest(_))));
        assert_eq!(sent, 0);
        // Still under review: ask again later; rejected or unknown: final.
        let (result, sent) = run(
            vec![reply(200, applyment_state("APPLYMENT_STATE_AUDITING"))],
            onboarded_merchant(),
        );
        assert!(matches!(result, Err(ProviderError::Unavailable(_))));
        assert_eq!(sent, 1);
        for scripted in [
            reply(200, applyment_state("APPLYMENT_STATE_REJECTED")),
            reply(404, error_body("APPLYMENT_NOTEXIST", "申请单不存在")),
        ] {
            let (result, _) = run(vec![scripted], onboarded_merchant());
            assert!(matches!(result, Err(ProviderError::InvalidRequest(_))));
        }
        // Without an activation id, a configured sub-merchant must be a number.
        let mut merchant = merchant();
        let mut settings: Value = serde_json::from_str(&merchant.settings_json).unwrap();
        settings["sub_merchant_id"] = "2000002124775691x".into();
        merchant.settings_json = settings.to_string();
        let (result, sent) = run(vec![], merchant);
        assert!(matches!(result, Err(ProviderError::InvalidRequest(_))));
        assert_eq!(sent, 0);
    }

    #[test]
    fn the_applyments_sub_merchant_wins_over_the_settings() {
        let mut merchant = onboarded_merchant();
        let mut settings: Value = serde_json::from_str(&merchant.settings_json).unwrap();
        settings["sub_merchant_id"] = "1900000001".into();
        merchant.settings_json = settings.to_string();
        let env = FakeEnv::new(vec![
            reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
            reply(200, json!({"application_no": APPLICATION_NO})),
        ]);
        bind_account(&env, &binding_request(merchant)).unwrap();
        assert!(env.sent_lines()[1].contains(&format!("/sub_merchants/{SUB_MCHID}/")));
        assert_eq!(env.warnings.borrow().len(), 1);
    }

    #[test]
    fn settlement_change_failures() {
        let run = |scripted: Scripted| {
            let env = FakeEnv::new(vec![
                reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
                scripted,
            ]);
            bind_account(&env, &binding_request(onboarded_merchant()))
        };
        assert!(matches!(
            run(reply(
                400,
                error_body("INVALID_REQUEST", "存在审核中的修改申请")
            )),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(
            run(Scripted::Fail(http::Error::Timeout)),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            run(reply_signed(
                200,
                json!({"application_no": APPLICATION_NO}),
                Signing::Stale
            )),
            Err(ProviderError::UnknownOutcome(_))
        ));
        // A forged applyment answer: nothing was changed yet.
        let env = FakeEnv::new(vec![reply_signed(
            200,
            applyment_state("APPLYMENT_STATE_FINISHED"),
            Signing::Forged,
        )]);
        assert!(matches!(
            bind_account(&env, &binding_request(onboarded_merchant())),
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn query_binding_asks_the_change_then_the_account() {
        let env = FakeEnv::new(vec![
            reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
            reply(
                200,
                json!({"account_number": "62************89", "verify_result": "AUDIT_SUCCESS"}),
            ),
            reply(200, settlement("VERIFY_SUCCESS", "62************89")),
        ]);
        let result = query_binding(&env, &binding_ref(Some(APPLICATION_NO))).unwrap();
        assert_eq!(result.status, BindingStatus::Verified);
        assert_eq!(result.provider_reference.as_deref(), Some(APPLICATION_NO));
        assert_eq!(
            env.sent_lines()[1..],
            [
                format!(
                    "GET {BASE}/v3/apply4sub/sub_merchants/{SUB_MCHID}/application/{APPLICATION_NO}"
                ),
                format!("GET {BASE}/v3/apply4sub/sub_merchants/{SUB_MCHID}/settlement"),
            ]
        );
        for (verify_result, status) in [
            ("VERIFYING", BindingStatus::PendingVerification),
            ("VERIFY_FAIL", BindingStatus::Failed),
        ] {
            let env = FakeEnv::new(vec![
                reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
                reply(200, json!({"verify_result": "AUDIT_SUCCESS"})),
                reply(200, settlement(verify_result, "62************89")),
            ]);
            let result = query_binding(&env, &binding_ref(Some(APPLICATION_NO))).unwrap();
            assert_eq!(result.status, status);
            if status == BindingStatus::Failed {
                assert_eq!(result.failure.as_deref(), Some("汇款验证失败"));
            }
        }
    }

    #[test]
    fn a_change_under_review_or_refused_ends_the_query_there() {
        for (verify_result, status) in [
            ("AUDITING", BindingStatus::PendingVerification),
            ("AUDIT_FAIL", BindingStatus::Failed),
        ] {
            let env = FakeEnv::new(vec![
                reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
                reply(
                    200,
                    json!({"verify_result": verify_result, "verify_fail_reason": "开户名称与主体名称不一致"}),
                ),
            ]);
            let result = query_binding(&env, &binding_ref(Some(APPLICATION_NO))).unwrap();
            assert_eq!(result.status, status);
            assert_eq!(env.sent.borrow().len(), 2);
        }
    }

    #[test]
    fn an_account_replaced_before_it_was_verified_has_failed() {
        let env = FakeEnv::new(vec![
            reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
            reply(
                200,
                json!({"account_number": "62************89", "verify_result": "AUDIT_SUCCESS"}),
            ),
            reply(200, settlement("VERIFYING", "95************01")),
        ]);
        let result = query_binding(&env, &binding_ref(Some(APPLICATION_NO))).unwrap();
        assert_eq!(result.status, BindingStatus::Failed);
        assert!(result.failure.unwrap().contains("changed again"));
    }

    #[test]
    fn without_an_application_number_only_the_account_is_asked() {
        let env = FakeEnv::new(vec![
            reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
            reply(200, settlement("VERIFYING", "62************89")),
        ]);
        let result = query_binding(&env, &binding_ref(None)).unwrap();
        assert_eq!(result.status, BindingStatus::PendingVerification);
        assert_eq!(result.provider_reference, None);
        assert_eq!(env.sent.borrow().len(), 2);
        // The current account is another one (the change's answer was lost, or it never
        // arrived): its state is not this account's, whatever it is.
        for (state, masked) in [
            ("VERIFY_SUCCESS", "62************01"),
            ("VERIFY_FAIL", "**"),
        ] {
            let env = FakeEnv::new(vec![
                reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
                reply(200, settlement(state, masked)),
            ]);
            assert!(
                matches!(query_binding(&env, &binding_ref(None)), Err(ProviderError::Unavailable(m)) if m.contains("not this one")),
                "{state} {masked}"
            );
        }
        // Without our last digits there is nothing to tell them apart by.
        let mut unknown = binding_ref(None);
        unknown.merchant = onboarded_merchant();
        let env = FakeEnv::new(vec![
            reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
            reply(200, settlement("VERIFY_SUCCESS", "62************89")),
        ]);
        assert!(matches!(
            query_binding(&env, &unknown),
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn query_binding_errors_are_unavailable_or_invalid() {
        let run = |scripted: Vec<Scripted>, reference: Option<&str>| {
            let env = FakeEnv::new(scripted);
            query_binding(&env, &binding_ref(reference))
        };
        assert!(matches!(
            run(vec![], Some("../../x")),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(
            run(
                vec![
                    reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
                    reply(404, error_body("RESOURCE_NOT_EXISTS", "记录不存在")),
                ],
                Some(APPLICATION_NO)
            ),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            run(
                vec![
                    reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
                    reply_signed(200, settlement("VERIFY_SUCCESS", "62**89"), Signing::Forged),
                ],
                None
            ),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            run(
                vec![
                    reply(200, applyment_state("APPLYMENT_STATE_FINISHED")),
                    reply(200, json!({"verify_result": "SOMETHING"})),
                ],
                None
            ),
            Err(ProviderError::Unavailable(_))
        ));
    }
}
