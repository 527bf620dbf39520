//! Host-side tests of the first-party plugins (`plugins/redact`, `plugins/fan-out`,
//! `plugins/json-key`), built for `wasm32-wasip2` and run through the real runtime: their
//! behaviour across the boundary, and their refusal of bad config with a clear message.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use sluice_test_artifacts as wasm;

use super::*;
use crate::log::{OffsetRecord, Record};

fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(Limits {
            memory_bytes: 32 * 1024 * 1024,
            call_timeout: Duration::from_secs(2),
        })
        .unwrap()
    })
    .clone()
}

fn load(path: &str, name: &str) -> TransformPlugin {
    TransformPlugin::load(&runtime(), name, &wasm::read(path)).unwrap()
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Records valued `values`, at offsets from 100, keyed `k0`.., with timestamps from 1000 and two headers.
fn recs(values: &[&str]) -> Vec<OffsetRecord> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| OffsetRecord {
            offset: 100 + i as u64,
            record: Record {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(v.to_string())),
                headers: vec![
                    ("trace".into(), Some(Bytes::from_static(b"\x00\x01"))),
                    ("source".into(), Some(Bytes::from(format!("s{i}")))),
                ],
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

fn header<'a>(r: &'a Record, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// Asserts that instantiating `plugin` with `pairs` is refused with a message containing `needle`.
fn assert_refused(plugin: &TransformPlugin, pairs: &[(&str, &str)], needle: &str) {
    let err = plugin
        .instantiate(&config(pairs))
        .err()
        .expect("config should be refused");
    assert!(
        matches!(&err, PluginError::InitFailed { plugin: p, message } if p == plugin.name() && message.contains(needle)),
        "config {pairs:?}: expected a refusal mentioning {needle:?}, got: {err}"
    );
    assert!(!err.is_runtime_failure(), "{err}");
}

#[test]
fn redact_masks_fields_keeping_key_headers_timestamp_and_the_rest() {
    let plugin = load(wasm::REDACT, "redact");
    let mut inst = plugin
        .instantiate(&config(&[("fields", "/user/email, /card")]))
        .unwrap();
    let input = recs(&[
        r#"{"user":{"name":"ann","email":"ann@example.com"},"card":"4111 1111","n":12345678901234567890123}"#,
        r#"{ "nothing": "to redact" }"#,
        "not json",
    ]);
    let out = inst.transform(&input).unwrap();
    assert_eq!(
        values(&out),
        vec![
            r#"{"user":{"name":"ann","email":"***"},"card":"***","n":12345678901234567890123}"#,
            r#"{ "nothing": "to redact" }"#,
            "not json",
        ]
    );
    for (o, i) in out.iter().zip(&input) {
        assert_eq!(o.key, i.record.key);
        assert_eq!(o.headers, i.record.headers);
        assert_eq!(o.timestamp_ms, i.record.timestamp_ms);
    }
    // Output offsets are those of the input records.
    let offsets: Vec<u64> = inst
        .transform_with_offsets(&input)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, vec![100, 101, 102]);
}

#[test]
fn redact_remove_mode_custom_mask_and_on_invalid() {
    let plugin = load(wasm::REDACT, "redact");
    let remove = config(&[("fields", "/secret,/list/0"), ("mode", "remove")]);
    let out = plugin
        .instantiate(&remove)
        .unwrap()
        .transform(&recs(&[r#"{"secret":1,"list":["a","b"],"ok":true}"#]))
        .unwrap();
    assert_eq!(values(&out), vec![r#"{"list":["b"],"ok":true}"#]);

    let masked = config(&[("fields", "/pin"), ("mask", "[hidden]")]);
    let out = plugin
        .instantiate(&masked)
        .unwrap()
        .transform(&recs(&[r#"{"pin":1234}"#]))
        .unwrap();
    assert_eq!(values(&out), vec![r#"{"pin":"[hidden]"}"#]);

    let input = recs(&[r#"{"pin":1}"#, "<xml/>"]);
    let drop = config(&[("fields", "/pin"), ("on_invalid", "drop")]);
    let out = plugin.instantiate(&drop).unwrap().transform(&input).unwrap();
    assert_eq!(values(&out), vec![r#"{"pin":"***"}"#]);

    let fail = config(&[("fields", "/pin"), ("on_invalid", "fail")]);
    let mut inst = plugin.instantiate(&fail).unwrap();
    let err = inst.transform(&input).unwrap_err();
    assert!(
        matches!(&err, PluginError::Failed { message, .. } if message.starts_with("record at offset 101: value is not JSON")),
        "{err}"
    );
    // A failed batch leaves the instance usable.
    assert_eq!(
        values(&inst.transform(&recs(&[r#"{"pin":2}"#])).unwrap()),
        vec![r#"{"pin":"***"}"#]
    );
}

#[test]
fn redact_refuses_bad_config_clearly() {
    let plugin = load(wasm::REDACT, "redact");
    assert_refused(&plugin, &[], "missing required config `fields`");
    assert_refused(&plugin, &[("fields", "user.email")], "must start with '/'");
    assert_refused(&plugin, &[("fields", "/a,")], "empty entry");
    assert_refused(&plugin, &[("fields", "/a~x")], "'~' must be followed by 0 or 1");
    assert_refused(&plugin, &[("fields", "/a"), ("mode", "hash")], "unknown `mode` `hash`");
    assert_refused(
        &plugin,
        &[("fields", "/a"), ("on_invalid", "skip")],
        "(pass, drop, fail)",
    );
    assert_refused(
        &plugin,
        &[("fields", "/a"), ("on_invlaid", "fail")],
        "unknown config `on_invlaid`",
    );
}

#[test]
fn fan_out_emits_one_record_per_element_with_its_index() {
    let plugin = load(wasm::FAN_OUT, "fan-out");
    let mut inst = plugin.instantiate(&config(&[("path", "/items")])).unwrap();
    let input = recs(&[
        r#"{"order":7,"items":[{"sku":"a", "qty":2},"b",3]}"#,
        r#"{"items":[]}"#,
        r#"{"items":"not an array"}"#,
        r#"{"items":[null]}"#,
    ]);
    let out = inst.transform_with_offsets(&input).unwrap();
    let got: Vec<(u64, &str, &str)> = out
        .iter()
        .map(|r| {
            let index = std::str::from_utf8(header(&r.record, "sluice-fanout-index").unwrap()).unwrap();
            (r.offset, std::str::from_utf8(r.record.value_bytes()).unwrap(), index)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (100, r#"{"sku":"a","qty":2}"#, "0"),
            (100, r#""b""#, "1"),
            (100, "3", "2"),
            (103, "null", "0"),
        ]
    );
    for r in &out {
        let source = &input[(r.offset - 100) as usize].record;
        assert_eq!(r.record.key, source.key);
        assert_eq!(r.record.timestamp_ms, source.timestamp_ms);
        assert_eq!(
            r.record.headers[..2],
            source.headers[..],
            "input headers come first, unchanged"
        );
        assert_eq!(r.record.headers.len(), 3);
    }
}

#[test]
fn fan_out_whole_value_on_invalid_and_max_elements() {
    let plugin = load(wasm::FAN_OUT, "fan-out");
    let input = recs(&["[1,2]", r#"{"a":1}"#, "not json"]);
    let out = plugin.instantiate(&[]).unwrap().transform(&input).unwrap();
    assert_eq!(
        values(&out),
        vec!["1", "2"],
        "by default what is not an array is dropped"
    );

    let pass = config(&[("on_invalid", "pass")]);
    let out = plugin.instantiate(&pass).unwrap().transform(&input).unwrap();
    assert_eq!(values(&out), vec!["1", "2", r#"{"a":1}"#, "not json"]);
    assert_eq!(
        header(&out[2], "sluice-fanout-index"),
        None,
        "passed records are unchanged"
    );

    let fail = config(&[("on_invalid", "fail")]);
    let err = plugin.instantiate(&fail).unwrap().transform(&input).unwrap_err();
    assert!(
        matches!(&err, PluginError::Failed { message, .. } if message == "record at offset 101: the value is not a JSON array"),
        "{err}"
    );

    let capped = config(&[("max_elements", "2"), ("on_invalid", "pass")]);
    let mut inst = plugin.instantiate(&capped).unwrap();
    let err = inst.transform(&recs(&["[1,2]", "[1,2,3]"])).unwrap_err();
    assert!(
        matches!(&err, PluginError::Failed { message, .. }
            if message == "record at offset 101: the value has 3 elements, more than `max_elements` (2)"),
        "{err}"
    );
    // The default cap bounds the output of one record to 10000.
    let big = format!("[{}0]", "0,".repeat(10_000));
    let err = plugin.instantiate(&[]).unwrap().transform(&recs(&[&big])).unwrap_err();
    assert!(
        err.to_string()
            .contains("10001 elements, more than `max_elements` (10000)"),
        "{err}"
    );
    let at_cap = format!("[{}0]", "0,".repeat(9_999));
    assert_eq!(
        plugin
            .instantiate(&[])
            .unwrap()
            .transform(&recs(&[&at_cap]))
            .unwrap()
            .len(),
        10_000
    );
}

#[test]
fn fan_out_refuses_bad_config_clearly() {
    let plugin = load(wasm::FAN_OUT, "fan-out");
    assert_refused(&plugin, &[("path", "items")], "must be empty or start with '/'");
    assert_refused(
        &plugin,
        &[("max_elements", "0")],
        "`max_elements` must be a whole number of at least 1",
    );
    assert_refused(&plugin, &[("max_elements", "-5")], "got `-5`");
    assert_refused(&plugin, &[("on_invalid", "keep")], "(drop, pass, fail)");
    assert_refused(&plugin, &[("paht", "/items")], "unknown config `paht`");
}

#[test]
fn json_key_is_a_compaction_policy_not_a_transform() {
    let err = TransformPlugin::load(&runtime(), "json-key", &wasm::read(wasm::JSON_KEY))
        .err()
        .unwrap();
    assert!(
        matches!(&err, PluginError::WrongWorld { plugin, found, .. } if plugin == "json-key" && found.contains("compaction")),
        "{err}"
    );
}

/// The example of `guest-sdk/README.md` (`examples/grep-plugin`), built and run for real.
#[test]
fn sdk_guide_example_works_as_documented() {
    let plugin = load(wasm::GREP_PLUGIN, "grep");
    assert_refused(&plugin, &[], "needle");
    let mut inst = plugin.instantiate(&config(&[("needle", "err")])).unwrap();
    let out = inst.transform(&recs(&["an error", "fine", "err again"])).unwrap();
    assert_eq!(values(&out), vec!["AN ERROR", "ERR AGAIN"]);
}
