//! The layering rule, checked on the source: every `crate::<module>` path
//! in non-test code must point at a module its layer may use.
//!
//! ```text
//!   faces      http   kafka   client                 (call the facade only)
//!   facade     node   (+ error, config: the public error and settings; task)
//!   subsystems tier  pipeline  compaction  cluster  plugin  groups
//!   log        log
//!   wal        wal
//!   bottom     objstore                       (fsutil, metrics: anyone)
//! ```
//!
//! A new module must be added to [`ALLOWED`]; an import not listed there
//! fails this test with the file and line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Utility modules any module may use.
const BASE: &[&str] = &["fsutil", "metrics"];

/// Module -> the crate modules it may import (besides [`BASE`] and itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("fsutil", &[]),
    ("metrics", &[]),
    ("objstore", &[]),
    ("wal", &["objstore"]),
    ("log", &["wal", "objstore"]),
    ("plugin", &["log"]),
    ("cluster", &["log"]),
    ("compaction", &["plugin", "log"]),
    ("pipeline", &["plugin", "log"]),
    ("groups", &[]),
    ("tier", &["compaction", "plugin", "log", "wal", "objstore"]),
    // The error table maps every subsystem's error to the public one.
    (
        "error",
        &[
            "cluster", "groups", "log", "objstore", "pipeline", "plugin", "tier", "wal",
        ],
    ),
    ("config", &["error", "log", "objstore", "plugin", "tier", "wal"]),
    // The `[cluster]` section of the settings (a file of `config`).
    ("config_cluster", &["error"]),
    // The `[groups]` section of the settings (a file of `config`).
    ("config_groups", &[]),
    // The `[http]` section.
    ("config_http", &[]),
    // The `[plugins]` and `[tls]` sections.
    ("config_plugins", &[]),
    ("config_tls", &[]),
    // TLS configurations built from `[tls]`.
    ("tls", &["config", "error"]),
    // The open-file limit and the connection caps that fit it.
    ("fdlimit", &["config"]),
    ("task", &["error"]),
    (
        "node",
        &[
            "error",
            "config",
            "tls",
            "task",
            "tier",
            "pipeline",
            "compaction",
            "cluster",
            "groups",
            "plugin",
            "log",
            "wal",
            "objstore",
        ],
    ),
    ("http", &["node", "error", "config"]),
    ("kafka", &["node", "error", "config"]),
    // The CLI speaks the HTTP API's wire format.
    ("client", &["node", "error", "config", "http"]),
    // Fuzz target bodies: drive the decoders of every layer directly, and
    // the Kafka face's handlers on a node opened from settings; a
    // test-and-fuzzing-only module nothing else imports.
    (
        "fuzz_api",
        &["wal", "log", "tier", "cluster", "kafka", "node", "config"],
    ),
];

/// The non-test `.rs` files under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            sources(&path, out);
        } else if name.ends_with(".rs") && !name.starts_with("tests") && name != "testing.rs" {
            out.push(path);
        }
    }
}

/// The module a file belongs to: its first path component under `src/`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// `(line number, target module)` of every `crate::<module>` in the code
/// of `text`: comments, and everything from a `#[cfg(test)]` module on, are
/// left out.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let code = line.split("//").next().unwrap_or("");
        if code.trim() == "#[cfg(test)]" && lines.peek().is_some_and(|(_, l)| l.trim_start().starts_with("mod ")) {
            break;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let word_start = at == 0 || !rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            if word_start && !name.is_empty() {
                out.push((i + 1, name));
            }
            rest = after;
        }
    }
    out
}

/// The crate root's re-exports (`pub use module::{A, B};` in `lib.rs`):
/// name -> the module that defines it.
fn root_reexports(src: &Path) -> Vec<(String, String)> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    // Top-level `pub use` items, each possibly over several lines.
    let mut out = Vec::new();
    let mut item = String::new();
    for line in lib.lines() {
        if item.is_empty() && !line.starts_with("pub use ") {
            continue;
        }
        item.push_str(line.trim());
        if !line.trim_end().ends_with(';') {
            continue;
        }
        let text = std::mem::take(&mut item);
        let text = text.trim_start_matches("pub use ").trim_end_matches(';');
        let (module, rest) = text.split_once("::").unwrap_or((text, ""));
        let names = rest
            .rsplit("::")
            .next()
            .unwrap_or("")
            .trim_matches(|c| c == '{' || c == '}');
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.split(" as ").last().unwrap_or(name).trim();
            out.push((name.to_string(), module.to_string()));
        }
    }
    out
}

/// Every import that breaks the rule, as `file:line: from -> to`.
fn violations(src: &Path) -> Vec<String> {
    let reexports = root_reexports(src);
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let from = module_of(src, &file);
        if from == "lib" || from == "main" || from == "tests_layers" {
            continue;
        }
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == from) else {
            bad.push(format!("{}: module `{from}` is not in the layer table", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name) in imports(&text) {
            // `crate::Record` and the like: the module behind the re-export.
            let to = reexports
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(name, |(_, m)| m.clone());
            if to != from && !BASE.contains(&to.as_str()) && !allowed.contains(&to.as_str()) {
                bad.push(format!("{}:{line}: {from} -> {to}", file.display()));
            }
        }
    }
    bad
}

#[test]
fn every_import_follows_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports against the layering (see src/tests_layers.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_layer_table_has_no_cycles() {
    // Depth-first over ALLOWED: a module reachable from itself is a cycle.
    fn reach(from: &str, seen: &mut BTreeSet<String>) {
        let Some((_, deps)) = ALLOWED.iter().find(|(m, _)| *m == from) else {
            return;
        };
        for d in deps.iter() {
            if seen.insert(d.to_string()) {
                reach(d, seen);
            }
        }
    }
    for (m, _) in ALLOWED {
        let mut seen = BTreeSet::new();
        reach(m, &mut seen);
        assert!(!seen.contains(*m), "the layer table lets `{m}` reach itself");
    }
}

#[test]
fn an_upward_import_is_caught() {
    // A WAL file that reaches up into tiering, and one into the facade.
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    std::fs::create_dir_all(&wal).unwrap();
    std::fs::write(
        wal.join("object.rs"),
        "use crate::objstore::Remote;\n// crate::tier in a comment is fine\nuse crate::tier::TierError;\nfn f() { crate::node::Host::open; }\n#[cfg(test)]\nmod tests { use crate::node::Host; }\n",
    )
    .unwrap();
    let bad = violations(dir.path());
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].ends_with(":3: wal -> tier"), "{bad:?}");
    assert!(bad[1].ends_with(":4: wal -> node"), "{bad:?}");
}
