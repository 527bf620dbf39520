//! AlterConfigs and IncrementalAlterConfigs: changing a topic's settings.
//!
//! Of a topic's configs `retention.ms` and `retention.bytes` (-1:
//! unlimited), `min.insync.replicas` (1 to the replication factor),
//! `max.message.bytes` (1 to the node's `max_batch_bytes`) and, on a
//! compacted topic, `delete.retention.ms`, `min.compaction.lag.ms` and
//! `min.cleanable.dirty.ratio` change after creation, all of one request
//! in one step. IncrementalAlterConfigs SETs or DELETEs them (DELETE: back
//! to the default: unlimited, the node's value, Kafka's default);
//! AlterConfigs replaces them all (one left out goes back to its default,
//! as Kafka reverts it). `cleanup.policy`, and the compaction settings of a
//! topic that is not compacted, are accepted only at their current values;
//! every other config, broker configs included, is refused with
//! INVALID_CONFIG, never ignored. Each resource gets its own answer;
//! `validate_only` checks and changes nothing.

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::super::Ctx;
use super::super::error::{code_of, codes};
use super::str_bytes;
use super::topics::{CompactionTuning, RESOURCE_BROKER, RESOURCE_TOPIC, cleanup_policy};
use crate::node::{Compaction, SettingsChange, StreamSettings};

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// A refused resource: (error code, message).
type Refusal = (i16, String);

/// One resource of either request: type, name, `(config, operation,
/// value)` changes; and what became of it.
type Changes = (i8, StrBytes, Vec<(String, i8, Option<String>)>);
type Outcome = (i8, StrBytes, Result<(), Refusal>);

pub(super) async fn alter(ctx: &Ctx, r: AlterConfigsRequest) -> AlterConfigsResponse {
    let resources = r.resources.into_iter().map(|res| {
        let configs = res
            .configs
            .iter()
            .map(|c| (c.name.to_string(), OP_SET, c.value.as_ref().map(|v| v.to_string())));
        (res.resource_type, res.resource_name, configs.collect())
    });
    let mut out = AlterConfigsResponse::default();
    for (resource_type, resource_name, result) in alter_all(ctx, resources.collect(), true, r.validate_only).await {
        let mut res = alter_configs_response::AlterConfigsResourceResponse::default();
        (res.resource_type, res.resource_name) = (resource_type, resource_name);
        (res.error_code, res.error_message) = refusal(result);
        out.responses.push(res);
    }
    out
}

pub(super) async fn incremental(ctx: &Ctx, r: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let resources = r.resources.into_iter().map(|res| {
        let configs = res.configs.iter().map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string());
            (c.name.to_string(), c.config_operation, value)
        });
        (res.resource_type, res.resource_name, configs.collect())
    });
    let mut out = IncrementalAlterConfigsResponse::default();
    for (resource_type, resource_name, result) in alter_all(ctx, resources.collect(), false, r.validate_only).await {
        let mut res = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        (res.resource_type, res.resource_name) = (resource_type, resource_name);
        (res.error_code, res.error_message) = refusal(result);
        out.responses.push(res);
    }
    out
}

async fn alter_all(ctx: &Ctx, resources: Vec<Changes>, replace: bool, validate_only: bool) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(resources.len());
    for (resource_type, name, configs) in resources {
        let result = alter_one(ctx, resource_type, name.as_str(), &configs, replace, validate_only).await;
        out.push((resource_type, name, result));
    }
    out
}

/// A resource's error code and message (0 and none when it succeeded).
fn refusal(result: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((code, message)) => (code, Some(str_bytes(message))),
    }
}

/// Checks and applies one resource's changes: `(name, operation, value)`;
/// `replace` (AlterConfigs) resets what is not named.
async fn alter_one(
    ctx: &Ctx,
    resource_type: i8,
    name: &str,
    configs: &[(String, i8, Option<String>)],
    replace: bool,
    validate_only: bool,
) -> Result<(), Refusal> {
    let invalid = |m: String| (codes::invalid_config(), m);
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err(invalid(
                "broker configs are set in the node's config file and cannot change at run time".into(),
            ));
        }
        other => {
            return Err((
                codes::invalid_request(),
                format!("resource type {other} is not supported"),
            ));
        }
    }
    let info = ctx
        .host
        .describe_stream(name)
        .map_err(|e| (code_of(&e), e.to_string()))?;
    // AlterConfigs: what is not named goes back to its default.
    let mut change = if replace {
        SettingsChange::replace_with(StreamSettings::default())
    } else {
        SettingsChange::default()
    };
    let compacted = info.compaction.is_some();
    if replace && compacted {
        let defaults = CompactionTuning::NAMES
            .into_iter()
            .filter_map(CompactionTuning::default_of);
        defaults.for_each(|t| t.set_in(&mut change.compaction));
    }
    for (key, op, value) in configs {
        let (op, value) = (*op, value.as_deref());
        match key.as_str() {
            "retention.ms" | "retention.bytes" => {
                let limit = asked(key, op, value, |v| limit(key, v)).map_err(invalid)?.flatten();
                match key.as_str() {
                    "retention.ms" => change.retention.ms = Some(limit),
                    _ => change.retention.bytes = Some(limit),
                }
            }
            "min.insync.replicas" => {
                let m = asked(key, op, value, |v| super::topics::positive(key, v));
                change.min_insync_replicas = Some(m.map_err(invalid)?);
            }
            "max.message.bytes" => {
                let m = asked(key, op, value, super::topics::max_message_bytes);
                change.max_message_bytes = Some(m.map_err(invalid)?);
            }
            tuning if compacted && CompactionTuning::NAMES.contains(&tuning) => {
                let parse = |v: &str| CompactionTuning::parse(tuning, v).unwrap_or_else(|| Err(tuning.into()));
                let t = asked(key, op, value, parse).map_err(invalid)?;
                // DELETE: the default again.
                let t = t.or_else(|| CompactionTuning::default_of(tuning));
                t.into_iter().for_each(|t| t.set_in(&mut change.compaction));
            }
            other => unchanged_only(&info, other, op, value).map_err(invalid)?,
        }
    }
    let failed = |e: crate::Error| (code_of(&e), e.to_string());
    ctx.host
        .set_settings(name, change, validate_only)
        .await
        .map_err(failed)?;
    Ok(())
}

/// A SET's value as `parse` reads it, or `None` for DELETE (back to the
/// default).
fn asked<T>(
    key: &str,
    op: i8,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match (op, value) {
        (OP_DELETE, _) => Ok(None),
        (OP_SET, Some(v)) => parse(v).map(Some),
        (OP_SET, None) => Err(format!("`{key}` needs a value")),
        (other, _) => Err(format!("operation {other} does not apply to `{key}`")),
    }
}

/// The configs a topic keeps from its creation (`cleanup.policy`, and the
/// compaction settings of a topic that is not compacted, which tune
/// nothing there): a SET of the value it has is accepted (clients such as
/// kafka-python send every config set on a topic), anything else is
/// refused; any other config cannot be changed.
fn unchanged_only(info: &crate::node::StreamInfo, key: &str, op: i8, value: Option<&str>) -> Result<(), String> {
    let now = if key == "cleanup.policy" {
        let now = cleanup_policy(info);
        let same = value.is_some_and(|v| policies(v) == policies(now));
        (now.to_string(), same)
    } else {
        let shown = CompactionTuning::shown(info.compaction.as_ref());
        let Some((_, now, _)) = shown.into_iter().find(|(name, ..)| *name == key) else {
            return Err(format!("topic config `{key}` cannot be changed"));
        };
        let current = info
            .compaction
            .clone()
            .unwrap_or_else(|| Compaction::by_record_key(false));
        let same = |t: CompactionTuning| {
            let mut c = current.clone();
            t.apply(&mut c);
            c == current
        };
        let asked = value.and_then(|v| CompactionTuning::parse(key, v));
        (now, asked.and_then(Result::ok).is_some_and(same))
    };
    match now {
        (_, true) if op == OP_SET => Ok(()),
        (now, _) if key == "cleanup.policy" => Err(format!("`{key}` is set when a topic is created and stays `{now}`")),
        (now, _) => Err(format!(
            "`{key}` tunes compaction, and the topic is not compacted: it stays `{now}`"
        )),
    }
}

/// A `cleanup.policy` list in a comparable form (`delete,compact` is
/// `compact,delete`).
fn policies(v: &str) -> Vec<&str> {
    let mut p: Vec<&str> = v.split(',').map(str::trim).collect();
    p.sort_unstable();
    p
}

/// A retention limit: -1 is none, otherwise a positive number.
pub(super) fn limit(key: &str, v: &str) -> Result<Option<u64>, String> {
    match v.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(n) if n > 0 => Ok(Some(n as u64)),
        _ => Err(format!("`{key}` must be -1 or a positive number, not `{v}`")),
    }
}

/// Topic configs Kafka clients set at creation (Kafka Streams on its
/// internal topics, for one) that only tune how a broker lays out its
/// files, which Sluice does node-wide (`segment_bytes`, its WAL and
/// tiering): accepted when well-formed, and change nothing.
const LAYOUT_ONLY: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.jitter.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "flush.messages",
    "flush.ms",
    "preallocate",
    "file.delete.delay.ms",
    "message.downconversion.enable",
];

/// Topic configs accepted only at the value that names what Sluice does
/// anyway: the producer's create time is kept, the node never recompresses
/// what a producer sent (it serves batches as sent while they are cached,
/// else uncompressed), and no replica takes over by itself.
const AS_SLUICE_DOES: &[(&str, &str)] = &[
    ("message.timestamp.type", "CreateTime"),
    ("compression.type", "producer"),
    ("unclean.leader.election.enable", "false"),
];

/// Whether a topic config at creation is one that changes nothing here
/// (`Some(Ok)`), is such a config with a value Sluice cannot honour
/// (`Some(Err)`, the reason), or is another config (`None`).
pub(super) fn without_effect(name: &str, value: &str) -> Option<Result<(), String>> {
    if LAYOUT_ONLY.contains(&name) {
        let v = value.trim();
        let ok = v.parse::<i64>().is_ok_and(|n| n >= 0) || v == "true" || v == "false";
        return Some(match ok {
            true => Ok(()),
            false => Err(format!("`{name}` must be a number or a boolean, not `{value}`")),
        });
    }
    let (_, want) = AS_SLUICE_DOES.iter().find(|(n, _)| *n == name)?;
    Some(match value.trim().eq_ignore_ascii_case(want) {
        true => Ok(()),
        false => Err(format!("`{name}` can only be `{want}` here, not `{value}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_configs_change_nothing_and_others_need_sluices_value() {
        assert_eq!(without_effect("segment.bytes", "52428800"), Some(Ok(())));
        assert_eq!(without_effect("preallocate", "true"), Some(Ok(())));
        assert!(matches!(without_effect("segment.bytes", "big"), Some(Err(_))));
        assert!(matches!(without_effect("segment.ms", "-5"), Some(Err(_))));
        assert_eq!(without_effect("message.timestamp.type", "CreateTime"), Some(Ok(())));
        assert!(matches!(
            without_effect("message.timestamp.type", "LogAppendTime"),
            Some(Err(_))
        ));
        assert!(matches!(without_effect("compression.type", "zstd"), Some(Err(_))));
        assert_eq!(without_effect("retention.ms", "5"), None);
        assert_eq!(without_effect("min.insync.replicas", "2"), None);
    }

    #[test]
    fn compaction_settings_parse_and_show_as_kafka_writes_them() {
        use CompactionTuning::*;
        let parse = |n: &str, v: &str| CompactionTuning::parse(n, v);
        assert_eq!(parse("delete.retention.ms", "100"), Some(Ok(DeleteRetentionMs(100))));
        assert_eq!(parse("min.compaction.lag.ms", " 0 "), Some(Ok(MinLagMs(0))));
        assert_eq!(parse("min.cleanable.dirty.ratio", "0.01"), Some(Ok(DirtyPpm(10_000))));
        assert_eq!(parse("min.cleanable.dirty.ratio", "1"), Some(Ok(DirtyPpm(1_000_000))));
        for (n, v) in [
            ("delete.retention.ms", "-1"),
            ("min.compaction.lag.ms", "soon"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "NaN"),
        ] {
            assert!(matches!(parse(n, v), Some(Err(_))), "{n}={v}");
        }
        assert_eq!(parse("retention.ms", "5"), None);
        let mut c = Compaction::kafka_record_key(false);
        DirtyPpm(10_000).apply(&mut c);
        let shown = CompactionTuning::shown(Some(&c));
        assert_eq!(shown[2], ("min.cleanable.dirty.ratio", "0.01".to_string(), true));
        assert_eq!(shown[0], ("delete.retention.ms", "86400000".to_string(), false));
        assert_eq!(CompactionTuning::shown(None)[2].1, "0.5");
    }

    #[test]
    fn policies_compare_in_any_order_and_limits_parse() {
        assert_eq!(policies("delete, compact"), policies("compact,delete"));
        assert_ne!(policies("compact"), policies("compact,delete"));
        assert_eq!(limit("retention.ms", " -1 "), Ok(None));
        assert_eq!(limit("retention.ms", "5"), Ok(Some(5)));
        for bad in ["0", "-2", "x", ""] {
            assert!(limit("retention.ms", bad).is_err(), "{bad}");
        }
    }
}
