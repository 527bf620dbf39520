//! Views through the `Host` API with the real `json-filter` plugin: reads
//! are exactly the filter applied to the input at the input's offsets,
//! definitions survive a restart, bad requests change nothing, and a view
//! with committed offsets is deleted only when forced.

use bytes::Bytes;
use sluice_test_artifacts as wasm;

use super::{OffsetCommit, ReadLimits, ViewSpec};
use crate::{Host, Record, Settings};

/// A node on the local WAL in `dir`, without a Kafka listener.
pub(super) async fn open(dir: &std::path::Path) -> Host {
    Host::open(Settings {
        data_dir: dir.to_path_buf(),
        kafka_listen: None,
        ..Settings::default()
    })
    .await
    .expect("open")
}

fn spec(name: &str, input: &str, config: &[(&str, &str)]) -> ViewSpec {
    ViewSpec {
        name: name.into(),
        input: input.into(),
        plugin: "jf".into(),
        plugin_version: None,
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

const ERRORS: &[(&str, &str)] = &[("field", "/level"), ("value", "error")];

/// Input values: an error every third record, then a long run with none.
fn value(i: u64) -> String {
    let level = if i.is_multiple_of(3) && i < 60 { "error" } else { "info" };
    format!(r#"{{"level":"{level}","n":{i}}}"#)
}

async fn setup(host: &Host) {
    host.put_plugin("jf", wasm::read(wasm::JSON_FILTER))
        .await
        .expect("plugin");
    host.create_stream("logs", 2).await.expect("stream");
    let records: Vec<Record> = (0..200)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(value(i))),
            ..Record::default()
        })
        .collect();
    host.append("logs", 0, &records).await.expect("append");
}

/// Pages through `name` partition 0 with small reads: (offset, value) of
/// every record, and the offsets each read ended at.
async fn read_all(host: &Host, name: &str) -> (Vec<(u64, String)>, Vec<u64>) {
    let limits = ReadLimits {
        max_records: 7,
        max_bytes: 1 << 20,
    };
    let (mut got, mut ends, mut offset) = (Vec::new(), Vec::new(), 0);
    loop {
        let b = host.read(name, 0, offset, limits).await.expect("read");
        for r in &b.records {
            got.push((
                r.offset,
                String::from_utf8(r.record.value_bytes().to_vec()).expect("utf8"),
            ));
        }
        ends.push(b.next_offset);
        if b.next_offset >= b.end_offset {
            return (got, ends);
        }
        assert!(b.next_offset > offset, "a read must move on");
        offset = b.next_offset;
    }
}

#[tokio::test]
async fn a_view_is_its_input_through_the_plugin_at_the_inputs_offsets_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = open(dir.path()).await;
    setup(&host).await;
    let info = host.create_view(spec("errors", "logs", ERRORS)).await.expect("view");
    assert_eq!((info.partitions, info.input.as_str()), (2, "logs"));
    let expected: Vec<(u64, String)> = (0..200u64)
        .filter(|i| value(*i).contains("error"))
        .map(|i| (i, value(i)))
        .collect();
    let (got, ends) = read_all(&host, "errors").await;
    assert_eq!(got, expected);
    // The 140 trailing records without a match end in reads that return
    // nothing yet move on, and the last read ends at the input's end.
    assert_eq!(ends.last(), Some(&200));
    assert_eq!(host.stream_end("errors", 0).expect("end"), 200);
    // Nothing is stored for the view: it is not a stream.
    assert!(host.list_streams().iter().all(|s| s.name != "errors"));
    host.shutdown().await;
    drop(host);

    let host = open(dir.path()).await;
    assert_eq!(host.list_view_names(), vec!["errors".to_string()]);
    assert_eq!(read_all(&host, "errors").await.0, expected);
    host.shutdown().await;
}

#[tokio::test]
async fn bad_view_requests_are_refused_with_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = open(dir.path()).await;
    setup(&host).await;
    host.create_view(spec("errors", "logs", ERRORS)).await.expect("view");
    fn code<T>(r: Result<T, crate::Error>) -> &'static str {
        match r {
            Ok(_) => panic!("expected a refusal"),
            Err(e) => e.code(),
        }
    }
    assert_eq!(
        code(host.create_view(spec("logs", "logs", ERRORS)).await),
        "stream_exists"
    );
    assert_eq!(
        code(host.create_view(spec("errors", "logs", ERRORS)).await),
        "view_exists"
    );
    assert_eq!(
        code(host.create_view(spec("v", "nope", ERRORS)).await),
        "stream_not_found"
    );
    assert_eq!(
        code(host.create_view(spec("v", "errors", ERRORS)).await),
        "invalid_request"
    );
    assert_eq!(
        code(host.create_view(spec("v", "logs", &[])).await),
        "plugin_config_rejected"
    );
    assert_eq!(
        code(host.create_view(spec("__v", "logs", ERRORS)).await),
        "invalid_request"
    );
    assert_eq!(
        code(host.create_view(spec("bad name", "logs", ERRORS)).await),
        "invalid_request"
    );
    let mut other = spec("v", "logs", ERRORS);
    other.plugin = "missing".into();
    assert_eq!(code(host.create_view(other).await), "plugin_not_found");

    let rec = [Record {
        value: Some(Bytes::from_static(b"{}")),
        ..Record::default()
    }];
    let err = host.append("errors", 0, &rec).await.expect_err("read-only");
    assert_eq!(err.code(), "view_read_only");
    assert!(err.message().contains("logs"), "{}", err.message());
    assert_eq!(code(host.create_stream("errors", 1).await), "view_exists");
    assert_eq!(code(host.delete_stream("logs").await), "stream_in_use");
    assert_eq!(code(host.delete_stream("errors").await), "view_read_only");
    assert_eq!(
        code(host.read_runs("errors", 0, 0, ReadLimits::default()).await),
        "view_read_only"
    );
    assert_eq!(
        code(host.read("errors", 5, 0, ReadLimits::default()).await),
        "partition_not_found"
    );
    assert_eq!(code(host.delete_view("nope", true).await), "view_not_found");

    assert_eq!(host.list_view_names(), vec!["errors".to_string()]);
    assert_eq!(host.stream_end("logs", 0).expect("end"), 200);
    host.shutdown().await;
}

#[tokio::test]
async fn a_view_with_committed_offsets_is_deleted_only_when_forced_and_its_offsets_go_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = open(dir.path()).await;
    setup(&host).await;
    host.create_view(spec("errors", "logs", ERRORS)).await.expect("view");
    let commit = |offset| OffsetCommit {
        stream: "errors".into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: None,
    };
    let r = host.commit_offsets("g", &[commit(42)]).await.expect("commit");
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let keep = OffsetCommit {
        stream: "logs".into(),
        ..commit(7)
    };
    host.commit_offsets("g", &[keep]).await.expect("commit");
    assert_eq!(host.describe_view("errors").await.expect("describe").groups, vec!["g"]);

    let err = host.delete_view("errors", false).await.expect_err("in use");
    assert_eq!(err.code(), "view_in_use");
    assert!(host.view("errors").is_some());
    host.delete_view("errors", true).await.expect("forced");
    assert!(host.view("errors").is_none());
    let left: Vec<String> = host
        .committed_offsets("g")
        .await
        .expect("offsets")
        .into_iter()
        .map(|c| c.stream)
        .collect();
    assert_eq!(left, vec!["logs".to_string()], "only the view's offsets go");
    // The input is untouched and can now be deleted.
    assert_eq!(host.stream_end("logs", 0).expect("end"), 200);
    host.delete_stream("logs").await.expect("delete input");
    host.shutdown().await;
}

/// Reads reuse plugin instances, yet an unpinned view follows a new plugin
/// version at its next read and a pinned one does not.
#[tokio::test]
async fn an_unpinned_view_follows_a_new_plugin_version_and_a_pinned_one_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = open(dir.path()).await;
    setup(&host).await;
    host.create_view(spec("latest", "logs", ERRORS)).await.expect("view");
    let mut pinned = spec("pinned", "logs", ERRORS);
    pinned.plugin_version = Some(1);
    host.create_view(pinned).await.expect("view");
    let limits = ReadLimits {
        max_records: 10,
        max_bytes: 1 << 20,
    };
    for name in ["latest", "pinned"] {
        for _ in 0..3 {
            let b = host.read(name, 0, 0, limits).await.expect("read");
            assert_eq!(b.records.len(), 4, "offsets 0, 3, 6, 9 match");
        }
    }
    // Version 2 of `jf` upper-cases every value and drops nothing.
    host.put_plugin("jf", wasm::read(wasm::UPPER)).await.expect("v2");
    let b = host.read("latest", 0, 0, limits).await.expect("read");
    assert_eq!(b.records.len(), 10);
    assert_eq!(b.records[1].record.value, Some(Bytes::from(value(1).to_uppercase())));
    let b = host.read("pinned", 0, 0, limits).await.expect("read");
    assert_eq!(b.records.len(), 4);
    assert_eq!(b.records[0].record.value, Some(Bytes::from(value(0))));
    host.shutdown().await;
}

/// A plugin that a view or a compacted stream uses cannot be deleted (they
/// would fail at their next read or run); once they are gone, it can.
#[tokio::test]
async fn a_plugin_in_use_by_a_view_or_a_compacted_stream_is_not_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = open(dir.path()).await;
    setup(&host).await;
    host.create_view(spec("errors", "logs", ERRORS)).await.expect("view");
    let err = host.delete_plugin("jf").await.expect_err("in use");
    assert_eq!(err.code(), "plugin_in_use");
    assert!(err.message().contains("view `errors`"), "{}", err.message());
    host.delete_view("errors", false).await.expect("delete view");

    host.put_plugin("keys", wasm::read(wasm::JSON_KEY))
        .await
        .expect("plugin");
    let mut c = crate::Compaction::by_record_key(false);
    c.plugin = "keys".into();
    c.config = vec![("pointer".into(), "/id".into())];
    let config = crate::StreamConfig {
        compaction: Some(c),
        ..crate::StreamConfig::default()
    };
    host.create_stream_with("users", 1, config)
        .await
        .expect("compacted stream");
    let err = host.delete_plugin("keys").await.expect_err("in use");
    assert!(err.message().contains("stream `users`"), "{}", err.message());
    host.delete_stream("users").await.expect("delete stream");
    host.delete_plugin("keys").await.expect("unused now");
    host.delete_plugin("jf").await.expect("unused now");
    host.shutdown().await;
}
