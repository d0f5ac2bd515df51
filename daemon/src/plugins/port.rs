//! The provider port: what the use cases ask of the wallets, whoever answers. The plugin
//! host answers in the daemon; tests answer with a native fake, so that the money path runs
//! without wasm.

use std::sync::Arc;

use super::types::*;
use super::{CallError, PluginHost};

/// A provider's answer, or a [`CallError`] when there is none.
pub type Answer<T, E> = Result<Result<T, E>, CallError>;

#[async_trait::async_trait]
pub trait Providers: Send + Sync + 'static {
    /// What provider `name` declared, if it is served.
    fn provider(&self, name: &str) -> Option<Arc<ProviderInfo>>;
    /// Whether `provider`'s payment and refund results carry the amount it reports.
    fn reports_amounts(&self, provider: &str) -> bool;
    /// The `merchant` record for a call: the provider's settings overlaid with the merchant's.
    fn merchant_record(
        &self,
        provider: &str,
        merchant_id: &str,
        merchant_settings: &toml::Table,
        notify_url: String,
    ) -> Result<Merchant, CallError>;

    async fn create_payment(
        &self,
        request: CreatePaymentRequest,
    ) -> Answer<PaymentResult, ProviderError>;
    /// A wallet token's id and approved amount, verified, before it is recorded and charged.
    async fn inspect_wallet_token(
        &self,
        request: CreatePaymentRequest,
    ) -> Answer<TokenFacts, ProviderError>;
    async fn query_payment(&self, request: PaymentRef) -> Answer<PaymentResult, ProviderError>;
    async fn cancel_payment(&self, request: PaymentRef) -> Answer<PaymentResult, ProviderError>;
    async fn refund(&self, request: RefundRequest) -> Answer<RefundResult, ProviderError>;
    async fn query_refund(&self, request: RefundRef) -> Answer<RefundResult, ProviderError>;
    async fn parse_notification(
        &self,
        request: Notification,
    ) -> Answer<NotificationResult, NotificationRejected>;
    async fn onboard(&self, request: OnboardingRequest) -> Answer<OnboardingResult, ProviderError>;
    async fn query_onboarding(
        &self,
        request: OnboardingRef,
    ) -> Answer<OnboardingResult, ProviderError>;
    async fn bind_account(&self, request: BindingRequest) -> Answer<BindingResult, ProviderError>;
    async fn query_binding(&self, request: BindingRef) -> Answer<BindingResult, ProviderError>;
    /// A day's bill file as the provider published it (or that it is not there yet).
    async fn fetch_bill(&self, request: BillFetchRequest) -> Answer<BillDownload, ProviderError>;
    /// A bill file's rows.
    async fn parse_bill(&self, request: BillRequest) -> Answer<Vec<BillEntry>, ProviderError>;
}

#[async_trait::async_trait]
impl Providers for PluginHost {
    fn provider(&self, name: &str) -> Option<Arc<ProviderInfo>> {
        PluginHost::provider(self, name)
    }

    fn reports_amounts(&self, provider: &str) -> bool {
        PluginHost::reports_amounts(self, provider)
    }

    fn merchant_record(
        &self,
        provider: &str,
        merchant_id: &str,
        merchant_settings: &toml::Table,
        notify_url: String,
    ) -> Result<Merchant, CallError> {
        PluginHost::merchant_record(self, provider, merchant_id, merchant_settings, notify_url)
    }

    async fn create_payment(
        &self,
        request: CreatePaymentRequest,
    ) -> Answer<PaymentResult, ProviderError> {
        PluginHost::create_payment(self, request).await
    }

    async fn inspect_wallet_token(
        &self,
        request: CreatePaymentRequest,
    ) -> Answer<TokenFacts, ProviderError> {
        PluginHost::inspect_wallet_token(self, request).await
    }

    async fn query_payment(&self, request: PaymentRef) -> Answer<PaymentResult, ProviderError> {
        PluginHost::query_payment(self, request).await
    }

    async fn cancel_payment(&self, request: PaymentRef) -> Answer<PaymentResult, ProviderError> {
        PluginHost::cancel_payment(self, request).await
    }

    async fn refund(&self, request: RefundRequest) -> Answer<RefundResult, ProviderError> {
        PluginHost::refund(self, request).await
    }

    async fn query_refund(&self, request: RefundRef) -> Answer<RefundResult, ProviderError> {
        PluginHost::query_refund(self, request).await
    }

    async fn parse_notification(
        &self,
        request: Notification,
    ) -> Answer<NotificationResult, NotificationRejected> {
        PluginHost::parse_notification(self, request).await
    }

    async fn onboard(&self, request: OnboardingRequest) -> Answer<OnboardingResult, ProviderError> {
        PluginHost::onboard(self, request).await
    }

    async fn query_onboarding(
        &self,
        request: OnboardingRef,
    ) -> Answer<OnboardingResult, ProviderError> {
        PluginHost::query_onboarding(self, request).await
    }

    async fn bind_account(&self, request: BindingRequest) -> Answer<BindingResult, ProviderError> {
        PluginHost::bind_account(self, request).await
    }

    async fn query_binding(&self, request: BindingRef) -> Answer<BindingResult, ProviderError> {
        PluginHost::query_binding(self, request).await
    }

    async fn fetch_bill(&self, request: BillFetchRequest) -> Answer<BillDownload, ProviderError> {
        PluginHost::fetch_bill(self, request).await
    }

    async fn parse_bill(&self, request: BillRequest) -> Answer<Vec<BillEntry>, ProviderError> {
        PluginHost::parse_bill(self, request).await
    }
}
