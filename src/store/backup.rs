//! A consistent copy of a running store, and a store started from one.
//!
//! The copy is taken under the log's writer lock: no write commits while it
//! runs (writers wait, up to their timeouts), so every table and the log are
//! as of one moment, and an order acknowledged before the backup began is in
//! it. The copy is itself a store with its marker: `fulfil check` reads it,
//! and `fulfil restore` puts it in place of a data directory.

use super::backend::{Backend, Change, SledBackend};
use super::marker::{self, Marker};
use super::{open, Store, StoreError};
use crate::domain::Seq;
use serde::Serialize;
use std::path::Path;

/// Entries or events copied in one commit.
const CHUNK: usize = 10_000;
/// The copy's page cache: it is written once and closed.
const CACHE: u64 = 16 << 20;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BackupReport {
    pub store_id: String,
    /// The log's last event in the copy.
    pub head: Seq,
    pub tables: usize,
    /// Table entries copied (events not included).
    pub keys: u64,
}

/// A directory that does not exist yet, or is empty.
fn fresh(dir: &Path) -> Result<(), StoreError> {
    let empty = std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()).unwrap_or(true);
    match empty {
        true => Ok(()),
        false => Err(StoreError::NotEmpty(dir.display().to_string())),
    }
}

impl Store {
    /// Copies the whole store into `dir` (new or empty), consistently.
    pub fn backup_to(&self, dir: &Path) -> Result<BackupReport, StoreError> {
        fresh(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Engine(std::sync::Arc::new(e)))?;
        let target = SledBackend::open(dir, CACHE)?;
        // Ids handed out so far, so that the copy never hands them out again.
        let next_id = self.generate_id()?;
        let _writers_wait = self.inner.append.lock().unwrap_or_else(|p| p.into_inner());
        let source = &*self.inner.backend;
        let mut report = BackupReport { store_id: String::new(), head: 0, tables: 0, keys: 0 };
        for table in source.table_names()? {
            report.keys += copy_table(source, &target, &table)?;
            report.tables += 1;
        }
        report.head = copy_log(source, &target)?;
        while target.generate_id()? < next_id {}
        target.flush()?;
        report.store_id = open::store_id(&target)?.unwrap_or_default();
        marker::write(dir, &Marker { store_id: report.store_id.clone(), head: report.head })
            .map_err(|e| StoreError::Engine(std::sync::Arc::new(e)))?;
        Ok(report)
    }
}

fn copy_table(source: &dyn Backend, target: &SledBackend, table: &str) -> Result<u64, StoreError> {
    let mut copied = 0;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut entries = source.scan(table, &[])?;
    loop {
        chunk.clear();
        for entry in entries.by_ref().take(CHUNK) {
            chunk.push(entry?);
        }
        if chunk.is_empty() {
            return Ok(copied);
        }
        let changes: Vec<Change<'_>> =
            chunk.iter().map(|(key, value)| Change { table, key, value: Some(value) }).collect();
        target.commit(&changes, &[])?;
        copied += chunk.len() as u64;
    }
}

fn copy_log(source: &dyn Backend, target: &SledBackend) -> Result<Seq, StoreError> {
    let mut next = 1;
    loop {
        let events = source.read_log(next, CHUNK)?;
        if events.is_empty() {
            return Ok(next - 1);
        }
        let numbered: Vec<(Seq, Vec<u8>)> = (next..).zip(events).collect();
        next += numbered.len() as Seq;
        target.commit(&[], &numbered)?;
    }
}

/// Puts the backup in `from` in place of the data directory `to` (new or
/// empty), after checking that it opens as a store: a copy of its files.
pub fn restore(from: &Path, to: &Path) -> Result<BackupReport, StoreError> {
    fresh(to)?;
    let report = {
        let store = Store::open(from, CACHE)?;
        let (head, keys) = (store.head(), 0);
        let store_id = open::store_id(&*store.inner.backend)?.unwrap_or_default();
        let tables = store.inner.backend.table_names()?.len();
        BackupReport { store_id, head, tables, keys }
    };
    copy_dir(from, to).map_err(|e| StoreError::Engine(std::sync::Arc::new(e)))?;
    Ok(report)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
