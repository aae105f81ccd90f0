//! The marker beside the store: which store a data directory holds and how
//! far its log is known to be durable.
//!
//! sled opens a damaged store without a word (a `db` file truncated to zero
//! opens empty; one cut in half opens with part of its log), so only a
//! record kept outside sled's files can tell that something is missing. The
//! node writes it, atomically (temporary file, sync, rename), after a flush
//! at least once a second while the log grows, and at shutdown. At start, a
//! store that is not the one the marker names, or whose log ends before the
//! marker's head, is refused.

use super::StoreError;
use crate::domain::Seq;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The marker's file name in the data directory.
pub const FILE: &str = "fulfil.marker";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The store's identity, also kept inside the store.
    pub store_id: String,
    /// Every event up to this one was durable when the marker was written.
    pub head: Seq,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The marker in `dir`, if there is one; a marker that cannot be read is
/// damage, not absence.
pub fn read(dir: &Path) -> Result<Option<Marker>, StoreError> {
    let file = path(dir);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Damaged(format!("the marker {} cannot be read ({e})", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Damaged(format!("the marker {} cannot be read ({e})", file.display()))),
    }
}

/// Replaces the marker in `dir` atomically: a crash leaves the old one or
/// the new one, never half of either.
pub fn write(dir: &Path, marker: &Marker) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(marker).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path(dir))?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back_and_a_garbled_one_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let m = Marker { store_id: "abc".into(), head: 7 };
        write(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(m));
        std::fs::write(dir.path().join(FILE), b"{\"store_id\":").unwrap();
        assert!(matches!(read(dir.path()), Err(StoreError::Damaged(_))));
    }
}
