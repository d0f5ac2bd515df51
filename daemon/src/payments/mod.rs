//! Payments and refunds: the use cases that tie the storage port, the provider port and the
//! merchant directory together (`service.rs`).

pub mod service;
