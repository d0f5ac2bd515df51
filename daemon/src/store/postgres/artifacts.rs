//! The compiled plugins' digests on PostgreSQL. The plugin host asks from its loading
//! threads, without waiting on a network: the digests are read whole when asked for (at
//! start), and each new one is kept at once and written in the background (one lost in a
//! crash costs a compilation at the next start, nothing else).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Db, PgStore};
use crate::store::StoreError;

#[derive(Clone)]
pub struct PgArtifactDigests {
    known: Arc<Mutex<HashMap<String, String>>>,
    pool: deadpool_postgres::Pool,
    runtime: tokio::runtime::Handle,
}

impl PgStore {
    /// The recorded digests of compiled plugins (call from within the runtime).
    pub async fn artifact_digests(&self) -> Result<PgArtifactDigests, StoreError> {
        let client = self.client().await?;
        let known = client
            .rows("SELECT artifact, sha256 FROM plugin_artifacts", &[])
            .await?
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        Ok(PgArtifactDigests {
            known: Arc::new(Mutex::new(known)),
            pool: self.pool.clone(),
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

impl PgArtifactDigests {
    /// The digest recorded for `artifact`.
    pub fn get(&self, artifact: &str) -> Option<String> {
        self.known.lock().ok()?.get(artifact).cloned()
    }

    /// Records `sha256` for `artifact`: here at once, in the database in the background.
    pub fn record(&self, artifact: &str, sha256: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(artifact.to_owned(), sha256.to_owned());
        }
        let (pool, artifact, sha256) = (self.pool.clone(), artifact.to_owned(), sha256.to_owned());
        self.runtime.spawn(async move {
            let written = async {
                pool.get()
                    .await
                    .map_err(|e| e.to_string())?
                    .exec(
                        "INSERT INTO plugin_artifacts (artifact, sha256) VALUES ($1, $2)
                         ON CONFLICT (artifact) DO UPDATE SET sha256 = excluded.sha256",
                        &[&artifact, &sha256],
                    )
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = written.await {
                tracing::warn!(error = %e, "cannot record a plugin artifact's digest; the next start compiles it again");
            }
        });
    }
}
