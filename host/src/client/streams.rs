//! The `stream` subcommand: create, list, describe, alter, delete, delete
//! records, and move or elect partition leaders. Each makes its requests,
//! then prints a table (for people) or the server's JSON (for scripts).
//! Flags are checked before anything is sent.

use serde_json::{Map, Value, json};

use super::args::{Output, StreamCmd};
use super::commands::{arr, show};
use super::error::ClientError;
use super::http::{Client, seg};
use super::output::{Table, bytes, cell, time_ms};

pub async fn stream(c: &Client, out: Output, cmd: StreamCmd) -> Result<(), ClientError> {
    match cmd {
        StreamCmd::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            cleanup,
            compaction_plugin,
            compaction_config,
            replication_factor,
            min_insync_replicas,
            max_message_bytes,
        } => {
            if partitions == 0 {
                return Err(ClientError::input("--partitions must be at least 1"));
            }
            let mut body = json!({"name": name, "partitions": partitions});
            match replication_factor {
                Some(0) => return Err(ClientError::input("--replication-factor must be at least 1")),
                Some(f) => body["replication_factor"] = json!(f),
                None => {}
            }
            match min_insync_replicas {
                Some(0) => return Err(ClientError::input("--min-insync-replicas must be at least 1")),
                Some(m) => body["min_insync_replicas"] = json!(m),
                None => {}
            }
            match max_message_bytes.map(|b| b.as_u64()) {
                Some(0) => return Err(ClientError::input("--max-message-bytes must be at least 1")),
                Some(b) => body["max_message_bytes"] = json!(b),
                None => {}
            }
            if let Some(ms) = retention_ms {
                body["retention_ms"] = json!(ms);
            }
            if let Some(b) = retention_bytes {
                body["retention_bytes"] = json!(b.as_u64());
            }
            if let Some(c) = cleanup {
                body["cleanup"] = json!(c);
            }
            match compaction_plugin {
                Some(p) => {
                    let config: Map<String, Value> =
                        compaction_config.into_iter().map(|(k, v)| (k, json!(v))).collect();
                    body["compaction"] = json!({"plugin": p, "config": config});
                }
                None if !compaction_config.is_empty() => {
                    return Err(ClientError::input("--compaction-config needs --compaction-plugin"));
                }
                None => {}
            }
            let created = c.post("/streams", &body).await?;
            show(out, &created, || {
                format!(
                    "created stream `{}` with {} partition(s)\n",
                    cell(&created["name"]),
                    arr(&created["partitions"]).len()
                )
            })
        }
        StreamCmd::Leader {
            name,
            partition,
            node,
            force,
        } => {
            let path = format!("/streams/{}/partitions/{partition}/leader", seg(&name));
            let moved = c.post(&path, &json!({"node": node, "force": force})).await?;
            show(out, &moved, || {
                format!(
                    "stream `{name}` partition {partition}: node {} leads at epoch {} (log end {})\n",
                    cell(&moved["leader"]),
                    cell(&moved["epoch"]),
                    cell(&moved["log_end"])
                )
            })
        }
        StreamCmd::Elect {
            name,
            partition,
            unclean,
        } => elect(c, out, &name, partition, unclean).await,
        StreamCmd::List => {
            let list = c.get_all("/streams", "streams").await?;
            show(out, &list, || {
                let mut t = Table::new(&["NAME", "PARTITIONS", "RECORDS", "CLEANUP", "CREATED"]);
                for s in arr(&list["streams"]) {
                    t.row(vec![
                        cell(&s["name"]),
                        arr(&s["partitions"]).len().to_string(),
                        records_of(s).to_string(),
                        cell(&s["cleanup"]),
                        time_ms(&s["created_ms"]),
                    ]);
                }
                t.render()
            })
        }
        StreamCmd::Alter {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            min_insync_replicas,
            max_message_bytes,
            delete_retention_ms,
            min_compaction_lag_ms,
            min_cleanable_dirty_ratio,
        } => {
            let mut body = json!({});
            if let Some(n) = partitions {
                body["partitions"] = json!(n);
            }
            if let Some(ms) = retention_ms {
                body["retention_ms"] =
                    limit_arg("--retention-ms", &ms, |v| v.parse::<u64>().map_err(|e| e.to_string()))?;
            }
            if let Some(b) = retention_bytes {
                body["retention_bytes"] = limit_arg("--retention-bytes", &b, |v| {
                    v.parse::<bytesize::ByteSize>().map(|b| b.as_u64())
                })?;
            }
            if let Some(m) = min_insync_replicas {
                body["min_insync_replicas"] = limit_arg("--min-insync-replicas", &m, |v| match v.parse::<u64>() {
                    Ok(0) => Err("must be at least 1".to_string()),
                    parsed => parsed.map_err(|e| e.to_string()),
                })?;
            }
            if let Some(b) = max_message_bytes {
                body["max_message_bytes"] = limit_arg("--max-message-bytes", &b, |v| {
                    match v.parse::<bytesize::ByteSize>().map(|b| b.as_u64()) {
                        Ok(0) => Err("must be at least 1".to_string()),
                        parsed => parsed,
                    }
                })?;
            }
            let mut tuning = Map::new();
            if let Some(ms) = delete_retention_ms {
                tuning.insert("delete_retention_ms".into(), json!(ms));
            }
            if let Some(ms) = min_compaction_lag_ms {
                tuning.insert("min_compaction_lag_ms".into(), json!(ms));
            }
            match min_cleanable_dirty_ratio {
                Some(r) if !(0.0..=1.0).contains(&r) => {
                    return Err(ClientError::input(
                        "--min-cleanable-dirty-ratio must be between 0 and 1",
                    ));
                }
                Some(r) => {
                    tuning.insert("min_cleanable_dirty_ratio".into(), json!(r));
                }
                None => {}
            }
            if !tuning.is_empty() {
                body["compaction"] = Value::Object(tuning);
            }
            if body.as_object().is_some_and(Map::is_empty) {
                return Err(ClientError::input(
                    "nothing to change: give --partitions, --retention-ms, --retention-bytes, --min-insync-replicas, \
                     --max-message-bytes or a compaction setting",
                ));
            }
            let s = c.patch(&format!("/streams/{}", seg(&name)), &body).await?;
            show(out, &s, || describe_stream(&s))
        }
        StreamCmd::Describe { name } => {
            let s = c.get(&format!("/streams/{}", seg(&name))).await?;
            show(out, &s, || describe_stream(&s))
        }
        StreamCmd::DeleteRecords {
            name,
            partition,
            before,
        } => {
            let mut path = format!("/streams/{}/partitions/{partition}/records", seg(&name));
            if let Some(b) = before {
                path.push_str(&format!("?before={b}"));
            }
            let out_json = c.delete(&path).await?;
            show(out, &out_json, || {
                format!(
                    "stream `{name}` partition {partition} now starts at offset {}\n",
                    cell(&out_json["start_offset"])
                )
            })
        }
        StreamCmd::Delete { name } => {
            c.delete(&format!("/streams/{}", seg(&name))).await?;
            show(out, &json!({"deleted": name}), || format!("deleted stream `{name}`\n"))
        }
    }
}

/// A retention flag's value: `none` is JSON null, anything else `parse`d.
fn limit_arg(flag: &str, v: &str, parse: impl Fn(&str) -> Result<u64, String>) -> Result<Value, ClientError> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    parse(v)
        .map(|n| json!(n))
        .map_err(|e| ClientError::input(format!("{flag} `{v}`: {e} (or `none`)")))
}

/// Records currently held: the sum of `end - start` over partitions.
pub(super) fn records_of(stream: &Value) -> u64 {
    arr(&stream["partitions"])
        .iter()
        .map(|p| {
            let (s, e) = (p["start_offset"].as_u64(), p["end_offset"].as_u64());
            e.unwrap_or(0).saturating_sub(s.unwrap_or(0))
        })
        .sum()
}

fn describe_stream(s: &Value) -> String {
    let mut text = format!(
        "stream:     {}\nid:         {}\ncreated:    {}\ncleanup:    {}\n",
        cell(&s["name"]),
        cell(&s["id"]),
        time_ms(&s["created_ms"]),
        cell(&s["cleanup"])
    );
    if let Some(ms) = s["retention_ms"].as_u64() {
        text.push_str(&format!("retention:  {ms} ms\n"));
    }
    if let Some(b) = s["retention_bytes"].as_u64() {
        text.push_str(&format!("retention:  {} per partition\n", bytes(b)));
    }
    if let Some(r) = s.get("replication").filter(|r| r.is_object()) {
        let min = match r["min_insync_replicas"].as_u64() {
            Some(m) => format!("{m} (the stream's)"),
            None => "the node's".to_string(),
        };
        text.push_str(&format!(
            "replicas:   {} per partition, min in-sync {min}\n",
            cell(&r["factor"])
        ));
    }
    if let Some(b) = s["max_message_bytes"].as_u64() {
        text.push_str(&format!(
            "max batch:  {} (the stream's, for Kafka producers)\n",
            bytes(b)
        ));
    }
    if let Some(comp) = s.get("compaction").filter(|c| c.is_object()) {
        text.push_str(&format!(
            "compaction: plugin {} config {}\n            tombstones kept {} ms, lag {} ms, dirty ratio {}\n",
            cell(&comp["plugin"]),
            comp["config"],
            cell(&comp["delete_retention_ms"]),
            cell(&comp["min_compaction_lag_ms"]),
            cell(&comp["min_cleanable_dirty_ratio"])
        ));
    }
    let mut t = Table::new(&["PARTITION", "START", "END", "RECORDS"]);
    for p in arr(&s["partitions"]) {
        let (start, end) = (
            p["start_offset"].as_u64().unwrap_or(0),
            p["end_offset"].as_u64().unwrap_or(0),
        );
        t.row(vec![
            cell(&p["partition"]),
            start.to_string(),
            end.to_string(),
            end.saturating_sub(start).to_string(),
        ]);
    }
    text.push('\n');
    text.push_str(&t.render());
    text
}

/// `stream elect`: one election per partition, every partition tried; a
/// failed one is shown with the rest and makes the command fail.
async fn elect(c: &Client, out: Output, name: &str, one: Option<u32>, unclean: bool) -> Result<(), ClientError> {
    let partitions: Vec<u32> = match one {
        Some(p) => vec![p],
        None => {
            let info = c.get(&format!("/streams/{}", seg(name))).await?;
            (0..arr(&info["partitions"]).len() as u32).collect()
        }
    };
    let body = json!({"type": if unclean { "unclean" } else { "preferred" }});
    let (mut results, mut failed) = (Vec::new(), None);
    for p in &partitions {
        let path = format!("/streams/{}/partitions/{p}/elect", seg(name));
        match c.post(&path, &body).await {
            Ok(mut r) => {
                r["partition"] = json!(p);
                results.push(r);
            }
            Err(e) => {
                results.push(json!({"partition": p, "error": e.to_string()}));
                failed.get_or_insert(e);
            }
        }
    }
    let all = json!(results);
    show(out, &all, || {
        let mut t = Table::new(&["PARTITION", "RESULT"]);
        for r in &results {
            let result = match (&r["error"], r["elected"].as_bool()) {
                (Value::String(e), _) => format!("failed: {e}"),
                (_, Some(true)) => format!(
                    "node {} leads at epoch {}",
                    cell(&r["state"]["leader"]),
                    cell(&r["state"]["epoch"])
                ),
                _ => "no election needed".into(),
            };
            t.row(vec![cell(&r["partition"]), result]);
        }
        t.render()
    })?;
    match failed {
        Some(e) => Err(ClientError::Partial {
            done: format!(
                "{} of {} partition(s) of `{name}` done",
                partitions.len() - results.iter().filter(|r| r["error"].is_string()).count(),
                partitions.len()
            ),
            source: Box::new(e),
        }),
        None => Ok(()),
    }
}
