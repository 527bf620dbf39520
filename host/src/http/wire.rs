//! JSON shapes of the HTTP API.
//!
//! Byte fields (keys, values, header values) are written as a JSON string
//! when they are UTF-8 text, or as `{"base64": "..."}` for any bytes. Both
//! forms are accepted on input; `encoding=base64` on reads forces the object
//! form so a client never has to guess.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::wire_headers::{HeadersDoc, HeadersJson};
use crate::error::Error;
use crate::fsutil::now_ms;
use crate::node::{OffsetRecord, Record};

pub use super::wire_streams::{CompactionIn, CompactionOut, CreateStream, PartitionOut, StreamOut};

/// A byte field as it appears in JSON: a string when the bytes are UTF-8
/// text, or `{"base64": "..."}` for any bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BytesJson {
    Text(String),
    Base64 { base64: String },
}

impl BytesJson {
    fn into_bytes(self, field: &str) -> Result<Bytes, Error> {
        match self {
            BytesJson::Text(s) => Ok(Bytes::from(s)),
            BytesJson::Base64 { base64 } => STANDARD
                .decode(base64.as_bytes())
                .map(Bytes::from)
                .map_err(|e| Error::invalid(format!("{field} is not valid base64: {e}"))),
        }
    }

    pub(super) fn from_bytes(b: &Bytes, force_base64: bool) -> BytesJson {
        match (force_base64, std::str::from_utf8(b)) {
            (false, Ok(s)) => BytesJson::Text(s.to_string()),
            _ => BytesJson::Base64 {
                base64: STANDARD.encode(b),
            },
        }
    }
}

/// A header's value: a byte field, or `null` for a null value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct HeaderValue(pub Option<BytesJson>);

/// A record to produce.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    #[serde(default)]
    pub key: Option<BytesJson>,
    /// Required; `null` is a null value (a tombstone in a compacted stream,
    /// read back as `null`), distinct from `""`. A missing field is an
    /// error, so a typo never writes a tombstone.
    #[serde(deserialize_with = "present_or_null")]
    #[schema(required = true)]
    pub value: Option<BytesJson>,
    /// Headers: an object of header values (`null` is a null value), or a
    /// list of `{"name", "value"}` that may repeat a name; kept in order.
    #[serde(default)]
    #[schema(value_type = Option<HeadersDoc>)]
    pub headers: HeadersJson,
    /// Milliseconds since the Unix epoch; the server's clock when absent.
    #[serde(default)]
    #[schema(maximum = 9223372036854775807_u64)]
    pub timestamp: Option<u64>,
}

/// The largest record timestamp produce takes: Kafka's (`i64::MAX` ms).
pub const MAX_TIMESTAMP_MS: u64 = i64::MAX as u64;

/// A required field that may be `null` (serde would make an `Option`
/// field optional).
fn present_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<BytesJson>, D::Error> {
    Option::<BytesJson>::deserialize(d)
}

impl RecordIn {
    pub fn into_record(self, index: usize) -> Result<Record, Error> {
        let at = |f: &str| format!("record {index}: {f}");
        // Kafka's timestamps are signed 64-bit: a later one could not be
        // read back over Kafka as written.
        if let Some(t) = self.timestamp.filter(|&t| t > MAX_TIMESTAMP_MS) {
            return Err(Error::invalid(at(&format!(
                "timestamp {t} is past the largest a record may carry ({MAX_TIMESTAMP_MS} ms)"
            ))));
        }
        let mut headers = Vec::with_capacity(self.headers.entries.len());
        for (name, v) in self.headers.entries {
            let value =
                v.0.map(|v| v.into_bytes(&at(&format!("header `{name}`"))))
                    .transpose()?;
            headers.push((name, value));
        }
        Ok(Record {
            key: self.key.map(|k| k.into_bytes(&at("key"))).transpose()?,
            value: self.value.map(|v| v.into_bytes(&at("value"))).transpose()?,
            headers,
            timestamp_ms: self.timestamp.unwrap_or_else(now_ms),
        })
    }
}

/// Produce body: a bare array of records or `{"records": [...]}`.
pub fn parse_produce_body(body: &[u8]) -> Result<Vec<RecordIn>, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapped {
        records: Vec<RecordIn>,
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let parsed = match first {
        Some(b'{') => serde_json::from_slice::<Wrapped>(body).map(|w| w.records),
        Some(b'[') => serde_json::from_slice::<Vec<RecordIn>>(body),
        _ => {
            return Err(Error::invalid(
                "body must be a JSON array of records or {\"records\": [...]}",
            ));
        }
    };
    parsed.map_err(|e| Error::invalid(format!("malformed records JSON: {e}")))
}

/// The answer to a produce: the records got the consecutive offsets
/// `base_offset .. base_offset + count`, in request order (no per-record
/// list: its size would grow with the request).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProduceOut {
    pub base_offset: u64,
    pub count: u32,
}

/// A stored record as a read returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordOut {
    pub offset: u64,
    pub timestamp: u64,
    pub key: Option<BytesJson>,
    /// `null` for a null value (a Kafka tombstone).
    pub value: Option<BytesJson>,
    /// Headers in order: an object of header values (`null` for a null
    /// value) when the names are unique, else (or with `headers=list`) a
    /// list of `{"name", "value"}`.
    #[schema(value_type = HeadersDoc)]
    pub headers: HeadersJson,
}

impl RecordOut {
    pub fn new(r: &OffsetRecord, force_base64: bool, headers_as_list: bool) -> Self {
        RecordOut {
            offset: r.offset,
            timestamp: r.record.timestamp_ms,
            key: r.record.key.as_ref().map(|k| BytesJson::from_bytes(k, force_base64)),
            value: r.record.value.as_ref().map(|v| BytesJson::from_bytes(v, force_base64)),
            headers: HeadersJson::for_read(&r.record.headers, force_base64, headers_as_list),
        }
    }
}

/// One read: the records, where to read next and the partition's range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsumeOut {
    pub records: Vec<RecordOut>,
    pub next_offset: u64,
    pub start_offset: u64,
    pub end_offset: u64,
}

/// Query of a consume request.
#[derive(Debug, Default)]
pub struct ConsumeQuery {
    pub offset: u64,
    /// Read from the first record at or after this time (ms since the
    /// epoch) instead of from `offset`.
    pub timestamp: Option<u64>,
    pub max_records: Option<usize>,
    pub max_bytes: Option<usize>,
    pub encoding: Encoding,
    /// `headers=list`: every record's headers in the list form.
    pub headers_as_list: bool,
    /// `plugin`, `plugin_version` and `config.KEY=VALUE` pairs.
    pub filter: Option<crate::node::ReadFilter>,
    /// Long-poll: when nothing is at or after `offset`, wait up to this many
    /// milliseconds for a record before answering (at most `MAX_WAIT_MS`).
    pub wait_ms: u64,
}

/// The longest long-poll a consume request may ask for.
pub const MAX_WAIT_MS: u64 = 60_000;

impl ConsumeQuery {
    /// Parses the query pairs; unknown keys and bad values are errors.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<ConsumeQuery, Error> {
        fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, Error>
        where
            T::Err: std::fmt::Display,
        {
            v.parse()
                .map_err(|e| Error::invalid(format!("invalid `{key}` value `{v:.40}`: {e}")))
        }
        let mut q = ConsumeQuery::default();
        let mut seen_offset = false;
        let (mut plugin, mut version, mut config) = (None, None, Vec::new());
        for (k, v) in pairs {
            match k.as_str() {
                "offset" => {
                    q.offset = num(&k, &v)?;
                    seen_offset = true;
                }
                "timestamp" => q.timestamp = Some(num(&k, &v)?),
                "max_records" => q.max_records = Some(num(&k, &v)?),
                "max_bytes" => q.max_bytes = Some(num(&k, &v)?),
                "encoding" => {
                    q.encoding = match v.as_str() {
                        "auto" => Encoding::Auto,
                        "base64" => Encoding::Base64,
                        other => {
                            return Err(Error::invalid(format!(
                                "unknown `encoding` `{other:.40}` (auto, base64)"
                            )));
                        }
                    }
                }
                "headers" => {
                    q.headers_as_list = match v.as_str() {
                        "auto" => false,
                        "list" => true,
                        other => {
                            return Err(Error::invalid(format!("unknown `headers` `{other:.40}` (auto, list)")));
                        }
                    }
                }
                "plugin" => plugin = Some(v),
                "plugin_version" => version = Some(num::<u32>(&k, &v)?),
                "wait_ms" => {
                    q.wait_ms = num(&k, &v)?;
                    if q.wait_ms > MAX_WAIT_MS {
                        return Err(Error::invalid(format!("`wait_ms` is at most {MAX_WAIT_MS}")));
                    }
                }
                _ => match k.strip_prefix("config.") {
                    Some(name) if !name.is_empty() => config.push((name.to_string(), v)),
                    _ => return Err(Error::invalid(format!("unknown query parameter `{k:.40}`"))),
                },
            }
        }
        match plugin {
            Some(plugin) => {
                q.filter = Some(crate::node::ReadFilter {
                    plugin,
                    version,
                    config,
                })
            }
            None if version.is_some() || !config.is_empty() => {
                return Err(Error::invalid("`plugin_version` and `config.*` need `plugin`"));
            }
            None => {}
        }
        if seen_offset && q.timestamp.is_some() {
            return Err(Error::invalid("give `offset` or `timestamp`, not both"));
        }
        Ok(q)
    }
}

/// How a read writes byte fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Encoding {
    /// Text when the bytes are UTF-8, base64 otherwise.
    #[default]
    Auto,
    /// Always `{"base64": "..."}`.
    Base64,
}

/// `POST /pipelines` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePipeline {
    pub name: String,
    pub input: String,
    pub output: String,
    pub plugin: String,
    #[serde(default)]
    pub plugin_version: Option<u32>,
    /// Plugin configuration: an object of strings.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Records per input batch, 1 to 100000.
    #[serde(default = "default_batch_records")]
    #[schema(default = 500, minimum = 1, maximum = 100000)]
    pub batch_records: u32,
    /// Create paused (start with `POST /pipelines/{name}/resume`).
    #[serde(default)]
    pub paused: bool,
}

fn default_batch_records() -> u32 {
    500
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PipelinesOut {
    pub pipelines: Vec<crate::node::PipelineStatus>,
    /// Set when more items follow: the `after` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginsOut {
    #[schema(value_type = Vec<super::openapi::PluginInfoDoc>)]
    pub plugins: Vec<crate::node::PluginInfo>,
    /// Set when more items follow: the `after` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// The answer to an upload: the plugin's name and the version stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginVersionOut {
    pub name: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::VersionInfoDoc)]
    pub version: crate::node::VersionInfo,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StreamsOut {
    pub streams: Vec<StreamOut>,
    /// Set when more items follow: the `after` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthOut {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The answer to `POST /streams/{name}/compact`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompactRequestedOut {
    pub stream: String,
    /// Always `true`: the compaction runs at the tiering service's next round.
    pub requested: bool,
}

/// Per partition (in partition order): the compaction state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompactionStatusOut {
    pub name: String,
    pub partitions: Vec<crate::node::CompactionStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_json_accepts_text_and_base64_and_rejects_bad_base64() {
        let v: Vec<RecordIn> =
            serde_json::from_str(r#"[{"value":"hi"},{"key":{"base64":"AAE="},"value":{"base64":"/w=="}}]"#).unwrap();
        let recs: Vec<Record> = v
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.into_record(i).unwrap())
            .collect();
        assert_eq!(recs[0].value, Some(Bytes::from_static(b"hi")));
        assert_eq!(recs[1].key, Some(Bytes::from_static(&[0, 1])));
        assert_eq!(recs[1].value, Some(Bytes::from_static(&[0xff])));
        // `null` is a null value, `""` an empty one, and the field is required.
        let nulls: Vec<RecordIn> = serde_json::from_str(r#"[{"key":"k","value":null},{"value":""}]"#).unwrap();
        let nulls: Vec<Record> = nulls.into_iter().map(|r| r.into_record(0).unwrap()).collect();
        assert_eq!(
            (nulls[0].value.clone(), nulls[1].value.clone()),
            (None, Some(Bytes::new()))
        );
        let missing = serde_json::from_str::<Vec<RecordIn>>(r#"[{"key":"k"}]"#).unwrap_err();
        assert!(missing.to_string().contains("missing field `value`"), "{missing}");
        let bad: Vec<RecordIn> = serde_json::from_str(r#"[{"value":{"base64":"!!"}}]"#).unwrap();
        let err = bad.into_iter().next().unwrap().into_record(0).unwrap_err();
        assert!(err.message().contains("base64"), "{}", err.message());
    }

    #[test]
    fn output_uses_text_only_for_utf8_unless_forced() {
        assert_eq!(
            BytesJson::from_bytes(&Bytes::from_static(b"ok"), false),
            BytesJson::Text("ok".into())
        );
        assert!(matches!(
            BytesJson::from_bytes(&Bytes::from_static(&[0xff]), false),
            BytesJson::Base64 { .. }
        ));
        assert!(matches!(
            BytesJson::from_bytes(&Bytes::from_static(b"ok"), true),
            BytesJson::Base64 { .. }
        ));
    }

    #[test]
    fn produce_body_forms() {
        assert_eq!(parse_produce_body(br#" [{"value":"a"}]"#).unwrap().len(), 1);
        assert_eq!(
            parse_produce_body(br#"{"records":[{"value":"a"},{"value":"b"}]}"#)
                .unwrap()
                .len(),
            2
        );
        assert!(parse_produce_body(b"").is_err());
        assert!(parse_produce_body(br#"[{"valu":"a"}]"#).is_err());
        assert!(parse_produce_body(br#"[{"value":"a","timestamp":-5}]"#).is_err());
    }
}
