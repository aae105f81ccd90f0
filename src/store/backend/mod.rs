//! Where a store keeps its log and its tables: the [`Backend`] trait and
//! its providers, after restate's `Loglet` (one interface, several
//! providers, one contract that all of them keep).
//!
//! The [`super::Store`] above a backend does what does not depend on where
//! the bytes live: it numbers events under its writer lock, checks the log
//! offsets a write read, encodes values, and waits for durability by group
//! commit. A backend only has to keep this contract, which
//! `store::contract` tests against every provider:
//!
//! - **One commit, all or nothing.** [`Backend::commit`] applies its table
//!   changes and appends its events atomically: after a crash either all of
//!   them are there or none is. A consumer's effects, the events it appends
//!   and its new offset (a change to the `offsets` table) are one commit, so
//!   replaying the log applies nothing twice.
//! - **The log is contiguous, and an append is stored once.** Events are
//!   appended with the sequence numbers the store gave them, each one after
//!   the last. A commit whose first event's number is already in the log is
//!   refused and changes nothing, so a retried append (over a network, in a
//!   networked provider) is never stored twice.
//! - **Reads see every commit that returned.** `get`, `scan` and
//!   `read_log` see a commit as soon as [`Backend::commit`] has returned.
//! - **Durability is explicit.** A commit may be in memory until
//!   [`Backend::flush`] returns; acknowledgements wait for a flush.
//!
//! Providers: [`SledBackend`] (embedded, the default) and [`MemoryBackend`]
//! (for tests; nothing survives the process).

use super::{RawEntry, StoreError};
use crate::domain::Seq;

/// One change of a commit: `value` `None` removes the key.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub table: &'a str,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Entries of a table in key order.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<RawEntry, StoreError>> + 'a>;

/// The log and tables of one store; see the module docs for the contract.
pub trait Backend: Send + Sync {
    /// The value at `key` in `table`.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Whether `table` has `key`.
    fn contains(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(table, key)?.is_some())
    }

    /// The entries of `table` from `start` on, in key order, read lazily.
    fn scan(&self, table: &str, start: &[u8]) -> Result<Entries<'_>, StoreError>;

    /// Writes one value on its own, outside any commit: atomic for that key,
    /// ordered with nothing else (for a record no event depends on).
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.commit(&[Change { table, key, value: Some(value) }], &[])
    }

    /// Applies `changes` and appends `events` (numbered, contiguous, after
    /// the last event) in one atomic commit.
    fn commit(&self, changes: &[Change<'_>], events: &[(Seq, Vec<u8>)]) -> Result<(), StoreError>;

    /// Up to `limit` encoded events numbered from `from` on, in order.
    fn read_log(&self, from: Seq, limit: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The number of the last event in the log; 0 when it is empty.
    fn last_seq(&self) -> Result<Seq, StoreError>;

    /// A number never handed out before by this store, even across restarts.
    fn generate_id(&self) -> Result<u64, StoreError>;

    /// Returns once every commit that returned before the call is durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// The names of the tables that hold anything (the log is not one).
    fn table_names(&self) -> Result<Vec<String>, StoreError>;

    /// After a write failed (a full disk): tries to make the backend
    /// writable again, and answers whether it now is. A provider whose
    /// failures do not stick has nothing to do.
    fn heal(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// A refused append: the log already holds `seq`.
fn duplicate(seq: Seq) -> StoreError {
    StoreError::DuplicateAppend(seq)
}

mod memory;
mod records;
mod sled;

pub use self::sled::SledBackend;
pub use memory::MemoryBackend;
