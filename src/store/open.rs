//! Opening an on-disk store, and refusing one that cannot be trusted.

use super::backend::{Backend, SledBackend};
use super::marker::{self, Marker};
use super::{decode, encode, StoreError};
use crate::domain::Event;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The store's own facts, beside the services' tables.
const META: &str = "meta";
const STORE_ID: &[u8] = b"store_id";

/// Opens the store in `dir` and checks it against its marker: the backend
/// and the store's id. See [`super::Store::open`].
pub(super) fn checked(dir: &Path, cache_bytes: u64) -> Result<(SledBackend, String), StoreError> {
    let backend = sled_in(dir, cache_bytes)?;
    let store_id = checked_on(dir, &backend)?;
    Ok((backend, store_id))
}

/// Opens sled's files in `dir`, turning its panics on damaged files into
/// advice.
pub fn sled_in(dir: &Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
    let damaged = |what: String| StoreError::Damaged(advice(dir, &what));
    quietly(|| SledBackend::open_with_reserve(dir, cache_bytes))
        .map_err(|panic| damaged(format!("its files cannot be read ({panic})")))?
        .map_err(|e| damaged(format!("its files cannot be read ({e})")))
}

/// Checks `backend`, opened on `dir`, against the marker in `dir`, and
/// gives a new store its identity (written through `backend`, so that a
/// backend that copies its commits elsewhere copies the identity too).
/// Returns the store's id.
pub(super) fn checked_on(dir: &Path, backend: &dyn Backend) -> Result<String, StoreError> {
    let damaged = |what: String| StoreError::Damaged(advice(dir, &what));
    let marker = marker::read(dir).map_err(|e| damaged(e.to_string()))?;
    let head = backend.last_seq().map_err(|e| damaged(format!("its log cannot be read ({e})")))?;
    if head > 0 {
        last_event_reads(backend, head).map_err(damaged)?;
    }
    let id: Option<String> = match backend.get(META, STORE_ID) {
        Ok(Some(bytes)) => {
            Some(decode(&bytes).map_err(|e| damaged(format!("its identity cannot be read ({e})")))?)
        }
        Ok(None) => None,
        Err(e) => return Err(damaged(format!("its identity cannot be read ({e})"))),
    };
    let store_id = match (marker, id) {
        (Some(m), None) => {
            return Err(damaged(format!(
                "it is empty or missing its identity, but the marker says it is store {} with {} events",
                m.store_id, m.head
            )))
        }
        (Some(m), Some(id)) if m.store_id != id => {
            return Err(damaged(format!("it is store {id}, but the marker names store {}", m.store_id)))
        }
        (Some(m), Some(_)) if head < m.head => {
            return Err(damaged(format!(
                "its log ends at event {head}, but event {} was durable before: events are missing",
                m.head
            )))
        }
        (_, Some(id)) => id,
        // A new store, or one written before markers: it gets an identity.
        (None, None) => {
            let id = new_id();
            let bytes = encode(&id)?;
            backend.put(META, STORE_ID, &bytes)?;
            backend.flush()?;
            id
        }
    };
    marker::write(dir, &Marker { store_id: store_id.clone(), head })
        .map_err(|e| damaged(format!("its marker cannot be written ({e})")))?;
    Ok(store_id)
}

/// The store's identity, if it has one yet.
pub(super) fn store_id(backend: &dyn Backend) -> Result<Option<String>, StoreError> {
    match backend.get(META, STORE_ID)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// The last event must decode, and be the event its key says.
fn last_event_reads(backend: &dyn Backend, head: u64) -> Result<(), String> {
    let found = backend.read_log(head, 1).map_err(|e| format!("its log cannot be read ({e})"))?;
    match found.first().map(|bytes| decode::<Event>(bytes)) {
        Some(Ok(event)) if event.seq == head => Ok(()),
        Some(Ok(event)) => Err(format!("its last event is numbered {} but stored as {head}", event.seq)),
        Some(Err(e)) => Err(format!("its last event cannot be read ({e})")),
        None => Err(format!("its last event ({head}) is missing")),
    }
}

/// What is wrong, where, and what to do.
fn advice(dir: &Path, what: &str) -> String {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.display();
    format!(
        "the store in {dir} cannot be trusted: {what}. Nothing was changed. Restore it from a backup \
         (`fulfil restore --from BACKUP --data {dir}`), or move {dir} away to start with an empty store"
    )
}

/// A store id: random, and readable in a message.
fn new_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync>;

/// Runs `f`, turning a panic into its message without printing it: sled
/// panics on some damaged files, and the operator should read what to do,
/// not a backtrace. Panics on other threads meanwhile are reported as usual.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static SWAPPING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = SWAPPING.lock().unwrap_or_else(|p| p.into_inner());
    let previous: Arc<PanicHook> = Arc::new(std::panic::take_hook());
    let (here, others) = (std::thread::current().id(), previous.clone());
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != here {
            others(info);
        }
    }));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(Box::new(move |info| previous(info)));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an unknown failure".into())
    })
}
