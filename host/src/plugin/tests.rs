//! Runtime tests with real plugins built from `plugins/` (see
//! `tests/artifacts`): behaviour, and the sandbox stopping bad plugins with
//! typed errors while the host and later calls keep working.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_test_artifacts as wasm;

use super::*;
use crate::log::{OffsetRecord, Record};

fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(Limits {
            memory_bytes: 32 * 1024 * 1024,
            call_timeout: Duration::from_millis(300),
        })
        .unwrap()
    })
    .clone()
}

fn load(path: &str, name: &str) -> TransformPlugin {
    TransformPlugin::load(&runtime(), name, &wasm::read(path)).unwrap()
}

fn recs(values: &[&str]) -> Vec<OffsetRecord> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| OffsetRecord {
            offset: 100 + i as u64,
            record: Record {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Bytes::from(v.to_string()),
                headers: vec![("trace".into(), Bytes::from_static(b"\x00\x01"))],
                timestamp_ms: 1_000 + i as u64,
            },
        })
        .collect()
}

fn values(out: &[Record]) -> Vec<String> {
    out.iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect()
}

#[test]
fn upper_maps_and_filters_keeping_keys_headers_and_timestamps() {
    let mut inst = load(wasm::UPPER, "upper").instantiate(&[]).unwrap();
    let input = recs(&["hello", "drop", "world"]);
    let out = inst.transform(&input).unwrap();
    assert_eq!(values(&out), vec!["HELLO", "WORLD"]);
    assert_eq!(out[1].key.as_deref(), Some(&b"k2"[..]));
    assert_eq!(
        out[1].headers,
        vec![("trace".to_string(), Bytes::from_static(b"\x00\x01"))]
    );
    assert_eq!(out[1].timestamp_ms, 1_002);
    // The same instance serves many batches.
    for _ in 0..50 {
        assert_eq!(values(&inst.transform(&recs(&["a"])).unwrap()), vec!["A"]);
    }
    assert!(inst.transform(&[]).unwrap().is_empty());
}

#[test]
fn json_filter_validates_config_and_filters() {
    let plugin = load(wasm::JSON_FILTER, "json-filter");
    let err = plugin.instantiate(&[]).err().unwrap();
    assert!(
        matches!(&err, PluginError::InitFailed { message, .. } if message.contains("field")),
        "{err}"
    );
    let bad_op = [("field".into(), "/a".into()), ("op".into(), "like".into())];
    assert!(matches!(
        plugin.instantiate(&bad_op),
        Err(PluginError::InitFailed { .. })
    ));
    let cfg = [("field".into(), "/level".into()), ("value".into(), "error".into())];
    let mut inst = plugin.instantiate(&cfg).unwrap();
    let input = recs(&[
        r#"{"level":"error","n":1}"#,
        r#"{"level":"info"}"#,
        "not json",
        r#"{"level":"error","n":2}"#,
    ]);
    let out = inst.transform(&input).unwrap();
    assert_eq!(
        values(&out),
        vec![r#"{"level":"error","n":1}"#, r#"{"level":"error","n":2}"#]
    );
    let gt = [
        ("field".into(), "/n".into()),
        ("op".into(), "gt".into()),
        ("value".into(), "1".into()),
    ];
    let out = plugin.instantiate(&gt).unwrap().transform(&input).unwrap();
    assert_eq!(values(&out), vec![r#"{"level":"error","n":2}"#]);
}

#[test]
fn infinite_loop_is_stopped_by_the_deadline_and_the_instance_recovers() {
    let mut inst = load(wasm::LOOPER, "looper").instantiate(&[]).unwrap();
    let started = Instant::now();
    let err = inst.transform(&recs(&["ok", "loop"])).unwrap_err();
    assert!(
        matches!(&err, PluginError::Timeout { plugin, .. } if plugin == "looper"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "deadline not enforced: {:?}",
        started.elapsed()
    );
    assert_eq!(values(&inst.transform(&recs(&["fine"])).unwrap()), vec!["fine"]);
}

#[test]
fn memory_bomb_hits_the_cap() {
    let mut inst = load(wasm::MEMORY_BOMB, "bomb").instantiate(&[]).unwrap();
    let err = inst.transform(&recs(&["bomb"])).unwrap_err();
    assert!(
        matches!(&err, PluginError::MemoryLimit { limit, .. } if *limit == 32 * 1024 * 1024),
        "{err}"
    );
    assert_eq!(values(&inst.transform(&recs(&["calm"])).unwrap()), vec!["calm"]);
}

#[test]
fn panics_errors_and_refused_config_are_typed() {
    let plugin = load(wasm::PANICKER, "panicker");
    let refuse = [("refuse".into(), "yes".into())];
    let err = plugin.instantiate(&refuse).err().unwrap();
    assert!(
        matches!(&err, PluginError::InitFailed { message, .. } if message.contains("refusing")),
        "{err}"
    );
    let mut inst = plugin.instantiate(&[]).unwrap();
    let err = inst.transform(&recs(&["a", "panic"])).unwrap_err();
    assert!(matches!(err, PluginError::Trapped { .. }), "{err}");
    let err = inst.transform(&recs(&["a", "fail"])).unwrap_err();
    assert!(
        matches!(&err, PluginError::Failed { message, .. } if message == "record at offset 101: asked to fail"),
        "{err}"
    );
    assert_eq!(values(&inst.transform(&recs(&["a"])).unwrap()), vec!["a"]);
}

#[test]
fn wrong_world_and_garbage_are_refused_at_load() {
    let rt = runtime();
    let err = TransformPlugin::load(&rt, "policy", &wasm::read(wasm::KEEP_ALL_POLICY))
        .err()
        .unwrap();
    assert!(
        matches!(&err, PluginError::WrongWorld { found, .. } if found.contains("compaction")),
        "{err}"
    );
    let err = TransformPlugin::load(&rt, "junk", b"\0asm garbage").err().unwrap();
    assert!(matches!(err, PluginError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("`junk`"));
    // A core module (not a component) is refused too.
    let err = TransformPlugin::load(&rt, "core", b"\0asm\x01\0\0\0").err().unwrap();
    assert!(matches!(err, PluginError::Invalid { .. }), "{err}");
}

#[test]
fn other_version_of_the_world_is_named_in_the_error() {
    let exports = vec!["sluice:plugin/transformer@0.9.0".to_string()];
    let err = transform::check_world_for_test("p", &exports).unwrap_err();
    assert!(
        err.to_string().contains("0.9.0") && err.to_string().contains("0.1.0"),
        "{err}"
    );
}
