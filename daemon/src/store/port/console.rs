//! The second factor's and the console's port: the last accepted code step of each API key
//! and the console's sessions.
//!
//! Invariants:
//! - **A code step is accepted once**: `accept_code_step` accepts a step only if it is later
//!   than every step accepted for the key before, atomically, whatever runs concurrently
//!   (RFC 6238 §5.2: a code is used once, and an older one never after a newer).
//! - **A touch never undoes a log-out**: `touch_session` replaces a session only if it is
//!   still what the caller read.

use super::Durable;
use crate::domain::records::SessionRecord;
use crate::store::{Store, StoreError};

/// Which sessions are over.
pub type SessionFilter<'a> = &'a (dyn Fn(&SessionRecord) -> bool + Sync);

#[async_trait::async_trait]
pub trait ConsoleStore: Durable {
    /// Accepts `step` for `key_id` if it is later than every step accepted for it before;
    /// `false` when it is not. The caller makes it durable before acting on it.
    async fn accept_code_step(&self, key_id: &str, step: u64) -> Result<bool, StoreError>;
    /// Keeps a session under the SHA-256 of its id (the id itself stays in the browser).
    async fn put_session(
        &self,
        id_hash: &[u8; 32],
        session: &SessionRecord,
    ) -> Result<(), StoreError>;
    /// Replaces `before` with `after` only if the session is still `before`; whether it was.
    async fn touch_session(
        &self,
        id_hash: &[u8; 32],
        before: &SessionRecord,
        after: &SessionRecord,
    ) -> Result<bool, StoreError>;
    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError>;
    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// Removes the sessions `ended` says are over (and any unreadable one); how many.
    async fn remove_sessions(&self, ended: SessionFilter<'_>) -> Result<usize, StoreError>;
}

#[async_trait::async_trait]
impl ConsoleStore for Store {
    async fn accept_code_step(&self, key_id: &str, step: u64) -> Result<bool, StoreError> {
        Store::accept_code_step(self, key_id, step)
    }

    async fn put_session(
        &self,
        id_hash: &[u8; 32],
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        Store::put_session(self, id_hash, session)
    }

    async fn touch_session(
        &self,
        id_hash: &[u8; 32],
        before: &SessionRecord,
        after: &SessionRecord,
    ) -> Result<bool, StoreError> {
        Store::touch_session(self, id_hash, before, after)
    }

    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        Store::session(self, id_hash)
    }

    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        Store::remove_session(self, id_hash)
    }

    async fn remove_sessions(&self, ended: SessionFilter<'_>) -> Result<usize, StoreError> {
        Store::remove_sessions(self, ended)
    }
}
