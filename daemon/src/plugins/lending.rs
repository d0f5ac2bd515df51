//! What the host lends a plugin besides its keys: outbound HTTP, the clock, the randomness of
//! its key operations (RSA-OAEP padding), and an ear for its log lines. The daemon lends the
//! real ones ([`LiveLender`]). The plugin kit (`plugin_kit`) lends recorded exchanges, a
//! fixed clock and seeded randomness, so that the same call makes the same requests, byte
//! for byte, and a recorded exchange can be replayed exactly.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rsa::rand_core::CryptoRngCore;

use super::bindings::paygate::provider::log::Level;
use crate::outbound::{Origin, OutboundClient, OutboundError, OutboundRequest, OutboundResponse};

/// A lender of HTTP, time and randomness to plugin calls.
#[async_trait::async_trait]
pub trait Lender: Send + Sync {
    /// Sends a plugin's request (the host has checked nothing yet: the allow-list is the
    /// lender's to apply).
    async fn send(
        &self,
        request: OutboundRequest,
        allowed: &[Origin],
        deadline: Instant,
        response_bytes_max: usize,
    ) -> Result<OutboundResponse, OutboundError>;

    /// Milliseconds since the Unix epoch, as the plugin sees them.
    fn now_millis(&self) -> u64;

    /// The randomness of one key operation.
    fn rng(&self) -> Box<dyn CryptoRngCore + Send>;

    /// A plugin's log line, within the host's limits (already cut and cleaned).
    fn heard(&self, _level: Level, _message: &str) {}
}

/// The real world: the network, the system clock, the operating system's randomness.
pub struct LiveLender {
    http: OutboundClient,
}

impl LiveLender {
    pub fn new(http: OutboundClient) -> LiveLender {
        LiveLender { http }
    }
}

#[async_trait::async_trait]
impl Lender for LiveLender {
    async fn send(
        &self,
        request: OutboundRequest,
        allowed: &[Origin],
        deadline: Instant,
        response_bytes_max: usize,
    ) -> Result<OutboundResponse, OutboundError> {
        self.http
            .send(request, allowed, deadline, response_bytes_max)
            .await
    }

    fn now_millis(&self) -> u64 {
        #[cfg(feature = "test-hooks")]
        if let Some(now) = test_clock::now_millis() {
            return now;
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn rng(&self) -> Box<dyn CryptoRngCore + Send> {
        // The operating system's randomness (rand_core through getrandom).
        Box::new(rsa::rand_core::OsRng)
    }
}

/// Test builds only (the `test-hooks` feature): `PAYGATE_TEST_PLUGIN_CLOCK_MS` sets the clock
/// plugins see to that instant when first read, moving on with real time from there, so that
/// tests can present a published vector at its own time (an Apple Pay token's signing time).
#[cfg(feature = "test-hooks")]
mod test_clock {
    use std::sync::OnceLock;
    use std::time::Instant;

    pub fn now_millis() -> Option<u64> {
        static START: OnceLock<Option<(u64, Instant)>> = OnceLock::new();
        let (at, since) = (*START.get_or_init(|| {
            let at = std::env::var("PAYGATE_TEST_PLUGIN_CLOCK_MS")
                .ok()?
                .parse()
                .ok()?;
            Some((at, Instant::now()))
        }))?;
        Some(at + since.elapsed().as_millis() as u64)
    }
}
