//! Payments and refunds: the state machines, and (next) the use cases that tie the API, the
//! store and the plugin host together.

pub mod service;
