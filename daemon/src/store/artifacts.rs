//! The digests of compiled plugins: when the daemon compiles a verified plugin, it records
//! the SHA-256 of the artifact it caches, here, where the cache dir cannot change it. The
//! plugin host checks an artifact against it before loading it (`plugins::ArtifactLedger`).

use super::{Store, StoreError};

/// The tree of artifact digests: cache file name -> hex SHA-256.
const TREE: &str = "plugin_artifacts";

/// A handle on the recorded digests, usable from the plugin host's loading threads.
#[derive(Clone)]
pub struct ArtifactDigests {
    tree: sled::Tree,
}

impl ArtifactDigests {
    /// The digest recorded for `artifact`.
    pub fn get(&self, artifact: &str) -> Result<Option<String>, StoreError> {
        let raw = self
            .tree
            .get(artifact.as_bytes())
            .map_err(StoreError::Sled)?;
        Ok(raw.map(|raw| String::from_utf8_lossy(&raw).into_owned()))
    }

    /// Records `sha256` for `artifact`, durably (compiling is rare, and a digest lost in a
    /// crash would cost a compilation at the next start). A tree no other change touches,
    /// written alone: it needs no atomicity with anything else.
    pub fn record(&self, artifact: &str, sha256: &str) -> Result<(), StoreError> {
        self.tree
            .insert(artifact.as_bytes(), sha256.as_bytes())
            .and_then(|_| self.tree.flush())
            .map(drop)
            .map_err(StoreError::Sled)
    }
}

impl Store {
    /// The recorded digests of compiled plugins.
    pub fn artifact_digests(&self) -> Result<ArtifactDigests, StoreError> {
        Ok(ArtifactDigests {
            tree: self.db.open_tree(TREE).map_err(StoreError::Sled)?,
        })
    }
}
