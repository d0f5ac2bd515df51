//! Keeping leases where several daemons share the store: a task renews what a piece of work
//! holds for as long as the work runs, and stops when the work ends (its guard drops).

use std::future::Future;
use std::time::Duration;

/// Renews a lease until dropped.
pub struct Renewing(tokio::task::JoinHandle<()>);

impl Drop for Renewing {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Calls `renew` every `every` until it answers false (the lease is gone: nothing left to
/// keep) or the returned guard drops.
pub fn renewing<F, Fut>(every: Duration, renew: F) -> Renewing
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    Renewing(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if !renew().await {
                return;
            }
        }
    }))
}
