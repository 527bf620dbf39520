//! Series the node renders itself, next to the recorder's: per-stream
//! counters and the state gauges computed at each scrape.
//!
//! The Prometheus recorder cannot remove a series, so whatever must go
//! away lives here: a deleted stream's counters are dropped with
//! [`forget_stream`], and a state gauge exists only while the node renders
//! it (a partition with nothing to upload has no upload-lag series).
//! Invariants: a counter only grows while its stream lives; every label
//! value is escaped as the text format requires.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

/// The counters kept per stream (label `stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCounter {
    AppendRecords,
    AppendBytes,
    AppendErrors,
    ReadRecords,
    CompactionRuns,
    CompactionErrors,
    ReplicationFetchErrors,
    ReplicationBytes,
}

/// Name and help of each counter, in [`StreamCounter`] order.
const COUNTERS: [(StreamCounter, &str, &str); 8] = [
    (StreamCounter::AppendRecords, super::APPEND_RECORDS, "Records appended"),
    (
        StreamCounter::AppendBytes,
        super::APPEND_BYTES,
        "Bytes of record batches appended",
    ),
    (StreamCounter::AppendErrors, super::APPEND_ERRORS, "Appends that failed"),
    (
        StreamCounter::ReadRecords,
        super::READ_RECORDS,
        "Records returned by reads",
    ),
    (
        StreamCounter::CompactionRuns,
        super::COMPACTION_RUNS,
        "Compaction runs finished",
    ),
    (
        StreamCounter::CompactionErrors,
        super::COMPACTION_ERRORS,
        "Compaction runs failed",
    ),
    (
        StreamCounter::ReplicationFetchErrors,
        super::REPLICATION_FETCH_ERRORS,
        "Follower fetches that failed",
    ),
    (
        StreamCounter::ReplicationBytes,
        super::REPLICATION_BYTES,
        "Bytes followers appended from their leaders",
    ),
];

type Counters = [AtomicU64; COUNTERS.len()];

/// Per-stream counters of every node in the process, by stream name.
static STREAMS: LazyLock<RwLock<BTreeMap<String, Arc<Counters>>>> = LazyLock::new(Default::default);

/// Adds `n` to a stream's counter. `stream` must be a stream that
/// resolved (or empty for one that did not): names from requests that
/// resolved to nothing would grow the exposition without bound.
pub fn add(stream: &str, counter: StreamCounter, n: u64) {
    let known = STREAMS.read().unwrap_or_else(|p| p.into_inner()).get(stream).cloned();
    let counters = match known {
        Some(c) => c,
        None => STREAMS
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(stream.to_string())
            .or_default()
            .clone(),
    };
    counters[counter as usize].fetch_add(n, Ordering::Relaxed);
}

/// Drops a deleted stream's counters (and so its series).
pub fn forget_stream(stream: &str) {
    STREAMS.write().unwrap_or_else(|p| p.into_inner()).remove(stream);
}

/// Appends the per-stream counters to `out`.
pub fn render_stream_counters(out: &mut String) {
    let streams: Vec<(String, Arc<Counters>)> = STREAMS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if streams.is_empty() {
        return;
    }
    for (counter, name, help) in COUNTERS {
        header(out, name, "counter", help);
        for (stream, c) in &streams {
            sample(
                out,
                name,
                &[("stream", stream)],
                c[counter as usize].load(Ordering::Relaxed),
            );
        }
    }
}

/// `# HELP` and `# TYPE` lines of a series.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line, label values escaped.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_per_stream_and_go_with_their_stream() {
        add("text-test-a", StreamCounter::AppendRecords, 3);
        add("text-test-a", StreamCounter::AppendRecords, 4);
        add("text-test-b", StreamCounter::ReadRecords, 1);
        let mut out = String::new();
        render_stream_counters(&mut out);
        assert!(
            out.contains("sluice_append_records_total{stream=\"text-test-a\"} 7\n"),
            "{out}"
        );
        assert!(
            out.contains("sluice_read_records_total{stream=\"text-test-b\"} 1\n"),
            "{out}"
        );
        assert_eq!(out.matches("# TYPE sluice_append_records_total counter").count(), 1);
        forget_stream("text-test-a");
        let mut out = String::new();
        render_stream_counters(&mut out);
        assert!(!out.contains("text-test-a"), "{out}");
        assert!(out.contains("text-test-b"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x\"y\\z\nw"), ("b", "")], 5);
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 5\n");
    }
}
