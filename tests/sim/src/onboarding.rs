//! Merchant applications and settlement accounts the simulated providers hold, shared by
//! the providers' onboarding endpoints (each module maps these neutral states to its own
//! words) and driven by the control endpoints: a reviewer approves or rejects an
//! application, a bank verifies or fails an account.
//!
//! Applications and accounts are keyed by the provider and the merchant's own number for
//! them (our `act_...` / `ba_...` ids, which the plugins send as the business code), so a
//! repeated submission finds the same record.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    /// Received, not yet looked at.
    Submitted,
    UnderReview,
    Rejected,
    /// Approved by the reviewer, waiting for the merchant to sign the provider's agreement
    /// (WeChat Pay's `TO_BE_SIGNED`): the sub-merchant number exists, collecting does not.
    AwaitingSignature,
    /// Approved: the sub-merchant can collect.
    Active,
}

#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub provider: String,
    /// The merchant's number for it (our activation id).
    pub business_code: String,
    /// The provider's id for it.
    pub application_id: String,
    /// The platform account that submitted it (Alipay app_id, WeChat Pay mchid).
    pub submitted_by: String,
    /// The sub-merchant number assigned on approval.
    pub sub_merchant_id: Option<String>,
    pub materials: Value,
    pub status: ApplicationStatus,
    pub rejection_reason: Option<String>,
    /// Submissions received under this business code (resubmissions after a rejection).
    pub submissions: u32,
    pub notify_url: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Waiting for the merchant's verification step (e.g. a small remittance).
    PendingVerification,
    Verified,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub provider: String,
    /// The merchant's number for it (our bank account id).
    pub business_code: String,
    /// The provider's id for it.
    pub account_id: String,
    pub submitted_by: String,
    /// The sub-merchant it settles for (an approved application's), when known.
    pub sub_merchant_id: Option<String>,
    pub account_holder: String,
    pub account_number: String,
    pub bank_name: String,
    pub status: AccountStatus,
    pub failure_reason: Option<String>,
    /// What the merchant must do to verify it (shown to them by the gateway).
    pub verification: Value,
    pub notify_url: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// An uploaded image (WeChat Pay's media upload): what the simulator keeps of it, by its
/// media id. The image itself is not kept.
#[derive(Debug, Clone, Serialize)]
pub struct Media {
    pub uploaded_by: String,
    pub filename: String,
    pub sha256: String,
    pub bytes: usize,
}

/// Every application and account, by (provider, business code), and every uploaded image.
#[derive(Debug, Default, Serialize)]
pub struct Onboarding {
    pub applications: BTreeMap<(String, String), Application>,
    pub accounts: BTreeMap<(String, String), Account>,
    pub media: BTreeMap<String, Media>,
}

impl Onboarding {
    pub fn application(&mut self, provider: &str, business_code: &str) -> Option<&mut Application> {
        self.applications
            .get_mut(&(provider.to_owned(), business_code.to_owned()))
    }

    pub fn account(&mut self, provider: &str, business_code: &str) -> Option<&mut Account> {
        self.accounts
            .get_mut(&(provider.to_owned(), business_code.to_owned()))
    }

    /// The account under the merchant's number for it, or else under the provider's own
    /// (what the gateway shows as the binding's `provider_reference`).
    pub fn account_by_reference(
        &mut self,
        provider: &str,
        reference: &str,
    ) -> Option<&mut Account> {
        let key = (provider.to_owned(), reference.to_owned());
        if self.accounts.contains_key(&key) {
            return self.accounts.get_mut(&key);
        }
        self.accounts
            .values_mut()
            .find(|a| a.provider == provider && a.account_id == reference)
    }
}
