//! Values a consumer read from the store, kept for its next reads.
//!
//! sled 0.34 makes every read wait while any write in the process commits
//! (README, performance): a status read of an order that is not held back
//! waited up to the length of the longest commit, and so did a fold that
//! read a view committed a moment before. A consumer that is the only
//! writer of some tables can keep what it read of them, as long as it drops
//! a value when it commits a newer one (`actors::write_behind` does). Only
//! the tables it names are kept: another service's may change under it.
//!
//! Two generations bound it: when the young one is full, it becomes the
//! old one and the former old one is dropped; a value found in the old one
//! moves to the young one. What is read again and again stays; the rest
//! goes within two generations. No crate needed for that much.

use std::collections::HashMap;

type Slot = (&'static str, Vec<u8>);
/// A stored value, or `None`: the key is known to be absent.
type Value = Option<Vec<u8>>;

pub struct ReadCache {
    /// The tables kept: only the consumer writes them.
    tables: &'static [&'static str],
    /// Entries a generation holds at most.
    capacity: usize,
    young: HashMap<Slot, Value>,
    old: HashMap<Slot, Value>,
}

impl ReadCache {
    pub fn new(capacity: usize, tables: &'static [&'static str]) -> ReadCache {
        ReadCache { tables, capacity: capacity.max(1), young: HashMap::new(), old: HashMap::new() }
    }

    /// The value kept for a key (`Some(None)`: known absent).
    pub fn get(&mut self, table: &'static str, key: &[u8]) -> Option<Value> {
        let slot = (table, key.to_vec());
        if let Some(value) = self.young.get(&slot) {
            return Some(value.clone());
        }
        let value = self.old.remove(&slot)?;
        self.keep(slot, value.clone());
        Some(value)
    }

    /// Keeps the value just read from the store for a key of a table kept.
    pub fn insert(&mut self, table: &'static str, key: &[u8], value: Value) {
        if self.tables.contains(&table) {
            self.keep((table, key.to_vec()), value);
        }
    }

    fn keep(&mut self, slot: Slot, value: Value) {
        if self.young.len() >= self.capacity {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(slot, value);
    }

    /// Drops a key whose value changed in the store.
    pub fn remove(&mut self, table: &'static str, key: &[u8]) {
        let slot = (table, key.to_vec());
        self.young.remove(&slot);
        self.old.remove(&slot);
    }

    /// Drops everything: the store changed in ways not told key by key.
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_read_again_stays_and_the_rest_goes_within_two_generations() {
        let mut cache = ReadCache::new(2, &["t"]);
        cache.insert("t", b"hot", Some(vec![1]));
        cache.insert("t", b"a", None);
        cache.insert("t", b"b", Some(vec![2])); // young was full: hot and a are old now
        assert_eq!(cache.get("t", b"hot"), Some(Some(vec![1])), "moved back to the young");
        assert_eq!(cache.get("t", b"a"), Some(None), "known absent");
        cache.insert("t", b"c", Some(vec![3]));
        cache.insert("t", b"d", Some(vec![4]));
        assert!(cache.len() <= 4, "two generations of two at most: {}", cache.len());
        assert_eq!(cache.get("t", b"b"), None, "b was read once, two generations ago");
        cache.remove("t", b"d");
        assert_eq!(cache.get("t", b"d"), None);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn only_the_tables_named_are_kept() {
        let mut cache = ReadCache::new(8, &["mine"]);
        cache.insert("theirs", b"k", Some(vec![1]));
        cache.insert("mine", b"k", Some(vec![2]));
        assert_eq!(cache.get("theirs", b"k"), None, "another service may change it");
        assert_eq!(cache.get("mine", b"k"), Some(Some(vec![2])));
    }
}
