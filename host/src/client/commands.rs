//! The administrative subcommands `plugin`, `pipeline`, `compact` and
//! `status` (`stream` is in [`super::streams`]). Each makes its requests, then prints either a
//! table (for people) or the server's JSON (for scripts).

use std::path::Path;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::args::{CompactArgs, Output, PipelineCmd, PluginCmd, StatusArgs};
use super::error::ClientError;
use super::http::{Client, seg};
use super::output::{Table, bytes, cell, print, print_json, progress, time_ms};
use super::streams::records_of;

/// Prints `table` in table mode and `json` in JSON mode.
pub(super) fn show(out: Output, json: &Value, table: impl FnOnce() -> String) -> Result<(), ClientError> {
    match out {
        Output::Json => print_json(json),
        Output::Table => print(&table()),
    }
}

pub(super) fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub async fn plugin(c: &Client, out: Output, cmd: PluginCmd) -> Result<(), ClientError> {
    match cmd {
        PluginCmd::Upload { name, file } => {
            let body = read_wasm(&file)?;
            let size = body.len() as u64;
            let bar = progress(Some(size), true, &format!("uploading {name}"));
            let chunks: Vec<bytes::Bytes> = bytes::Bytes::from(body)
                .chunks(64 * 1024)
                .map(bytes::Bytes::copy_from_slice)
                .collect();
            let pb = bar.clone();
            let stream = futures::stream::iter(chunks.into_iter().map(move |chunk| {
                pb.inc(chunk.len() as u64);
                Ok::<_, std::io::Error>(chunk)
            }));
            let req = c
                .request(Method::PUT, &format!("/plugins/{}", seg(&name)))
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(stream));
            let result = c.send(req).await;
            bar.finish_and_clear();
            let v = result?;
            show(out, &v, || {
                format!(
                    "uploaded plugin `{}` version {} ({}, {})\n",
                    cell(&v["name"]),
                    cell(&v["version"]),
                    cell(&v["kind"]),
                    bytes(v["size"].as_u64().unwrap_or(size))
                )
            })
        }
        PluginCmd::List => {
            let list = c.get_all("/plugins", "plugins").await?;
            show(out, &list, || {
                let mut t = Table::new(&["NAME", "LATEST", "KIND", "SIZE", "UPLOADED", "VERSIONS"]);
                for p in arr(&list["plugins"]) {
                    let versions = arr(&p["versions"]);
                    let latest = versions.last().cloned().unwrap_or(Value::Null);
                    t.row(vec![
                        cell(&p["name"]),
                        cell(&latest["version"]),
                        cell(&latest["kind"]),
                        latest["size"].as_u64().map(bytes).unwrap_or_else(|| "-".into()),
                        time_ms(&latest["uploaded_ms"]),
                        versions.len().to_string(),
                    ]);
                }
                t.render()
            })
        }
        PluginCmd::Delete { name } => {
            c.delete(&format!("/plugins/{}", seg(&name))).await?;
            show(out, &json!({"deleted": name}), || format!("deleted plugin `{name}`\n"))
        }
        // Local: they need no server (`client::run` sends them straight there).
        PluginCmd::New(a) => super::scaffold::new(out, a),
        PluginCmd::Test(a) => super::plugin_test::run(out, a).await,
    }
}

/// Reads a plugin file and checks that it is WebAssembly at all (the server
/// does the real validation).
fn read_wasm(path: &Path) -> Result<Vec<u8>, ClientError> {
    let body = std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !body.starts_with(b"\0asm") {
        return Err(ClientError::input(format!(
            "`{}` is not a WebAssembly file (it does not start with \\0asm); upload the .wasm component",
            path.display()
        )));
    }
    Ok(body)
}

pub async fn pipeline(c: &Client, out: Output, cmd: PipelineCmd) -> Result<(), ClientError> {
    let path = |name: &str| format!("/pipelines/{}", seg(name));
    let (status, verb) = match cmd {
        PipelineCmd::Create {
            name,
            from,
            to,
            plugin,
            plugin_version,
            config,
            batch_records,
            paused,
        } => {
            let config: Map<String, Value> = config.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let mut body = json!({"name": name, "input": from, "output": to, "plugin": plugin,
                "config": config, "paused": paused});
            if let Some(v) = plugin_version {
                body["plugin_version"] = json!(v);
            }
            if let Some(b) = batch_records {
                body["batch_records"] = json!(b);
            }
            (c.post("/pipelines", &body).await?, "created")
        }
        PipelineCmd::List => {
            let list = c.get_all("/pipelines", "pipelines").await?;
            return show(out, &list, || {
                let mut t = Table::new(&[
                    "NAME", "STATE", "INPUT", "OUTPUT", "PLUGIN", "IN", "OUT", "LAG", "ERROR",
                ]);
                for p in arr(&list["pipelines"]) {
                    t.row(vec![
                        cell(&p["name"]),
                        cell(&p["state"]),
                        cell(&p["input"]),
                        cell(&p["output"]),
                        cell(&p["plugin"]),
                        cell(&p["records_in"]),
                        cell(&p["records_out"]),
                        lag_of(p).to_string(),
                        cell(&p["error"]),
                    ]);
                }
                t.render()
            });
        }
        PipelineCmd::Status { name } => (c.get(&path(&name)).await?, ""),
        PipelineCmd::Pause { name } => (c.post(&format!("{}/pause", path(&name)), &json!({})).await?, "paused"),
        PipelineCmd::Resume { name } => (c.post(&format!("{}/resume", path(&name)), &json!({})).await?, "resumed"),
        PipelineCmd::Delete { name } => {
            c.delete(&path(&name)).await?;
            return show(out, &json!({"deleted": name}), || {
                format!("deleted pipeline `{name}`\n")
            });
        }
    };
    show(out, &status, || {
        let mut text = String::new();
        if !verb.is_empty() {
            text.push_str(&format!("{verb} pipeline `{}`\n", cell(&status["name"])));
        }
        text.push_str(&describe_pipeline(&status));
        text
    })
}

fn lag_of(p: &Value) -> u64 {
    arr(&p["partitions"]).iter().filter_map(|x| x["lag"].as_u64()).sum()
}

fn describe_pipeline(p: &Value) -> String {
    let version = p["plugin_version"]
        .as_u64()
        .map(|v| format!(" v{v}"))
        .unwrap_or_default();
    let config: Vec<String> = arr(&p["config"])
        .iter()
        .map(|kv| format!("{}={}", cell(&kv[0]), cell(&kv[1])))
        .collect();
    let mut text = format!(
        "pipeline:   {}\nstate:      {}\nflow:       {} -> {}{} -> {}\nconfig:     {}\nrecords:    {} in, {} out\n",
        cell(&p["name"]),
        cell(&p["state"]),
        cell(&p["input"]),
        cell(&p["plugin"]),
        version,
        cell(&p["output"]),
        if config.is_empty() {
            "-".to_string()
        } else {
            config.join(" ")
        },
        cell(&p["records_in"]),
        cell(&p["records_out"]),
    );
    if let Some(n) = p["records_skipped"].as_u64().filter(|n| *n > 0) {
        text.push_str(&format!(
            "skipped:    {n} input records deleted before they were read\n"
        ));
    }
    if let Some(e) = p["error"].as_str() {
        text.push_str(&format!("error:      {e}\n"));
    }
    let mut t = Table::new(&["PARTITION", "POSITION", "LAG"]);
    for x in arr(&p["partitions"]) {
        t.row(vec![cell(&x["partition"]), cell(&x["position"]), cell(&x["lag"])]);
    }
    text.push('\n');
    text.push_str(&t.render());
    text
}

pub async fn compact(c: &Client, out: Output, a: CompactArgs) -> Result<(), ClientError> {
    let base = format!("/streams/{}", seg(&a.stream));
    if !a.status {
        let v = c.post(&format!("{base}/compact"), &json!({})).await?;
        return show(out, &v, || {
            format!(
                "compaction of stream `{}` requested; `sluice compact {} --status` shows its progress\n",
                a.stream, a.stream
            )
        });
    }
    let v = c.get(&format!("{base}/compaction")).await?;
    show(out, &v, || {
        let mut t = Table::new(&["PARTITION", "RUNNING", "RUNS", "LAST RESULT", "LAST ERROR"]);
        for (i, p) in arr(&v["partitions"]).iter().enumerate() {
            t.row(vec![
                i.to_string(),
                cell(&p["running"]),
                cell(&p["runs"]),
                if p["last_result"].is_null() {
                    "-".into()
                } else {
                    p["last_result"].to_string()
                },
                cell(&p["last_error"]),
            ]);
        }
        t.render()
    })
}

pub async fn status(c: &Client, out: Output, a: StatusArgs) -> Result<(), ClientError> {
    if let Some(stream) = a.stream {
        let v = c.get(&format!("/streams/{}/status", seg(&stream))).await?;
        return show(out, &v, || {
            let mut t = Table::new(&[
                "PARTITION",
                "START",
                "END",
                "WAL START",
                "UPLOAD LAG",
                "TIERED",
                "SEGMENTS",
                "TIER ERROR",
                "LEADER",
                "IN SYNC",
            ]);
            for p in arr(&v["partitions"]) {
                let tier = &p["tier"];
                t.row(vec![
                    cell(&p["partition"]),
                    cell(&p["start_offset"]),
                    cell(&p["end_offset"]),
                    cell(&p["wal_start_offset"]),
                    format!(
                        "{} records, {}",
                        cell(&p["upload_lag_records"]),
                        bytes(p["upload_lag_bytes"].as_u64().unwrap_or(0))
                    ),
                    format!("{}..{}", cell(&tier["tiered_start"]), cell(&tier["tiered_end"])),
                    cell(&tier["segments"]),
                    cell(&tier["last_error"]),
                    leader_cell(&p["replication"]),
                    in_sync_cell(&p["replication"]),
                ]);
            }
            format!("stream: {stream}\n\n{}", t.render())
        });
    }
    let health = c.get("/health").await?;
    let streams = c.get_all("/streams", "streams").await?;
    let plugins = c.get_all("/plugins", "plugins").await?;
    let pipelines = c.get_all("/pipelines", "pipelines").await?;
    let failed = arr(&pipelines["pipelines"])
        .iter()
        .filter(|p| p["state"] == "failed")
        .count();
    let v = json!({
        "server": c.base(),
        "status": health["status"],
        "streams": arr(&streams["streams"]).len(),
        "records": arr(&streams["streams"]).iter().map(records_of).sum::<u64>(),
        "plugins": arr(&plugins["plugins"]).len(),
        "pipelines": arr(&pipelines["pipelines"]).len(),
        "failed_pipelines": failed,
    });
    show(out, &v, || {
        format!(
            "server:     {}\nstatus:     {}\nstreams:    {} ({} records)\nplugins:    {}\npipelines:  {} ({} failed)\n",
            cell(&v["server"]),
            cell(&v["status"]),
            v["streams"],
            v["records"],
            v["plugins"],
            v["pipelines"],
            v["failed_pipelines"]
        )
    })
}

/// `node N (epoch E)` of a replicated partition, `-` otherwise.
fn leader_cell(r: &Value) -> String {
    if r.is_null() {
        return "-".into();
    }
    format!("node {} (epoch {})", cell(&r["leader"]), cell(&r["epoch"]))
}

/// The leader's in-sync set, or a follower's fetch state.
fn in_sync_cell(r: &Value) -> String {
    if r.is_null() {
        return "-".into();
    }
    if r["is_leader"] == true {
        let ids: Vec<String> = arr(&r["in_sync"]).iter().map(cell).collect();
        return ids.join(",");
    }
    format!("(follower: {})", cell(&r["follower"]["state"]))
}
