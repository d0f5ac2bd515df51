//! End-to-end tests: each starts the real `paygated` binary on a free port with its own data
//! dir, and talks HTTP to it over a real socket.

mod support;

mod applepay;
mod archive;
mod auth;
mod backup;
mod bad_input;
mod bills;
mod browser;
mod cashier;
mod config_errors;
mod connections;
mod console;
mod crash;
mod database_outage;
mod examples;
mod gauntlet;
mod lifecycle;
mod metrics;
mod monitor;
mod multi_node;
mod onboarding;
mod ops;
mod payments;
mod plugin_kit;
mod plugin_sandbox;
mod plugins_api;
mod providers;
mod reconciliation;
mod refund_outcomes;
mod second_factor;
mod security;
mod simulator;
mod storage;
mod tls;
mod webhooks;
mod world_versions;
