//! `sluice plugin test`: runs a built plugin on sample records locally, like
//! Fluvio's `smdk test`, with no server.
//!
//! Owns reading the sample records, running the plugin, and printing the
//! output records (transform) or one decision per record (compaction). It
//! reuses the host's own pieces rather than imitating them: the plugin
//! runtime and world detection of [`crate::node::offline`] (the same wasmtime
//! engine, sandbox and limits as `serve`, defaults from [`Settings`]), and
//! the produce API's record JSON ([`RecordIn`]), so a plugin behaves here as
//! it will once uploaded.

use std::path::Path;

use bytes::Bytes;
use serde_json::{Value, json};

use super::args::{Output, PluginTestArgs};
use super::error::ClientError;
use super::output::{Table, print, print_json};
use super::records::{bytes_json, parse_json_records};
use crate::Settings;
use crate::fsutil::now_ms;
use crate::http::wire::{RecordIn, RecordOut};
use crate::node::offline::{Compiled, Decision, Limits, PluginError, Runtime, load_any};
use crate::node::{OffsetRecord, Record};

/// What a plugin made of the sample records.
enum Report {
    /// Output records, each with the offset of the input record it came from.
    Transform(Vec<OffsetRecord>),
    /// One decision per input record, in order.
    Compaction(Vec<Decision>),
}

pub async fn run(out: Output, a: PluginTestArgs) -> Result<(), ClientError> {
    let wasm = read_wasm(&a.file)?;
    let records = read_records(&a)?;
    let limits = limits(&a)?;
    let name = plugin_name(&a.file);
    let (config, input) = (a.config, records.clone());
    let plugin = name.clone();
    // Compiling and calling are blocking (and WASI may block on the runtime).
    let report = tokio::task::spawn_blocking(move || run_plugin(&plugin, &wasm, limits, &config, &input))
        .await
        .map_err(|e| PluginError::Runtime(format!("the plugin run stopped: {e}")))??;
    match out {
        Output::Json => print_json(&report_json(&name, &records, &report)),
        Output::Table => {
            let (table, summary) = match &report {
                Report::Transform(output) => (
                    transform_table(output),
                    format!("transform `{name}`: {} records in, {} out", records.len(), output.len()),
                ),
                Report::Compaction(decisions) => (
                    compaction_table(&records, decisions),
                    format!("compaction policy `{name}`: {} decisions", decisions.len()),
                ),
            };
            print(&table)?;
            eprintln!("{summary}");
            Ok(())
        }
    }
}

/// Compiles `wasm`, finds its world, initializes it with `config` and runs
/// it once on all `records`.
fn run_plugin(
    name: &str,
    wasm: &[u8],
    limits: Limits,
    config: &[(String, String)],
    records: &[OffsetRecord],
) -> Result<Report, PluginError> {
    let runtime = Runtime::new(limits)?;
    match load_any(&runtime, name, wasm)? {
        Compiled::Transform(p) => Ok(Report::Transform(
            p.instantiate(config)?.transform_with_offsets(records)?,
        )),
        Compiled::Compaction(p) => Ok(Report::Compaction(p.instantiate(config)?.decide(records)?)),
    }
}

/// The plugin's file, checked to be WebAssembly at all (the runtime does
/// the real validation).
fn read_wasm(path: &Path) -> Result<Vec<u8>, ClientError> {
    let wasm = std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !wasm.starts_with(b"\0asm") {
        return Err(ClientError::input(format!(
            "`{}` is not a WebAssembly file (it does not start with \\0asm); give the .wasm that \
             `cargo build --release --target wasm32-wasip2` wrote to target/wasm32-wasip2/release/",
            path.display()
        )));
    }
    Ok(wasm)
}

/// The name errors use: the file's stem (`upper` for `upper.wasm`).
fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_string())
}

/// The server's defaults and checks, with the flags over them.
fn limits(a: &PluginTestArgs) -> Result<Limits, ClientError> {
    let mut s = Settings::default();
    if let Some(t) = a.plugin_call_timeout {
        s.plugin_call_timeout = t;
    }
    if let Some(m) = a.plugin_memory_bytes {
        s.plugin_memory_bytes = m;
    }
    s.validate().map_err(|e| ClientError::input(e.to_string()))?;
    Ok(s.plugin_limits())
}

/// The sample records, at offsets 0, 1, ...: `--value`s, or `--input` JSON.
fn read_records(a: &PluginTestArgs) -> Result<Vec<OffsetRecord>, ClientError> {
    let records: Vec<Record> = match &a.input {
        None => a
            .value
            .iter()
            .map(|v| Record {
                value: Some(Bytes::from(v.clone())),
                timestamp_ms: now_ms(),
                ..Record::default()
            })
            .collect(),
        Some(path) => {
            let (text, what) = if path.as_os_str() == "-" {
                (super::records::read_stdin()?, "stdin".to_string())
            } else {
                let buf = std::fs::read(path).map_err(|source| ClientError::Read {
                    path: path.clone(),
                    source,
                })?;
                (buf, format!("`{}`", path.display()))
            };
            parse_records(&text).map_err(|e| ClientError::input(format!("{what}: {e}")))?
        }
    };
    if records.is_empty() {
        return Err(ClientError::input(
            "no records to test with: give --input FILE with JSON records or --value TEXT",
        ));
    }
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, record)| OffsetRecord {
            offset: i as u64,
            record,
        })
        .collect())
}

/// Records in the produce API's JSON (an array, `{"records": [...]}` or one
/// object per line), checked the way `produce --json` checks them.
fn parse_records(text: &[u8]) -> Result<Vec<Record>, String> {
    parse_json_records(text)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let r: RecordIn = serde_json::from_value(v).map_err(|e| format!("record {i}: {e}"))?;
            r.into_record(i).map_err(|e| e.to_string())
        })
        .collect()
}

fn report_json(name: &str, input: &[OffsetRecord], report: &Report) -> Value {
    match report {
        Report::Transform(output) => json!({
            "plugin": name,
            "kind": "transform",
            "input_records": input.len(),
            "records": output.iter().map(|r| RecordOut::new(r, false, false)).collect::<Vec<_>>(),
        }),
        Report::Compaction(decisions) => {
            let rows: Vec<Value> = input
                .iter()
                .zip(decisions)
                .map(|(r, d)| {
                    let (decision, key) = decision_parts(d);
                    json!({
                        "offset": r.offset,
                        "key": r.record.key.as_deref().map(bytes_json),
                        "value": r.record.value.as_deref().map(bytes_json),
                        "decision": decision,
                        "compaction_key": key.map(bytes_json),
                    })
                })
                .collect();
            json!({"plugin": name, "kind": "compaction", "decisions": rows})
        }
    }
}

/// A decision's name and its key, if it has one.
fn decision_parts(d: &Decision) -> (&'static str, Option<&[u8]>) {
    match d {
        Decision::KeepAlways => ("keep_always", None),
        Decision::Key(k) => ("key", Some(k)),
        Decision::Tombstone(k) => ("tombstone", Some(k)),
        Decision::Drop => ("drop", None),
    }
}

fn transform_table(output: &[OffsetRecord]) -> String {
    let mut t = Table::new(&["IN", "KEY", "VALUE", "HEADERS"]);
    for r in output {
        let headers: Vec<String> = r
            .record
            .headers
            .iter()
            .map(|(n, v)| format!("{}={}", text(n.as_bytes()), opt_text(v.as_deref())))
            .collect();
        t.row(vec![
            r.offset.to_string(),
            opt_text(r.record.key.as_deref()),
            opt_text(r.record.value.as_deref()),
            if headers.is_empty() {
                "-".into()
            } else {
                headers.join(",")
            },
        ]);
    }
    t.render()
}

fn compaction_table(input: &[OffsetRecord], decisions: &[Decision]) -> String {
    let mut t = Table::new(&["OFFSET", "KEY", "VALUE", "DECISION", "COMPACTION KEY"]);
    for (r, d) in input.iter().zip(decisions) {
        let (decision, key) = decision_parts(d);
        t.row(vec![
            r.offset.to_string(),
            opt_text(r.record.key.as_deref()),
            opt_text(r.record.value.as_deref()),
            decision.to_string(),
            opt_text(key),
        ]);
    }
    t.render()
}

fn opt_text(b: Option<&[u8]>) -> String {
    b.map_or_else(|| "-".to_string(), text)
}

/// Bytes for one table cell: UTF-8 with control characters escaped (so a
/// record stays on one line), `""` when empty, otherwise `base64:...`.
fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok("") => "\"\"".to_string(),
        Ok(s) => s
            .chars()
            .map(|c| match c {
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\t' => "\\t".to_string(),
                c if c.is_control() => c.escape_unicode().to_string(),
                c => c.to_string(),
            })
            .collect(),
        Err(_) => {
            use base64::Engine;
            format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_like_produce_and_cells_stay_on_one_line() {
        let recs =
            parse_records(br#"[{"key":"k","value":{"base64":"AP8="},"headers":{"h":"v"},"timestamp":7}]"#).unwrap();
        assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(recs[0].value_bytes(), &[0u8, 0xff][..]);
        assert_eq!(recs[0].headers, vec![("h".to_string(), Some(Bytes::from_static(b"v")))]);
        assert_eq!(recs[0].timestamp_ms, 7);
        assert_eq!(
            parse_records(b"{\"value\":\"a\"}\n{\"value\":\"b\"}\n").unwrap().len(),
            2
        );
        assert!(
            parse_records(br#"[{"valu":"a"}]"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert_eq!(text(b"a\nb\t\x01"), "a\\nb\\t\\u{1}");
        assert_eq!(text(&[0xff]), "base64:/w==");
        assert_eq!(opt_text(None), "-");
        assert_eq!(text(b""), "\"\"");
    }

    #[test]
    fn decisions_render_with_their_keys() {
        assert_eq!(decision_parts(&Decision::Key(b"k".to_vec())), ("key", Some(&b"k"[..])));
        assert_eq!(decision_parts(&Decision::KeepAlways), ("keep_always", None));
        let input = [OffsetRecord {
            offset: 0,
            record: Record {
                value: Some(Bytes::from_static(b"v")),
                ..Record::default()
            },
        }];
        let v = report_json(
            "p",
            &input,
            &Report::Compaction(vec![Decision::Tombstone(b"k".to_vec())]),
        );
        assert_eq!(
            v["decisions"][0],
            json!({"offset": 0, "key": null, "value": "v", "decision": "tombstone", "compaction_key": "k"})
        );
    }
}
