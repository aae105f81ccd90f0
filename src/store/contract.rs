//! The contract every [`super::backend::Backend`] keeps (see that module),
//! as one suite run against each provider: the embedded sled store and the
//! in-memory one. A new provider (a networked log) gets the same suite by
//! adding one line at the bottom.

use super::backend::{Backend, Change, MemoryBackend, SledBackend};
use super::{abort, Store, Table, WriteError};
use crate::domain::{CustomerId, EventKind, Money, OrderId, PaymentMethod, ReservationMode};
use std::cell::Cell;
use std::sync::Arc;

const STATE: Table<u32> = Table::new("state");
const OTHER: Table<String> = Table::new("other");

fn order(n: u64) -> OrderId {
    OrderId::from_number(n)
}

fn placed() -> EventKind {
    EventKind::OrderPlaced {
        customer: CustomerId::parse("kim").unwrap(),
        items: vec![],
        address: "Seoul".into(),
        payment: PaymentMethod::None,
        total: Money::ZERO,
        workflow: "shop".into(),
        details: None,
        stay: None,
        lang: None,
        reservation: ReservationMode::None,
    }
}

/// Runs every clause against stores made by `open` (each call a fresh,
/// empty store) on backends made by `backend`.
fn keeps_the_contract(backend: impl Fn() -> Arc<dyn Backend>) {
    let open = || Store::with_backend(backend()).unwrap();
    a_write_commits_its_tables_events_and_offset_together(&open());
    a_refused_write_changes_nothing(&open());
    a_write_whose_offset_moved_is_redone_and_applies_once(&open());
    the_log_is_numbered_from_one_without_gaps_and_read_in_order(&open());
    an_append_of_a_number_already_in_the_log_is_refused_and_changes_nothing(&*backend());
    tables_read_in_key_order_by_prefix_and_from_a_key(&open());
    ids_are_never_handed_out_twice(&open());
}

fn a_write_commits_its_tables_events_and_offset_together(store: &Store) {
    let (_, appended) = store
        .write::<_, ()>(|tx| {
            tx.put(STATE, "a", &7)?;
            tx.put(OTHER, "b", &"x".to_string())?;
            tx.append(&order(1), None, placed())?;
            tx.commit_offset("consumer", 1)
        })
        .unwrap();
    assert_eq!(appended.len(), 1);
    assert_eq!(store.get(STATE, "a").unwrap(), Some(7));
    assert_eq!(store.get(OTHER, "b").unwrap().as_deref(), Some("x"));
    assert_eq!(store.offset("consumer").unwrap(), 1);
    assert_eq!(store.read_log(0, 10).unwrap().len(), 1);
    assert_eq!(store.head(), 1);
}

fn a_refused_write_changes_nothing(store: &Store) {
    let refused = store.write(|tx| {
        tx.put(STATE, "a", &1)?;
        tx.append(&order(1), None, placed())?;
        tx.commit_offset("consumer", 9)?;
        abort::<(), &str>("no")
    });
    assert!(matches!(refused, Err(WriteError::Abort("no"))));
    assert_eq!(store.get(STATE, "a").unwrap(), None);
    assert_eq!((store.head(), store.offset("consumer").unwrap()), (0, 0));
}

fn a_write_whose_offset_moved_is_redone_and_applies_once(store: &Store) {
    let runs = Cell::new(0);
    store
        .write::<_, ()>(|tx| {
            runs.set(runs.get() + 1);
            let offset = tx.offset("consumer")?;
            if runs.get() == 1 {
                // Another instance of the consumer commits first.
                store.write::<_, ()>(|other| other.commit_offset("consumer", 5)).unwrap();
            }
            let seen = tx.get(STATE, "seen")?.unwrap_or(0);
            tx.put(STATE, "seen", &(seen + 1))?;
            tx.commit_offset("consumer", offset + 1)
        })
        .unwrap();
    assert_eq!(runs.get(), 2, "the first attempt read an offset that moved");
    assert_eq!(store.offset("consumer").unwrap(), 6);
    assert_eq!(store.get(STATE, "seen").unwrap(), Some(1), "applied once");
}

fn the_log_is_numbered_from_one_without_gaps_and_read_in_order(store: &Store) {
    let mut head = store.watch_head();
    for n in 1..=3 {
        store
            .write::<_, ()>(|tx| {
                tx.append(&order(n), None, placed())?;
                tx.append(&order(n), None, EventKind::OrderClosed)
            })
            .unwrap();
    }
    assert!(head.has_changed().unwrap(), "watchers hear of new events");
    assert_eq!(*head.borrow_and_update(), 6);
    let all = store.read_log(0, 100).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(all[2].order_id, order(2));
    let some = store.read_log(2, 3).unwrap();
    assert_eq!(some.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5], "after 2, at most 3");
    assert!(store.read_log(6, 10).unwrap().is_empty());
    assert_eq!(store.read_event(4).unwrap().map(|e| e.kind), Some(EventKind::OrderClosed));
    assert_eq!(store.read_event(7).unwrap(), None);
}

fn an_append_of_a_number_already_in_the_log_is_refused_and_changes_nothing(backend: &dyn Backend) {
    let first = [(1, b"one".to_vec())];
    backend.commit(&[], &first).unwrap();
    let change = Change { table: "state", key: b"k", value: Some(b"v") };
    let again = backend.commit(&[change], &[(1, b"retried".to_vec()), (2, b"two".to_vec())]);
    assert!(again.is_err(), "a retried append is stored once");
    assert_eq!(backend.read_log(1, 10).unwrap(), [b"one".to_vec()]);
    assert_eq!(backend.get("state", b"k").unwrap(), None, "and its changes with it");
    assert_eq!(backend.last_seq().unwrap(), 1);
}

fn tables_read_in_key_order_by_prefix_and_from_a_key(store: &Store) {
    store
        .write::<_, ()>(|tx| {
            for (key, v) in [("b\0x", 2), ("a\0z", 1), ("b\0a", 3), ("c\0a", 4)] {
                tx.put(STATE, key, &v)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(store.scan_prefix(STATE, "b\0").unwrap(), [3, 2]);
    let from: Vec<u32> = store.entries_from(STATE, "b\0x").unwrap().map(|e| e.unwrap().1).collect();
    assert_eq!(from, [2, 4]);
    store.put_now(STATE, "a\0z", &9).unwrap();
    assert_eq!(store.get(STATE, "a\0z").unwrap(), Some(9));
    assert_eq!(store.raw_entries("state").unwrap().len(), 4);
}

fn ids_are_never_handed_out_twice(store: &Store) {
    let ids: Vec<u64> = (0..100).map(|_| store.generate_id().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[test]
fn the_in_memory_backend_keeps_the_contract() {
    keeps_the_contract(|| Arc::new(MemoryBackend::default()));
}

#[test]
fn the_sled_backend_keeps_the_contract() {
    let dirs = std::cell::RefCell::new(Vec::new());
    keeps_the_contract(|| {
        let dir = tempfile::tempdir().unwrap();
        let backend = SledBackend::open(dir.path(), 1 << 20).unwrap();
        dirs.borrow_mut().push(dir);
        Arc::new(backend)
    });
}

#[tokio::test]
async fn what_sled_acknowledged_as_durable_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        store.write::<_, ()>(|tx| tx.append(&order(1), None, placed())).unwrap();
        store.write::<_, ()>(|tx| tx.put(STATE, "a", &1)).unwrap();
        store.durable().await.unwrap();
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!((store.head(), store.get(STATE, "a").unwrap()), (1, Some(1)));
}

/// A backend whose storage fails on demand, as a full disk would: every
/// write and flush fails while `failing`, and it heals once it is not.
#[derive(Default)]
struct Flaky {
    inner: MemoryBackend,
    failing: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), super::StoreError> {
        match self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            true => {
                Err(super::StoreError::Engine(Arc::new(std::io::Error::other("no space left on device"))))
            }
            false => Ok(()),
        }
    }
}

impl Backend for Flaky {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, super::StoreError> {
        self.inner.get(table, key)
    }
    fn scan(&self, table: &str, start: &[u8]) -> Result<super::backend::Entries<'_>, super::StoreError> {
        self.inner.scan(table, start)
    }
    fn commit(&self, changes: &[Change<'_>], events: &[(u64, Vec<u8>)]) -> Result<(), super::StoreError> {
        self.check()?;
        self.inner.commit(changes, events)
    }
    fn read_log(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>, super::StoreError> {
        self.inner.read_log(from, limit)
    }
    fn last_seq(&self) -> Result<u64, super::StoreError> {
        self.inner.last_seq()
    }
    fn generate_id(&self) -> Result<u64, super::StoreError> {
        self.inner.generate_id()
    }
    fn flush(&self) -> Result<(), super::StoreError> {
        self.check()
    }
    fn size_on_disk(&self) -> Result<u64, super::StoreError> {
        Ok(0)
    }
    fn table_names(&self) -> Result<Vec<String>, super::StoreError> {
        self.inner.table_names()
    }
    fn heal(&self) -> Result<bool, super::StoreError> {
        Ok(self.check().is_ok())
    }
}

#[tokio::test]
async fn a_store_that_cannot_write_refuses_writes_keeps_reads_and_heals_by_itself() {
    use std::sync::atomic::Ordering::SeqCst;
    let flaky = Arc::new(Flaky::default());
    let store = Store::with_backend(flaky.clone()).unwrap();
    store.write::<_, ()>(|tx| tx.put(STATE, "a", &1)).unwrap();
    store.durable().await.unwrap();
    let generation = store.condition().generation();

    flaky.failing.store(true, SeqCst);
    let failed = store.write::<_, ()>(|tx| tx.put(STATE, "b", &2));
    assert!(matches!(failed, Err(WriteError::Store(super::StoreError::Unavailable(_)))), "{failed:?}");
    assert!(store.condition().failure().is_some(), "the store says why");
    assert_eq!(store.get(STATE, "a").unwrap(), Some(1), "reads still answer");
    let refused = store.write::<_, ()>(|tx| tx.put(STATE, "c", &3));
    assert!(matches!(refused, Err(WriteError::Store(super::StoreError::Unavailable(_)))), "refused up front");
    assert!(store.durable().await.is_err(), "nothing is acknowledged while it cannot flush");

    flaky.failing.store(false, SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.condition().failure().is_some() {
        assert!(std::time::Instant::now() < deadline, "the store did not heal");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(store.condition().generation(), generation + 1, "consumers are told to reload");
    store.write::<_, ()>(|tx| tx.put(STATE, "d", &4)).unwrap();
    store.durable().await.unwrap();
    assert_eq!(store.get(STATE, "d").unwrap(), Some(4));
}
