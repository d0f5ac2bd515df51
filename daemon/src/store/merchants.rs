//! Onboarded merchants, their activations at providers and their bank accounts, with the
//! audit log. Every change is written with its audit record (and, for activations and bank
//! accounts, its event and outbox entry) in one atomic change (`txn.rs`).

use super::event_log::append_events;
use super::payments::{TxResult, encode};
use super::{Store, StoreError};
use crate::domain::records::{
    ActivationRecord, AuditRecord, BankAccountRecord, EventRecord, MerchantRecord, Snapshot,
};

/// Trees of the onboarding records.
pub(super) struct MerchantTrees {
    pub merchants: sled::Tree,
    pub activations: sled::Tree,
    pub bank_accounts: sled::Tree,
    /// `merchant \0 kind \0 id`: a merchant's activations and accounts, oldest first.
    pub by_merchant: sled::Tree,
    /// `merchant \0 audit id`.
    pub audit: sled::Tree,
}

impl MerchantTrees {
    pub fn open(db: &sled::Db) -> sled::Result<MerchantTrees> {
        Ok(MerchantTrees {
            merchants: db.open_tree("merchants")?,
            activations: db.open_tree("activations")?,
            bank_accounts: db.open_tree("bank_accounts")?,
            by_merchant: db.open_tree("merchant_objects")?,
            audit: db.open_tree("audit")?,
        })
    }
}

fn index_key(merchant: &str, kind: &str, id: &str) -> Vec<u8> {
    format!("{merchant}\0{kind}\0{id}").into_bytes()
}

/// One change to save: the records it touches, its audit line and its event.
pub struct OnboardingChange<'a> {
    pub merchant: Option<&'a MerchantRecord>,
    pub activation: Option<&'a ActivationRecord>,
    pub bank_account: Option<&'a BankAccountRecord>,
    /// Other bank accounts whose `is_default` changed with this one.
    pub also_accounts: &'a [BankAccountRecord],
    pub audit: &'a AuditRecord,
    pub event: Option<&'a EventRecord>,
}

impl Store {
    /// Saves `change` atomically.
    pub(in crate::store) fn save_onboarding(
        &self,
        change: &OnboardingChange<'_>,
    ) -> Result<(), StoreError> {
        let m = &self.merchant_trees;
        let t = &self.trees;
        let outbox_on = self.outbox_on();
        self.writer
            .transact(
                [
                    &m.merchants,
                    &m.activations,
                    &m.bank_accounts,
                    &m.by_merchant,
                    &m.audit,
                    &t.events,
                    &t.outbox,
                ],
                |[
                    merchants,
                    activations,
                    accounts,
                    by_merchant,
                    audit,
                    events,
                    outbox,
                ]|
                 -> TxResult<Vec<EventRecord>> {
                    if let Some(merchant) = change.merchant {
                        merchants.insert(merchant.id.as_bytes(), encode(merchant))?;
                    }
                    if let Some(activation) = change.activation {
                        activations.insert(activation.id.as_bytes(), encode(activation))?;
                        by_merchant.insert(
                            index_key(&activation.merchant_id, "act", &activation.id),
                            &[][..],
                        )?;
                    }
                    for account in change.bank_account.into_iter().chain(change.also_accounts) {
                        accounts.insert(account.id.as_bytes(), encode(account))?;
                        by_merchant
                            .insert(index_key(&account.merchant_id, "ba", &account.id), &[][..])?;
                    }
                    audit.insert(
                        format!("{}\0{}", change.audit.merchant_id, change.audit.id).into_bytes(),
                        encode(change.audit),
                    )?;
                    match change.event {
                        Some(event) => {
                            let snapshot = match (change.activation, change.bank_account) {
                                (Some(a), _) => Snapshot::of(a),
                                (None, Some(b)) => Snapshot::of(b),
                                (None, None) => Snapshot::of(&change.merchant),
                            };
                            append_events(
                                &self.seq,
                                events,
                                outbox_on.then_some(outbox),
                                std::slice::from_ref(event),
                                &snapshot,
                            )
                        }
                        None => Ok(Vec::new()),
                    }
                },
            )
            .map(|appended| self.published((), appended))
    }

    pub(in crate::store) fn merchant_record(
        &self,
        id: &str,
    ) -> Result<Option<MerchantRecord>, StoreError> {
        self.read(&self.merchant_trees.merchants, id, "merchant")
    }

    /// Every onboarded merchant.
    pub(in crate::store) fn merchant_records(&self) -> Result<Vec<MerchantRecord>, StoreError> {
        self.merchant_trees
            .merchants
            .iter()
            .map(|entry| {
                let (_, raw) = entry.map_err(StoreError::Sled)?;
                serde_json::from_slice(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("merchant: {e}")))
            })
            .collect()
    }

    pub(in crate::store) fn activation(
        &self,
        id: &str,
    ) -> Result<Option<ActivationRecord>, StoreError> {
        self.read(&self.merchant_trees.activations, id, "activation")
    }

    pub(in crate::store) fn bank_account(
        &self,
        id: &str,
    ) -> Result<Option<BankAccountRecord>, StoreError> {
        self.read(&self.merchant_trees.bank_accounts, id, "bank account")
    }

    fn ids_of(&self, merchant: &str, kind: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{merchant}\0{kind}\0");
        self.merchant_trees
            .by_merchant
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|key| {
                key.map(|k| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
                    .map_err(StoreError::Sled)
            })
            .collect()
    }

    /// A merchant's activations, oldest first.
    pub(in crate::store) fn activations_of(
        &self,
        merchant: &str,
    ) -> Result<Vec<ActivationRecord>, StoreError> {
        let mut found = Vec::new();
        for id in self.ids_of(merchant, "act")? {
            if let Some(a) = self.activation(&id)? {
                found.push(a);
            }
        }
        Ok(found)
    }

    /// A merchant's bank accounts, oldest first.
    pub(in crate::store) fn bank_accounts_of(
        &self,
        merchant: &str,
    ) -> Result<Vec<BankAccountRecord>, StoreError> {
        let mut found = Vec::new();
        for id in self.ids_of(merchant, "ba")? {
            if let Some(b) = self.bank_account(&id)? {
                found.push(b);
            }
        }
        Ok(found)
    }

    /// Every activation (the janitor polls the unfinished ones).
    pub(in crate::store) fn all_activations(&self) -> Result<Vec<ActivationRecord>, StoreError> {
        self.merchant_trees
            .activations
            .iter()
            .map(|entry| {
                let (_, raw) = entry.map_err(StoreError::Sled)?;
                serde_json::from_slice(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("activation: {e}")))
            })
            .collect()
    }

    /// Every bank account (the janitor polls the unverified ones).
    pub(in crate::store) fn all_bank_accounts(&self) -> Result<Vec<BankAccountRecord>, StoreError> {
        self.merchant_trees
            .bank_accounts
            .iter()
            .map(|entry| {
                let (_, raw) = entry.map_err(StoreError::Sled)?;
                serde_json::from_slice(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("bank account: {e}")))
            })
            .collect()
    }

    /// A merchant's audit log, oldest first.
    pub(in crate::store) fn audit_of(
        &self,
        merchant: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.merchant_trees
            .audit
            .scan_prefix(format!("{merchant}\0").as_bytes())
            .values()
            .map(|raw| {
                let raw = raw.map_err(StoreError::Sled)?;
                serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt(format!("audit: {e}")))
            })
            .collect()
    }

    /// Every sealed value's holder, for re-encryption under a new master key: merchants and
    /// bank accounts, replaced by `reseal` in place.
    pub(in crate::store) fn reseal_all(
        &self,
        mut reseal_merchant: impl FnMut(&mut MerchantRecord) -> Result<(), String>,
        mut reseal_account: impl FnMut(&mut BankAccountRecord) -> Result<(), String>,
    ) -> Result<usize, StoreError> {
        let mut count = 0;
        for mut merchant in self.merchant_records()? {
            reseal_merchant(&mut merchant).map_err(StoreError::Corrupt)?;
            let merchants = &self.merchant_trees.merchants;
            self.writer.single(merchants, merchant.id.as_bytes(), || {
                merchants.insert(merchant.id.as_bytes(), encode(&merchant))
            })?;
            count += 1;
        }
        for mut account in self.all_bank_accounts()? {
            reseal_account(&mut account).map_err(StoreError::Corrupt)?;
            let accounts = &self.merchant_trees.bank_accounts;
            self.writer.single(accounts, account.id.as_bytes(), || {
                accounts.insert(account.id.as_bytes(), encode(&account))
            })?;
            count += 1;
        }
        self.flush()?;
        Ok(count)
    }
}
