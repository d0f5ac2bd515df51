//! The plugin kit: runs a plugin against recorded provider exchanges (cassettes) and checks
//! the world's contract (`paygated plugin test`), and records cassettes from a live
//! provider (`paygated plugin record`).
//!
//! The kit lends the plugin a clock frozen at the cassette's instant and randomness seeded
//! by it, so the same call makes the same requests (timestamps, nonces and signatures
//! included) and a replay can demand them byte for byte. For every cassette it checks:
//!
//! - **replay**: the plugin sends exactly the recorded requests (a difference names the
//!   exchange and the field) and answers exactly the recorded result;
//! - **error classes**: with the last answer taken away (timeout, refused connection,
//!   HTTP 500, garbage), the answer is the class `provider.wit` defines (`contract.rs`);
//! - **a query after an unknown outcome**: where a call that may move money can end in
//!   `unknown-outcome`, a cassette of the query the gateway then makes must exist and pass;
//! - **no key material** in the plugin's log lines or in what it sends.
//!
//! It uses the daemon's own plugin host, so output bounds, the sandbox and the limits are
//! the ones production applies.

pub mod cassette;
pub mod compare;
pub mod contract;
pub mod lender;
pub mod setup;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::metrics::Metrics;
use crate::outbound::OutboundClient;
use crate::plugins::limits::PluginLimits;
use crate::plugins::settings::{HostSettings, KeySetting, PluginSettings};
use crate::plugins::{CallError, PluginHost};
use cassette::{Call, Cassette, FORMAT};
use contract::Mutation;
use lender::{KitLender, Script, Transcript};
use setup::Kit;

/// The plugin under test, in the daemon's host, with the kit's lender.
pub struct Bench {
    host: PluginHost,
    lender: Arc<KitLender>,
    kit: Kit,
    /// `(key name, fragment)` pairs that must never be logged or sent.
    key_fragments: Vec<(String, String)>,
    _cache: tempfile::TempDir,
}

impl Bench {
    pub async fn start(wasm: &Path, kit: Kit) -> Result<Bench, String> {
        let cache = tempfile::tempdir().map_err(|e| format!("a cache directory: {e}"))?;
        let settings = HostSettings {
            max_concurrent_calls: 1,
            trusted_signers: Vec::new(),
            cache_dir: cache.path().to_owned(),
            extra_ca_file: None,
            plugins: vec![PluginSettings {
                name: kit.provider.clone(),
                path: wasm.to_owned(),
                sha256: None,
                allowed_hosts: kit.allowed_hosts.clone(),
                limits: PluginLimits::default(),
                bill_limits: PluginLimits::bills(),
                settings: toml::Table::new(),
            }],
            keys: kit
                .keys
                .iter()
                .map(|(name, source)| KeySetting {
                    merchant: kit.merchant.id.clone(),
                    provider: kit.provider.clone(),
                    name: name.clone(),
                    source: source.clone(),
                    field: format!("merchant.keys.{name}"),
                })
                .collect(),
            merchants: Vec::new(),
        };
        let mut key_fragments = Vec::new();
        for (name, source) in &kit.keys {
            let bytes = crate::settings::KeySource::parse(source)
                .and_then(|s| s.read("key"))
                .map_err(|e| format!("merchant.keys.{name}: {e}"))?;
            key_fragments.extend(
                contract::fragments(&String::from_utf8_lossy(&bytes))
                    .into_iter()
                    .map(|f| (name.clone(), f)),
            );
        }
        let live = OutboundClient::new(Vec::new())?;
        let lender = Arc::new(KitLender::new(live));
        let host = PluginHost::start_lent(&settings, Arc::new(Metrics::new()), lender.clone())
            .await
            .map_err(|e| e.to_string())?;
        if host.provider(&kit.provider).is_none() {
            return Err(format!(
                "the plugin does not serve provider {:?} (kit.toml's `provider`)",
                kit.provider
            ));
        }
        Ok(Bench {
            host,
            lender,
            kit,
            key_fragments,
            _cache: cache,
        })
    }

    pub fn kit(&self) -> &Kit {
        &self.kit
    }

    /// Runs one call with the clock, seed and script given: its result as JSON and what it
    /// did.
    pub async fn run(
        &self,
        call: &Call,
        clock_ms: u64,
        seed: u64,
        script: Script,
    ) -> Result<(Value, Transcript), String> {
        self.lender.begin(clock_ms, seed, script);
        let result = self.call(call).await;
        let transcript = self.lender.end();
        let result = result.map_err(|e| format!("the plugin call failed: {e}"))?;
        Ok((result, transcript))
    }

    async fn call(&self, call: &Call) -> Result<Value, CallError> {
        fn json<T: serde::Serialize>(result: T) -> Value {
            serde_json::to_value(result).expect("results serialize")
        }
        Ok(match call.clone() {
            Call::CreatePayment(r) => json(self.host.create_payment(r).await?),
            Call::QueryPayment(r) => json(self.host.query_payment(r).await?),
            Call::CancelPayment(r) => json(self.host.cancel_payment(r).await?),
            Call::Refund(r) => json(self.host.refund(r).await?),
            Call::QueryRefund(r) => json(self.host.query_refund(r).await?),
            Call::Onboard(r) => json(self.host.onboard(r).await?),
            Call::QueryOnboarding(r) => json(self.host.query_onboarding(r).await?),
            Call::BindAccount(r) => json(self.host.bind_account(r).await?),
            Call::QueryBinding(r) => json(self.host.query_binding(r).await?),
        })
    }

    /// Records one scenario against the live provider, at `clock_ms` or now.
    pub async fn record(
        &self,
        name: &str,
        call: &Call,
        clock_ms: Option<u64>,
    ) -> Result<Cassette, String> {
        let clock_ms = clock_ms.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        });
        let seed = seed_of(name);
        let (result, transcript) = self.run(call, clock_ms, seed, Script::Live).await?;
        Ok(Cassette {
            format: FORMAT.into(),
            name: name.into(),
            clock_ms,
            seed,
            call: call.clone(),
            exchanges: transcript.exchanges,
            result,
        })
    }

    /// Every check of one cassette; the problems found (none: it passes). `all` are the
    /// kit's cassettes, for the query after an unknown outcome.
    pub async fn check(&self, cassette: &Cassette, all: &[Cassette]) -> Vec<String> {
        let mut problems = Vec::new();
        let replay = Script::Replay {
            exchanges: cassette.exchanges.clone(),
            more_allowed: false,
        };
        match self
            .run(&cassette.call, cassette.clock_ms, cassette.seed, replay)
            .await
        {
            Err(e) => problems.push(format!("replay: {e}")),
            Ok((result, transcript)) => {
                if let Some(d) = transcript.difference {
                    problems.push(format!("replay: {d}"));
                } else if transcript.exchanges.len() < cassette.exchanges.len() {
                    let missing = &cassette.exchanges[transcript.exchanges.len()].request;
                    problems.push(format!(
                        "replay: exchange {}: recorded {} {}, not sent",
                        transcript.exchanges.len() + 1,
                        missing.method,
                        missing.url
                    ));
                } else if let Some(d) = compare::result_difference(&cassette.result, &result) {
                    problems.push(format!("replay: result{}", d.trim_start_matches("body")));
                }
                if let Some(leak) = contract::leak(
                    &self.key_fragments,
                    &transcript.heard,
                    &transcript.exchanges,
                ) {
                    problems.push(leak);
                }
            }
        }
        if cassette.exchanges.is_empty() {
            return problems;
        }
        let mut unknown_outcome = false;
        for mutation in Mutation::ALL {
            let script = Script::Replay {
                exchanges: mutation.apply(&cassette.exchanges),
                more_allowed: true,
            };
            match self
                .run(&cassette.call, cassette.clock_ms, cassette.seed, script)
                .await
            {
                Err(e) => problems.push(format!("{}: {e}", mutation.name())),
                Ok((result, transcript)) => {
                    let class = contract::class(&result);
                    unknown_outcome |= class == "unknown-outcome";
                    let last = &cassette.exchanges[cassette.exchanges.len() - 1].request;
                    let read = last.method.eq_ignore_ascii_case("GET");
                    if let Err(broken) = contract::allowed(&cassette.call, mutation, read, &class) {
                        problems.push(broken);
                    }
                    if let Some(leak) = contract::leak(
                        &self.key_fragments,
                        &transcript.heard,
                        &transcript.exchanges,
                    ) {
                        problems.push(format!("{}: {leak}", mutation.name()));
                    }
                }
            }
        }
        if unknown_outcome && let Some((query, subject)) = cassette.call.follow_up() {
            let queried = all
                .iter()
                .any(|c| c.call.operation() == query && c.call.subject() == subject);
            if !queried {
                problems.push(format!(
                    "{} {subject} can end in unknown-outcome, after which the gateway calls {query}: no {query} cassette for {subject}",
                    cassette.call.operation()
                ));
            }
        }
        problems
    }
}

/// A scenario's seed: stable across recordings (FNV-1a of its name).
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cassettes in `dir` (`*.json`), by name.
pub fn cassettes(dir: &Path) -> Result<Vec<Cassette>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        found.push(Cassette::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// `paygated plugin test`: every cassette's checks, printed; whether all passed.
pub async fn test(wasm: &Path, dir: &Path) -> Result<bool, String> {
    let kit = Kit::load(dir)?;
    let all = cassettes(dir)?;
    if all.is_empty() {
        return Err(format!(
            "{}: no cassettes (record them with `paygated plugin record`)",
            dir.display()
        ));
    }
    let bench = Bench::start(wasm, kit).await?;
    println!(
        "{}: {} cassettes, provider {}",
        wasm.display(),
        all.len(),
        bench.kit().provider
    );
    let mut failed = 0;
    for cassette in &all {
        let problems = bench.check(cassette, &all).await;
        if problems.is_empty() {
            println!(
                "ok    {} ({} {}, {} exchanges)",
                cassette.name,
                cassette.call.operation(),
                contract::class(&cassette.result),
                cassette.exchanges.len()
            );
        } else {
            failed += 1;
            println!("FAIL  {} ({})", cassette.name, cassette.call.operation());
            for problem in problems {
                println!("      {problem}");
            }
        }
    }
    println!("{} passed, {failed} failed", all.len() - failed);
    Ok(failed == 0)
}

/// `paygated plugin record`: plays every scenario of `dir/kit.toml` against the live
/// provider, in order, and writes `dir/{name}.json`.
pub async fn record(wasm: &Path, dir: &Path) -> Result<(), String> {
    let kit = Kit::load(dir)?;
    if kit.scenarios.is_empty() {
        return Err(format!("{}: kit.toml has no [[scenario]]", dir.display()));
    }
    let scenarios = kit.scenarios.clone();
    let bench = Bench::start(wasm, kit).await?;
    for scenario in &scenarios {
        let cassette = bench
            .record(&scenario.name, &scenario.call, scenario.clock_ms)
            .await?;
        let path = dir.join(format!("{}.json", scenario.name));
        std::fs::write(&path, cassette.to_text())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "recorded {} ({} {}, {} exchanges)",
            scenario.name,
            scenario.call.operation(),
            contract::class(&cassette.result),
            cassette.exchanges.len()
        );
    }
    Ok(())
}
