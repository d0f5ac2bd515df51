//! The merchants the gateway serves. For now these are the merchants declared in the config
//! (`[[merchants]]`); the onboarding API will add run-time merchants kept in the store, and
//! both kinds will be looked up here.

use std::collections::BTreeMap;

use crate::config::MerchantConfig;

/// Where a merchant record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MerchantSource {
    /// Declared in the config file; changed only by editing the file.
    Config,
}

/// A merchant as the rest of the daemon sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub source: MerchantSource,
    /// Providers configured for this merchant, with the merchant's settings for each.
    pub providers: BTreeMap<String, toml::Table>,
    /// When the merchant is open, if it said (the off-hours rule).
    pub opening_hours: Option<crate::config::OpeningHours>,
}

/// All known merchants, by id.
#[derive(Debug, Default)]
pub struct MerchantDirectory {
    by_id: BTreeMap<String, Merchant>,
}

impl MerchantDirectory {
    pub fn from_config(merchants: &[MerchantConfig]) -> MerchantDirectory {
        let by_id = merchants
            .iter()
            .map(|m| {
                let merchant = Merchant {
                    id: m.id.get_ref().clone(),
                    name: m.name.get_ref().clone(),
                    source: MerchantSource::Config,
                    providers: m
                        .providers
                        .iter()
                        .map(|(name, p)| (name.clone(), p.settings.clone()))
                        .collect(),
                    opening_hours: m.opening_hours.as_ref().and_then(|h| {
                        let offset = m.utc_offset.as_ref().map(|o| o.get_ref().as_str());
                        crate::config::OpeningHours::parse(h.get_ref(), offset).ok()
                    }),
                };
                (merchant.id.clone(), merchant)
            })
            .collect();
        MerchantDirectory { by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Merchant> {
        self.by_id.get(id)
    }

    /// Merchants in id order, starting after `after` (exclusive) when given.
    pub fn iter_from<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a Merchant> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(id) => Bound::Excluded(id.to_owned()),
            None => Bound::Unbounded,
        };
        self.by_id
            .range((start, Bound::Unbounded))
            .map(|(_, merchant)| merchant)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
