//! The storage ports' conformance suite: the invariants of `port/`, checked against any
//! engine. An engine is tested by calling [`run`] with an [`Engine`] that makes fresh places
//! for it (`sled_conforms` below: a directory; `postgres::tests`: a database).

mod back_office;
mod feeds;
mod payments;

use std::sync::Arc;

use super::StoreError;
use super::port::Storage;

/// An engine under test: makes an empty place for a store (a directory, a database).
#[async_trait::async_trait]
pub trait Engine: Sync {
    async fn fresh(&self) -> Box<dyn Place>;
}

/// Where one store lives. Opening it again, once the previous handle is dropped, must find
/// what was made durable.
#[async_trait::async_trait]
pub trait Place: Send + Sync {
    async fn open(&self) -> Result<Arc<dyn Storage>, StoreError>;
}

/// A succeeded payment `id`, for engines' own tests.
pub async fn paid_for_tests(store: &dyn super::port::PaymentStore, id: &str) {
    payments::paid(store, id, 100).await;
}

/// Every check of every port, each on a fresh place.
pub async fn run(engine: &dyn Engine) {
    payments::run(engine).await;
    feeds::run(engine).await;
    back_office::run(engine).await;
}

async fn fresh(engine: &dyn Engine) -> (Box<dyn Place>, Arc<dyn Storage>) {
    let place = engine.fresh().await;
    let store = place
        .open()
        .await
        .expect("the engine opens on an empty place");
    (place, store)
}

/// sled, each place a temporary directory.
struct Sled;

struct SledPlace(tempfile::TempDir);

#[async_trait::async_trait]
impl Engine for Sled {
    async fn fresh(&self) -> Box<dyn Place> {
        Box::new(SledPlace(tempfile::tempdir().unwrap()))
    }
}

#[async_trait::async_trait]
impl Place for SledPlace {
    async fn open(&self) -> Result<Arc<dyn Storage>, StoreError> {
        Ok(Arc::new(super::Store::open(self.0.path())?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_conforms() {
    run(&Sled).await;
}
