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
    pub fn accept_code_step(&self, key_id: &str, step: u64) -> Result<bool, StoreError> {
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
            let swapped = self.writer.single(|| {
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

    pub fn put_session(
        &self,
        id_hash: &[u8; 32],
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let tree = &self.console.sessions;
        self.writer
            .single(|| tree.insert(id_hash, encode(session)))
            .map(drop)
    }

    /// Replaces `before` with `after` only if the session is still `before` (a log-out in
    /// between is not undone); whether it was.
    pub fn touch_session(
        &self,
        id_hash: &[u8; 32],
        before: &SessionRecord,
        after: &SessionRecord,
    ) -> Result<bool, StoreError> {
        let tree = &self.console.sessions;
        let swapped = self
            .writer
            .single(|| tree.compare_and_swap(id_hash, Some(encode(before)), Some(encode(after))))?;
        Ok(swapped.is_ok())
    }

    pub fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
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

    pub fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        let tree = &self.console.sessions;
        self.writer.single(|| tree.remove(id_hash)).map(drop)
    }

    /// Removes the sessions `ended` says are over (timed out); returns how many.
    pub fn remove_sessions(
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
                self.writer.single(|| tree.remove(&id_hash))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(key_id: &str, last_seen_at_ms: i64) -> SessionRecord {
        SessionRecord {
            key_id: key_id.into(),
            key_digest: "d1".into(),
            factor: "f1".into(),
            csrf: "c".repeat(43),
            created_at_ms: 1_000,
            last_seen_at_ms,
        }
    }

    #[test]
    fn a_step_is_accepted_once_and_never_an_older_one_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.accept_code_step("key_a", 100).unwrap());
        assert!(
            !store.accept_code_step("key_a", 100).unwrap(),
            "the same step"
        );
        assert!(
            !store.accept_code_step("key_a", 99).unwrap(),
            "an older step"
        );
        assert!(store.accept_code_step("key_b", 100).unwrap(), "another key");
        assert!(store.accept_code_step("key_a", 101).unwrap());
        drop(store);
        // Across a restart.
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.accept_code_step("key_a", 101).unwrap());
        assert!(store.accept_code_step("key_a", 102).unwrap());
    }

    #[test]
    fn sessions_are_kept_found_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        store.put_session(&a, &session("key_a", 5_000)).unwrap();
        store.put_session(&b, &session("key_b", 9_000)).unwrap();
        assert_eq!(store.session(&a).unwrap(), Some(session("key_a", 5_000)));
        assert_eq!(store.session(&[3u8; 32]).unwrap(), None);
        assert_eq!(
            store
                .remove_sessions(|s| s.last_seen_at_ms < 6_000)
                .unwrap(),
            1
        );
        assert_eq!(store.session(&a).unwrap(), None);
        assert!(store.session(&b).unwrap().is_some());
        // A touch after a removal does not bring the session back.
        let seen = session("key_b", 9_000);
        assert!(
            store
                .touch_session(&b, &seen, &session("key_b", 9_500))
                .unwrap()
        );
        store.remove_session(&b).unwrap();
        assert!(
            !store
                .touch_session(&b, &session("key_b", 9_500), &session("key_b", 9_900))
                .unwrap()
        );
        assert_eq!(store.session(&b).unwrap(), None);
    }
}
