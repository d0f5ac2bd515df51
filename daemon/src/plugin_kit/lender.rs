//! The kit's lender: a clock frozen at the cassette's instant, randomness seeded by the
//! cassette, the plugin's log lines kept, and the provider either live (recording: every
//! exchange is kept) or a cassette (replaying: each request is compared with the recorded
//! one, and the recorded answer handed back).

use std::sync::Mutex;
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rsa::rand_core::{CryptoRngCore, SeedableRng};

use super::cassette::{Answer, Exchange, Request};
use super::compare;
use crate::outbound::{
    self, Origin, OutboundClient, OutboundError, OutboundRequest, OutboundResponse,
};
use crate::plugins::bindings::paygate::provider::log::Level;

/// How the kit answers one call's requests.
pub enum Script {
    /// From the live provider, keeping every exchange.
    Live,
    /// From these exchanges, in order. Past their end, requests are answered by a refused
    /// connection, and counted as a difference unless `more_allowed`.
    Replay {
        exchanges: Vec<Exchange>,
        more_allowed: bool,
    },
}

/// What one call did.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Every request the plugin sent, with the answer it got.
    pub exchanges: Vec<Exchange>,
    /// The first way the requests differed from the cassette.
    pub difference: Option<String>,
    /// The plugin's log lines.
    pub heard: Vec<String>,
}

struct Session {
    clock_ms: u64,
    seed: u64,
    draws: u64,
    script: Script,
    transcript: Transcript,
}

pub struct KitLender {
    live: OutboundClient,
    session: Mutex<Option<Session>>,
}

impl KitLender {
    pub fn new(live: OutboundClient) -> KitLender {
        KitLender {
            live,
            session: Mutex::new(None),
        }
    }

    /// Starts a call's session: the clock, the seed and how requests are answered.
    pub fn begin(&self, clock_ms: u64, seed: u64, script: Script) {
        *self.session.lock().expect("kit session lock") = Some(Session {
            clock_ms,
            seed,
            draws: 0,
            script,
            transcript: Transcript::default(),
        });
    }

    /// Ends the call's session: what it did.
    pub fn end(&self) -> Transcript {
        self.session
            .lock()
            .expect("kit session lock")
            .take()
            .map(|s| s.transcript)
            .unwrap_or_default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        self.session
            .lock()
            .expect("kit session lock")
            .as_mut()
            .map(f)
    }
}

/// The answer to a request the cassette does not have.
fn unscripted() -> Result<OutboundResponse, OutboundError> {
    Err(OutboundError::Connection(
        "the plugin kit: this request is not in the cassette".into(),
    ))
}

#[async_trait::async_trait]
impl crate::plugins::Lender for KitLender {
    async fn send(
        &self,
        request: OutboundRequest,
        allowed: &[Origin],
        deadline: Instant,
        response_bytes_max: usize,
    ) -> Result<OutboundResponse, OutboundError> {
        let sent = Request::of(&request);
        let live = self
            .with(|s| matches!(s.script, Script::Live))
            .unwrap_or(false);
        let outcome = if live {
            self.live
                .send(request, allowed, deadline, response_bytes_max)
                .await
        } else if let Err(refused) = outbound::admit(&request.url, allowed) {
            Err(refused)
        } else {
            self.with(|s| {
                let n = s.transcript.exchanges.len();
                let Script::Replay {
                    exchanges,
                    more_allowed,
                } = &s.script
                else {
                    return unscripted();
                };
                let Some(recorded) = exchanges.get(n) else {
                    if !more_allowed && s.transcript.difference.is_none() {
                        s.transcript.difference = Some(format!(
                            "exchange {}: sent {} {}, not recorded",
                            n + 1,
                            sent.method,
                            sent.url
                        ));
                    }
                    return unscripted();
                };
                if let Some(d) = compare::difference(&recorded.request, &sent) {
                    if s.transcript.difference.is_none() {
                        s.transcript.difference = Some(format!("exchange {}: {d}", n + 1));
                    }
                    return unscripted();
                }
                recorded.answer.outcome().unwrap_or_else(|e| {
                    s.transcript.difference.get_or_insert(e);
                    unscripted()
                })
            })
            .unwrap_or_else(unscripted)
        };
        self.with(|s| {
            s.transcript.exchanges.push(Exchange {
                request: sent,
                answer: Answer::of(&outcome),
            })
        });
        outcome
    }

    fn now_millis(&self) -> u64 {
        self.with(|s| s.clock_ms).unwrap_or(0)
    }

    fn rng(&self) -> Box<dyn CryptoRngCore + Send> {
        let seed = self
            .with(|s| {
                s.draws += 1;
                s.seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(s.draws)
            })
            .unwrap_or(0);
        Box::new(ChaCha20Rng::seed_from_u64(seed))
    }

    fn heard(&self, _level: Level, message: &str) {
        self.with(|s| s.transcript.heard.push(message.to_owned()));
    }
}
