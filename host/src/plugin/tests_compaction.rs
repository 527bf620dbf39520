//! Compaction policy plugins run for real: decisions per record, world and
//! kind checks, init errors, and the registry handing out compaction plugins.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_test_artifacts as wasm;

use super::*;
use crate::log::{OffsetRecord, Record};

fn runtime() -> Arc<Runtime> {
    Runtime::new(Limits {
        memory_bytes: 32 * 1024 * 1024,
        call_timeout: Duration::from_millis(500),
    })
    .unwrap()
}

fn rec(offset: u64, key: Option<&str>, value: &str) -> OffsetRecord {
    OffsetRecord {
        offset,
        record: Record {
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers: Vec::new(),
            timestamp_ms: 1,
        },
    }
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn json_key_decides_keys_tombstones_and_missing_fields() {
    let rt = runtime();
    let plugin = CompactionPlugin::load(&rt, "json-key", &wasm::read(wasm::JSON_KEY)).unwrap();
    let mut inst = plugin
        .instantiate(&config(&[
            ("pointer", "/id"),
            ("tombstone_when", "/deleted"),
            ("on_missing", "record-key"),
        ]))
        .unwrap();
    let records = vec![
        rec(0, None, r#"{"id":"a","v":1}"#),
        rec(1, None, r#"{"id":42}"#),
        rec(2, None, r#"{"id":"a","deleted":true}"#),
        rec(3, Some("rk"), "not json"),
        rec(4, None, "not json either"),
    ];
    let d = inst.decide(&records).unwrap();
    assert_eq!(
        d,
        vec![
            Decision::Key(b"a".to_vec()),
            Decision::Key(b"42".to_vec()),
            Decision::Tombstone(b"a".to_vec()),
            Decision::Key(b"rk".to_vec()),
            Decision::KeepAlways,
        ]
    );
    // The instance is reused across batches.
    assert_eq!(inst.decide(&records[..1]).unwrap(), vec![Decision::Key(b"a".to_vec())]);
    assert_eq!(inst.decide(&[]).unwrap(), Vec::<Decision>::new());
}

#[test]
fn keep_all_policy_keeps_everything() {
    let plugin = CompactionPlugin::load(&runtime(), "keep", &wasm::read(wasm::KEEP_ALL_POLICY)).unwrap();
    let mut inst = plugin.instantiate(&[]).unwrap();
    let d = inst.decide(&[rec(5, Some("k"), "x"), rec(6, None, "y")]).unwrap();
    assert_eq!(d, vec![Decision::KeepAlways, Decision::KeepAlways]);
}

#[test]
fn a_bad_config_and_the_wrong_world_are_refused_with_the_plugin_named() {
    let rt = runtime();
    let plugin = CompactionPlugin::load(&rt, "json-key", &wasm::read(wasm::JSON_KEY)).unwrap();
    let err = plugin.instantiate(&config(&[("pointr", "/id")])).err().unwrap();
    assert!(
        matches!(&err, PluginError::InitFailed { plugin, message } if plugin == "json-key" && message.contains("pointr")),
        "{err}"
    );
    let err = CompactionPlugin::load(&rt, "upper", &wasm::read(wasm::UPPER))
        .err()
        .unwrap();
    assert!(
        matches!(&err, PluginError::WrongWorld { plugin, expected: "compaction", found } if plugin == "upper" && found.contains("transform")),
        "{err}"
    );
}

#[test]
fn the_registry_hands_out_compaction_plugins_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path(), runtime()).unwrap();
    let info = reg
        .put("keys", &wasm::read(wasm::JSON_KEY), &Default::default())
        .unwrap();
    assert_eq!(info.kind, PluginKind::Compaction);
    reg.put("up", &wasm::read(wasm::UPPER), &Default::default()).unwrap();
    let p = reg.compaction("keys", None).unwrap();
    let mut inst = p.instantiate(&config(&[("pointer", "/k")])).unwrap();
    assert_eq!(
        inst.decide(&[rec(0, None, r#"{"k":1}"#)]).unwrap(),
        vec![Decision::Key(b"1".to_vec())]
    );
    assert!(matches!(
        reg.compaction("up", None),
        Err(RegistryError::WrongKind {
            wanted: PluginKind::Compaction,
            ..
        })
    ));
    assert!(matches!(
        reg.transform("keys", Some(1)),
        Err(RegistryError::WrongKind {
            wanted: PluginKind::Transform,
            ..
        })
    ));
    // After a restart the registry compiles it again from disk.
    drop(reg);
    let reg = Registry::open(dir.path(), runtime()).unwrap();
    assert_eq!(reg.compaction("keys", Some(1)).unwrap().name(), "keys");
}

#[test]
fn a_trapping_or_spinning_policy_fails_with_its_error_and_recovers() {
    let plugin = CompactionPlugin::load(&runtime(), "bad", &wasm::read(wasm::BAD_POLICY)).unwrap();
    let mut inst = plugin.instantiate(&[]).unwrap();
    let ok = [rec(1, Some("a"), "x"), rec(2, None, "y")];
    let keys = vec![Decision::Key(b"a".to_vec()), Decision::KeepAlways];
    assert_eq!(inst.decide(&ok).unwrap(), keys);
    let err = inst.decide(&[rec(3, None, "panic")]).unwrap_err();
    assert!(
        matches!(&err, PluginError::Trapped { plugin, .. } if plugin == "bad"),
        "{err}"
    );
    let err = inst.decide(&[rec(4, None, "loop")]).unwrap_err();
    assert!(
        matches!(&err, PluginError::Timeout { plugin, .. } if plugin == "bad"),
        "{err}"
    );
    let err = inst.decide(&[rec(5, None, "fail")]).unwrap_err();
    assert!(
        matches!(&err, PluginError::Failed { plugin, message } if plugin == "bad" && message.contains("asked to fail")),
        "{err}"
    );
    // A fresh instance takes over after each trap; the input is untouched.
    assert_eq!(inst.decide(&ok).unwrap(), keys);
    assert_eq!(ok[0].record.value_bytes(), b"x");
}

#[test]
fn load_any_finds_the_world_from_the_bytes() {
    let rt = runtime();
    let kind = |path: &str| load_any(&rt, "p", &wasm::read(path)).map(|c| c.kind());
    assert_eq!(kind(wasm::UPPER).unwrap(), PluginKind::Transform);
    assert_eq!(kind(wasm::JSON_KEY).unwrap(), PluginKind::Compaction);
    let Ok(Compiled::Compaction(policy)) = load_any(&rt, "json-key", &wasm::read(wasm::JSON_KEY)) else {
        panic!("json-key is a compaction plugin");
    };
    let mut inst = policy.instantiate(&config(&[("pointer", "/id")])).unwrap();
    let got = inst.decide(&[rec(0, None, r#"{"id":"a"}"#)]).unwrap();
    assert_eq!(got, vec![Decision::Key(b"a".to_vec())]);
    let err = load_any(&rt, "junk", b"not wasm").err().unwrap();
    assert!(matches!(err, PluginError::Invalid { .. }), "{err}");
}
