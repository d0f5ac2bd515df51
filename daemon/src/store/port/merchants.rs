//! The onboarding use cases' port: merchants onboarded through the API, their activations
//! at providers, their bank accounts, and the audit log.
//!
//! Invariants:
//! - **A change is saved whole**: the records an [`OnboardingChange`] touches, its audit line
//!   and its event are written in one transaction, or nothing.
//! - A merchant's activations, bank accounts and audit lines come oldest first (the order of
//!   their ids).

use super::Durable;
use crate::domain::records::{ActivationRecord, AuditRecord, BankAccountRecord, MerchantRecord};
use crate::store::{OnboardingChange, Store, StoreError};

/// Re-seals one record's sealed values under a new master key, in place.
pub type Reseal<'a, T> = &'a mut (dyn FnMut(&mut T) -> Result<(), String> + Send);

#[async_trait::async_trait]
pub trait MerchantStore: Durable {
    /// Saves `change` atomically.
    async fn save_onboarding(&self, change: &OnboardingChange<'_>) -> Result<(), StoreError>;
    async fn merchant_record(&self, id: &str) -> Result<Option<MerchantRecord>, StoreError>;
    /// Every onboarded merchant.
    async fn merchant_records(&self) -> Result<Vec<MerchantRecord>, StoreError>;
    async fn activation(&self, id: &str) -> Result<Option<ActivationRecord>, StoreError>;
    async fn bank_account(&self, id: &str) -> Result<Option<BankAccountRecord>, StoreError>;
    /// A merchant's activations, oldest first.
    async fn activations_of(&self, merchant: &str) -> Result<Vec<ActivationRecord>, StoreError>;
    /// A merchant's bank accounts, oldest first.
    async fn bank_accounts_of(&self, merchant: &str) -> Result<Vec<BankAccountRecord>, StoreError>;
    /// Every activation (the janitor polls the unfinished ones).
    async fn all_activations(&self) -> Result<Vec<ActivationRecord>, StoreError>;
    /// Every bank account (the janitor polls the unverified ones).
    async fn all_bank_accounts(&self) -> Result<Vec<BankAccountRecord>, StoreError>;
    /// A merchant's audit log, oldest first.
    async fn audit_of(&self, merchant: &str) -> Result<Vec<AuditRecord>, StoreError>;
    /// Re-seals every merchant and bank account (a new master key); how many. A refusal
    /// of either closure stops it with [`StoreError::Corrupt`].
    async fn reseal_all(
        &self,
        merchant: Reseal<'_, MerchantRecord>,
        account: Reseal<'_, BankAccountRecord>,
    ) -> Result<usize, StoreError>;
}

#[async_trait::async_trait]
impl MerchantStore for Store {
    async fn save_onboarding(&self, change: &OnboardingChange<'_>) -> Result<(), StoreError> {
        Store::save_onboarding(self, change)
    }

    async fn merchant_record(&self, id: &str) -> Result<Option<MerchantRecord>, StoreError> {
        Store::merchant_record(self, id)
    }

    async fn merchant_records(&self) -> Result<Vec<MerchantRecord>, StoreError> {
        Store::merchant_records(self)
    }

    async fn activation(&self, id: &str) -> Result<Option<ActivationRecord>, StoreError> {
        Store::activation(self, id)
    }

    async fn bank_account(&self, id: &str) -> Result<Option<BankAccountRecord>, StoreError> {
        Store::bank_account(self, id)
    }

    async fn activations_of(&self, merchant: &str) -> Result<Vec<ActivationRecord>, StoreError> {
        Store::activations_of(self, merchant)
    }

    async fn bank_accounts_of(&self, merchant: &str) -> Result<Vec<BankAccountRecord>, StoreError> {
        Store::bank_accounts_of(self, merchant)
    }

    async fn all_activations(&self) -> Result<Vec<ActivationRecord>, StoreError> {
        Store::all_activations(self)
    }

    async fn all_bank_accounts(&self) -> Result<Vec<BankAccountRecord>, StoreError> {
        Store::all_bank_accounts(self)
    }

    async fn audit_of(&self, merchant: &str) -> Result<Vec<AuditRecord>, StoreError> {
        Store::audit_of(self, merchant)
    }

    async fn reseal_all(
        &self,
        merchant: Reseal<'_, MerchantRecord>,
        account: Reseal<'_, BankAccountRecord>,
    ) -> Result<usize, StoreError> {
        Store::reseal_all(self, merchant, account)
    }
}
