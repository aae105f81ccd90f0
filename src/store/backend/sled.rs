//! The embedded provider: sled, one tree per table and one for the log.
//!
//! sled 0.34 makes an I/O failure while writing sticky: once its log cannot
//! be written (a full disk), every later write, flush and even read fails,
//! even after space returns. So the database is held in a slot that
//! [`Backend::heal`] can empty and fill again with a fresh `sled::Db` on the
//! same files: sled recovers the durable prefix of its log, which holds
//! everything that was acknowledged (acknowledgements wait for a flush).
//! sled must write to open, so a node's store keeps a reserve beside it
//! (`fulfil.reserve`, [`RESERVE_BYTES`]): when a write fails, the reserve is
//! given up and the database reopened at once, so that reads answer again
//! while the disk is still full (the store above takes no writes then). The
//! store is writable again once the reserve can be made again and a probe
//! fits beside it: the space is really back, not just the reserve.

use super::{duplicate, records, Backend, Change, Entries};
use crate::domain::Seq;
use crate::logging::ERRORS;
use crate::store::StoreError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

/// The embedded provider.
pub struct SledBackend {
    path: PathBuf,
    cache_bytes: u64,
    /// The open database; empty only while it is being reopened.
    open: RwLock<Option<Open>>,
    /// A write failed on the open database: sled's error is sticky, so it
    /// must be reopened before it answers anything again.
    poisoned: AtomicBool,
    /// Whether a reserve is kept beside the files (a node's store; not a
    /// backup's).
    reserve: bool,
}

/// Disk space kept free for reopening the store after the disk filled up.
pub const RESERVE_BYTES: usize = 8 << 20;
const RESERVE: &str = "fulfil.reserve";

/// One open sled database.
struct Open {
    db: sled::Db,
    /// The log: one record per commit (see [`records`]).
    events: sled::Tree,
    /// The number of the log's last event: commits come one at a time
    /// (the store above orders them), and a commit of events that are not
    /// after it is a retried append, refused.
    last: AtomicU64,
    /// The trees behind the tables, opened on first use.
    trees: RwLock<HashMap<String, sled::Tree>>,
}

const EVENTS: &str = "events";

/// How long an open waits for a database's file lock: sled releases it
/// from its IO threads a moment after the last handle is dropped (a
/// backup's copy, checked right after).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an open waits for a database that this process itself opened
/// before: sled's IO threads are one pool for the whole process, and under
/// load (many stores at once, as in the test suite) the task that still
/// holds the lock may wait its turn for seconds. Another process's lock is
/// refused after [`LOCK_WAIT`].
const OWN_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The databases this process has opened: a lock on one of them is its own,
/// about to be released.
static OPENED_HERE: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Opens the database at `path`, waiting while its file lock is still held
/// (see [`LOCK_WAIT`], [`OWN_LOCK_WAIT`]).
fn open_db(path: &std::path::Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    let here = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let opened = || OPENED_HERE.lock().unwrap_or_else(|p| p.into_inner());
    let ours = opened().contains(&here);
    let deadline = std::time::Instant::now() + if ours { OWN_LOCK_WAIT } else { LOCK_WAIT };
    loop {
        match sled::Config::new().path(path).cache_capacity(cache_bytes).open() {
            Err(sled::Error::Io(e)) if locked(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(db) => {
                if !ours {
                    opened().push(here);
                }
                return Ok(db);
            }
            other => return other,
        }
    }
}

/// Whether opening failed on the file lock: sled reports it as an error of
/// kind `Other` with its own words around the `WouldBlock`.
fn locked(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().starts_with("could not acquire lock")
}

/// The number of the last event in `log`: its last record's first event
/// and count.
fn last_in(log: &sled::Tree) -> Result<Seq, StoreError> {
    match log.last()? {
        Some((key, record)) => Ok(crate::store::log::seq_from_key(&key)? + records::count(&record)? - 1),
        None => Ok(0),
    }
}

fn reopening() -> StoreError {
    StoreError::Unavailable("the store is being reopened".into())
}

impl Open {
    fn new(path: &std::path::Path, cache_bytes: u64) -> Result<Open, StoreError> {
        let db = open_db(path, cache_bytes)?;
        let events = db.open_tree(EVENTS)?;
        let last = AtomicU64::new(last_in(&events)?);
        Ok(Open { db, events, last, trees: RwLock::new(HashMap::new()) })
    }

    /// Runs `f` on the tree called `name` (opened on first use) without
    /// cloning it: reads are the hot path, and a clone is two atomic
    /// operations on a counter that every thread shares.
    fn with_tree<T>(&self, name: &str, f: impl FnOnce(&sled::Tree) -> T) -> Result<T, StoreError> {
        if let Ok(trees) = self.trees.read() {
            if let Some(tree) = trees.get(name) {
                return Ok(f(tree));
            }
        }
        let tree = self.db.open_tree(name)?;
        let answer = f(&tree);
        if let Ok(mut trees) = self.trees.write() {
            trees.insert(name.to_owned(), tree);
        }
        Ok(answer)
    }
}

impl SledBackend {
    /// Opens (or creates) the database at `path` with a page cache of
    /// `cache_bytes` (sled's default of 1 GiB is far more than a node needs).
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
        let open = Open::new(path, cache_bytes)?;
        Ok(SledBackend {
            path: path.to_path_buf(),
            cache_bytes,
            open: RwLock::new(Some(open)),
            poisoned: AtomicBool::new(false),
            reserve: false,
        })
    }

    /// Like [`SledBackend::open`], keeping a reserve of disk space beside
    /// the files for reopening them after the disk fills up.
    pub fn open_with_reserve(path: &std::path::Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
        let backend = SledBackend { reserve: true, ..SledBackend::open(path, cache_bytes)? };
        if !path.join(RESERVE).exists() && !write_file(&path.join(RESERVE), RESERVE_BYTES) {
            tracing::warn!(dir = %path.display(), "no room for the store's reserve: a full disk will stop reads too");
        }
        Ok(backend)
    }

    /// An operation's outcome: any storage failure poisons the database
    /// (sled's failures stick, and even opening a table writes).
    fn seen<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Engine(_)) = &outcome {
            self.poisoned.store(true, Ordering::Release);
        }
        outcome
    }

    /// The open database, held for the length of one call.
    fn db(&self) -> Result<OpenGuard<'_>, StoreError> {
        // A lock poisoned by a panic elsewhere guards nothing broken here.
        let guard = self.open.read().unwrap_or_else(|p| p.into_inner());
        match guard.is_some() {
            true => Ok(OpenGuard(guard)),
            false => Err(reopening()),
        }
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.seen(self.db()?.with_tree(name, sled::Tree::clone))
    }
}

/// Up to `limit` events of `log` from the one numbered `from`: from the
/// record that holds it (the last record that starts at or before it) on.
fn read_records(log: &sled::Tree, from: Seq, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
    let start = match log.range(..=from.to_be_bytes()).next_back() {
        Some(kv) => kv?.0,
        None => sled::IVec::from(&from.to_be_bytes()),
    };
    let mut events = Vec::new();
    for kv in log.range(start..) {
        let (key, record) = kv?;
        let first = crate::store::log::seq_from_key(&key)?;
        for (seq, bytes) in (first..).zip(records::decode(&record)?) {
            if events.len() == limit {
                return Ok(events);
            }
            if seq >= from {
                events.push(bytes.to_vec());
            }
        }
    }
    Ok(events)
}

/// A read guard on a filled slot.
struct OpenGuard<'a>(RwLockReadGuard<'a, Option<Open>>);

impl std::ops::Deref for OpenGuard<'_> {
    type Target = Open;
    fn deref(&self) -> &Open {
        // Checked when the guard was made, and it cannot change while held.
        self.0.as_ref().expect("an open database")
    }
}

impl Backend for SledBackend {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let got = self.db()?.with_tree(table, |t| t.get(key)).and_then(|r| Ok(r?));
        Ok(self.seen(got)?.map(|v| v.to_vec()))
    }

    fn contains(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        let found = self.db()?.with_tree(table, |t| t.contains_key(key)).and_then(|r| Ok(r?));
        self.seen(found)
    }

    /// A plain insert: sled runs a transaction under its process-wide lock,
    /// an insert does not.
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let put = self.db()?.with_tree(table, |t| t.insert(key, value)).and_then(|r| Ok(r?));
        self.seen(put).map(drop)
    }

    fn scan(&self, table: &str, start: &[u8]) -> Result<Entries<'_>, StoreError> {
        let entries = self.tree(table)?.range(start.to_vec()..);
        let owned = move |kv: sled::Result<(sled::IVec, sled::IVec)>| {
            self.seen(kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from))
        };
        Ok(Box::new(entries.map(owned)))
    }

    fn commit(&self, changes: &[Change<'_>], events: &[(Seq, Vec<u8>)]) -> Result<(), StoreError> {
        use ::sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let open = self.db()?;
        // The trees the commit touches, the log last; each change by index.
        let mut names: Vec<&str> = changes.iter().map(|c| c.table).collect();
        names.sort_unstable();
        names.dedup();
        let mut trees =
            names.iter().map(|n| open.with_tree(n, sled::Tree::clone)).collect::<Result<Vec<_>, _>>()?;
        trees.push(open.events.clone());
        let log = trees.len() - 1;
        let indexed: Vec<(usize, &Change<'_>)> =
            changes.iter().map(|c| (names.binary_search(&c.table).unwrap_or_default(), c)).collect();
        let all: Vec<&sled::Tree> = trees.iter().collect();
        let first = events.first().map(|(seq, _)| *seq);
        if let Some(first) = first.filter(|first| *first <= open.last.load(Ordering::Acquire)) {
            return Err(duplicate(first));
        }
        let record = first.map(|first| (first.to_be_bytes(), records::encode(events)));
        let outcome = all.as_slice().transaction(|view| {
            for (tree, c) in &indexed {
                match c.value {
                    Some(bytes) => view[*tree].insert(c.key, bytes)?,
                    None => view[*tree].remove(c.key)?,
                };
            }
            if let Some((key, record)) = &record {
                view[log].insert(&key[..], record.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        let outcome = outcome.map_err(|e| match e {
            TransactionError::Abort(()) => StoreError::Unavailable("the commit was abandoned".into()),
            TransactionError::Storage(e) => e.into(),
        });
        self.seen(outcome)?;
        if let Some((seq, _)) = events.last() {
            open.last.store(*seq, Ordering::Release);
        }
        Ok(())
    }

    fn read_log(&self, from: Seq, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let open = self.db()?;
        let read = read_records(&open.events, from, limit);
        self.seen(read)
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        Ok(self.db()?.last.load(Ordering::Acquire))
    }

    fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.db()?.db.generate_id()?)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let flushed = self.db()?.db.flush().map_err(StoreError::from);
        self.seen(flushed).map(drop)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db()?.db.size_on_disk()?)
    }

    fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let names = self.db()?.db.tree_names();
        let names = names.into_iter().map(|n| String::from_utf8_lossy(&n).into_owned());
        // sled's default tree is its own; the log is `events`.
        Ok(names.filter(|n| n != EVENTS && !n.starts_with("__sled__")).collect())
    }

    /// Reopens a poisoned database at once (giving up the reserve for it),
    /// and answers whether the disk takes writes again: the reserve can be
    /// made again, and a probe fits beside it.
    fn heal(&self) -> Result<bool, StoreError> {
        let reserve = self.path.join(RESERVE);
        if self.poisoned.load(Ordering::Acquire) {
            let mut slot = self.open.write().unwrap_or_else(|p| p.into_inner());
            // The failed database must be gone before the files are opened
            // again (sled locks them). sled may panic while it shuts down a
            // database whose writes failed: that must not take the store
            // down with it.
            let failed = slot.take();
            if let Err(panic) = crate::store::open::quietly(move || drop(failed)) {
                if let Some(held_back) = ERRORS.allow("sled-drop") {
                    tracing::warn!(panic = %panic, held_back, "sled failed while closing the failed database");
                }
            }
            if self.reserve {
                let _ = std::fs::remove_file(&reserve);
            }
            *slot = Some(Open::new(&self.path, self.cache_bytes)?);
            self.poisoned.store(false, Ordering::Release);
        }
        if self.reserve && !reserve.exists() && !write_file(&reserve, RESERVE_BYTES) {
            return Ok(false);
        }
        Ok(disk_takes_writes(&self.path))
    }
}

/// Bytes a probe writes (and removes) to see that the disk takes writes.
const PROBE_BYTES: usize = 1 << 20;

fn disk_takes_writes(dir: &std::path::Path) -> bool {
    let probe = dir.join("fulfil.probe");
    let wrote = write_file(&probe, PROBE_BYTES);
    let _ = std::fs::remove_file(&probe);
    wrote
}

/// Writes `bytes` zeros to `file` and syncs them; a file that does not fit
/// is removed. Whether it fit.
fn write_file(file: &std::path::Path, bytes: usize) -> bool {
    use std::io::Write;
    let wrote = std::fs::File::create(file).and_then(|mut f| {
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..bytes.div_ceil(chunk.len()) {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    });
    if wrote.is_err() {
        let _ = std::fs::remove_file(file);
    }
    wrote.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open of a database this process still holds waits for it to be
    /// let go, instead of failing on sled's file lock at once (a backup's
    /// copy checked, then restored).
    #[test]
    fn an_open_waits_for_this_processs_own_lock_to_be_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledBackend::open(dir.path(), 1 << 20).unwrap();
        let (release, released) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            released.recv().unwrap();
            drop(first);
        });
        let path = dir.path().to_path_buf();
        let second = std::thread::spawn(move || SledBackend::open(&path, 1 << 20).map(|_| ()));
        // The second open is under way (or done, which would be wrong and
        // fail below) before the first handle goes.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!second.is_finished(), "the second open waits while the lock is held");
        release.send(()).unwrap();
        holder.join().unwrap();
        assert!(second.join().unwrap().is_ok(), "and opens once it is let go");
        let lock = std::io::Error::other("could not acquire lock on \"db\": WouldBlock");
        assert!(locked(&lock) && !locked(&std::io::Error::other("disk full")));
    }

    /// A log written one event per key, before records, reads on, with
    /// the records written after it; a retried append of an event inside a
    /// record is refused.
    #[test]
    fn a_log_of_single_events_reads_on_with_records_after_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let log = db.open_tree(EVENTS).unwrap();
            log.insert(1u64.to_be_bytes(), &[3, b'a'][..]).unwrap();
            log.insert(2u64.to_be_bytes(), &[3, b'b'][..]).unwrap();
            db.flush().unwrap();
        }
        let event = |c: u8| vec![3, c];
        let backend = SledBackend::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(backend.last_seq().unwrap(), 2);
        backend.commit(&[], &[(3, event(b'c')), (4, event(b'd')), (5, event(b'e'))]).unwrap();
        assert!(backend.commit(&[], &[(4, event(b'x'))]).is_err(), "4 is in the log already");
        assert_eq!(backend.read_log(2, 10).unwrap(), [event(b'b'), event(b'c'), event(b'd'), event(b'e')]);
        assert_eq!(backend.read_log(4, 1).unwrap(), [event(b'd')]);
        assert_eq!(backend.read_log(1, 3).unwrap(), [event(b'a'), event(b'b'), event(b'c')]);
        assert_eq!(backend.read_log(6, 3).unwrap(), Vec::<Vec<u8>>::new());
        drop(backend);
        let reopened = SledBackend::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reopened.last_seq().unwrap(), 5);
        assert_eq!(reopened.read_log(5, 1).unwrap(), [event(b'e')]);
    }
}
