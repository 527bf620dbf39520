//! `produce` and `consume`: records between files/pipes and a partition.
//!
//! `produce` checks all JSON input before it sends anything; line input is
//! streamed in batches (so `tail -f log | sluice produce` works), and if a
//! later batch fails the error says how many records were acknowledged.
//! `consume --follow` long-polls: once caught up, each request asks the
//! server to wait (`wait_ms`, half the request timeout, at most 20 s) for
//! the next record, so new records print as soon as they are durable.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use super::args::{ConsumeArgs, Output, ProduceArgs};
use super::error::ClientError;
use super::http::{Client, seg};
use super::output::{print, print_json, progress};

/// Raw value bytes per request in line mode (well under the server's
/// default 16 MiB body limit even when base64-encoded).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Records per consume request.
const PAGE_RECORDS: u64 = 500;

fn records_path(stream: &str, partition: u32) -> String {
    format!("/streams/{}/partitions/{partition}/records", seg(stream))
}

/// Where `produce` reads from.
enum Input {
    Stdin,
    File(std::fs::File, u64),
}

pub async fn produce(c: &Client, out: Output, a: ProduceArgs) -> Result<(), ClientError> {
    let input = match &a.file {
        Some(path) => {
            let read_err = |source| ClientError::Read {
                path: path.clone(),
                source,
            };
            let f = std::fs::File::open(path).map_err(read_err)?;
            let len = f.metadata().map_err(read_err)?.len();
            Input::File(f, len)
        }
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("reading records from stdin, one per line; end with Ctrl-D");
            }
            Input::Stdin
        }
    };
    let mut p = Producer {
        client: c,
        path: match a.acks {
            super::args::AcksArg::Leader => records_path(&a.stream, a.partition),
            super::args::AcksArg::All => format!("{}?acks=all", records_path(&a.stream, a.partition)),
        },
        acked: 0,
        first: None,
        last: None,
    };
    let result = if a.json {
        p.produce_json(input, a.batch_size as usize).await
    } else {
        p.produce_lines(input, &a).await
    };
    if let Err(e) = result {
        return Err(match p.acked {
            0 => e,
            n => ClientError::Partial {
                done: format!("{n} records were produced before the failure"),
                source: Box::new(e),
            },
        });
    }
    let v = json!({"stream": a.stream, "partition": a.partition, "count": p.acked,
        "first_offset": p.first, "last_offset": p.last});
    match out {
        Output::Json => print_json(&v),
        Output::Table => match (p.first, p.last) {
            (Some(f), Some(l)) => print(&format!(
                "produced {} records to {}/{} (offsets {f}..={l})\n",
                p.acked, a.stream, a.partition
            )),
            _ => print(&format!(
                "produced 0 records to {}/{} (no input)\n",
                a.stream, a.partition
            )),
        },
    }
}

struct Producer<'a> {
    client: &'a Client,
    path: String,
    acked: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl Producer<'_> {
    async fn send(&mut self, batch: &[Value]) -> Result<(), ClientError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ack = self.client.post(&self.path, &Value::from(batch.to_vec())).await?;
        let (Some(base), Some(count)) = (ack["base_offset"].as_u64(), ack["count"].as_u64()) else {
            return Err(ClientError::BadResponse {
                url: self.path.clone(),
                status: 200,
                detail: format!("produce answer without base_offset/count: {ack}"),
            });
        };
        self.acked += count;
        self.first.get_or_insert(base);
        if count > 0 {
            self.last = Some(base + count - 1);
        }
        Ok(())
    }

    /// Reads and checks every record first; sends only if all are valid.
    async fn produce_json(&mut self, input: Input, batch_size: usize) -> Result<(), ClientError> {
        let (text, name) = match input {
            Input::Stdin => (read_stdin()?, "stdin".to_string()),
            Input::File(mut f, _) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).map_err(|source| ClientError::Io {
                    what: "cannot read the input file",
                    source,
                })?;
                (buf, "the input file".to_string())
            }
        };
        let records = parse_json_records(&text).map_err(|e| ClientError::input(format!("{name}: {e}")))?;
        let bar = progress(Some(records.len() as u64), false, "producing");
        for batch in records.chunks(batch_size) {
            self.send(batch).await?;
            bar.inc(batch.len() as u64);
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Every line is one record (any bytes: non-UTF-8 goes as base64).
    async fn produce_lines(&mut self, input: Input, a: &ProduceArgs) -> Result<(), ClientError> {
        let interactive = matches!(input, Input::Stdin) && std::io::stdin().is_terminal();
        // Typing at a terminal: send every line at once.
        let batch_size = if interactive { 1 } else { a.batch_size as usize };
        let (mut reader, bar): (Box<dyn BufRead>, _) = match input {
            Input::Stdin => (
                Box::new(BufReader::new(std::io::stdin())),
                progress(None, false, "producing"),
            ),
            Input::File(f, len) => (Box::new(BufReader::new(f)), progress(Some(len), true, "producing")),
        };
        let mut batch = Vec::new();
        let (mut batch_bytes, mut read_bytes) = (0usize, 0u64);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|source| ClientError::Io {
                what: "cannot read the input",
                source,
            })?;
            if n == 0 {
                break;
            }
            read_bytes += n as u64;
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            batch_bytes += line.len();
            batch.push(line_record(&line, a.key_separator.as_deref()));
            if batch.len() >= batch_size || batch_bytes >= MAX_BATCH_BYTES {
                self.send(&batch).await?;
                bar.set_position(if bar.length().is_some() { read_bytes } else { self.acked });
                batch.clear();
                batch_bytes = 0;
            }
        }
        self.send(&batch).await?;
        bar.finish_and_clear();
        Ok(())
    }
}

/// A byte field as the API takes it: text when UTF-8, else base64.
pub(crate) fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!({"base64": STANDARD.encode(b)}),
    }
}

fn line_record(line: &[u8], sep: Option<&str>) -> Value {
    let split = sep.filter(|s| !s.is_empty()).and_then(|s| {
        let s = s.as_bytes();
        line.windows(s.len())
            .position(|w| w == s)
            .map(|i| (&line[..i], &line[i + s.len()..]))
    });
    match split {
        Some((k, v)) => json!({"key": bytes_json(k), "value": bytes_json(v)}),
        None => json!({"value": bytes_json(line)}),
    }
}

/// JSON records: an array, `{"records": [...]}`, or a sequence of record
/// objects (one per line or concatenated). Checks each record's shape.
pub fn parse_json_records(text: &[u8]) -> Result<Vec<Value>, String> {
    // `Value` keeps one of two fields of the same name: refuse them first,
    // as the server does, rather than send less than was written.
    for (i, v) in serde_json::Deserializer::from_slice(text)
        .into_iter::<NoRepeatedNames>()
        .enumerate()
    {
        v.map_err(|e| format!("invalid JSON (value {}): {e}", i + 1))?;
    }
    let mut values = Vec::new();
    for (i, v) in serde_json::Deserializer::from_slice(text)
        .into_iter::<Value>()
        .enumerate()
    {
        values.push(v.map_err(|e| format!("invalid JSON (value {}): {e}", i + 1))?);
    }
    let records = match values.as_slice() {
        [Value::Array(a)] => a.clone(),
        [Value::Object(o)] if o.contains_key("records") => match &o["records"] {
            Value::Array(a) => a.clone(),
            _ => return Err("`records` must be an array of records".to_string()),
        },
        _ => values,
    };
    for (i, r) in records.iter().enumerate() {
        check_record(r).map_err(|e| format!("record {i}: {e}"))?;
    }
    Ok(records)
}

/// Any JSON in which no object names a field twice (nothing is kept).
struct NoRepeatedNames;

impl<'de> serde::Deserialize<'de> for NoRepeatedNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, SeqAccess, Visitor};
        struct Walk;
        impl<'de> Visitor<'de> for Walk {
            type Value = NoRepeatedNames;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoRepeatedNames, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(name) = map.next_key::<String>()? {
                    if !seen.insert(name.clone()) {
                        return Err(A::Error::custom(format!(
                            "field `{name:.40}` is named twice in one object"
                        )));
                    }
                    map.next_value::<NoRepeatedNames>()?;
                }
                Ok(NoRepeatedNames)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoRepeatedNames, A::Error> {
                while seq.next_element::<NoRepeatedNames>()?.is_some() {}
                Ok(NoRepeatedNames)
            }
            fn visit_bool<E: Error>(self, _: bool) -> Result<NoRepeatedNames, E> {
                Ok(NoRepeatedNames)
            }
            fn visit_i64<E: Error>(self, _: i64) -> Result<NoRepeatedNames, E> {
                Ok(NoRepeatedNames)
            }
            fn visit_u64<E: Error>(self, _: u64) -> Result<NoRepeatedNames, E> {
                Ok(NoRepeatedNames)
            }
            fn visit_f64<E: Error>(self, _: f64) -> Result<NoRepeatedNames, E> {
                Ok(NoRepeatedNames)
            }
            fn visit_str<E: Error>(self, _: &str) -> Result<NoRepeatedNames, E> {
                Ok(NoRepeatedNames)
            }
            fn visit_unit<E: Error>(self) -> Result<NoRepeatedNames, E> {
                Ok(NoRepeatedNames)
            }
        }
        d.deserialize_any(Walk)
    }
}

fn check_record(r: &Value) -> Result<(), String> {
    fn byte_field(v: &Value, what: &str) -> Result<(), String> {
        match v {
            Value::String(_) => Ok(()),
            Value::Object(o) if o.len() == 1 && o.get("base64").is_some_and(Value::is_string) => {
                let s = o["base64"].as_str().unwrap_or_default();
                STANDARD
                    .decode(s)
                    .map(|_| ())
                    .map_err(|e| format!("{what} is not valid base64: {e}"))
            }
            _ => Err(format!("{what} must be a string or {{\"base64\": \"...\"}}")),
        }
    }
    let Value::Object(o) = r else {
        return Err(format!("must be an object like {{\"value\": \"...\"}}, not {r}"));
    };
    for k in o.keys() {
        if !["key", "value", "headers", "timestamp"].contains(&k.as_str()) {
            return Err(format!("unknown field `{k}` (key, value, headers, timestamp)"));
        }
    }
    // `null` is a null value (a tombstone in a compacted stream).
    let value = o.get("value").ok_or("missing `value`")?;
    if !value.is_null() {
        byte_field(value, "`value`")?;
    }
    if let Some(k) = o.get("key").filter(|k| !k.is_null()) {
        byte_field(k, "`key`")?;
    }
    match o.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, v) in h.iter().filter(|(_, v)| !v.is_null()) {
                byte_field(v, &format!("header `{name}`"))?;
            }
        }
        // The list form, which may repeat a name: [{"name": ..., "value": ...}].
        Some(Value::Array(list)) => {
            for (i, e) in list.iter().enumerate() {
                let entry = e.as_object().filter(|o| o.len() == 2);
                let Some((Some(name), Some(v))) =
                    entry.map(|o| (o.get("name").and_then(Value::as_str), o.get("value")))
                else {
                    return Err(format!("header {i} must be {{\"name\": \"...\", \"value\": ...}}"));
                };
                if !v.is_null() {
                    byte_field(v, &format!("header `{name}`"))?;
                }
            }
        }
        Some(_) => {
            return Err(r#"`headers` must be an object or a list of {"name": ..., "value": ...}"#.to_string());
        }
    }
    match o.get("timestamp") {
        None | Some(Value::Null) => Ok(()),
        Some(t) if t.is_u64() => Ok(()),
        Some(_) => Err("`timestamp` must be milliseconds since the epoch (a non-negative integer)".to_string()),
    }
}

pub async fn consume(c: &Client, out: Output, a: ConsumeArgs) -> Result<(), ClientError> {
    let path = records_path(&a.stream, a.partition);
    let mut offset = match a.offset {
        Some(o) => o,
        None => {
            let s = c.get(&format!("/streams/{}", seg(&a.stream))).await?;
            let part = s["partitions"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["partition"] == a.partition));
            let field = if a.from_end { "end_offset" } else { "start_offset" };
            // A missing partition: the read below gets the server's error.
            part.and_then(|p| p[field].as_u64()).unwrap_or(0)
        }
    };
    let mut printed = 0u64;
    let mut stdout = std::io::stdout().lock();
    // Long-poll only once caught up; the wait stays well inside the
    // request's own timeout.
    let wait_ms = (c.timeout() / 2).min(std::time::Duration::from_secs(20)).as_millis() as u64;
    let mut long_poll = false;
    loop {
        let want = a.max_records.map_or(PAGE_RECORDS, |m| (m - printed).min(PAGE_RECORDS));
        if want == 0 {
            return Ok(());
        }
        let mut q: Vec<(String, String)> = vec![
            ("offset".into(), offset.to_string()),
            ("max_records".into(), want.to_string()),
        ];
        if let Some(p) = &a.plugin {
            q.push(("plugin".into(), p.clone()));
        }
        if let Some(v) = a.plugin_version {
            q.push(("plugin_version".into(), v.to_string()));
        }
        for (k, v) in &a.config {
            q.push((format!("config.{k}"), v.clone()));
        }
        if long_poll && wait_ms > 0 {
            q.push(("wait_ms".into(), wait_ms.to_string()));
        }
        let page = c.send(c.request(Method::GET, &path).query(&q)).await?;
        let (Some(records), Some(next), Some(end)) = (
            page["records"].as_array(),
            page["next_offset"].as_u64(),
            page["end_offset"].as_u64(),
        ) else {
            return Err(ClientError::BadResponse {
                url: path,
                status: 200,
                detail: format!("consume answer without records/next_offset/end_offset: {page}"),
            });
        };
        let mut text = Vec::new();
        for r in records.iter().take(want as usize) {
            match out {
                Output::Json => {
                    text.extend_from_slice(r.to_string().as_bytes());
                }
                Output::Table => text.extend_from_slice(&value_bytes(&r["value"])),
            }
            text.push(b'\n');
            printed += 1;
        }
        match stdout.write_all(&text).and_then(|()| stdout.flush()) {
            Ok(()) => {}
            // The reader went away (`| head`): stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(source) => {
                return Err(ClientError::Io {
                    what: "cannot write to stdout",
                    source,
                });
            }
        }
        if a.max_records.is_some_and(|m| printed >= m) {
            return Ok(());
        }
        // No progress short of the end would loop hot: treat it as caught up.
        let caught_up = next >= end || (records.is_empty() && next <= offset);
        offset = next.max(offset);
        if caught_up {
            if !a.follow {
                return Ok(());
            }
            // An empty answer to a long-poll (its wait ran out, or the
            // server is stopping): pause briefly rather than spin.
            if long_poll && records.is_empty() {
                tokio::time::sleep(a.poll_interval).await;
            }
            long_poll = true;
        } else {
            long_poll = false;
        }
    }
}

/// A record's value as raw bytes (base64 fields decoded).
fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Null => Vec::new(),
        Value::String(s) => s.as_bytes().to_vec(),
        other => match other["base64"].as_str().map(|b| STANDARD.decode(b)) {
            Some(Ok(bytes)) => bytes,
            _ => other.to_string().into_bytes(),
        },
    }
}

/// All of stdin.
pub(crate) fn read_stdin() -> Result<Vec<u8>, ClientError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|source| ClientError::Io {
            what: "cannot read stdin",
            source,
        })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_and_checks() {
        assert_eq!(
            parse_json_records(br#"[{"value":"a"},{"value":"b"}]"#).unwrap().len(),
            2
        );
        assert_eq!(parse_json_records(br#"{"records":[{"value":"a"}]}"#).unwrap().len(), 1);
        assert_eq!(
            parse_json_records(b"{\"value\":\"a\"}\n{\"value\":\"b\",\"key\":\"k\"}\n")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(parse_json_records(b"").unwrap().len(), 0);
        let bad = |t: &[u8]| parse_json_records(t).unwrap_err();
        assert!(bad(b"[{\"value\":").contains("invalid JSON"));
        assert!(bad(br#"[{"valu":"a"}]"#).contains("unknown field `valu`"));
        assert!(bad(br#"[{"key":"a"}]"#).contains("missing `value`"));
        assert_eq!(parse_json_records(br#"[{"key":"a","value":null}]"#).unwrap().len(), 1);
        assert!(value_bytes(&Value::Null).is_empty());
        assert!(bad(br#"[{"value":{"base64":"!!"}}]"#).contains("base64"));
        assert!(bad(br#"[{"value":"a","timestamp":-1}]"#).contains("timestamp"));
        assert!(bad(br#"[1]"#).contains("record 0"));
        // Headers: an object, or a list that may repeat a name; an object
        // naming a field twice is refused rather than sent with one.
        let list = br#"[{"value":"a","headers":[{"name":"h","value":"1"},{"name":"h","value":null}]}]"#;
        assert_eq!(parse_json_records(list).unwrap()[0]["headers"][1]["value"], Value::Null);
        assert!(bad(br#"[{"value":"a","headers":{"h":"1","h":"2"}}]"#).contains("`h` is named twice"));
        assert!(bad(br#"{"value":"a","value":"b"}"#).contains("named twice"));
        assert!(bad(br#"[{"value":"a","headers":[{"name":"h"}]}]"#).contains("header 0"));
        assert!(bad(br#"[{"value":"a","headers":[{"name":"h","value":7}]}]"#).contains("header `h`"));
        assert!(bad(br#"[{"value":"a","headers":"h=1"}]"#).contains("list of"));
        // Header objects go on in the order written (serde_json's
        // `preserve_order`), as the server stores them.
        let ordered = parse_json_records(br#"[{"value":"a","headers":{"z":"1","a":"2"}}]"#).unwrap();
        assert_eq!(ordered[0]["headers"].to_string(), r#"{"z":"1","a":"2"}"#);
    }

    #[test]
    fn lines_become_records() {
        assert_eq!(line_record(b"k=v=w", Some("=")), json!({"key": "k", "value": "v=w"}));
        assert_eq!(line_record(b"plain", Some("=")), json!({"value": "plain"}));
        assert_eq!(line_record(&[0xff], None), json!({"value": {"base64": "/w=="}}));
        assert_eq!(value_bytes(&json!({"base64": "/w=="})), vec![0xff]);
    }
}
