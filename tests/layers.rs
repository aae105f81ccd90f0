//! The module structure stays true: every `crate::…` path in `src/` points
//! down the table of layers below, so there is no import circle and no leaf
//! that knows the layers built on it.
//!
//! A module may use modules of a lower rank only. Modules of one rank are
//! independent of each other; a new top-level module must be placed in the
//! table before it compiles into a passing test.

use std::collections::BTreeMap;
use std::path::Path;

/// (module, rank). Lower ranks are nearer the floor.
const LAYERS: &[(&str, u32)] = &[
    // Pure rules: no I/O, no actix, no sled.
    ("domain", 0),
    ("logging", 0),
    // Leaves: each knows the domain at most.
    ("store", 1),
    ("service", 1),
    ("clock", 1),
    ("resilience", 1),
    ("load", 1),
    ("faults", 2),
    ("health", 2),
    ("config", 3),
    ("error", 3),
    ("metrics", 3),
    ("telemetry", 4),
    // The services, on the leaves.
    ("actors", 4),
    ("auth", 4),
    // The log published to NATS JetStream, beside the services.
    ("stream", 4),
    // The embedding API, on the services.
    ("node", 5),
    // Several nodes on one stream (leases, fenced appends, the store's
    // copies), on the stream's connection.
    ("cluster", 5),
    // The HTTP gateway, on the node.
    ("http", 6),
    ("startup", 7),
    ("cli", 8),
];

/// Paths at the crate root that belong to a module: macros exported with
/// `#[macro_export]` live at `crate::` but are defined in their module.
const ALIASES: &[(&str, &str)] = &[("log_consumer", "actors")];

fn rank(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// The top-level module a source file belongs to (`src/actors/order.rs` →
/// `actors`, `src/config.rs` → `config`); `None` for `lib.rs`/`main.rs`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// The code of a line without its `//` comment (doc links are not imports).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Every module named after `crate::` in `text`, grouped imports included
/// (`use crate::{a, b::c}` names `a` and `b`).
fn targets(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().map(code) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            // `$crate::` in macros is the same crate.
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let head = part.trim().split("::").next().unwrap_or("").trim();
                    if !head.is_empty() {
                        found.push(head.to_owned());
                    }
                }
                continue;
            }
            let ident: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !ident.is_empty() {
                found.push(ident);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_in_src_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files under {}", files.len(), src.display());

    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else { continue };
        let Some(from_rank) = rank(&from) else {
            unplaced.push(from);
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for target in targets(&text) {
            let target = ALIASES
                .iter()
                .find(|(alias, _)| *alias == target)
                .map_or(target.clone(), |(_, m)| m.to_string());
            if target == from || target == "self" || target == "super" {
                continue;
            }
            // A re-export at the crate root (`crate::Node`) hides which
            // layer it comes from: it has no rank and is reported.
            let ok = rank(&target).is_some_and(|to_rank| to_rank < from_rank);
            if !ok {
                let rel = file.strip_prefix(&src).unwrap_or(file).display().to_string();
                upward.entry(format!("{from} -> {target}")).or_default().push(rel);
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(unplaced.is_empty(), "top-level modules missing from LAYERS: {unplaced:?}");
    assert!(upward.is_empty(), "imports that point up or sideways (from -> to: files): {upward:#?}");
}

#[test]
fn the_checker_sees_grouped_and_inline_paths_and_skips_comments() {
    let text = "use crate::{store::Tx, domain};\nlet x = crate::node::Node::x(); // crate::http\n";
    assert_eq!(targets(text), ["store", "domain", "node"]);
}
