//! The `sluice` client subcommands against a real server process: every
//! subcommand in table and `--output json` form, bad input (refused with
//! exit 2 before anything is sent), API errors (exit 1 with the code), the
//! token from `SLUICE_AUTH_TOKEN`, and a server that is down (exit 1).
//! Plugins, pipelines and compaction are in `cli_plugins.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_test_artifacts as wasm;

use crate::cli_support::*;
use crate::support::{self, Server, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_produce_consume_and_status() {
    let server = Server::start().await;
    let s = &server;
    let dir = tempfile::tempdir().expect("temp dir");

    let out = sluice(s, &["stream", "create", "orders", "--partitions", "2"]).ok();
    assert_eq!(out.stdout, "created stream `orders` with 2 partition(s)\n");
    let created = sluice(s, &["stream", "create", "logs", "--output", "json"]).ok().json();
    assert_eq!(created["name"], "logs");
    assert_eq!(created["partitions"].as_array().map(Vec::len), Some(1));

    // produce: stdin lines, a key separator, a file, and JSON.
    let out = sluice_in(s, &["produce", "orders"], "a\nb\nc\n").ok();
    assert_eq!(out.stdout, "produced 3 records to orders/0 (offsets 0..=2)\n");
    let out = sluice_in(
        s,
        &["produce", "orders", "--key-separator", ":", "--output", "json"],
        "k1:v1\nv2\n",
    )
    .ok();
    assert_eq!(
        out.json(),
        json!({"stream": "orders", "partition": 0, "count": 2, "first_offset": 3, "last_offset": 4})
    );
    let file = temp_file(&dir, "lines.txt", b"one\r\ntwo\nthree");
    let out = sluice(
        s,
        &["produce", "orders", "-p", "1", "--file", &file, "--batch-size", "2"],
    )
    .ok();
    assert_eq!(out.stdout, "produced 3 records to orders/1 (offsets 0..=2)\n");
    let records = r#"[{"key":"u","value":"{\"id\":1}","headers":{"src":"cli"}},{"value":{"base64":"AP8="}}]"#;
    let out = sluice_in(s, &["produce", "logs", "--json"], records).ok();
    assert_eq!(out.stdout, "produced 2 records to logs/0 (offsets 0..=1)\n");
    let ndjson = "{\"value\":\"x\"}\n{\"records\":1,\"value\":\"y\"}\n";
    sluice_in(s, &["produce", "logs", "--json"], ndjson).fails(2, "unknown field `records`");
    sluice_in(
        s,
        &["produce", "logs", "--json"],
        "{\"value\":\"x\"}\n{\"value\":\"y\"}\n",
    )
    .ok();
    let empty = sluice_in(s, &["produce", "logs"], "").ok();
    assert_eq!(empty.stdout, "produced 0 records to logs/0 (no input)\n");

    // consume: lines (the default), JSON, an offset, a limit, the end.
    assert_eq!(sluice(s, &["consume", "orders"]).ok().stdout, "a\nb\nc\nv1\nv2\n");
    let page = sluice(s, &["consume", "orders", "--output", "json"]).ok();
    let recs = page.json_lines();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[3]["key"], "k1");
    assert_eq!(recs[3]["offset"], 3);
    assert_eq!(
        values(&sluice(s, &["consume", "orders", "-p", "1", "--output", "json"]).ok()),
        ["one", "two", "three"]
    );
    assert_eq!(
        sluice(s, &["consume", "orders", "--offset", "1", "-n", "2"])
            .ok()
            .stdout,
        "b\nc\n"
    );
    assert_eq!(sluice(s, &["consume", "orders", "--from-end"]).ok().stdout, "");
    let logs = sluice(s, &["consume", "logs", "--output", "json"]).ok().json_lines();
    assert_eq!(logs[0]["headers"], json!({"src": "cli"}), "{logs:?}");
    assert_eq!(logs[1]["value"], json!({"base64": "AP8="}), "{logs:?}");
    assert_eq!(logs.len(), 4);

    // stream list / describe, tables and JSON.
    let out = sluice(s, &["stream", "list"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("PARTITIONS"),
        "{out:#?}"
    );
    assert!(lines[1].starts_with("logs ") && lines[1].contains(" 4 "), "{out:#?}");
    assert!(lines[2].starts_with("orders ") && lines[2].contains(" 8 "), "{out:#?}");
    let list = sluice(s, &["stream", "list", "--output", "json"]).ok().json();
    assert_eq!(list["streams"].as_array().map(Vec::len), Some(2));
    let out = sluice(s, &["stream", "describe", "orders"]).ok();
    assert!(out.stdout.contains("stream:     orders"), "{out:#?}");
    assert!(out.stdout.contains("PARTITION  START  END  RECORDS"), "{out:#?}");
    let d = sluice(s, &["stream", "describe", "orders", "--output", "json"])
        .ok()
        .json();
    assert_eq!(
        d["partitions"][0],
        json!({"partition": 0, "start_offset": 0, "end_offset": 5})
    );

    // status: the server, then a stream.
    let out = sluice(s, &["status"]).ok();
    assert!(out.stdout.contains("status:     ok"), "{out:#?}");
    assert!(out.stdout.contains("streams:    2 (12 records)"), "{out:#?}");
    let st = sluice(s, &["status", "--output", "json"]).ok().json();
    assert_eq!(
        (st["status"].as_str(), st["streams"].as_u64()),
        (Some("ok"), Some(2)),
        "{st}"
    );
    let out = sluice(s, &["status", "orders"]).ok();
    assert!(
        out.stdout.contains("WAL START") && out.stdout.contains("UPLOAD LAG"),
        "{out:#?}"
    );
    let st = sluice(s, &["status", "orders", "--output", "json"]).ok().json();
    assert_eq!(st["partitions"][1]["end_offset"], 3, "{st}");

    // API errors: the code and message, exit 1.
    sluice(s, &["stream", "create", "orders"]).fails(1, "(stream_exists, HTTP 409)");
    sluice(s, &["consume", "orders", "--offset", "99"]).fails(1, "offset_out_of_range");
    sluice(s, &["consume", "orders", "-p", "7"]).fails(1, "partition_not_found");
    sluice_in(s, &["produce", "nope"], "x\n").fails(1, "stream_not_found");

    // delete.
    let out = sluice(s, &["stream", "delete", "logs"]).ok();
    assert_eq!(out.stdout, "deleted stream `logs`\n");
    assert_eq!(
        sluice(s, &["stream", "delete", "orders", "--output", "json"])
            .ok()
            .json(),
        json!({"deleted": "orders"})
    );
    let gone = sluice(s, &["stream", "describe", "orders"]).fails(1, "stream_not_found");
    assert!(gone.stderr.contains("hint: `sluice stream list`"), "{gone:#?}");
    assert_eq!(
        sluice(s, &["stream", "list"]).ok().stdout,
        "NAME  PARTITIONS  RECORDS  CLEANUP  CREATED\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_sent() {
    let server = Server::start().await;
    let s = &server;
    let dir = tempfile::tempdir().expect("temp dir");
    sluice(s, &["stream", "create", "t"]).ok();

    let bad_json = sluice_in(s, &["produce", "t", "--json"], "[{\"value\": \"a\"}, {\"value\":");
    assert!(
        bad_json.stderr.starts_with("error: stdin: invalid JSON"),
        "{bad_json:#?}"
    );
    bad_json.fails(2, "");
    sluice_in(s, &["produce", "t", "--json"], r#"[{"value":"a"},{"key":"k"}]"#).fails(2, "record 1: missing `value`");
    sluice_in(s, &["produce", "t", "--json"], r#"[{"value":{"base64":"%%"}}]"#).fails(2, "not valid base64");
    let missing = dir.path().join("missing.txt");
    let missing = missing.to_string_lossy();
    sluice(s, &["produce", "t", "--file", &missing]).fails(2, "cannot read `");
    sluice(s, &["produce", "t", "--json", "--file", &missing]).fails(2, "missing.txt");
    // Nothing reached the partition.
    assert_eq!(sluice(s, &["consume", "t"]).ok().stdout, "");
    let d = sluice(s, &["stream", "describe", "t", "--output", "json"]).ok().json();
    assert_eq!(d["partitions"][0]["end_offset"], 0, "{d}");

    let not_wasm = temp_file(&dir, "notes.txt", b"hello");
    sluice(s, &["plugin", "upload", "p", &not_wasm]).fails(2, "is not a WebAssembly file");
    sluice(s, &["plugin", "upload", "p", &missing]).fails(2, "cannot read `");
    let fake = temp_file(&dir, "fake.wasm", b"\0asm but not a component");
    sluice(s, &["plugin", "upload", "p", &fake]).fails(1, "invalid_plugin");
    assert_eq!(
        sluice(s, &["plugin", "list", "--output", "json"]).ok().json(),
        json!({"plugins": []})
    );

    // Flags: clap's usage errors and our own checks are exit 2 too.
    sluice(s, &["stream", "create", "z", "--partitions", "0"]).fails(2, "at least 1");
    sluice(s, &["status", "--timeout", "soon"]).fails(2, "--timeout");
    sluice(s, &["consume", "t", "--offset", "1", "--from-end"]).fails(2, "cannot be used with");
    sluice(s, &["consume", "t", "--config", "a=b"]).fails(2, "--plugin");
    sluice(
        s,
        &[
            "pipeline", "create", "x", "--from", "t", "--to", "t", "--plugin", "p", "--config", "novalue",
        ],
    )
    .fails(2, "not KEY=VALUE");
    sluice(s, &["stream", "frobnicate"]).fails(2, "unrecognized subcommand");
    sluice_with("ftp://127.0.0.1:1", &["status"], b"", &[]).fails(2, "invalid --server URL");
    sluice_with(
        "https://127.0.0.1:1",
        &["status", "--ca", "/nonexistent/ca.pem"],
        b"",
        &[],
    )
    .fails(2, "cannot read --ca");
    // Input the server refuses: its code.
    sluice(s, &["consume", "t", "--plugin", "nope"]).fails(1, "plugin_not_found");
}

#[test]
fn a_server_that_is_down_gives_a_clear_message_and_exit_1() {
    let base = format!("http://127.0.0.1:{}", support::free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm_file = temp_file(&dir, "p.wasm", &wasm::read(wasm::UPPER));
    let want = format!(
        "error: cannot reach the sluice server at {base}: connection refused (is it running? set --server or SLUICE_SERVER)"
    );
    let commands: &[&[&str]] = &[
        &["status"],
        &["status", "s"],
        &["stream", "create", "s"],
        &["stream", "list"],
        &["stream", "describe", "s"],
        &["stream", "delete", "s"],
        &["produce", "s"],
        &["consume", "s"],
        &["consume", "s", "--offset", "0", "--follow"],
        &["plugin", "upload", "p", &wasm_file],
        &["plugin", "list"],
        &["plugin", "delete", "p"],
        &["pipeline", "create", "x", "--from", "a", "--to", "b", "--plugin", "p"],
        &["pipeline", "list"],
        &["pipeline", "status", "x"],
        &["pipeline", "pause", "x"],
        &["pipeline", "resume", "x"],
        &["pipeline", "delete", "x"],
        &["compact", "s"],
        &["compact", "s", "--status"],
    ];
    for args in commands {
        let run = sluice_with(&base, args, b"record\n", &[]);
        assert_eq!(run.code, 1, "{args:?}: {run:#?}");
        assert_eq!(run.stderr.trim_end(), want, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, "", "{args:?}");
    }
    // A server that accepts connections but never answers: the request timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let run = sluice_with(&silent_url, &["stream", "list", "--timeout", "500ms"], b"", &[]);
    let want = format!("error: the sluice server at {silent_url} did not answer within 0.5s");
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.starts_with(&want), "{run:#?}");
    // SLUICE_SERVER is the default of --server.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    let out = cmd
        .args(["stream", "list"])
        .env("SLUICE_SERVER", &base)
        .output()
        .expect("run sluice");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&base), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_sluice_auth_token() {
    let server = Server::start_with(ServerOptions::args(&["--auth-token", "s3cret"])).await;
    let base = server.base();
    let run = sluice_with(&base, &["stream", "list"], b"", &[]).fails(1, "(unauthorized, HTTP 401)");
    assert!(run.stderr.contains("hint: set SLUICE_AUTH_TOKEN"), "{run:#?}");
    sluice_with(&base, &["stream", "list"], b"", &[("SLUICE_AUTH_TOKEN", "wrong")]).fails(1, "wrong bearer token");
    let token = [("SLUICE_AUTH_TOKEN", "s3cret")];
    sluice_with(&base, &["stream", "create", "a"], b"", &token).ok();
    sluice_with(&base, &["produce", "a"], b"x\n", &token).ok();
    assert_eq!(sluice_with(&base, &["consume", "a"], b"", &token).ok().stdout, "x\n");
    sluice_with(&base, &["status"], b"", &token).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_follow_polls_for_new_records() {
    let server = Server::start().await;
    sluice(&server, &["stream", "create", "live"]).ok();
    sluice_in(&server, &["produce", "live"], "old\n").ok();
    let base = server.base();
    let follow = |args: &'static [&'static str]| {
        let base = base.clone();
        std::thread::spawn(move || sluice_with(&base, args, b"", &[]))
    };

    // From a given offset: records already there and those produced later.
    let follower = follow(&[
        "consume",
        "live",
        "--offset",
        "1",
        "-f",
        "-n",
        "3",
        "--poll-interval",
        "50ms",
        "--output",
        "json",
    ]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sluice_in(&server, &["produce", "live"], "n1\nn2\n").ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sluice_in(
        &server,
        &["produce", "live", "--json"],
        r#"[{"value":"n3"},{"value":"n4"}]"#,
    )
    .ok();
    let run = follower.join().expect("follower thread").ok();
    assert_eq!(values(&run), ["n1", "n2", "n3"]);
    let offsets: Vec<u64> = run.json_lines().iter().filter_map(|r| r["offset"].as_u64()).collect();
    assert_eq!(offsets, [1, 2, 3]);

    // From the end: only what is produced after it started (so keep producing).
    let follower = follow(&[
        "consume",
        "live",
        "--from-end",
        "--follow",
        "-n",
        "1",
        "--poll-interval",
        "50ms",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !follower.is_finished() {
        assert!(Instant::now() < deadline, "consume --from-end --follow saw nothing");
        sluice_in(&server, &["produce", "live"], "tick\n").ok();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(follower.join().expect("follower thread").ok().stdout, "tick\n");
}
