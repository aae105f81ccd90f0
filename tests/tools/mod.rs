//! The tools some tests check the project's artefacts with (validators,
//! linters), kept in `target/test-tools` and installed there by
//! `scripts/test-tools.sh` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A program of `target/test-tools/bin`, installed on first use.
pub fn tool(name: &str) -> PathBuf {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let installed = Command::new("sh").arg(root().join("scripts/test-tools.sh")).status().unwrap();
        assert!(installed.success(), "scripts/test-tools.sh failed");
    });
    root().join("target/test-tools/bin").join(name)
}
