//! `paygate-daemon`: the library behind the `paygated` binary. `main.rs` only calls
//! [`cli::main`]; every module here can be tested on its own.
//!
//! Data flows one way: `api` -> use cases -> (`store`, plugin host) -> events.
//! ARCHITECTURE.md at the repository root is the map.

pub mod api;
pub mod app;
pub mod archiving;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod domain;
pub mod events;
pub mod fuzzing;
pub mod idempotency;
pub mod janitor;
pub mod leases;
pub mod logging;
pub mod merchants;
pub mod metrics;
pub mod monitor;
pub mod notices;
pub mod outbound;
pub mod payments;
pub mod plugin_kit;
pub mod plugins;
pub mod process;
pub mod reconciliation;
pub mod serve;
pub mod server;
pub mod settings;
pub mod store;
#[cfg(test)]
pub mod testkit;
pub mod webhooks;
