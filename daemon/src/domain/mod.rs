//! The domain: what a payment, a refund, a merchant's activation and an event are, with
//! the rules that hold for them whatever stores or serves them. It imports nothing of the
//! daemon above it, so every other module may use it and the compiler finds every place to
//! change when a status, a method or an event kind is added.

pub mod events;
pub mod hours;
pub mod ids;
pub mod method;
pub mod money;
pub mod reconciliation;
pub mod records;
pub mod state;
