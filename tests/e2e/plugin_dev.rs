//! The plugin author's loop, black-box: `sluice plugin new` scaffolds a
//! crate (and refuses bad names and used directories), the scaffold builds
//! to `wasm32-wasip2` for real, `sluice plugin test` runs it and the
//! prebuilt test plugins locally (output records, decisions, errors), and
//! `serve --log-format json` logs JSON lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};
use sluice_test_artifacts as wasm;

use crate::cli_support::Run;
use crate::support::{Server, ServerOptions};

/// Runs `sluice ARGS` in `cwd` (no stdin; ambient `SLUICE_*` removed). The
/// commands here are local: no server is involved.
fn sluice_in(cwd: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).current_dir(cwd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SLUICE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run the sluice binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sluice(args: &[&str]) -> Run {
    sluice_in(&std::env::temp_dir(), args)
}

/// The repository root (this test binary belongs to `host/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sluice-plugin-dev-")
        .tempdir()
        .expect("temp dir")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path.to_str().expect("UTF-8 temp path").to_string()
}

fn values(records: &Value) -> Vec<&str> {
    records
        .as_array()
        .expect("records array")
        .iter()
        .map(|r| r["value"].as_str().expect("text value"))
        .collect()
}

#[test]
fn plugin_new_scaffolds_both_kinds_and_refuses_bad_names_and_used_dirs() {
    let tmp = tempdir();
    let root = tmp.path();
    let sdk = repo().join("guest-sdk");
    let sdk = sdk.to_str().expect("UTF-8 repo path");

    // A transform in ./NAME, on the local SDK.
    let run = sluice_in(
        root,
        &["plugin", "new", "my-filter", "--kind", "transform", "--sdk-path", sdk],
    )
    .ok();
    assert!(run.stdout.contains("created transform plugin `my-filter`"), "{run:#?}");
    let crate_dir = root.join("my-filter");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        "records.json",
        ".cargo/config.toml",
        ".gitignore",
    ] {
        assert!(crate_dir.join(f).is_file(), "missing {f}");
    }
    let read = |p: &Path| std::fs::read_to_string(p).expect("read a scaffolded file");
    let cargo = read(&crate_dir.join("Cargo.toml"));
    assert!(cargo.contains("name = \"my-filter\""), "{cargo}");
    assert!(cargo.contains("crate-type = [\"cdylib\"]"), "{cargo}");
    let canonical = Path::new(sdk).canonicalize().expect("canonical sdk path");
    assert!(
        cargo.contains(&format!("sluice-sdk = {{ path = \"{}\" }}", canonical.display())),
        "{cargo}"
    );
    let lib = read(&crate_dir.join("src/lib.rs"));
    assert!(
        lib.contains("#[transform(init = init)]") && lib.contains("out.keep(record)"),
        "{lib}"
    );
    let readme = read(&crate_dir.join("README.md"));
    for cmd in [
        "cargo build --release --target wasm32-wasip2",
        "sluice plugin test target/wasm32-wasip2/release/my_filter.wasm --input records.json",
        "sluice plugin upload my-filter target/wasm32-wasip2/release/my_filter.wasm",
    ] {
        assert!(readme.contains(cmd), "README lacks {cmd:?}:\n{readme}");
    }
    let records: Value = serde_json::from_str(&read(&crate_dir.join("records.json"))).expect("records.json is JSON");
    assert!(records.as_array().is_some_and(|a| !a.is_empty()));

    // A compaction policy in --dir, on the registry's SDK, as JSON.
    let dir = root.join("nested/policy");
    let run = sluice_in(
        root,
        &[
            "plugin",
            "new",
            "my_policy",
            "--kind",
            "compaction",
            "--dir",
            "nested/policy",
            "--output",
            "json",
        ],
    )
    .ok();
    assert_eq!(run.json()["kind"], "compaction", "{run:#?}");
    assert_eq!(run.json()["wasm"], "target/wasm32-wasip2/release/my_policy.wasm");
    let cargo = read(&dir.join("Cargo.toml"));
    assert!(cargo.lines().any(|l| l == "sluice-sdk = \"0.1\""), "{cargo}");
    assert!(read(&dir.join("src/lib.rs")).contains("#[compaction_policy(init = init)]"));

    // An empty directory is fine.
    std::fs::create_dir(root.join("empty")).expect("mkdir");
    sluice_in(root, &["plugin", "new", "p", "--kind", "transform", "--dir", "empty"]).ok();
    assert!(root.join("empty/Cargo.toml").is_file());

    // Bad names: exit 2, nothing written.
    for bad in ["1st", "a/b", "my plugin", "fn", "test", "", "x.y"] {
        let before = std::fs::read_dir(root).expect("ls").count();
        sluice_in(root, &["plugin", "new", bad, "--kind", "transform"]).fails(2, "invalid plugin name");
        assert_eq!(
            std::fs::read_dir(root).expect("ls").count(),
            before,
            "`{bad}` wrote something"
        );
    }
    // A used directory: exit 2, left as it was.
    sluice_in(root, &["plugin", "new", "my-filter", "--kind", "compaction"]).fails(2, "exists and is not empty");
    assert_eq!(
        read(&crate_dir.join("src/lib.rs")),
        lib,
        "the existing crate was changed"
    );
    write(root, "file", "x");
    sluice_in(root, &["plugin", "new", "q", "--kind", "transform", "--dir", "file"]).fails(2, "not a directory");
    // An --sdk-path that is not the SDK: exit 2, nothing written.
    sluice_in(
        root,
        &["plugin", "new", "r", "--kind", "transform", "--sdk-path", "nested"],
    )
    .fails(2, "--sdk-path");
    assert!(!root.join("r").exists());
    // An unknown kind is a usage error.
    sluice_in(root, &["plugin", "new", "s", "--kind", "filter"]).fails(2, "invalid value");
    assert!(!root.join("s").exists());
}

/// Builds a scaffolded crate with the real toolchain, into a target dir
/// under the repository's, so later runs only rebuild the crate itself.
fn build_scaffold(crate_dir: &Path) -> PathBuf {
    let target_dir = repo().join("target").join("scaffold-test");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // From the crate's folder, so its `.cargo/config.toml` applies.
    cmd.args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", &target_dir);
    // The outer build's settings are for the host target.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run cargo");
    eprintln!("building the scaffold took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "building the scaffold failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join("wasm32-wasip2/release/scaffold_e2e.wasm")
}

#[test]
fn a_scaffolded_transform_builds_and_plugin_test_runs_it() {
    let tmp = tempdir();
    let sdk = repo().join("guest-sdk");
    let sdk = sdk.to_str().expect("UTF-8 repo path");
    let crate_dir = tmp.path().join("scaffold-e2e");
    sluice_in(
        tmp.path(),
        &[
            "plugin",
            "new",
            "scaffold-e2e",
            "--kind",
            "transform",
            "--sdk-path",
            sdk,
        ],
    )
    .ok();
    let wasm = build_scaffold(&crate_dir);
    let wasm = wasm.to_str().expect("UTF-8 path");

    // As the README says: the sample records pass through unchanged...
    let run = sluice_in(
        &crate_dir,
        &["plugin", "test", wasm, "--input", "records.json", "--output", "json"],
    )
    .ok();
    let v = run.json();
    assert_eq!(v["kind"], "transform", "{v}");
    assert_eq!(values(&v["records"]), ["hello", "world"], "{v}");
    assert_eq!(v["records"][0]["key"], "user-1");
    assert_eq!(v["records"][1]["headers"], json!({"source": "sample"}));
    // ...or prefixed, with the config example.
    let run = sluice_in(
        &crate_dir,
        &["plugin", "test", wasm, "--value", "hi", "--config", "prefix=>> "],
    )
    .ok();
    assert!(run.stdout.contains(">> hi"), "{run:#?}");
    // Its init refuses unknown config.
    sluice_in(
        &crate_dir,
        &["plugin", "test", wasm, "--value", "hi", "--config", "prefx=1"],
    )
    .fails(1, "refused its configuration: unknown config `prefx`");
}

#[test]
fn plugin_test_runs_transforms_and_policies_and_reports_their_errors() {
    let tmp = tempdir();
    let dir = tmp.path();

    // A transform: values upper-cased, `drop` filtered out; each output
    // names the input record it came from.
    let input = write(
        dir,
        "records.json",
        r#"[{"key":"k1","value":"hello","headers":{"h":"v"}},{"value":"drop"},{"value":{"base64":"d29ybGQ="}}]"#,
    );
    let v = sluice(&["plugin", "test", wasm::UPPER, "--input", &input, "--output", "json"])
        .ok()
        .json();
    assert_eq!(v["kind"], "transform");
    assert_eq!(v["input_records"], 3);
    assert_eq!(values(&v["records"]), ["HELLO", "WORLD"], "{v}");
    assert_eq!(v["records"][0]["key"], "k1");
    assert_eq!(v["records"][0]["headers"], json!({"h": "v"}));
    assert_eq!(v["records"][1]["offset"], 2);
    let run = sluice(&["plugin", "test", wasm::UPPER, "--value", "abc", "--value", "x y"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["IN", "KEY", "VALUE", "HEADERS"]
    );
    assert!(lines[1].contains("ABC") && lines[2].contains("X Y"), "{run:#?}");
    assert!(run.stderr.contains("2 records in, 2 out"), "{run:#?}");

    // A compaction policy: one decision per record (NDJSON input).
    let input = write(
        dir,
        "users.ndjson",
        "{\"value\":\"{\\\"id\\\":\\\"a\\\"}\"}\n{\"key\":\"k\",\"value\":\"{\\\"id\\\":7,\\\"gone\\\":true}\"}\n{\"value\":\"not json\"}\n",
    );
    let v = sluice(&[
        "plugin",
        "test",
        wasm::JSON_KEY,
        "--input",
        &input,
        "--config",
        "pointer=/id",
        "--config",
        "tombstone_when=/gone",
        "--output",
        "json",
    ])
    .ok()
    .json();
    assert_eq!(v["kind"], "compaction");
    let decisions: Vec<(Value, Value)> = v["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| (d["decision"].clone(), d["compaction_key"].clone()))
        .collect();
    assert_eq!(
        decisions,
        [
            (json!("key"), json!("a")),
            (json!("tombstone"), json!("7")),
            (json!("keep_always"), Value::Null)
        ],
        "{v}"
    );
    assert_eq!(v["decisions"][1]["key"], "k");
    let run = sluice(&[
        "plugin",
        "test",
        wasm::JSON_KEY,
        "--input",
        &input,
        "--config",
        "pointer=/id",
    ])
    .ok();
    assert!(
        run.stdout.starts_with("OFFSET") && run.stdout.contains("keep_always"),
        "{run:#?}"
    );

    // The plugin's errors: exit 1 with the plugin's message.
    sluice(&["plugin", "test", wasm::PANICKER, "--value", "ok", "--value", "panic"])
        .fails(1, "plugin `panicker` trapped");
    sluice(&["plugin", "test", wasm::PANICKER, "--value", "fail"])
        .fails(1, "returned an error: record at offset 0: asked to fail");
    sluice(&[
        "plugin",
        "test",
        wasm::PANICKER,
        "--value",
        "x",
        "--config",
        "refuse=yes",
    ])
    .fails(1, "refused its configuration: refusing this config as asked");
    sluice(&["plugin", "test", wasm::JSON_KEY, "--value", "x"]).fails(1, "missing required config `pointer`");
    sluice(&["plugin", "test", wasm::BAD_POLICY, "--value", "panic"]).fails(1, "plugin `bad_policy` trapped");
    sluice(&[
        "plugin",
        "test",
        wasm::BAD_POLICY,
        "--value",
        "loop",
        "--plugin-call-timeout",
        "200ms",
    ])
    .fails(1, "ran past its time limit of 200ms");

    // Not a plugin, or bad input: exit 2.
    let text = write(dir, "notes.txt", "hello");
    sluice(&["plugin", "test", &text, "--value", "x"]).fails(2, "is not a WebAssembly file");
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0garbage").expect("write");
    let junk = junk.to_str().expect("UTF-8");
    sluice(&["plugin", "test", junk, "--value", "x"]).fails(2, "is not a valid WebAssembly component");
    sluice(&[
        "plugin",
        "test",
        &dir.join("missing.wasm").display().to_string(),
        "--value",
        "x",
    ])
    .fails(2, "cannot read");
    let bad = write(dir, "bad.json", r#"[{"valu":"x"}]"#);
    sluice(&["plugin", "test", wasm::UPPER, "--input", &bad]).fails(2, "unknown field `valu`");
    let empty = write(dir, "empty.json", "[]");
    sluice(&["plugin", "test", wasm::UPPER, "--input", &empty]).fails(2, "no records");
    sluice(&["plugin", "test", wasm::UPPER]).fails(2, "--input");
}

/// The first line of the server's log that parses as a JSON object.
fn json_log_line(server: &Server) -> Value {
    let log = server.log_tail(200);
    log.lines()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("no JSON log line:\n{log}"))
}

#[tokio::test]
async fn serve_log_format_json_writes_json_lines() {
    let server = Server::start_with(ServerOptions::args(&["--log-format", "json"])).await;
    let line = json_log_line(&server);
    assert!(line["timestamp"].is_string(), "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["message"].is_string(), "{line}");
    let log = server.log_tail(200);
    let listening = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"].as_str().is_some_and(|m| m.starts_with("sluice listening")))
        .unwrap_or_else(|| panic!("no `sluice listening` JSON line:\n{log}"));
    assert!(listening["addr"].is_string(), "fields are top-level: {listening}");
    drop(server);

    // The same from the environment; text stays the default.
    let server = Server::start_with(ServerOptions {
        envs: vec![("SLUICE_LOG_FORMAT".into(), "json".into())],
        ..ServerOptions::default()
    })
    .await;
    assert_eq!(json_log_line(&server)["level"], "INFO");
    drop(server);
    let server = Server::start().await;
    let log = server.log_tail(200);
    assert!(
        log.lines().any(|l| l.contains("sluice listening")) && !log.lines().any(|l| l.starts_with('{')),
        "{log}"
    );
}
