//! A wallet plugin built for `paygate:provider@0.4.0` (`plugin-api/wit/0.4.0/provider.wit`,
//! frozen), as one built before 0.5.0 was (tests/e2e/world_versions.rs).
//!
//! It serves provider `legacy4`: barcode payments in CNY that succeed with the amount
//! reported, applications under review whose next step is to sign at
//! `https://legacy4.example/sign/<activation id>` (what 0.4.0 added), and bills of lines
//! `payment,<payment id>,<amount in fen>` or `refund,<payment id>,<refund id>,<amount in fen>`,
//! whose entries 0.4.0 cannot place on a line. It cannot fetch a bill: 0.4.0 has no
//! `fetch-bill`.

wit_bindgen::generate!({ path: "../../../plugin-api/wit/0.4.0", world: "plugin" });

use exports::paygate::provider::provider::Guest;
use paygate::provider::types::*;

struct Legacy4;

fn refused(operation: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!("legacy4 does not {operation}"))
}

fn fen(minor: i64) -> Money {
    Money {
        minor,
        currency: "CNY".into(),
        exponent: 2,
    }
}

/// One bill line as an entry, or what is wrong with it.
fn bill_entry(line: &str) -> Result<BillEntry, String> {
    let fields: Vec<&str> = line.split(',').collect();
    let (kind, payment_id, refund_id, amount) = match fields[..] {
        ["payment", id, amount] => (BillEntryKind::Payment, id, None, amount),
        ["refund", id, refund, amount] => (BillEntryKind::Refund, id, Some(refund), amount),
        _ => return Err("not a payment or refund line".into()),
    };
    let minor = amount.parse().map_err(|_| "the amount is not in fen")?;
    Ok(BillEntry {
        kind,
        payment_id: payment_id.into(),
        refund_id: refund_id.map(str::to_owned),
        provider_reference: None,
        amount: fen(minor),
        fee: None,
        occurred_at: None,
    })
}

impl Guest for Legacy4 {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "legacy4".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "legacy4".into(),
                display_name: "Legacy Wallet (world 0.4.0)".into(),
                methods: vec![Method::Barcode],
                currencies: vec!["CNY".into()],
                payment_codes: vec![CodePattern {
                    prefixes: vec!["94".into()],
                    min_length: 18,
                    max_length: 18,
                }],
                operations: vec![
                    Operation::CreatePayment,
                    Operation::Onboard,
                    Operation::ParseBill,
                ],
                fees: Vec::new(),
            }],
        }
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        Ok(PaymentResult {
            status: PaymentStatus::Succeeded,
            provider_reference: Some(format!("l4_{}", request.payment_id)),
            qr_code: None,
            failure: None,
            payer: None,
            amount: Some(request.amount),
            card: None,
        })
    }

    fn query_payment(_payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Err(refused("query"))
    }

    fn cancel_payment(_payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Err(refused("cancel"))
    }

    fn refund(_request: RefundRequest) -> Result<RefundResult, ProviderError> {
        Err(refused("refund"))
    }

    fn query_refund(_refund: RefundRef) -> Result<RefundResult, ProviderError> {
        Err(refused("refund"))
    }

    fn parse_notification(
        _notice: Notification,
    ) -> Result<NotificationResult, NotificationRejected> {
        Err(NotificationRejected {
            reason: "legacy4 sends no notices".into(),
            reply: Reply {
                status: 400,
                content_type: "text/plain".into(),
                body: b"no".to_vec(),
            },
        })
    }

    fn onboard(request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        Ok(OnboardingResult {
            status: OnboardingStatus::UnderReview,
            provider_reference: Some(format!("l4_{}", request.activation_id)),
            rejection_reason: None,
            next_step_json: Some(format!(
                r#"{{"type":"sign_agreement","url":"https://legacy4.example/sign/{}"}}"#,
                request.activation_id
            )),
        })
    }

    fn query_onboarding(_application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        Err(refused("query applications"))
    }

    fn bind_account(_request: BindingRequest) -> Result<BindingResult, ProviderError> {
        Err(refused("bind accounts"))
    }

    fn query_binding(_binding: BindingRef) -> Result<BindingResult, ProviderError> {
        Err(refused("bind accounts"))
    }

    fn parse_bill(request: BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
        let text = std::str::from_utf8(&request.content)
            .map_err(|_| ProviderError::InvalidRequest("the bill is not UTF-8".into()))?;
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(number, line)| {
                bill_entry(line.trim()).map_err(|why| {
                    ProviderError::InvalidRequest(format!("bill line {}: {why}", number + 1))
                })
            })
            .collect()
    }

    fn inspect_wallet_token(_request: CreatePaymentRequest) -> Result<TokenFacts, ProviderError> {
        Err(refused("take wallet tokens"))
    }
}

export!(Legacy4);
