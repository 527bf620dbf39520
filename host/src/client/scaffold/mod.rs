//! `sluice plugin new`: scaffolds a plugin crate on `sluice-sdk`, like
//! Fluvio's `smdk generate`.
//!
//! Owns the crate name rules, the target directory check (absent or empty,
//! else refused before anything is written), how the crate refers to the
//! SDK, and the files themselves (`templates/`): `Cargo.toml` (a `cdylib`
//! in a workspace of its own), `src/lib.rs` (a working pass-through
//! transform with a config option, or a key-by-record-key compaction
//! policy), `records.json` (sample input for `sluice plugin test`),
//! `README.md` (build, test, upload), `.cargo/config.toml` (SIMD) and
//! `.gitignore`.
//!
//! The SDK dependency: `--sdk-path DIR` writes a path dependency on that
//! checkout (absolute, so the crate may live anywhere); without it the
//! crate depends on `sluice-sdk = "0.1"` by version, with a comment on how
//! to point it at a checkout. A path into the checkout `sluice` happens to
//! be built from is never guessed: it would not be portable.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::args::{Output, PluginKindArg, PluginNewArgs};
use super::error::ClientError;
use super::output::{print, print_json};

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("templates/cargo-config.toml.tmpl");
const GITIGNORE: &str = include_str!("templates/gitignore.tmpl");
const README: &str = include_str!("templates/README.md.tmpl");
const TRANSFORM_RS: &str = include_str!("templates/transform.rs.tmpl");
const COMPACTION_RS: &str = include_str!("templates/compaction.rs.tmpl");
const TRANSFORM_RECORDS: &str = include_str!("templates/transform-records.json.tmpl");
const COMPACTION_RECORDS: &str = include_str!("templates/compaction-records.json.tmpl");

/// The SDK version a scaffold asks for without `--sdk-path`: the one that
/// implements the plugin interface this host runs (`sluice:plugin@0.1.0`).
const SDK_VERSION: &str = "0.1";

/// Longest crate name accepted (crates.io's limit).
const MAX_NAME: usize = 64;

/// Names a crate cannot have: Rust keywords (the library's name is an
/// identifier), the crates every build links, and Cargo's reserved names.
const RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "build",
    "const",
    "continue",
    "core",
    "crate",
    "deps",
    "do",
    "dyn",
    "else",
    "enum",
    "examples",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "incremental",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "sluice_sdk",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

pub fn new(out: Output, a: PluginNewArgs) -> Result<(), ClientError> {
    validate_name(&a.name)
        .map_err(|reason| ClientError::input(format!("invalid plugin name `{}`: {reason}", a.name)))?;
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    check_dir(&dir)?;
    let sdk = sdk_dependency(a.sdk_path.as_deref())?;
    let files = render(&a.name, a.kind, &sdk);
    write_files(&dir, &files)?;
    let kind = kind_name(a.kind);
    let wasm = format!("target/wasm32-wasip2/release/{}.wasm", lib_name(&a.name));
    let names: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
    match out {
        Output::Json => print_json(&json!({
            "name": a.name, "kind": kind, "dir": dir.display().to_string(), "files": names, "wasm": wasm,
        })),
        Output::Table => print(&format!(
            "created {kind} plugin `{}` in {}\n\nnext:\n  cd {}\n  cargo build --release --target wasm32-wasip2\n  \
             sluice plugin test {wasm} --input records.json\n  sluice plugin upload {} {wasm}\n",
            a.name,
            dir.display(),
            dir.display(),
            a.name
        )),
    }
}

fn kind_name(kind: PluginKindArg) -> &'static str {
    match kind {
        PluginKindArg::Transform => "transform",
        PluginKindArg::Compaction => "compaction",
    }
}

/// The library (and `.wasm` file) name Cargo derives from the crate name.
fn lib_name(name: &str) -> String {
    name.replace('-', "_")
}

/// A crate name that is also a plugin name: 1–64 ASCII letters, digits, `-`
/// and `_`, starting with a letter, and not reserved.
fn validate_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("it is empty".into());
    };
    if name.len() > MAX_NAME {
        return Err(format!("it is longer than {MAX_NAME} characters"));
    }
    if !first.is_ascii_alphabetic() {
        return Err("it must start with an ASCII letter".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "`{}` is not allowed (use letters, digits, `-` and `_`)",
            c.escape_default()
        ));
    }
    if RESERVED.contains(&lib_name(name).as_str()) {
        return Err("it is a Rust keyword or a reserved crate name".into());
    }
    Ok(())
}

/// The directory must not exist, or be an empty directory.
fn check_dir(dir: &Path) -> Result<(), ClientError> {
    let read_err = |source| ClientError::Read {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(read_err(e)),
        Ok(m) if !m.is_dir() => Err(ClientError::input(format!(
            "`{}` exists and is not a directory",
            dir.display()
        ))),
        Ok(_) => match std::fs::read_dir(dir).map_err(read_err)?.next() {
            None => Ok(()),
            Some(_) => Err(ClientError::input(format!(
                "`{}` exists and is not empty; choose another --dir or name",
                dir.display()
            ))),
        },
    }
}

/// The `sluice-sdk` line of `Cargo.toml`.
fn sdk_dependency(sdk_path: Option<&Path>) -> Result<String, ClientError> {
    let Some(path) = sdk_path else {
        return Ok(format!(
            "# sluice-sdk {SDK_VERSION} implements the plugin interface (sluice:plugin@0.1.0) of this\n\
             # Sluice. To build against a Sluice checkout instead, replace the line with\n\
             #   sluice-sdk = {{ path = \"/path/to/sluice/guest-sdk\" }}\n\
             # (or create the crate with `sluice plugin new --sdk-path /path/to/sluice/guest-sdk`).\n\
             sluice-sdk = \"{SDK_VERSION}\""
        ));
    };
    let bad = |why: String| {
        ClientError::input(format!(
            "--sdk-path `{}` {why}; give the `guest-sdk` folder of a Sluice checkout",
            path.display()
        ))
    };
    let abs = path.canonicalize().map_err(|e| bad(format!("cannot be used: {e}")))?;
    let manifest =
        std::fs::read_to_string(abs.join("Cargo.toml")).map_err(|e| bad(format!("has no Cargo.toml: {e}")))?;
    if !manifest.lines().any(|l| l.trim() == "name = \"sluice-sdk\"") {
        return Err(bad("is not the sluice-sdk crate".into()));
    }
    let Some(abs) = abs.to_str() else {
        return Err(bad("is not valid UTF-8".into()));
    };
    Ok(format!(
        "sluice-sdk = {{ path = {} }}",
        toml::Value::String(abs.to_string())
    ))
}

/// The crate's files: (path relative to the crate, content).
fn render(name: &str, kind: PluginKindArg, sdk: &str) -> Vec<(&'static str, String)> {
    let lib = lib_name(name);
    let wasm = format!("target/wasm32-wasip2/release/{lib}.wasm");
    let (code, records, summary, test_more, usage) = match kind {
        PluginKindArg::Transform => (
            TRANSFORM_RS,
            TRANSFORM_RECORDS,
            "it passes records through unchanged, or with `prefix=TEXT` puts TEXT before every value.".to_string(),
            format!("sluice plugin test {wasm} --value 'hello' --config prefix='>> '"),
            format!(
                "# read a stream through it (nothing stored)\n\
                 sluice consume STREAM --plugin {name} --config prefix='>> '\n\
                 # or run it continuously from one stream into another\n\
                 sluice pipeline create {name}-pipeline --from STREAM --to OUTPUT --plugin {name} --config prefix='>> '"
            ),
        ),
        PluginKindArg::Compaction => (
            COMPACTION_RS,
            COMPACTION_RECORDS,
            "compaction keeps the latest record of each record key; an empty value is a tombstone.".to_string(),
            format!("sluice plugin test {wasm} --input records.json --config keyless=drop"),
            format!(
                "# a stream compacted with this policy\n\
                 sluice stream create STREAM --cleanup compact --compaction-plugin {name} --compaction-config keyless=keep\n\
                 sluice compact STREAM            # run a compaction now\n\
                 sluice compact STREAM --status   # runs, last result, last error"
            ),
        ),
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{kind}}", kind_name(kind))
            .replace("{{sdk}}", sdk)
            .replace("{{summary}}", &summary)
            .replace("{{test_more}}", &test_more)
            .replace("{{use}}", &usage)
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(code)),
        ("records.json", records.to_string()),
        ("README.md", fill(README)),
        (".cargo/config.toml", CARGO_CONFIG.to_string()),
        (".gitignore", GITIGNORE.to_string()),
    ]
}

/// Writes `files` under `dir` (creating it). Nothing exists there yet; on a
/// failure what was written is removed again.
fn write_files(dir: &Path, files: &[(&'static str, String)]) -> Result<(), ClientError> {
    let existed = dir.exists();
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| {
        std::fs::create_dir_all(dir).map_err(|source| ClientError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        for (rel, content) in files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| ClientError::Write {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            write_new(&path, content.as_bytes()).map_err(|source| ClientError::Write {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(())
    })();
    if result.is_err() {
        if existed {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            for sub in [".cargo", "src"] {
                let _ = std::fs::remove_dir(dir.join(sub));
            }
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    result
}

/// Creates `path`, refusing to overwrite anything.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["upper", "my-filter", "a_1", "JsonKey"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "-x",
            "a b",
            "a/b",
            "../x",
            "é",
            "fn",
            "test",
            "self",
            "sluice-sdk",
            "std",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn templates_are_filled() {
        for kind in [PluginKindArg::Transform, PluginKindArg::Compaction] {
            let files = render("my-plugin", kind, "sluice-sdk = \"0.1\"");
            for (path, content) in &files {
                assert!(
                    !content.contains("{{"),
                    "{path} has an unfilled placeholder:\n{content}"
                );
            }
            let cargo = &files[0].1;
            assert!(cargo.contains("name = \"my-plugin\"") && cargo.contains("crate-type = [\"cdylib\"]"));
            assert!(files[3].1.contains("target/wasm32-wasip2/release/my_plugin.wasm"));
        }
        let dep = sdk_dependency(None).unwrap();
        assert!(dep.ends_with("sluice-sdk = \"0.1\""), "{dep}");
        assert!(dep.lines().filter(|l| !l.starts_with('#')).count() == 1, "{dep}");
    }
}
