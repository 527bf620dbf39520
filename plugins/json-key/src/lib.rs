//! json-key: a compaction policy whose key is a field of the record's JSON value.
//!
//! Config:
//! * `pointer` (required): JSON pointer (RFC 6901) to the key field, e.g. `/id` or `/user/id`
//!   (`""` makes the whole value the key). A string gives its text as raw UTF-8 (no quotes or
//!   escapes); any other value gives its canonical JSON text: no whitespace, object keys sorted
//!   by code point (the last of duplicate keys wins), strings with serde_json's minimal escapes,
//!   integers exactly as written (never rounded, so distinct ids never collide), other numbers
//!   in shortest round-trip form (`1.50` and `15e-1` are both `1.5`). So the string `"42"` and
//!   the number `42` are the same key, while `1` and `1.0` are not.
//! * `tombstone_when` (optional): JSON pointer to a flag; when the value there is the JSON
//!   boolean `true`, the record is a tombstone for its key: older records with the key are
//!   deleted, and the tombstone itself after `delete_retention`. With this option set, a value
//!   that is the JSON document `null` is a tombstone too; it has no key field, so its key comes
//!   from `on_missing = record-key` (with `keep` or `drop` it is kept or dropped instead).
//! * `on_missing`: what to do with a record whose value has nothing usable at `pointer` (the
//!   field is absent, the value is not JSON, or the key is nested more than 128 levels deep):
//!   `keep` (default: never removed by compaction), `drop` (removed at the next compaction), or
//!   `record-key` (use the record's own key; kept if it has none).
//!
//! Deciding never fails a batch: compaction must make progress whatever the records hold.
//! Unknown config keys are refused, so a misspelt option cannot silently fall back to its
//! default.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use sluice_sdk::json_pointer::{self, PointerError, array_index};
use sluice_sdk::{Config, Decision, Record, compaction_policy};

const KNOWN: &[&str] = &["pointer", "tombstone_when", "on_missing"];
/// Deepest nesting rendered in a canonical key.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnMissing {
    Keep,
    Drop,
    RecordKey,
}

#[derive(Debug)]
struct Policy {
    /// Reference tokens of `pointer`, unescaped.
    key: Vec<String>,
    /// Reference tokens of `tombstone_when`, unescaped.
    tombstone_when: Option<Vec<String>>,
    on_missing: OnMissing,
}

static POLICY: OnceLock<Policy> = OnceLock::new();

fn parse_config(config: &Config) -> Result<Policy, String> {
    if let Some((key, _)) = config.iter().find(|(k, _)| !KNOWN.contains(k)) {
        return Err(format!("unknown config `{key}` (known: {})", KNOWN.join(", ")));
    }
    let key = parse_pointer(config.require("pointer")?).map_err(|e| format!("`pointer`: {e}"))?;
    let tombstone_when = match config.get("tombstone_when") {
        None => None,
        Some(p) => Some(parse_pointer(p).map_err(|e| format!("`tombstone_when`: {e}"))?),
    };
    let on_missing = match config.get("on_missing").unwrap_or("keep") {
        "keep" => OnMissing::Keep,
        "drop" => OnMissing::Drop,
        "record-key" => OnMissing::RecordKey,
        other => return Err(format!("unknown `on_missing` `{other}` (keep, drop, record-key)")),
    };
    Ok(Policy {
        key,
        tombstone_when,
        on_missing,
    })
}

/// The reference tokens of a JSON pointer, unescaped (`""` has none).
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    json_pointer::tokens(pointer).map_err(|e| match e {
        PointerError::NoLeadingSlash => {
            format!("`{pointer}` is not a JSON pointer: it must be empty or start with '/' (e.g. `/id`)")
        }
        PointerError::BadEscape => format!("`{pointer}` is not a valid JSON pointer: '~' must be followed by 0 or 1"),
    })
}

/// The value `tokens` names in `doc`, if any (the last of duplicate keys wins, as in serde_json).
fn find<'a>(doc: &'a RawValue, tokens: &[String]) -> Option<&'a RawValue> {
    let mut cur = doc;
    for token in tokens {
        let text: &'a str = cur.get();
        cur = match text.as_bytes().first() {
            Some(b'{') => serde_json::from_str::<BTreeMap<String, &'a RawValue>>(text)
                .ok()?
                .remove(token.as_str())?,
            Some(b'[') => *serde_json::from_str::<Vec<&'a RawValue>>(text)
                .ok()?
                .get(array_index(token)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The compaction key for a key field: a string's text, or another value's canonical JSON.
fn key_bytes(v: &RawValue) -> Option<Vec<u8>> {
    if v.get().starts_with('"') {
        return serde_json::from_str::<String>(v.get()).ok().map(String::into_bytes);
    }
    let mut out = String::new();
    canonical(v, 0, &mut out)?;
    Some(out.into_bytes())
}

/// Appends `v` as canonical JSON; `None` if it is nested too deeply or holds an invalid string.
fn canonical(v: &RawValue, depth: usize, out: &mut String) -> Option<()> {
    let text = v.get();
    match text.as_bytes().first()? {
        b'{' | b'[' if depth >= MAX_DEPTH => return None,
        b'{' => {
            let members = serde_json::from_str::<BTreeMap<String, &RawValue>>(text).ok()?;
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).ok()?);
                out.push(':');
                canonical(value, depth + 1, out)?;
            }
            out.push('}');
        }
        b'[' => {
            let items = serde_json::from_str::<Vec<&RawValue>>(text).ok()?;
            out.push('[');
            for (i, value) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(value, depth + 1, out)?;
            }
            out.push(']');
        }
        b'"' => {
            let s = serde_json::from_str::<String>(text).ok()?;
            out.push_str(&serde_json::to_string(&s).ok()?);
        }
        b'-' | b'0'..=b'9' => out.push_str(&canonical_number(text)),
        // true, false, null
        _ => out.push_str(text),
    }
    Some(())
}

/// Integers as written; other numbers in shortest round-trip form when finite as an f64.
fn canonical_number(text: &str) -> String {
    if text.bytes().all(|b| b == b'-' || b.is_ascii_digit()) {
        return text.to_string();
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => serde_json::to_string(&f).unwrap_or_else(|_| text.to_string()),
        _ => text.to_string(),
    }
}

fn init(config: &Config) -> Result<(), String> {
    let p = parse_config(config)?;
    let _ = POLICY.set(p);
    Ok(())
}

fn decide(p: &Policy, record: &Record) -> Decision {
    let doc = serde_json::from_slice::<&RawValue>(record.value()).ok();
    let null_doc = doc.is_some_and(|d| d.get() == "null");
    let tombstone = match (&p.tombstone_when, doc) {
        (Some(flag), Some(d)) => null_doc || find(d, flag).is_some_and(|v| v.get() == "true"),
        _ => false,
    };
    let key = match doc {
        Some(d) if !null_doc => find(d, &p.key).and_then(key_bytes),
        _ => None,
    };
    let key = match (key, p.on_missing) {
        (Some(key), _) => key,
        (None, OnMissing::Keep) => return Decision::KeepAlways,
        (None, OnMissing::Drop) => return Decision::Drop,
        (None, OnMissing::RecordKey) => match record.key() {
            Some(key) => key.to_vec(),
            None => return Decision::KeepAlways,
        },
    };
    if tombstone {
        Decision::Tombstone(key)
    } else {
        Decision::Key(key)
    }
}

#[compaction_policy(init = init)]
fn json_key(record: &Record) -> Result<Decision, String> {
    let p = POLICY.get().ok_or("json-key was not initialized with a config")?;
    Ok(decide(p, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// Decisions for records given as (record key, value).
    fn decide_all(pairs: &[(&str, &str)], records: &[(Option<&str>, &str)]) -> Vec<Decision> {
        let p = parse_config(&config(pairs)).expect("valid config");
        let mut w = sluice_wire::BatchWriter::default();
        for (i, (key, value)) in records.iter().enumerate() {
            w.push(i as u64, 1, key.map(str::as_bytes), value.as_bytes(), [])
                .unwrap();
        }
        sluice_sdk::run_policy_on(&w.finish(), |r| Ok::<_, String>(decide(&p, r))).unwrap()
    }

    fn key(k: &str) -> Decision {
        Decision::Key(k.as_bytes().to_vec())
    }

    #[test]
    fn strings_are_raw_text_and_other_values_canonical_json() {
        let values = [
            r#"{"id":"caf\u00e9 \"x\""}"#,
            r#"{"id": 42}"#,
            r#"{"id":"42"}"#,
            r#"{"id": 12345678901234567890123}"#,
            r#"{"id": 1.50}"#,
            r#"{"id": 15e-1}"#,
            r#"{"id": 1}"#,
            r#"{"id": 1.0}"#,
            r#"{"id": { "b" : [1, "x\u0041" , null], "a": true, "b": [2] }}"#,
            r#"{"id": ["\u00e9", {"z":0,"y":-0}]}"#,
            r#"{"id": 1e400}"#,
        ];
        let records: Vec<_> = values.iter().map(|v| (None, *v)).collect();
        assert_eq!(
            decide_all(&[("pointer", "/id")], &records),
            vec![
                key("café \"x\""),
                key("42"),
                key("42"),
                key("12345678901234567890123"),
                key("1.5"),
                key("1.5"),
                key("1"),
                key("1.0"),
                key(r#"{"a":true,"b":[2]}"#),
                key(r#"["é",{"y":-0,"z":0}]"#),
                key("1e400"),
            ]
        );
    }

    #[test]
    fn nested_and_escaped_pointers() {
        let cfg = [("pointer", "/user/ids/1/a~1b")];
        assert_eq!(
            decide_all(&cfg, &[(None, r#"{"user":{"ids":[0,{"a/b":"x"}]}}"#)]),
            vec![key("x")]
        );
        assert_eq!(
            decide_all(&[("pointer", "")], &[(None, " [1, 2] ")]),
            vec![key("[1,2]")]
        );
    }

    #[test]
    fn missing_keys_keep_drop_or_fall_back_to_the_record_key() {
        let records = [
            (Some("rk"), r#"{"other":1}"#),
            (Some("rk"), "not json"),
            (None, r#"{"other":1}"#),
            (Some("rk"), r#"{"id":"\ud800"}"#),
            (Some("rk"), r#"{"id":7}"#),
        ];
        let with = |on: &str| decide_all(&[("pointer", "/id"), ("on_missing", on)], &records);
        use Decision::*;
        assert_eq!(
            with("keep"),
            vec![KeepAlways, KeepAlways, KeepAlways, KeepAlways, key("7")]
        );
        assert_eq!(with("drop"), vec![Drop, Drop, Drop, Drop, key("7")]);
        assert_eq!(
            with("record-key"),
            vec![key("rk"), key("rk"), KeepAlways, key("rk"), key("7")]
        );
    }

    #[test]
    fn tombstones_when_the_flag_is_true_or_the_value_is_null() {
        let records = [
            (Some("rk"), r#"{"id":"a","deleted":true}"#),
            (Some("rk"), r#"{"id":"a","deleted":false}"#),
            (Some("rk"), r#"{"id":"a","deleted":"true"}"#),
            (Some("rk"), r#"{"id":"a"}"#),
            (Some("rk"), "null"),
            (None, "null"),
            (Some("rk"), r#"{"deleted":true}"#),
        ];
        let cfg = [
            ("pointer", "/id"),
            ("tombstone_when", "/deleted"),
            ("on_missing", "record-key"),
        ];
        let tomb = |k: &str| Decision::Tombstone(k.as_bytes().to_vec());
        assert_eq!(
            decide_all(&cfg, &records),
            vec![
                tomb("a"),
                key("a"),
                key("a"),
                key("a"),
                tomb("rk"),
                Decision::KeepAlways,
                tomb("rk")
            ]
        );
        // Without `tombstone_when` nothing is a tombstone.
        let plain = decide_all(&[("pointer", "/id"), ("on_missing", "record-key")], &records);
        assert!(plain.iter().all(|d| !matches!(d, Decision::Tombstone(_))), "{plain:?}");
        // A null value carries no key of its own, so `keep` keeps it.
        let keep = [("pointer", ""), ("tombstone_when", "/deleted")];
        assert_eq!(decide_all(&keep, &[(Some("rk"), "null")]), vec![Decision::KeepAlways]);
    }

    #[test]
    fn keys_nested_too_deeply_count_as_missing() {
        let deep = format!("{{\"id\":{}1{}}}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            decide_all(&[("pointer", "/id")], &[(None, &deep)]),
            vec![Decision::KeepAlways]
        );
        let ok = format!("{{\"id\":{}1{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let want = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(decide_all(&[("pointer", "/id")], &[(None, &ok)]), vec![key(&want)]);
    }

    #[test]
    fn config_errors_are_clear() {
        let err = |pairs: &[(&str, &str)]| parse_config(&config(pairs)).unwrap_err();
        assert!(err(&[]).contains("missing required config `pointer`"));
        assert!(err(&[("pointer", "id")]).contains("`pointer`: `id` is not a JSON pointer"));
        assert!(err(&[("pointer", "/id"), ("tombstone_when", "deleted")]).contains("`tombstone_when`"));
        assert!(err(&[("pointer", "/id"), ("on_missing", "skip")]).contains("(keep, drop, record-key)"));
        assert!(err(&[("pointer", "/id"), ("tombstone", "/d")]).contains("unknown config `tombstone`"));
    }
}
