use super::*;
use crate::store::abort;

const T: Table<u32> = Table::new("t");

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    (dir, store)
}

#[test]
fn staged_changes_are_read_through_and_committed_once_with_the_offset() {
    let (_dir, store) = store();
    store
        .write::<_, ()>(|tx| {
            tx.put(T, "a", &1)?;
            tx.put(T, "c", &3)?;
            tx.put(T, "e", &5)
        })
        .unwrap();
    let before = store.writer_stats().read();
    let mut staged = Staged::default();
    // Two batches: "b" written twice, "c" removed, "d" added then removed.
    store
        .stage::<_, ()>(&mut staged, None, 7, |tx| {
            tx.put(T, "b", &20)?;
            tx.remove(T, "c")?;
            tx.put(T, "d", &4)
        })
        .unwrap();
    store
        .stage::<_, ()>(&mut staged, None, 9, |tx| {
            assert_eq!(tx.get::<u32, ()>(T, "b")?, Some(20), "a batch reads what is staged");
            tx.put(T, "b", &21)?;
            tx.remove(T, "d")
        })
        .unwrap();
    assert_eq!(store.writer_stats().read().commits, before.commits, "nothing written yet");
    assert_eq!(staged.get(None, &store, T, "b").unwrap(), Some(21));
    assert_eq!(staged.get(None, &store, T, "c").unwrap(), None);
    let seen: Vec<(Vec<u8>, u32)> =
        staged.entries_from(None, &store, T, "").unwrap().map(Result::unwrap).collect();
    assert_eq!(seen, [(b"a".to_vec(), 1), (b"b".to_vec(), 21), (b"e".to_vec(), 5)]);
    let from_c: Vec<u32> = staged.entries_from(None, &store, T, "c").unwrap().map(|e| e.unwrap().1).collect();
    assert_eq!(from_c, [5]);

    store.commit_staged(&mut staged, "consumer", 0).unwrap();
    let after = store.writer_stats().read();
    assert_eq!(after.commits - before.commits, 1, "one write");
    // "b" once, "c" removed, the offset; "d" never reached the store.
    assert_eq!(after.keys - before.keys, 3);
    assert_eq!(store.offset("consumer").unwrap(), 9);
    assert_eq!((store.get(T, "b").unwrap(), store.get(T, "c").unwrap()), (Some(21), None));
    assert!(staged.is_empty());
}

#[test]
fn a_failed_fold_stages_nothing_and_a_moved_offset_refuses_the_commit() {
    let (_dir, store) = store();
    let mut staged = Staged::default();
    let refused = store.stage(&mut staged, None, 3, |tx| {
        tx.put(T, "x", &1)?;
        abort::<(), &str>("no")
    });
    assert!(matches!(refused, Err(WriteError::Abort("no"))));
    assert!(staged.is_empty() && staged.applied().is_none());

    store.stage::<_, ()>(&mut staged, None, 4, |tx| tx.put(T, "y", &2)).unwrap();
    store.write::<_, ()>(|tx| tx.commit_offset("consumer", 10)).unwrap();
    assert!(store.commit_staged(&mut staged, "consumer", 0).is_err(), "another instance moved on");
    assert_eq!(store.get(T, "y").unwrap(), None);
    assert_eq!(staged.len(), 1, "kept, for whoever commits next");
}

/// Views being committed (a frozen layer) are read under those staged
/// since; a failed commit's are staged again under them.
#[test]
fn a_frozen_layer_is_read_under_the_one_staged_since_and_absorbed_back_on_failure() {
    let (_dir, store) = store();
    store.write::<_, ()>(|tx| tx.put(T, "a", &1)).unwrap();
    let mut frozen = Staged::default();
    store
        .stage::<_, ()>(&mut frozen, None, 5, |tx| {
            tx.put(T, "b", &2)?;
            tx.put(T, "c", &3)
        })
        .unwrap();
    let mut active = Staged::default();
    store
        .stage::<_, ()>(&mut active, Some(&frozen), 8, |tx| {
            assert_eq!(tx.get::<u32, ()>(T, "c")?, Some(3), "a fold reads the frozen layer");
            tx.remove(T, "c")?;
            tx.put(T, "b", &20)
        })
        .unwrap();
    let all: Vec<(Vec<u8>, u32)> =
        active.entries_from(Some(&frozen), &store, T, "").unwrap().map(Result::unwrap).collect();
    assert_eq!(all, [(b"a".to_vec(), 1), (b"b".to_vec(), 20)]);
    assert_eq!(active.get(Some(&frozen), &store, T, "c").unwrap(), None);

    // The frozen layer committed by itself: the store has it, the active
    // layer still overrides it.
    store.commit_frozen(&frozen, "consumer", 0).unwrap();
    assert_eq!((store.get(T, "c").unwrap(), store.offset("consumer").unwrap()), (Some(3), 5));
    assert_eq!(active.get(None, &store, T, "c").unwrap(), None);

    // Had it failed: absorbed under the active layer, which wins.
    let mut again = frozen.clone();
    again.absorb(active);
    assert_eq!((again.get(None, &store, T, "b").unwrap(), again.applied()), (Some(20), Some(8)));
}

/// A staged fold's appends are in the log at once, before its changes are
/// committed; a fold that fails appends nothing.
#[test]
fn a_staged_folds_appends_are_written_at_once_and_a_failed_fold_appends_nothing() {
    let (_dir, store) = store();
    let order = crate::domain::OrderId::from_number(1);
    let mut staged = Staged::default();
    store
        .stage::<_, ()>(&mut staged, None, 1, |tx| {
            tx.put(T, "a", &1)?;
            tx.append(&order, Some(1), crate::domain::EventKind::OrderClosed)
        })
        .unwrap();
    let log = store.read_log(0, 10).unwrap();
    assert_eq!((log.len(), log[0].caused_by), (1, Some(1)), "appended at once, with its cause");
    assert_eq!(store.get(T, "a").unwrap(), None, "the change is held back");
    let failed = store.stage::<(), ()>(&mut staged, None, 2, |tx| {
        tx.append(&order, Some(2), crate::domain::EventKind::OrderClosed)?;
        abort(())
    });
    assert!(failed.is_err());
    assert_eq!(store.head(), 1, "nothing appended");
    assert_eq!(staged.applied(), Some(1));
}

/// A write that touches nothing staged is written beside it; one that
/// reads or writes a staged key is refused there, and written with the
/// staged changes in one write, reading them as committed.
#[test]
fn a_write_beside_staged_changes_must_not_touch_them_and_else_commits_with_them() {
    let (_dir, store) = store();
    let mut staged = Staged::default();
    store.stage::<_, ()>(&mut staged, None, 4, |tx| tx.put(T, "held", &1)).unwrap();

    let beside = store.write_beside::<_, ()>(&staged, None, |tx| tx.put(T, "other", &2)).unwrap();
    assert!(beside.is_some());
    assert_eq!(store.get(T, "other").unwrap(), Some(2));
    assert_eq!((store.get(T, "held").unwrap(), store.offset("consumer").unwrap()), (None, 0));

    let reads = store.write_beside::<_, ()>(&staged, None, |tx| {
        let held = tx.get::<u32, ()>(T, "held")?.unwrap_or(0);
        tx.put(T, "sum", &(held + 10))
    });
    assert!(reads.unwrap().is_none(), "it read a staged key");
    assert_eq!(store.get(T, "sum").unwrap(), None, "nothing written");
    let writes = store.write_beside::<_, ()>(&staged, None, |tx| tx.put(T, "held", &3));
    assert!(writes.unwrap().is_none(), "it wrote a staged key");

    let before = store.writer_stats().read().commits;
    store
        .commit_staged_with::<_, ()>(&mut staged, "consumer", 0, |tx| {
            let held = tx.get::<u32, ()>(T, "held")?.unwrap_or(0);
            tx.put(T, "sum", &(held + 10))
        })
        .unwrap();
    assert_eq!(store.writer_stats().read().commits - before, 1, "one write");
    assert_eq!((store.get(T, "held").unwrap(), store.get(T, "sum").unwrap()), (Some(1), Some(11)));
    assert_eq!(store.offset("consumer").unwrap(), 4);
    assert!(staged.is_empty());
}

/// Changes folded before the store was reopened are never committed, nor
/// added to, nor are reactions decided on them appended: what the store
/// did not flush then is gone, and they may rest on it.
#[test]
fn changes_folded_before_a_reopen_are_refused() {
    let (_dir, store) = store();
    let order = crate::domain::OrderId::from_number(1);
    let mut staged = Staged::default();
    store.stage::<_, ()>(&mut staged, None, 3, |tx| tx.put(T, "a", &1)).unwrap();
    store.condition().recovered(store.head());

    let refused = store.commit_staged(&mut staged, "consumer", 0);
    assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
    let added = store.stage::<_, ()>(&mut staged, None, 4, |tx| {
        tx.append(&order, Some(4), crate::domain::EventKind::OrderClosed)
    });
    assert!(added.is_err());
    assert_eq!((store.get(T, "a").unwrap(), store.offset("consumer").unwrap(), store.head()), (None, 0, 0));

    let mut fresh = Staged::default();
    store.stage::<_, ()>(&mut fresh, None, 3, |tx| tx.put(T, "a", &1)).unwrap();
    store.commit_staged(&mut fresh, "consumer", 0).unwrap();
    assert_eq!(store.get(T, "a").unwrap(), Some(1));
}
