//! What the second factor and the console keep: the last accepted code step of each API key
//! (so that a code is accepted once, across restarts: RFC 6238 §5.2) and the console's
//! sessions, keyed by the SHA-256 of their id (the id itself is only in the browser's
//! cookie: a copy of the data dir opens no session).

use super::payments::encode;
use super::{Store, StoreError};
use crate::domain::records::SessionRecord;

pub(super) struct ConsoleTrees {
    /// API key id -> the last accepted step (u64, big-endian).
    code_steps: sled::Tree,
    /// SHA-256 of a session id -> [`SessionRecord`].
    sessions: sled::Tree,
}

impl ConsoleTrees {
    pub fn open(db: &sled::Db) -> sled::Result<ConsoleTrees> {
        Ok(ConsoleTrees {
            code_steps: db.open_tree("code_steps")?,
            sessions: db.open_tree("console_sessions")?,
        })
    }
}

impl Store {
    /// Accepts `step` for `key_id` if it is later than every step accepted for the key
    /// before (a code is used once, and an older one never after a newer); `false` when it
    /// is not. The caller makes it durable before acting on it.
    pub(in crate::store) fn accept_code_step(
        &self,
        key_id: &str,
        step: u64,
    ) -> Result<bool, StoreError> {
        let tree = &self.console.code_steps;
        loop {
            let current = tree.get(key_id.as_bytes()).map_err(StoreError::Sled)?;
            if let Some(raw) = &current {
                let last = <[u8; 8]>::try_from(raw.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt(format!("code step of {key_id}")))?;
                if step <= last {
                    return Ok(false);
                }
            }
            let swapped = self.writer.single(tree, key_id.as_bytes(), || {
                tree.compare_and_swap(
                    key_id.as_bytes(),
                    current.as_ref(),
                    Some(&step.to_be_bytes()[..]),
                )
            })?;
            if swapped.is_ok() {
                return Ok(true);
            }
            // Another code for the key was accepted meanwhile: compare again.
        }
    }

    pub(in crate::store) fn put_session(
        &self,
        id_hash: &[u8; 32],
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let tree = &self.console.sessions;
        self.writer
            .single(tree, id_hash, || tree.insert(id_hash, encode(session)))
            .map(drop)
    }

    /// Replaces `before` with `after` only if the session is still `before` (a log-out in
    /// between is not undone); whether it was.
    pub(in crate::store) fn touch_session(
        &self,
        id_hash: &[u8; 32],
        before: &SessionRecord,
        after: &SessionRecord,
    ) -> Result<bool, StoreError> {
        let tree = &self.console.sessions;
        let swapped = self.writer.single(tree, id_hash, || {
            tree.compare_and_swap(id_hash, Some(encode(before)), Some(encode(after)))
        })?;
        Ok(swapped.is_ok())
    }

    pub(in crate::store) fn session(
        &self,
        id_hash: &[u8; 32],
    ) -> Result<Option<SessionRecord>, StoreError> {
        match self
            .console
            .sessions
            .get(id_hash)
            .map_err(StoreError::Sled)?
        {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("console session: {e}"))),
        }
    }

    pub(in crate::store) fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        let tree = &self.console.sessions;
        self.writer
            .single(tree, id_hash, || tree.remove(id_hash))
            .map(drop)
    }

    /// Removes the sessions `ended` says are over (timed out); returns how many.
    pub(in crate::store) fn remove_sessions(
        &self,
        ended: impl Fn(&SessionRecord) -> bool,
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.console.sessions.iter() {
            let (id_hash, raw) = entry.map_err(StoreError::Sled)?;
            // An unreadable session is as good as ended.
            let over = serde_json::from_slice::<SessionRecord>(&raw).map_or(true, |s| ended(&s));
            if over {
                let tree = &self.console.sessions;
                self.writer
                    .single(tree, &id_hash, || tree.remove(&id_hash))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
