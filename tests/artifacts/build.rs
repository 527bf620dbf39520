//! Builds every crate of the `plugins/` workspace (first-party and test
//! plugins) for `wasm32-wasip2` into `target/wasm-plugins`, once per change
//! of their sources, and writes one path constant per plugin for tests.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..").canonicalize().expect("workspace root exists");
    for dir in ["plugins", "guest-sdk", "wit", "examples", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target").join("wasm-plugins");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // Do not leak the outer build's settings (flags for the host target,
    // jobserver) into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building plugins/ for wasm32-wasip2 failed ({status}); \
             is the target installed? `rustup target add wasm32-wasip2`"
        );
    }
    let out_dir = target_dir.join("wasm32-wasip2").join("release");
    let mut consts = String::new();
    for krate in plugin_crates(&root) {
        let file = out_dir.join(format!("{}.wasm", krate.replace('-', "_")));
        assert!(
            file.exists(),
            "plugin `{krate}` built but `{}` is missing",
            file.display()
        );
        let ident = krate.replace('-', "_").to_uppercase();
        writeln!(
            consts,
            "/// Path of the built `{krate}` plugin.\npub const {ident}: &str = {:?};",
            file.display().to_string()
        )
        .expect("write to string");
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("plugins.rs");
    std::fs::write(out, consts).expect("write plugins.rs");
}

/// Names of the plugin crates: `plugins/<name>`, `plugins/testing/<name>`,
/// and example crates that belong to the plugins workspace.
fn plugin_crates(root: &Path) -> Vec<String> {
    let plugins = root.join("plugins");
    let mut out = Vec::new();
    for dir in [plugins.clone(), plugins.join("testing"), root.join("examples")] {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for ent in rd.flatten() {
            let manifest = ent.path().join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            let is_example = dir.ends_with("examples");
            if !is_example || text.contains("workspace = \"../../plugins\"") {
                out.push(ent.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}
