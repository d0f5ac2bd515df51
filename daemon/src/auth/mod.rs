//! API keys, roles and merchant scopes (API.md §2), free of HTTP.
//!
//! The config holds only SHA-256 hashes of keys. A presented key is hashed and looked up;
//! comparing hashes leaks nothing useful about the key through timing.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use ring::digest;
use serde::Deserialize;

mod failures;
pub mod totp;

pub use failures::FailureCounter;
pub use totp::Authenticator;

/// What a key may do. Each role can do everything the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A till: create and read payments, cancel them, for its merchants.
    Pos,
    /// A back office: `pos` plus refunds, lists, reports, merchants and bank accounts.
    Erp,
    /// An operator: everything, for every merchant, plus plugins and alerts.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Pos => "pos",
            Role::Erp => "erp",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "pos" => Some(Role::Pos),
            "erp" => Some(Role::Erp),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's public name from the config (never the key itself).
    pub id: String,
    pub role: Role,
    /// Merchants a `pos` or `erp` key may act for; ignored for `admin`.
    pub merchants: BTreeSet<String>,
    /// True when this is one of the demo keys whose plaintext the README publishes.
    pub is_demo: bool,
    /// The first 8 bytes of the key's SHA-256, hex: names this key's value (a console
    /// session ends when the key under its id is replaced).
    pub digest: String,
    /// The key's authenticator, when one is enrolled (`paygated keys totp enroll`): the
    /// console's log-in and the API's sensitive operations then need a fresh code.
    pub second_factor: Option<Authenticator>,
}

impl ApiKey {
    pub fn has_role(&self, needed: Role) -> bool {
        self.role >= needed
    }

    /// Whether this key may act for `merchant_id`. Unknown merchants are simply out of scope,
    /// so callers cannot tell "missing" from "not yours".
    pub fn may_act_for(&self, merchant_id: &str) -> bool {
        self.role == Role::Admin || self.merchants.contains(merchant_id)
    }
}

/// The demo keys the default config ships with; their plaintext is in the README.
pub const DEMO_KEYS: [&str; 3] = ["pg_demo_pos", "pg_demo_erp", "pg_demo_admin"];

/// A configured key: what [`KeyRing::new`] is built from.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub id: String,
    pub role: Role,
    pub merchants: Vec<String>,
    pub sha256: [u8; 32],
    pub second_factor: Option<Authenticator>,
}

/// All configured keys, indexed by hash.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_hash: HashMap<[u8; 32], Arc<ApiKey>>,
}

impl KeyRing {
    /// Builds the ring from configured keys, each with the SHA-256 of its text.
    pub fn new(entries: impl IntoIterator<Item = KeyEntry>) -> KeyRing {
        let demo_hashes: Vec<[u8; 32]> = DEMO_KEYS.iter().map(|k| sha256(k)).collect();
        let by_hash = entries
            .into_iter()
            .map(|entry| {
                let key = ApiKey {
                    id: entry.id,
                    role: entry.role,
                    merchants: entry.merchants.into_iter().collect(),
                    is_demo: demo_hashes.contains(&entry.sha256),
                    digest: hex::encode(&entry.sha256[..8]),
                    second_factor: entry.second_factor,
                };
                (entry.sha256, Arc::new(key))
            })
            .collect();
        KeyRing { by_hash }
    }

    /// The key whose hash matches `presented`, if any.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<ApiKey>> {
        self.by_hash.get(&sha256(presented)).cloned()
    }

    /// The key named `id` (a console session's key, looked up again on each request).
    pub fn by_id(&self, id: &str) -> Option<Arc<ApiKey>> {
        self.by_hash.values().find(|k| k.id == id).cloned()
    }

    pub fn keys(&self) -> impl Iterator<Item = &ApiKey> {
        self.by_hash.values().map(Arc::as_ref)
    }

    pub fn has_demo_keys(&self) -> bool {
        self.keys().any(|k| k.is_demo)
    }
}

/// SHA-256 of a key's text, as stored in the config.
pub fn sha256(key: &str) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, key.as_bytes());
    digest
        .as_ref()
        .try_into()
        .expect("SHA-256 digests are 32 bytes")
}

/// A fresh random API key: `pg_` and 40 base62 characters (about 238 bits).
pub fn generate_key() -> String {
    format!("pg_{}", crate::domain::ids::random_base62(40))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, role: Role, merchants: &[&str], key: &str) -> KeyEntry {
        KeyEntry {
            id: id.into(),
            role,
            merchants: merchants.iter().map(|m| m.to_string()).collect(),
            sha256: sha256(key),
            second_factor: None,
        }
    }

    #[test]
    fn authenticates_by_hash_only() {
        let ring = KeyRing::new([entry("key_a", Role::Pos, &["m_a"], "pg_secret")]);
        let key = ring.authenticate("pg_secret").unwrap();
        assert_eq!(key.id, "key_a");
        assert!(!key.is_demo);
        assert!(ring.authenticate("pg_secreT").is_none());
        assert!(ring.authenticate("").is_none());
    }

    #[test]
    fn roles_nest_and_scopes_bind() {
        let ring = KeyRing::new([
            entry("key_pos", Role::Pos, &["m_a"], "p"),
            entry("key_admin", Role::Admin, &[], "a"),
        ]);
        let pos = ring.authenticate("p").unwrap();
        assert!(pos.has_role(Role::Pos) && !pos.has_role(Role::Erp));
        assert!(pos.may_act_for("m_a") && !pos.may_act_for("m_b"));
        let admin = ring.authenticate("a").unwrap();
        assert!(admin.has_role(Role::Erp) && admin.may_act_for("m_anything"));
    }

    #[test]
    fn demo_keys_are_recognised_by_their_hash() {
        let ring = KeyRing::new([entry("renamed", Role::Admin, &[], "pg_demo_admin")]);
        assert!(ring.has_demo_keys());
    }

    #[test]
    fn generated_keys_are_distinct_and_well_formed() {
        let a = generate_key();
        assert_eq!(a.len(), 43);
        assert!(a.starts_with("pg_"));
        assert_ne!(a, generate_key());
    }
}
