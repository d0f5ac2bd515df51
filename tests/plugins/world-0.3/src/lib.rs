//! A wallet plugin built for `paygate:provider@0.3.0` (`plugin-api/wit/0.3.0/provider.wit`,
//! frozen), as one built before 0.4.0 was (tests/e2e/world_versions.rs).
//!
//! It serves provider `legacy3`, with what 0.3.0 added over 0.2.0: wallet tokens (a token
//! is `legacy3:<id>`; `inspect-wallet-token` tells its id and the request's amount, and a
//! payment by it succeeds on a Visa card ending 4242) and `keys.encrypt` (an application is
//! sealed under the key `platform_public_key` and is under review with the reference
//! `l3_<length of the ciphertext>`; queried, it is active). It cannot tell a next step:
//! 0.3.0 has none.

wit_bindgen::generate!({ path: "../../../plugin-api/wit/0.3.0", world: "plugin" });

use exports::paygate::provider::provider::Guest;
use paygate::provider::keys;
use paygate::provider::types::*;

struct Legacy3;

fn refused(operation: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!("legacy3 does not {operation}"))
}

/// The token's id: what follows `legacy3:`.
fn token_id(request: &CreatePaymentRequest) -> Result<String, ProviderError> {
    request
        .wallet_token
        .as_deref()
        .and_then(|t| t.strip_prefix("legacy3:"))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::InvalidRequest("not a legacy3 token".into()))
}

impl Guest for Legacy3 {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "legacy3".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "legacy3".into(),
                display_name: "Legacy Wallet (world 0.3.0)".into(),
                methods: vec![Method::WalletToken],
                currencies: vec!["USD".into()],
                payment_codes: Vec::new(),
                operations: vec![
                    Operation::CreatePayment,
                    Operation::InspectWalletToken,
                    Operation::Onboard,
                    Operation::QueryOnboarding,
                ],
                fees: Vec::new(),
            }],
        }
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        let id = token_id(&request)?;
        Ok(PaymentResult {
            status: PaymentStatus::Succeeded,
            provider_reference: Some(format!("l3_{id}")),
            qr_code: None,
            failure: None,
            payer: None,
            amount: Some(request.amount),
            card: Some(Card {
                network: "visa".into(),
                last_four: "4242".into(),
            }),
        })
    }

    fn inspect_wallet_token(request: CreatePaymentRequest) -> Result<TokenFacts, ProviderError> {
        Ok(TokenFacts {
            token_id: token_id(&request)?,
            amount: request.amount,
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
            reason: "legacy3 sends no notices".into(),
            reply: Reply {
                status: 400,
                content_type: "text/plain".into(),
                body: b"no".to_vec(),
            },
        })
    }

    fn onboard(request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        let sealed = keys::encrypt(
            "platform_public_key",
            keys::Cipher::RsaOaepSha256,
            request.activation_id.as_bytes(),
        )
        .map_err(|e| ProviderError::InvalidRequest(format!("cannot seal: {e:?}")))?;
        Ok(OnboardingResult {
            status: OnboardingStatus::UnderReview,
            provider_reference: Some(format!("l3_{}", sealed.len())),
            rejection_reason: None,
        })
    }

    fn query_onboarding(application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        Ok(OnboardingResult {
            status: OnboardingStatus::Active,
            provider_reference: application.provider_reference,
            rejection_reason: None,
        })
    }

    fn bind_account(_request: BindingRequest) -> Result<BindingResult, ProviderError> {
        Err(refused("bind accounts"))
    }

    fn query_binding(_binding: BindingRef) -> Result<BindingResult, ProviderError> {
        Err(refused("bind accounts"))
    }

    fn parse_bill(_request: BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
        Err(refused("parse bills"))
    }
}

export!(Legacy3);
