//! Onboarded merchants, their activations and bank accounts, and the audit log on
//! PostgreSQL. A change's records, audit line and event are written in one transaction.

use tokio_postgres::types::Json;

use super::events::log_events;
use super::{Db, PgStore, decoded, each, one};
use crate::domain::records::{
    ActivationRecord, AuditRecord, BankAccountRecord, MerchantRecord, Snapshot,
};
use crate::store::port::{MerchantStore, Reseal};
use crate::store::{OnboardingChange, StoreError};

async fn put_merchant<C: Db>(db: &C, merchant: &MerchantRecord) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO merchants (id, record) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET record = excluded.record",
        &[&merchant.id, &Json(merchant)],
    )
    .await?;
    Ok(())
}

async fn put_account<C: Db>(db: &C, account: &BankAccountRecord) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO bank_accounts (id, merchant_id, record) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE
            SET merchant_id = excluded.merchant_id, record = excluded.record",
        &[&account.id, &account.merchant_id, &Json(account)],
    )
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MerchantStore for PgStore {
    async fn save_onboarding(&self, change: &OnboardingChange<'_>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(merchant) = change.merchant {
            put_merchant(&tx, merchant).await?;
        }
        if let Some(activation) = change.activation {
            tx.exec(
                "INSERT INTO activations (id, merchant_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE
                    SET merchant_id = excluded.merchant_id, record = excluded.record",
                &[&activation.id, &activation.merchant_id, &Json(activation)],
            )
            .await?;
        }
        for account in change.bank_account.into_iter().chain(change.also_accounts) {
            put_account(&tx, account).await?;
        }
        let audit = change.audit;
        tx.exec(
            "INSERT INTO audit (id, merchant_id, record) VALUES ($1, $2, $3)",
            &[&audit.id, &audit.merchant_id, &Json(audit)],
        )
        .await?;
        let logged = match change.event {
            Some(event) => {
                // The record the event is about, as the sled engine snapshots it.
                let snapshot = match (change.activation, change.bank_account) {
                    (Some(a), _) => Snapshot::of(a),
                    (None, Some(b)) => Snapshot::of(b),
                    (None, None) => Snapshot::of(&change.merchant),
                };
                let events = std::slice::from_ref(event);
                log_events(&tx, events, 0, &snapshot, self.outbox_on()).await?
            }
            None => Vec::new(),
        };
        tx.commit().await?;
        self.published(logged);
        Ok(())
    }

    async fn merchant_record(&self, id: &str) -> Result<Option<MerchantRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt("SELECT record FROM merchants WHERE id = $1", &[&id])
            .await?)
    }

    async fn merchant_records(&self) -> Result<Vec<MerchantRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows("SELECT record FROM merchants ORDER BY id", &[])
                .await?,
        )
    }

    async fn activation(&self, id: &str) -> Result<Option<ActivationRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt("SELECT record FROM activations WHERE id = $1", &[&id])
            .await?)
    }

    async fn bank_account(&self, id: &str) -> Result<Option<BankAccountRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt("SELECT record FROM bank_accounts WHERE id = $1", &[&id])
            .await?)
    }

    async fn activations_of(&self, merchant: &str) -> Result<Vec<ActivationRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows(
                    "SELECT record FROM activations WHERE merchant_id = $1 ORDER BY id",
                    &[&merchant],
                )
                .await?,
        )
    }

    async fn bank_accounts_of(&self, merchant: &str) -> Result<Vec<BankAccountRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows(
                    "SELECT record FROM bank_accounts WHERE merchant_id = $1 ORDER BY id",
                    &[&merchant],
                )
                .await?,
        )
    }

    async fn all_activations(&self) -> Result<Vec<ActivationRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows("SELECT record FROM activations ORDER BY id", &[])
                .await?,
        )
    }

    async fn all_bank_accounts(&self) -> Result<Vec<BankAccountRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows("SELECT record FROM bank_accounts ORDER BY id", &[])
                .await?,
        )
    }

    async fn audit_of(&self, merchant: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows(
                    "SELECT record FROM audit WHERE merchant_id = $1 ORDER BY id",
                    &[&merchant],
                )
                .await?,
        )
    }

    /// All in one transaction, under the rows' locks: a refusal leaves every record under
    /// the old key, and no daemon writes a record meanwhile under it.
    async fn reseal_all(
        &self,
        reseal_merchant: Reseal<'_, MerchantRecord>,
        reseal_account: Reseal<'_, BankAccountRecord>,
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut count = 0;
        let merchants = tx
            .rows("SELECT record FROM merchants ORDER BY id FOR UPDATE", &[])
            .await?;
        for row in &merchants {
            let mut merchant: MerchantRecord = decoded(row, 0)?;
            reseal_merchant(&mut merchant).map_err(StoreError::Corrupt)?;
            put_merchant(&tx, &merchant).await?;
            count += 1;
        }
        let accounts = tx
            .rows(
                "SELECT record FROM bank_accounts ORDER BY id FOR UPDATE",
                &[],
            )
            .await?;
        for row in &accounts {
            let mut account: BankAccountRecord = decoded(row, 0)?;
            reseal_account(&mut account).map_err(StoreError::Corrupt)?;
            put_account(&tx, &account).await?;
            count += 1;
        }
        tx.commit().await?;
        Ok(count)
    }
}
