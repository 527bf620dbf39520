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
                value: Some(Bytes::from(v.to_string())),
                headers: vec![("trace".into(), Some(Bytes::from_static(b"\x00\x01")))],
                timestamp_ms: 1_000 + i as u64,
            },
        })
        .collect()
}

fn values(out: &[Record]) -> Vec<String> {
    out.iter()
        .map(|r| String::from_utf8(r.value_bytes().to_vec()).unwrap())
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
        vec![("trace".to_string(), Some(Bytes::from_static(b"\x00\x01")))]
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
    // Its own runtime, with a deadline far beyond the shared one's 300 ms:
    // on a loaded machine growing to the cap can take longer than that, and
    // only the cap is under test here.
    let rt = Runtime::new(Limits {
        memory_bytes: 32 * 1024 * 1024,
        call_timeout: Duration::from_secs(60),
    })
    .unwrap();
    let plugin = TransformPlugin::load(&rt, "bomb", &wasm::read(wasm::MEMORY_BOMB)).unwrap();
    let mut inst = plugin.instantiate(&[]).unwrap();
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

#[test]
fn guest_sleeping_in_wasi_is_stopped_at_the_deadline_and_short_naps_work() {
    let mut inst = load(wasm::SLEEPER, "sleeper").instantiate(&[]).unwrap();
    // A short sleep inside the deadline is allowed.
    assert_eq!(values(&inst.transform(&recs(&["nap", "x"])).unwrap()), vec!["nap", "x"]);
    let started = Instant::now();
    let err = inst.transform(&recs(&["ok", "sleep"])).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, PluginError::Timeout { plugin, .. } if plugin == "sleeper"),
        "{err}"
    );
    // The deadline is 300 ms; a blocked host call must not outlive it.
    assert!(took < Duration::from_secs(2), "sleep escaped the deadline: {took:?}");
    assert!(
        took >= Duration::from_millis(250),
        "stopped before the deadline: {took:?}"
    );
    assert_eq!(values(&inst.transform(&recs(&["fine"])).unwrap()), vec!["fine"]);
}

/// A transform component whose `init` grows three linear memories by
/// `pages` 64 KiB pages each: a memory bomb no single memory shows.
fn multi_memory_bomb(pages: u32) -> Vec<u8> {
    let text = r#"
(component
  (core module $m
    (memory (export "mem") 1)
    (memory $a 0)
    (memory $b 0)
    (memory $c 0)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (i32.add (local.get 3) (i32.const 8))))
      (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then unreachable))
      (local.get $p))
    (func (export "init") (param i32 i32) (result i32)
      (if (i32.lt_s (memory.grow $a (i32.const PAGES)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (memory.grow $b (i32.const PAGES)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (memory.grow $c (i32.const PAGES)) (i32.const 0)) (then unreachable))
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "transform") (param i32 i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 1))
      (i32.store (i32.const 20) (i32.const 0))
      (i32.store (i32.const 24) (i32.const 0))
      (i32.const 16)))
  (core instance $i (instantiate $m))
  (type $config (list (tuple string string)))
  (func $init (param "config" $config) (result (result (error string)))
    (canon lift (core func $i "init") (memory (core memory $i "mem")) (realloc (core func $i "realloc"))))
  (func $transform (param "batch" (list u8)) (result (result (list u8) (error string)))
    (canon lift (core func $i "transform") (memory (core memory $i "mem")) (realloc (core func $i "realloc"))))
  (instance $t (export "init" (func $init)) (export "transform" (func $transform)))
  (export "sluice:plugin/transformer@0.1.0" (instance $t)))
"#
    .replace("PAGES", &pages.to_string());
    wat::parse_str(text).unwrap()
}

#[test]
fn memory_bomb_over_several_memories_hits_the_cap_of_the_whole_instance() {
    let rt = runtime();
    // 3 × 2 MiB fits the 32 MiB cap: the component itself is sound.
    let small = TransformPlugin::load(&rt, "memories", &multi_memory_bomb(32)).unwrap();
    small.instantiate(&[]).unwrap();
    // 3 × 16 MiB: each memory alone is under the cap, together they are not.
    let bomb = TransformPlugin::load(&rt, "memories", &multi_memory_bomb(256)).unwrap();
    let err = bomb.instantiate(&[]).err().unwrap();
    assert!(
        matches!(&err, PluginError::MemoryLimit { limit, .. } if *limit == 32 * 1024 * 1024),
        "{err}"
    );
}
