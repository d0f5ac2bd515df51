//! A point in time of the store, kept while a backup reads it (`backup.rs`) and the daemon
//! goes on writing: copy-on-write at the level of keys.
//!
//! The point is taken between two changes, with the store's single writer held (`txn.rs`).
//! From then until the backup ends, the writer calls [`PointInTime::keep`] before each key it
//! writes: the first time a key is written since the point, ahead of where the backup has
//! read its tree, its value at the point (or its absence) is kept here. The backup reads
//! each tree in key order and, under the same lock, asks [`PointInTime::read`] whether the
//! key it just read is as it was at the point (nothing kept for it) and moves its mark past
//! it; a key kept is written at the end from what was kept instead.
//!
//! Why that is the point's copy: a key the backup read before any write to it was read as it
//! was at the point; one written before the backup reached it was kept first, so the backup
//! skips what it reads there and writes the kept value; one written after the backup passed
//! it is not kept (the backup already has its value at the point). Keys made after the point
//! are kept as absent and never written; keys removed after it are kept and written.
//!
//! What is kept is bounded ([`KEPT_MAX`]): past it, the backup fails (and says why) rather
//! than the daemon growing without bound.

use std::collections::HashMap;
use std::sync::Mutex;

use sled::IVec;

/// At most this many bytes of kept values and keys: a backup under a write load that
/// changes more than this before it is read fails instead.
pub const KEPT_MAX: usize = 256 << 20;

/// A key kept as it was at the point: (tree, key) and its value.
pub(super) type Kept = ((IVec, IVec), IVec);

pub(super) struct PointInTime {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (tree, key) → the value at the point (`None`: absent then).
    kept: HashMap<(IVec, IVec), Option<IVec>>,
    bytes: usize,
    /// How far the backup has read each tree (no entry: not yet started).
    read: HashMap<IVec, ReadUpTo>,
    /// Each tree's last key at the point (`None`: empty then): a key past it did not exist
    /// at the point, so writing it keeps nothing, and the backup reads no further.
    ends: HashMap<IVec, Option<IVec>>,
    /// Why the point could not be kept whole, if it could not (the backup then fails).
    broken: Option<String>,
}

enum ReadUpTo {
    /// Every key up to this one, inclusive.
    Key(IVec),
    All,
}

impl PointInTime {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the point of `trees` (the caller holds the writer): where each one ends.
    pub fn at(trees: &[sled::Tree]) -> sled::Result<PointInTime> {
        let mut ends = HashMap::new();
        for tree in trees {
            ends.insert(tree.name(), tree.last()?.map(|(key, _)| key));
        }
        Ok(PointInTime {
            state: Mutex::new(State {
                ends,
                ..State::default()
            }),
        })
    }

    /// Where `tree` ended at the point (`None`: it was empty, or did not exist).
    pub fn end_of(&self, tree: &IVec) -> Option<IVec> {
        self.state().ends.get(tree).cloned().flatten()
    }

    /// Called by the writer before it writes `key` of `tree` (with the writer held, so the
    /// value read here is the one the write replaces).
    pub fn keep(&self, tree: &sled::Tree, key: &[u8]) {
        let name = tree.name();
        let mut state = self.state();
        match state.ends.get(&name) {
            // Past the tree's end at the point, or a tree made since: absent then.
            None | Some(None) => return,
            Some(Some(end)) if key > end.as_ref() => return,
            _ => {}
        }
        match state.read.get(&name) {
            Some(ReadUpTo::All) => return,
            Some(ReadUpTo::Key(upto)) if key <= upto.as_ref() => return,
            _ => {}
        }
        if state.broken.is_some() {
            return;
        }
        let id = (name, IVec::from(key));
        if state.kept.contains_key(&id) {
            return;
        }
        match tree.get(key) {
            Ok(value) => {
                state.bytes += id.0.len() + id.1.len() + value.as_ref().map_or(0, |v| v.len()) + 64;
                if state.bytes > KEPT_MAX {
                    state.kept = HashMap::new();
                    state.broken = Some(format!(
                        "more than {} MiB of the store changed while the backup read it; take it again at a quieter time",
                        KEPT_MAX >> 20
                    ));
                    return;
                }
                state.kept.insert(id, value);
            }
            Err(e) => {
                state.kept = HashMap::new();
                state.broken = Some(format!("reading a key to keep for the backup: {e}"));
            }
        }
    }

    /// Called by the backup for each key it read from `tree`, in order: whether the value
    /// read is the point's (`false`: a change wrote the key since, and its kept value is
    /// written at the end); an error once the point cannot be kept whole (the backup then
    /// stops at once).
    pub fn read(&self, tree: &IVec, key: &IVec) -> Result<bool, String> {
        let mut state = self.state();
        if let Some(why) = &state.broken {
            return Err(why.clone());
        }
        // The reading only moves forward (sled's iterator returns keys in increasing order);
        // a mark moved back would let a later write be kept after the key was read.
        if let Some(ReadUpTo::Key(upto)) = state.read.get(tree)
            && key <= upto
        {
            let why = "the store returned a key out of order while the backup read it".to_owned();
            state.broken = Some(why.clone());
            return Err(why);
        }
        let as_at_point = !state.kept.contains_key(&(tree.clone(), key.clone()));
        state.read.insert(tree.clone(), ReadUpTo::Key(key.clone()));
        Ok(as_at_point)
    }

    /// Called by the backup once it has read every key of `tree`.
    pub fn read_all(&self, tree: &IVec) {
        self.state().read.insert(tree.clone(), ReadUpTo::All);
    }

    /// The kept keys that existed at the point, by tree and key, once the backup has read
    /// every tree; or why the point could not be kept.
    pub fn kept(&self) -> Result<Vec<Kept>, String> {
        let mut state = self.state();
        if let Some(why) = state.broken.take() {
            return Err(why);
        }
        let mut kept: Vec<_> = std::mem::take(&mut state.kept)
            .into_iter()
            .filter_map(|(id, value)| value.map(|v| (id, v)))
            .collect();
        kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        for k in ["a", "b", "c", "d"] {
            tree.insert(k, k.as_bytes()).unwrap();
        }
        (dir, tree)
    }

    /// Reads `tree` as a backup does, applying `writes` (key, new value) after reading the
    /// key named with each; returns what the backup writes.
    fn backup_with(
        tree: &sled::Tree,
        writes: &[(&str, &str, Option<&str>)],
    ) -> Vec<(String, String)> {
        let point = PointInTime::at(std::slice::from_ref(tree)).unwrap();
        let name = tree.name();
        let mut out = Vec::new();
        let apply = |after: &str, out: &mut Vec<(String, String)>| {
            let _ = out;
            for (when, key, value) in writes {
                if *when == after {
                    point.keep(tree, key.as_bytes());
                    match value {
                        Some(v) => tree.insert(key, v.as_bytes()).map(drop).unwrap(),
                        None => tree.remove(key).map(drop).unwrap(),
                    }
                }
            }
        };
        apply("start", &mut out);
        let end = point.end_of(&name).unwrap();
        for entry in tree.range(..=end) {
            let (key, value) = entry.unwrap();
            if point.read(&name, &key).unwrap() {
                out.push((
                    String::from_utf8(key.to_vec()).unwrap(),
                    String::from_utf8(value.to_vec()).unwrap(),
                ));
            }
            apply(std::str::from_utf8(&key).unwrap(), &mut out);
        }
        point.read_all(&name);
        apply("end", &mut out);
        for ((_, key), value) in point.kept().unwrap() {
            out.push((
                String::from_utf8(key.to_vec()).unwrap(),
                String::from_utf8(value.to_vec()).unwrap(),
            ));
        }
        out.sort();
        out
    }

    #[test]
    fn the_backup_writes_every_key_as_it_was_at_the_point_whatever_changes_meanwhile() {
        let at_point: Vec<(String, String)> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| (k.to_string(), k.to_string()))
            .collect();
        let cases: &[&[(&str, &str, Option<&str>)]] = &[
            // Changed ahead of the reading, behind it, twice, removed, made new, at the end.
            &[("start", "c", Some("C"))],
            &[("b", "a", Some("A")), ("b", "d", Some("D"))],
            &[("a", "c", Some("C1")), ("b", "c", Some("C2"))],
            &[("a", "d", None), ("a", "b", None)],
            &[("a", "bb", Some("new")), ("c", "a0", Some("new"))],
            &[("start", "c", None), ("b", "c", Some("back"))],
            &[("end", "a", Some("late")), ("end", "z", Some("late"))],
        ];
        for writes in cases {
            let (_dir, tree) = tree();
            assert_eq!(backup_with(&tree, writes), at_point, "{writes:?}");
        }
    }

    #[test]
    fn too_much_change_breaks_the_point_instead_of_growing_without_bound() {
        let (_dir, tree) = tree();
        tree.insert("zzzzzz", &b"end"[..]).unwrap();
        let point = PointInTime::at(std::slice::from_ref(&tree)).unwrap();
        let big = vec![7u8; 1 << 20];
        for i in 0..(KEPT_MAX >> 20) + 2 {
            let key = format!("k{i:05}");
            tree.insert(key.as_bytes(), big.clone()).unwrap();
            point.keep(&tree, key.as_bytes());
            tree.insert(key.as_bytes(), &b"x"[..]).unwrap();
        }
        // The reading stops at its next key, and nothing is written of it.
        let err = point.read(&tree.name(), &IVec::from("a")).unwrap_err();
        assert!(err.contains("changed while the backup read it"), "{err}");
        let err = point.kept().unwrap_err();
        assert!(err.contains("changed while the backup read it"), "{err}");
        assert!(point.state().kept.is_empty());
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn keys_made_past_a_trees_end_keep_nothing_and_a_key_read_twice_breaks_the_point() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert("m", &b"m"[..]).unwrap();
        let empty = db.open_tree("e").unwrap();
        let point = PointInTime::at(&[tree.clone(), empty.clone()]).unwrap();
        for key in ["n", "z"] {
            point.keep(&tree, key.as_bytes());
        }
        point.keep(&empty, b"a");
        assert!(
            point.state().kept.is_empty(),
            "appends past the end were kept"
        );
        point.keep(&tree, b"a");
        assert_eq!(point.state().kept.len(), 1);
        let name = tree.name();
        assert!(!point.read(&name, &IVec::from("a")).unwrap());
        assert!(point.read(&name, &IVec::from("a")).is_err());
        assert!(point.kept().is_err());
    }
}
