//! Builds every crate of the `plugins/` workspace (first-party and test
//! plugins) for `wasm32-wasip2` into `target/wasm-plugins`, once per change
//! of their sources, and writes one path constant per plugin for tests.
//!
//! The `wasm32-wasip2` standard library must be installed for the toolchain
//! cargo is using. If it is not, this script installs it with
//! `rustup target add wasm32-wasip2 --toolchain <that toolchain>` (and says
//! so in a warning), or, without rustup, stops with one error line saying
//! what to install.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..").canonicalize().expect("workspace root exists");
    for dir in ["plugins", "guest-sdk", "wit", "examples", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    if let Err(e) = ensure_wasm_target() {
        // One line, shown by cargo as `error: sluice-test-artifacts@...: ...`.
        println!("cargo::error={e}");
        return;
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
        panic!("building plugins/ for wasm32-wasip2 failed ({status}); the compiler output is above");
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

const WASM_TARGET: &str = "wasm32-wasip2";

/// Makes sure the compiler cargo uses (`RUSTC`) has the `wasm32-wasip2`
/// standard library: `<sysroot>/lib/rustlib/wasm32-wasip2/lib` exists. If not,
/// installs it with rustup for that compiler's toolchain: `RUSTUP_TOOLCHAIN`
/// (rustup's proxies set it to the toolchain they run, including one chosen
/// with `cargo +name`), else the sysroot's directory name when it lies in a
/// rustup `toolchains/` directory. Returns a one-line error otherwise.
fn ensure_wasm_target() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = sysroot(&rustc)?;
    let installed = || sysroot.join("lib/rustlib").join(WASM_TARGET).join("lib").is_dir();
    if installed() {
        return Ok(());
    }
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok().filter(|t| !t.is_empty()).or_else(|| {
        match sysroot.parent().and_then(Path::file_name) {
            Some(dir) if dir == "toolchains" => sysroot.file_name()?.to_str().map(str::to_owned),
            _ => None,
        }
    });
    let has_rustup = Command::new("rustup")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let Some(toolchain) = toolchain.filter(|_| has_rustup) else {
        return Err(format!(
            "the {WASM_TARGET} target (needed to build the plugins in plugins/) is not installed for \
             {rustc} (sysroot {}) and rustup cannot install it here; with rustup run \
             `rustup target add {WASM_TARGET}`, otherwise install the {WASM_TARGET} standard library \
             for this compiler",
            sysroot.display()
        ));
    };
    let add = format!("rustup target add {WASM_TARGET} --toolchain {toolchain}");
    println!("cargo::warning={WASM_TARGET} target not installed; installing it (once): {add}");
    let out = Command::new("rustup")
        .args(["target", "add", WASM_TARGET, "--toolchain", &toolchain])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{add}` ({e}); run it yourself"))?;
    if !out.status.success() || !installed() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
        return Err(format!(
            "installing the {WASM_TARGET} target failed ({}{}{last}); run `{add}` yourself and retry",
            out.status,
            if last.is_empty() { "" } else { ": " },
        ));
    }
    // Cargo replays a cached build script's warnings on every build; the
    // target's files are newer than this run, so this makes the next build
    // run the script again, which then finds the target and says nothing.
    println!(
        "cargo:rerun-if-changed={}",
        sysroot.join("lib/rustlib").join(WASM_TARGET).display()
    );
    Ok(())
}

fn sysroot(rustc: &str) -> Result<PathBuf, String> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{rustc} --print sysroot`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{rustc} --print sysroot` failed ({})", out.status));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
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
