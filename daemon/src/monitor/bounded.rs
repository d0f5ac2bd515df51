//! `BoundedMap`: a map with a fixed capacity that evicts the least recently used entry.
//!
//! The anomaly monitor keeps state per subject (terminal, merchant, API key, payer,
//! provider, source IP). Subject ids come from the outside world, so an attacker can invent
//! as many as they like; every per-subject table therefore lives in a `BoundedMap`, which
//! never holds more than `capacity` entries. When a new key arrives at a full map, the entry
//! touched longest ago is dropped and counted in [`BoundedMap::evictions`] (a rising count
//! means the capacity is too small for the traffic, or someone is flooding subject ids).
//!
//! Memory bound: `capacity` entries, each stored as the key twice (once in the map, once in
//! the recency index), the value and a `u64` stamp, plus `BTreeMap` node overhead.
//!
//! Cost: lookups, inserts, touches and evictions are O(log n). Only [`BoundedMap::retain`]
//! (periodic cleanup) walks every entry.
//!
//! Keys only need `Ord + Clone`: `BTreeMap` has no hash seed to get right and no
//! hash-flooding worst case when keys are attacker-chosen.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as MapEntry;

/// A value with the recency stamp of its last touch.
#[derive(Debug, Clone)]
struct Slot<V> {
    stamp: u64,
    value: V,
}

/// A map of at most `capacity` entries that evicts the least recently used one when full.
///
/// "Used" means inserted or touched through [`get_or_insert_with`](Self::get_or_insert_with)
/// or [`get_mut`](Self::get_mut); [`get`](Self::get) is a read-only peek and leaves the
/// order alone.
#[derive(Debug, Clone)]
pub struct BoundedMap<K, V> {
    entries: BTreeMap<K, Slot<V>>,
    /// Recency index: stamp -> key; the first entry is the least recently used. Holds
    /// exactly one stamp per key in `entries`.
    order: BTreeMap<u64, K>,
    capacity: usize,
    /// The stamp the next touch gets; strictly increasing.
    next_stamp: u64,
    evictions: u64,
}

impl<K: Ord + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` entries (a capacity of 0 is treated as 1).
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            capacity: capacity.max(1),
            next_stamp: 0,
            evictions: 0,
        }
    }

    /// The value for `key`, inserting `make()` if it is absent. The key becomes the most
    /// recently used. Inserting into a full map first evicts the least recently used entry.
    /// `make` is only called when the key is absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.evict_lru();
        }
        let stamp = self.bump();
        match self.entries.entry(key) {
            MapEntry::Occupied(occupied) => {
                let slot = occupied.into_mut();
                retouch(&mut self.order, slot.stamp, stamp);
                slot.stamp = stamp;
                &mut slot.value
            }
            MapEntry::Vacant(vacant) => {
                self.order.insert(stamp, vacant.key().clone());
                &mut vacant
                    .insert(Slot {
                        stamp,
                        value: make(),
                    })
                    .value
            }
        }
    }

    /// The value for `key`, without changing the recency order.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|slot| &slot.value)
    }

    /// The value for `key`, which becomes the most recently used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if !self.entries.contains_key(key) {
            return None;
        }
        // Stamp before borrowing the entry: `bump` may renumber every entry.
        let stamp = self.bump();
        let slot = self.entries.get_mut(key)?;
        retouch(&mut self.order, slot.stamp, stamp);
        slot.stamp = stamp;
        Some(&mut slot.value)
    }

    /// Removes `key` and returns its value. Not counted as an eviction.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.entries.remove(key)?;
        self.order.remove(&slot.stamp);
        Some(slot.value)
    }

    /// How many entries the map holds (never more than [`capacity`](Self::capacity)).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most entries the map holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many entries were evicted to make room so far (removals and
    /// [`retain`](Self::retain) do not count).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Keeps only the entries for which `keep` returns true; the recency order of the kept
    /// entries is unchanged. Walks every entry: meant for periodic cleanup, not per event.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|key, slot| {
            let kept = keep(key, &mut slot.value);
            if !kept {
                order.remove(&slot.stamp);
            }
            kept
        });
    }

    /// Drops the least recently used entry, if any.
    fn evict_lru(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.entries.remove(&key);
            self.evictions = self.evictions.saturating_add(1);
        }
    }

    /// A fresh stamp, newer than every stamp in the map.
    fn bump(&mut self) -> u64 {
        if self.next_stamp == u64::MAX {
            // Never reached in practice (2^64 touches), but stamps must stay unique and
            // increasing, so renumber from 0 in the current order rather than wrap.
            self.renumber();
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        stamp
    }

    /// Renumbers the stamps 0..len in recency order. O(n log n).
    fn renumber(&mut self) {
        let old = std::mem::take(&mut self.order);
        for (stamp, key) in (0u64..).zip(old.into_values()) {
            if let Some(slot) = self.entries.get_mut(&key) {
                slot.stamp = stamp;
            }
            self.order.insert(stamp, key);
        }
        self.next_stamp = self.order.len() as u64;
    }
}

/// Moves a key in the recency index from stamp `old` to stamp `new`.
fn retouch<K>(order: &mut BTreeMap<u64, K>, old: u64, new: u64) {
    // The index always has `old` (one stamp per entry); reuse its key rather than cloning.
    if let Some(key) = order.remove(&old) {
        order.insert(new, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys from least to most recently used.
    fn lru_order<K: Ord + Clone, V>(map: &BoundedMap<K, V>) -> Vec<K> {
        map.order.values().cloned().collect()
    }

    /// The two indexes agree: every entry has exactly its stamp in the order index.
    fn assert_consistent<K: Ord + Clone + std::fmt::Debug, V>(map: &BoundedMap<K, V>) {
        assert_eq!(map.entries.len(), map.order.len());
        for (stamp, key) in &map.order {
            assert_eq!(map.entries.get(key).map(|slot| slot.stamp), Some(*stamp));
            assert!(*stamp < map.next_stamp);
        }
        assert!(map.len() <= map.capacity());
    }

    #[test]
    fn capacity_zero_is_clamped_to_one() {
        let mut map = BoundedMap::new(0);
        assert_eq!(map.capacity(), 1);
        *map.get_or_insert_with("a", || 1) += 1;
        map.get_or_insert_with("b", || 5);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(&"a"), None);
        assert_eq!(map.get(&"b"), Some(&5));
        assert_eq!(map.evictions(), 1);
        assert_consistent(&map);
    }

    #[test]
    fn evicts_the_least_recently_used_entry() {
        let mut map = BoundedMap::new(3);
        assert!(map.is_empty());
        for key in ["a", "b", "c"] {
            map.get_or_insert_with(key, || 0);
        }
        assert_eq!(lru_order(&map), ["a", "b", "c"]);
        assert_eq!(map.evictions(), 0);

        // Touching "a" makes "b" the oldest; the next insert evicts it.
        *map.get_or_insert_with("a", || 100) += 1;
        assert_eq!(
            map.get(&"a"),
            Some(&1),
            "existing value kept, make not used"
        );
        assert_eq!(lru_order(&map), ["b", "c", "a"]);
        map.get_or_insert_with("d", || 0);
        assert_eq!(lru_order(&map), ["c", "a", "d"]);
        assert_eq!(map.get(&"b"), None);
        assert_eq!(map.evictions(), 1);

        // get_mut touches too; get does not.
        assert!(map.get_mut(&"c").is_some());
        assert_eq!(map.get(&"a"), Some(&1));
        assert_eq!(lru_order(&map), ["a", "d", "c"]);
        map.get_or_insert_with("e", || 0);
        assert_eq!(lru_order(&map), ["d", "c", "e"]);
        assert_eq!(map.evictions(), 2);
        assert_eq!(map.len(), 3);
        assert_consistent(&map);
    }

    #[test]
    fn make_is_not_called_for_an_existing_key() {
        let mut map = BoundedMap::new(2);
        map.get_or_insert_with(1, || 10);
        let value = map.get_or_insert_with(1, || panic!("must not be called"));
        assert_eq!(*value, 10);
    }

    #[test]
    fn get_mut_on_a_missing_key_changes_nothing() {
        let mut map: BoundedMap<u32, u32> = BoundedMap::new(2);
        map.get_or_insert_with(1, || 1);
        assert_eq!(map.get_mut(&2), None);
        assert_eq!(map.len(), 1);
        assert_consistent(&map);
    }

    #[test]
    fn remove_frees_room_without_counting_an_eviction() {
        let mut map = BoundedMap::new(2);
        map.get_or_insert_with("a", || 1);
        map.get_or_insert_with("b", || 2);
        assert_eq!(map.remove(&"a"), Some(1));
        assert_eq!(map.remove(&"a"), None);
        map.get_or_insert_with("c", || 3);
        assert_eq!(map.len(), 2);
        assert_eq!(map.evictions(), 0);
        assert_eq!(lru_order(&map), ["b", "c"]);
        assert_consistent(&map);
    }

    #[test]
    fn retain_drops_entries_and_keeps_the_order() {
        let mut map = BoundedMap::new(10);
        for key in 0..6 {
            map.get_or_insert_with(key, || key * 10);
        }
        map.get_mut(&0);
        map.retain(|key, value| {
            *value += 1;
            key % 2 == 0
        });
        assert_eq!(lru_order(&map), [2, 4, 0]);
        assert_eq!(map.get(&4), Some(&41));
        assert_eq!(map.evictions(), 0);
        assert_consistent(&map);
    }

    #[test]
    fn stays_within_capacity_under_100k_distinct_keys() {
        let mut map = BoundedMap::new(1000);
        for key in 0u64..100_000 {
            *map.get_or_insert_with(key, || 0u64) += 1;
            assert!(map.len() <= 1000);
        }
        assert_eq!(map.len(), 1000);
        assert_eq!(map.evictions(), 99_000);
        // The survivors are the 1000 most recent keys, oldest first.
        assert_eq!(lru_order(&map), (99_000..100_000).collect::<Vec<_>>());
        assert_consistent(&map);
    }

    #[test]
    fn a_hot_key_survives_a_flood_of_new_keys() {
        let mut map = BoundedMap::new(100);
        for key in 1u64..10_000 {
            *map.get_or_insert_with(0, || 0u64) += 1;
            map.get_or_insert_with(key, || 0);
        }
        assert_eq!(map.get(&0), Some(&9_999));
        assert_eq!(map.len(), 100);
        assert_consistent(&map);
    }

    #[test]
    fn stamps_are_renumbered_instead_of_wrapping() {
        let mut map = BoundedMap::new(3);
        for key in ["a", "b", "c"] {
            map.get_or_insert_with(key, || 0);
        }
        map.renumber();
        map.next_stamp = u64::MAX - 1;
        map.get_mut(&"a"); // stamp u64::MAX - 1
        map.get_mut(&"b"); // renumbers, then stamp 3
        assert_eq!(lru_order(&map), ["c", "a", "b"]);
        assert_eq!(map.next_stamp, 4);
        map.get_or_insert_with("d", || 0);
        assert_eq!(lru_order(&map), ["a", "b", "d"]);
        assert_consistent(&map);
    }
}
