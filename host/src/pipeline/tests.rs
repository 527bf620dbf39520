//! Pipeline tests through the `Host` API with real plugins: output appears,
//! pause/resume/restart continue exactly where the durable position is, a
//! failing batch pauses the pipeline and writes nothing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_test_artifacts as wasm;

use crate::log::meta::PipelineMeta;
use crate::{Host, ReadLimits, Record, Settings};

async fn host(dir: &std::path::Path) -> Host {
    Host::open(Settings {
        data_dir: dir.to_path_buf(),
        plugin_call_timeout: Duration::from_millis(300),
        ..Settings::default()
    })
    .await
    .unwrap()
}

/// A host with streams `in` and `out` (one partition each) and pipeline
/// `p` through plugin `name` (built at `wasm_path`), running.
async fn one_to_one(dir: &std::path::Path, name: &str, wasm_path: &str) -> Host {
    let h = host(dir).await;
    h.create_stream("in", 1).await.unwrap();
    h.create_stream("out", 1).await.unwrap();
    h.put_plugin(name, wasm::read(wasm_path)).await.unwrap();
    h.create_pipeline(spec("p", name)).await.unwrap();
    h
}

fn spec(name: &str, plugin: &str) -> PipelineMeta {
    PipelineMeta {
        id: 0,
        name: name.into(),
        input: "in".into(),
        output: "out".into(),
        plugin: plugin.into(),
        plugin_version: None,
        config: vec![],
        batch_records: 7,
        paused: false,
        created_ms: 0,
    }
}

fn recs(values: &[String]) -> Vec<Record> {
    values
        .iter()
        .map(|v| Record {
            value: Some(Bytes::from(v.clone())),
            ..Record::default()
        })
        .collect()
}

/// All values of a stream, partition by partition.
async fn all_values(h: &Host, stream: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts = h.describe_stream(stream).unwrap().partitions.len() as u32;
    for p in 0..parts {
        let limits = ReadLimits {
            max_records: 100_000,
            max_bytes: usize::MAX,
        };
        for r in h.read(stream, p, 0, limits).await.unwrap().records {
            out.push(String::from_utf8(r.record.value_bytes().to_vec()).unwrap());
        }
    }
    out
}

async fn wait_for(h: &Host, stream: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = all_values(h, stream).await;
        if v.len() >= n || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_exactly_once_across_pause_resume_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path()).await;
    h.create_stream("in", 2).await.unwrap();
    h.create_stream("out", 1).await.unwrap();
    h.put_plugin("upper", wasm::read(wasm::UPPER)).await.unwrap();
    let st = h.create_pipeline(spec("p", "upper")).await.unwrap();
    assert_eq!(st.state, "running");

    let batch = |from: usize, to: usize| (from..to).map(|i| format!("v{i}")).collect::<Vec<_>>();
    h.append("in", 0, &recs(&batch(0, 30))).await.unwrap();
    h.append("in", 1, &recs(&batch(30, 45))).await.unwrap();
    h.append("in", 0, &recs(&["drop".to_string()])).await.unwrap();
    let got = wait_for(&h, "out", 45).await;
    assert_eq!(got.len(), 45, "{got:?}");

    let st = h.pause_pipeline("p").await.unwrap();
    assert_eq!(st.state, "paused");
    assert_eq!(st.partitions.iter().map(|p| p.lag).sum::<u64>(), 0);
    h.append("in", 1, &recs(&batch(45, 60))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(all_values(&h, "out").await.len(), 45, "a paused pipeline wrote output");
    h.resume_pipeline("p").await.unwrap();
    assert_eq!(wait_for(&h, "out", 60).await.len(), 60);

    // Restart: no re-processing, and new input continues.
    h.shutdown().await;
    let h = host(dir.path()).await;
    h.append("in", 0, &recs(&batch(60, 70))).await.unwrap();
    let got = wait_for(&h, "out", 70).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let got_after = all_values(&h, "out").await;
    assert_eq!(got, got_after, "output kept growing after all input was processed");
    let mut sorted = got_after.clone();
    sorted.sort();
    let mut want: Vec<String> = (0..70).map(|i| format!("V{i}")).collect();
    want.sort();
    assert_eq!(sorted, want, "every input exactly once, upper-cased, `drop` filtered");
    let st = h.pipeline_status("p").await.unwrap();
    assert_eq!(st.state, "running");
    assert_eq!(st.partitions.iter().map(|p| p.position).sum::<u64>(), 31 + 40 - 1 + 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_pauses_the_pipeline_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = one_to_one(dir.path(), "panicker", wasm::PANICKER).await;
    h.append("in", 0, &recs(&["a".into(), "b".into()])).await.unwrap();
    wait_for(&h, "out", 2).await;
    h.append("in", 0, &recs(&["c".into(), "panic".into(), "d".into()]))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = h.pipeline_status("p").await.unwrap();
        if st.state != "running" || Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(st.state, "failed");
    let err = st.error.unwrap();
    assert!(err.contains("panicker") && err.contains("offset 2"), "{err}");
    assert_eq!(
        all_values(&h, "out").await,
        vec!["a", "b"],
        "nothing of the failing batch was written"
    );
    assert_eq!(st.partitions[0].position, 2);

    // In use: the plugin and both streams cannot be deleted.
    assert_eq!(h.delete_plugin("panicker").await.unwrap_err().code(), "plugin_in_use");
    assert_eq!(h.delete_stream("in").await.unwrap_err().code(), "stream_in_use");
    // The pause is durable: a restart does not retry the failing batch.
    h.shutdown().await;
    let h = host(dir.path()).await;
    assert_eq!(h.pipeline_status("p").await.unwrap().state, "paused");
    h.delete_pipeline("p").await.unwrap();
    h.delete_plugin("panicker").await.unwrap();
    assert_eq!(h.pipeline_status("p").await.unwrap_err().code(), "pipeline_not_found");
    h.shutdown().await;
}

#[tokio::test]
async fn bad_pipeline_specs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path()).await;
    h.create_stream("in", 1).await.unwrap();
    h.create_stream("out", 1).await.unwrap();
    h.put_plugin("upper", wasm::read(wasm::UPPER)).await.unwrap();
    h.put_plugin("policy", wasm::read(wasm::KEEP_ALL_POLICY)).await.unwrap();
    let cases = [
        (
            PipelineMeta {
                plugin: "nope".into(),
                ..spec("a", "upper")
            },
            "plugin_not_found",
        ),
        (spec("a", "policy"), "wrong_plugin_world"),
        (
            PipelineMeta {
                input: "missing".into(),
                ..spec("a", "upper")
            },
            "stream_not_found",
        ),
        (
            PipelineMeta {
                output: "in".into(),
                ..spec("a", "upper")
            },
            "invalid_request",
        ),
        (
            PipelineMeta {
                batch_records: 0,
                ..spec("a", "upper")
            },
            "invalid_request",
        ),
        (spec("bad name", "upper"), "invalid_request"),
    ];
    for (s, code) in cases {
        let name = s.name.clone();
        assert_eq!(h.create_pipeline(s).await.unwrap_err().code(), code, "{name}");
    }
    h.create_pipeline(spec("a", "upper")).await.unwrap();
    assert_eq!(
        h.create_pipeline(spec("a", "upper")).await.unwrap_err().code(),
        "pipeline_exists"
    );
    assert_eq!(h.list_pipelines().await.len(), 1);
    h.shutdown().await;
}

/// Input and output streams that grow: the pipeline restarts its tasks,
/// reads the new input partitions and writes to the new output ones, and
/// processes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_follows_streams_that_grow() {
    let dir = tempfile::tempdir().unwrap();
    let h = one_to_one(dir.path(), "upper", wasm::UPPER).await;
    let batch = |from: usize, to: usize| (from..to).map(|i| format!("v{i}")).collect::<Vec<_>>();
    h.append("in", 0, &recs(&batch(0, 20))).await.unwrap();
    assert_eq!(wait_for(&h, "out", 20).await.len(), 20);

    h.add_partitions("in", 3, false).await.unwrap();
    h.add_partitions("out", 2, false).await.unwrap();
    h.append("in", 2, &recs(&batch(20, 30))).await.unwrap();
    h.append("in", 0, &recs(&batch(30, 35))).await.unwrap();
    h.append("in", 1, &recs(&batch(35, 40))).await.unwrap();
    let got = wait_for(&h, "out", 40).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut after = all_values(&h, "out").await;
    assert_eq!(got, after, "output kept growing after all input was processed");
    after.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("V{i}")).collect();
    want.sort();
    assert_eq!(after, want, "every input exactly once");
    // Input partitions 0 and 2 write to output partition 0 (2 % 2), input
    // partition 1 to the new output partition 1.
    let ends: Vec<u64> = h
        .describe_stream("out")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.end)
        .collect();
    assert_eq!(ends, vec![35, 5]);
    let st = h.pipeline_status("p").await.unwrap();
    assert_eq!(st.partitions.len(), 3, "{st:?}");
    h.shutdown().await;
}

/// Input records deleted before the pipeline read them: it goes on from
/// the partition's new start instead of failing, and counts what it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_goes_on_past_input_records_deleted_before_it_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let h = one_to_one(dir.path(), "upper", wasm::UPPER).await;
    h.pause_pipeline("p").await.unwrap();
    let batch = |from: usize, to: usize| (from..to).map(|i| format!("v{i}")).collect::<Vec<_>>();
    h.append("in", 0, &recs(&batch(0, 20))).await.unwrap();
    h.delete_records("in", 0, Some(12)).await.unwrap();
    h.resume_pipeline("p").await.unwrap();
    let got = wait_for(&h, "out", 8).await;
    assert_eq!(got, (12..20).map(|i| format!("V{i}")).collect::<Vec<_>>());
    let st = h.pipeline_status("p").await.unwrap();
    assert_eq!((st.state, st.records_skipped), ("running", 12), "{st:?}");
    assert_eq!(st.partitions[0].position, 20);
    // Durable: after a restart it does not go back.
    h.shutdown().await;
    let h = host(dir.path()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(all_values(&h, "out").await.len(), 8);
    assert_eq!(h.pipeline_status("p").await.unwrap().state, "running");
    h.shutdown().await;
}
