//! The `sluice` client's plugin, pipeline and compaction subcommands against
//! a real server process: lifecycles, versions and API errors.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_test_artifacts as wasm;

use crate::cli_support::*;
use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_pipelines_and_compaction() {
    let server = Server::start().await;
    let s = &server;
    let dir = tempfile::tempdir().expect("temp dir");
    let filter = temp_file(&dir, "json_filter.wasm", &wasm::read(wasm::JSON_FILTER));
    let key = temp_file(&dir, "json_key.wasm", &wasm::read(wasm::JSON_KEY));

    // plugin upload / list.
    let out = sluice(s, &["plugin", "upload", "json-filter", &filter]).ok();
    assert!(
        out.stdout
            .starts_with("uploaded plugin `json-filter` version 1 (transform, "),
        "{out:#?}"
    );
    let v = sluice(s, &["plugin", "upload", "json-filter", &filter, "--output", "json"])
        .ok()
        .json();
    assert_eq!(
        (v["name"].as_str(), v["version"].as_u64()),
        (Some("json-filter"), Some(2)),
        "{v}"
    );
    sluice(s, &["plugin", "upload", "keys", &key]).ok();
    let out = sluice(s, &["plugin", "list"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].ends_with("VERSIONS"),
        "{out:#?}"
    );
    assert!(
        lines[1].starts_with("json-filter  2") && lines[1].ends_with(" 2"),
        "{out:#?}"
    );
    assert!(
        lines[2].starts_with("keys") && lines[2].contains("compaction"),
        "{out:#?}"
    );
    let list = sluice(s, &["plugin", "list", "--output", "json"]).ok().json();
    assert_eq!(
        list["plugins"][0]["versions"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );

    // Read through a plugin.
    sluice(s, &["stream", "create", "events"]).ok();
    sluice(s, &["stream", "create", "errors"]).ok();
    let lines = "{\"level\":\"error\",\"n\":1}\n{\"level\":\"info\",\"n\":2}\n{\"level\":\"error\",\"n\":3}\n";
    sluice_in(s, &["produce", "events"], lines).ok();
    let filtered = [
        "consume",
        "events",
        "--plugin",
        "json-filter",
        "--config",
        "field=/level",
        "--config",
        "value=error",
    ];
    let out = sluice(s, &filtered).ok();
    assert_eq!(
        out.stdout,
        "{\"level\":\"error\",\"n\":1}\n{\"level\":\"error\",\"n\":3}\n"
    );

    // pipeline create / list / status / pause / resume / delete.
    let create = [
        "pipeline",
        "create",
        "only-errors",
        "--from",
        "events",
        "--to",
        "errors",
        "--plugin",
        "json-filter",
        "--config",
        "field=/level",
        "--config",
        "value=error",
    ];
    let out = sluice(s, &create).ok();
    assert!(
        out.stdout
            .starts_with("created pipeline `only-errors`\npipeline:   only-errors\n"),
        "{out:#?}"
    );
    assert!(
        out.stdout.contains("flow:       events -> json-filter -> errors"),
        "{out:#?}"
    );
    sluice(s, &create).fails(1, "pipeline_exists");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = sluice(s, &["pipeline", "status", "only-errors", "--output", "json"])
            .ok()
            .json();
        if st["records_out"] == 2 && st["records_in"] == 3 {
            assert_eq!(st["state"], "running", "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "pipeline did not catch up: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sluice(s, &["consume", "errors"]).ok().stdout.lines().count(), 2);
    let out = sluice(s, &["pipeline", "list"]).ok();
    assert!(
        out.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("only-errors  running  events")),
        "{out:#?}"
    );
    let list = sluice(s, &["pipeline", "list", "--output", "json"]).ok().json();
    assert_eq!(list["pipelines"][0]["name"], "only-errors", "{list}");
    let out = sluice(s, &["pipeline", "status", "only-errors"]).ok();
    assert!(
        out.stdout.contains("records:    3 in, 2 out") && out.stdout.contains("POSITION"),
        "{out:#?}"
    );
    let out = sluice(s, &["pipeline", "pause", "only-errors"]).ok();
    assert!(out.stdout.contains("paused pipeline `only-errors`\n") && out.stdout.contains("state:      paused"));
    let st = sluice(s, &["pipeline", "resume", "only-errors", "--output", "json"])
        .ok()
        .json();
    assert_eq!(st["state"], "running", "{st}");
    sluice(s, &["plugin", "delete", "json-filter"]).fails(1, "plugin_in_use");
    sluice(s, &["pipeline", "status", "nope"]).fails(1, "pipeline_not_found");
    assert_eq!(
        sluice(s, &["pipeline", "delete", "only-errors"]).ok().stdout,
        "deleted pipeline `only-errors`\n"
    );
    assert_eq!(
        sluice(s, &["pipeline", "list", "--output", "json"]).ok().json(),
        json!({"pipelines": []})
    );

    // compact: request a run, show the status; a delete-cleanup stream refuses.
    let users = [
        "stream",
        "create",
        "users",
        "--cleanup",
        "compact",
        "--compaction-plugin",
        "keys",
        "--compaction-config",
        "pointer=/id",
    ];
    sluice(s, &users).ok();
    let d = sluice(s, &["stream", "describe", "users", "--output", "json"])
        .ok()
        .json();
    assert_eq!(d["compaction"]["config"], json!({"pointer": "/id"}), "{d}");
    let out = sluice(s, &["compact", "users"]).ok();
    assert!(
        out.stdout.starts_with("compaction of stream `users` requested"),
        "{out:#?}"
    );
    let v = sluice(s, &["compact", "users", "--output", "json"]).ok().json();
    assert_eq!(v, json!({"stream": "users", "requested": true}));
    let out = sluice(s, &["compact", "users", "--status"]).ok();
    assert!(out.stdout.starts_with("PARTITION  RUNNING  RUNS"), "{out:#?}");
    let st = sluice(s, &["compact", "users", "--status", "--output", "json"])
        .ok()
        .json();
    assert_eq!(st["partitions"].as_array().map(Vec::len), Some(1), "{st}");
    sluice(s, &["compact", "events"]).fails(1, "not_compacted");

    // Its tuning changes after creation; a stream not compacted refuses it.
    let tune = [
        "stream",
        "alter",
        "users",
        "--min-compaction-lag-ms",
        "500",
        "--min-cleanable-dirty-ratio",
        "0.25",
    ];
    let out = sluice(s, &tune).ok();
    assert!(
        out.stdout
            .contains("tombstones kept 86400000 ms, lag 500 ms, dirty ratio 0.25"),
        "{out:#?}"
    );
    let over = ["stream", "alter", "users", "--min-cleanable-dirty-ratio", "1.5"];
    sluice(s, &over).fails(2, "between 0 and 1");
    let plain = ["stream", "alter", "events", "--delete-retention-ms", "5"];
    sluice(s, &plain).fails(1, "not compacted");

    // plugin delete.
    sluice(s, &["stream", "delete", "users"]).ok();
    assert_eq!(
        sluice(s, &["plugin", "delete", "keys"]).ok().stdout,
        "deleted plugin `keys`\n"
    );
    let v = sluice(s, &["plugin", "delete", "json-filter", "--output", "json"])
        .ok()
        .json();
    assert_eq!(v, json!({"deleted": "json-filter"}));
    sluice(s, &["plugin", "delete", "json-filter"]).fails(1, "plugin_not_found");
}
