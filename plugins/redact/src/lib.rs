//! redact: masks or removes fields of JSON values.
//!
//! Config:
//! * `fields` (required): comma-separated JSON pointers (RFC 6901) to the fields to redact,
//!   e.g. `/user/email,/card` or `/cards/0` for an array element. Spaces around the commas are
//!   ignored; inside a key `~1` stands for `/` and `~0` for `~` (a key containing a comma cannot
//!   be named).
//! * `mode`: `mask` (default) replaces each field's value, whatever its type, with the `mask`
//!   string; `remove` deletes the field (or the array element).
//! * `mask`: the replacement text, written as a JSON string (default `***`).
//! * `on_invalid`: what to do with a value that is not JSON: `pass` (default: keep the record
//!   unchanged), `drop`, or `fail` (fail the batch). Choose `drop` or `fail` when a value must
//!   never get through unredacted.
//!
//! Absent fields are ignored. Every pointer is resolved against the original document, so
//! removing `/a/0` does not shift what `/a/1` names, and a key that appears more than once in
//! an object is redacted in every occurrence. Only the objects and arrays on the way to a
//! redacted field are rewritten (compactly); everything else is copied byte for byte, so
//! numbers are never rounded and keys keep their order. A record with nothing to redact passes
//! unchanged. Key, headers and timestamp are always kept. Unknown config keys are refused, so a
//! misspelt option cannot silently fall back to its default.
use std::fmt;
use std::sync::OnceLock;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sluice_sdk::json_pointer::{self, PointerError, array_index};
use sluice_sdk::{Config, Output, Record, transform};

const KNOWN: &[&str] = &["fields", "mask", "mode", "on_invalid"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Mask,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnInvalid {
    Pass,
    Drop,
    Fail,
}

#[derive(Debug)]
struct Redact {
    /// Each field as its unescaped reference tokens (never empty).
    fields: Vec<Vec<String>>,
    mode: Mode,
    /// The mask, already encoded as a JSON string.
    mask_json: String,
    on_invalid: OnInvalid,
}

static REDACT: OnceLock<Redact> = OnceLock::new();

fn parse_config(config: &Config) -> Result<Redact, String> {
    if let Some((key, _)) = config.iter().find(|(k, _)| !KNOWN.contains(k)) {
        return Err(format!("unknown config `{key}` (known: {})", KNOWN.join(", ")));
    }
    let list = config.require("fields")?;
    let mut fields = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(format!(
                "`fields` has an empty entry in `{list}`; give comma-separated JSON pointers like `/user/email,/card`"
            ));
        }
        fields.push(parse_pointer(entry).map_err(|e| format!("`fields`: {e}"))?);
    }
    let mode = match config.get("mode").unwrap_or("mask") {
        "mask" => Mode::Mask,
        "remove" => Mode::Remove,
        other => return Err(format!("unknown `mode` `{other}` (mask, remove)")),
    };
    let mask = config.get("mask").unwrap_or("***");
    let mask_json = serde_json::to_string(mask).map_err(|e| format!("cannot encode `mask`: {e}"))?;
    let on_invalid = match config.get("on_invalid").unwrap_or("pass") {
        "pass" => OnInvalid::Pass,
        "drop" => OnInvalid::Drop,
        "fail" => OnInvalid::Fail,
        other => return Err(format!("unknown `on_invalid` `{other}` (pass, drop, fail)")),
    };
    Ok(Redact {
        fields,
        mode,
        mask_json,
        on_invalid,
    })
}

/// The reference tokens of a non-empty JSON pointer, unescaped.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    let tokens = if pointer.is_empty() {
        Err(PointerError::NoLeadingSlash)
    } else {
        json_pointer::tokens(pointer)
    };
    tokens.map_err(|e| match e {
        PointerError::NoLeadingSlash => {
            format!("`{pointer}` is not a JSON pointer: it must start with '/' (e.g. `/user/email`)")
        }
        PointerError::BadEscape => format!("`{pointer}` is not a valid JSON pointer: '~' must be followed by 0 or 1"),
    })
}

fn init(config: &Config) -> Result<(), String> {
    let r = parse_config(config)?;
    let _ = REDACT.set(r);
    Ok(())
}

/// A JSON document, expanded only along the paths being redacted.
enum Node<'a> {
    /// Not looked into: copied verbatim.
    Raw(&'a RawValue),
    Masked,
    Removed,
    /// Members in document order, duplicates included.
    Object(Vec<(String, Node<'a>)>),
    Array(Vec<Node<'a>>),
}

/// The members of a JSON object in order, duplicates included, values unparsed.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Node<'a> {
    /// Opens an unparsed object or array into its members; other nodes stay as they are.
    fn expand(&mut self) -> Result<(), serde_json::Error> {
        if let Node::Raw(raw) = *self {
            let text: &'a str = raw.get();
            match text.as_bytes().first() {
                Some(b'{') => {
                    let members = serde_json::from_str::<Members<'a>>(text)?.0;
                    *self = Node::Object(members.into_iter().map(|(k, v)| (k, Node::Raw(v))).collect());
                }
                Some(b'[') => {
                    let items = serde_json::from_str::<Vec<&'a RawValue>>(text)?;
                    *self = Node::Array(items.into_iter().map(Node::Raw).collect());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn render(&self, mask_json: &str, out: &mut String) {
        match self {
            Node::Raw(raw) => out.push_str(raw.get()),
            Node::Masked => out.push_str(mask_json),
            // Parents skip removed members; the root is never removed.
            Node::Removed => {}
            Node::Object(members) => {
                out.push('{');
                let live = members.iter().filter(|(_, v)| !matches!(v, Node::Removed));
                for (i, (key, value)) in live.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_string(key, out);
                    out.push(':');
                    value.render(mask_json, out);
                }
                out.push('}');
            }
            Node::Array(items) => {
                out.push('[');
                let live = items.iter().filter(|v| !matches!(v, Node::Removed));
                for (i, value) in live.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    value.render(mask_json, out);
                }
                out.push(']');
            }
        }
    }
}

fn push_json_string(s: &str, out: &mut String) {
    // Serializing a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// Redacts what `path` names below `node`; true if anything changed.
fn redact_path(node: &mut Node<'_>, path: &[String], mode: Mode) -> Result<bool, serde_json::Error> {
    let Some((token, rest)) = path.split_first() else {
        if matches!(node, Node::Masked | Node::Removed) {
            return Ok(false);
        }
        *node = match mode {
            Mode::Mask => Node::Masked,
            Mode::Remove => Node::Removed,
        };
        return Ok(true);
    };
    node.expand()?;
    let mut changed = false;
    match node {
        Node::Object(members) => {
            for (_, child) in members.iter_mut().filter(|(k, _)| k == token) {
                changed |= redact_path(child, rest, mode)?;
            }
        }
        Node::Array(items) => {
            if let Some(child) = array_index(token).and_then(|i| items.get_mut(i)) {
                changed |= redact_path(child, rest, mode)?;
            }
        }
        _ => {}
    }
    Ok(changed)
}

/// The redacted value, or `None` when there was nothing to redact.
fn redact_value(r: &Redact, value: &[u8]) -> Result<Option<String>, serde_json::Error> {
    let mut root = Node::Raw(serde_json::from_slice::<&RawValue>(value)?);
    let mut changed = false;
    for path in &r.fields {
        changed |= redact_path(&mut root, path, r.mode)?;
    }
    if !changed {
        return Ok(None);
    }
    let mut out = String::with_capacity(value.len());
    root.render(&r.mask_json, &mut out);
    Ok(Some(out))
}

fn apply(r: &Redact, record: &Record, out: &mut Output) -> Result<(), String> {
    match redact_value(r, record.value()) {
        Ok(None) => out.keep(record),
        Ok(Some(value)) => {
            let headers: Vec<(&str, &[u8])> = record.headers().iter().collect();
            out.emit(record.key(), value.as_bytes(), &headers)
                .map_err(|e| e.to_string())?;
        }
        Err(e) => match r.on_invalid {
            OnInvalid::Pass => out.keep(record),
            OnInvalid::Drop => {}
            OnInvalid::Fail => return Err(format!("value is not JSON: {e}")),
        },
    }
    Ok(())
}

#[transform(init = init)]
fn redact(record: &Record, out: &mut Output) -> Result<(), String> {
    let r = REDACT.get().ok_or("redact was not initialized with a config")?;
    apply(r, record, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[derive(Debug, PartialEq)]
    struct Out {
        offset: u64,
        timestamp_ms: u64,
        key: Option<Vec<u8>>,
        value: String,
        headers: Vec<(String, Vec<u8>)>,
    }

    /// Runs redact with `pairs` over records valued `values` (offsets from 10, keys `k0`.., timestamps from 1000).
    fn run(pairs: &[(&str, &str)], values: &[&str]) -> Result<Vec<Out>, String> {
        let r = parse_config(&config(pairs)).expect("valid config");
        let mut w = sluice_wire::BatchWriter::default();
        for (i, v) in values.iter().enumerate() {
            let key = format!("k{i}");
            let headers = [("trace", &b"\x00t"[..]), ("trace", &b"second"[..])];
            w.push(
                10 + i as u64,
                1000 + i as u64,
                Some(key.as_bytes()),
                v.as_bytes(),
                headers,
            )
            .unwrap();
        }
        let out = sluice_sdk::run_transform_on(&w.finish(), |rec, out| apply(&r, rec, out))?;
        Ok(sluice_wire::decode_batch(&out)
            .unwrap()
            .iter()
            .map(|b| Out {
                offset: b.offset,
                timestamp_ms: b.record.timestamp_ms,
                key: b.record.key.map(<[u8]>::to_vec),
                value: String::from_utf8(b.record.value.to_vec()).unwrap(),
                headers: b
                    .record
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_vec()))
                    .collect(),
            })
            .collect())
    }

    fn values(pairs: &[(&str, &str)], input: &[&str]) -> Vec<String> {
        run(pairs, input).unwrap().into_iter().map(|o| o.value).collect()
    }

    #[test]
    fn masks_nested_fields_keeping_key_headers_timestamp_and_order() {
        let out = run(
            &[("fields", "/user/email, /card")],
            &[r#"{"z":1,"user":{"name":"ann","email":"a@x.io"},"card":{"no":"4111"},"a":[1, 2]}"#],
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].value,
            r#"{"z":1,"user":{"name":"ann","email":"***"},"card":"***","a":[1, 2]}"#
        );
        assert_eq!(out[0].offset, 10);
        assert_eq!(out[0].timestamp_ms, 1000);
        assert_eq!(out[0].key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(
            out[0].headers,
            vec![
                ("trace".to_string(), b"\x00t".to_vec()),
                ("trace".to_string(), b"second".to_vec())
            ]
        );
    }

    #[test]
    fn removes_fields_and_array_elements_against_the_original_document() {
        let cfg = [("fields", "/a/0,/a/1,/secret,/deep/x/y"), ("mode", "remove")];
        assert_eq!(
            values(
                &cfg,
                &[r#"{"a":[10,20,30],"secret":"s","keep":true,"deep":{"x":{"y":1,"z":2}}}"#]
            ),
            vec![r#"{"a":[30],"keep":true,"deep":{"x":{"z":2}}}"#]
        );
    }

    #[test]
    fn custom_mask_is_a_json_string_and_any_value_type_is_masked() {
        let cfg = [("fields", "/n,/o,/q"), ("mask", "<\"gone\">")];
        assert_eq!(
            values(
                &cfg,
                &[r#"{"n":12345678901234567890123,"o":{"p":[1]},"q":null,"r":1.50}"#]
            ),
            vec![r#"{"n":"<\"gone\">","o":"<\"gone\">","q":"<\"gone\">","r":1.50}"#]
        );
    }

    #[test]
    fn absent_fields_and_non_objects_pass_byte_for_byte() {
        let input = [
            "{ \"other\" : 1 }",
            "[1,2]",
            "\"just a string\"",
            "{\"user\": \"not an object\"}",
        ];
        assert_eq!(values(&[("fields", "/user/email,/x")], &input), input.to_vec());
    }

    #[test]
    fn duplicate_keys_are_all_redacted() {
        assert_eq!(
            values(&[("fields", "/card")], &[r#"{"card":"1","card":"2","x":0}"#]),
            vec![r#"{"card":"***","card":"***","x":0}"#]
        );
    }

    #[test]
    fn escaped_pointer_tokens_and_array_paths() {
        let cfg = [("fields", "/a~1b/c~0d,/list/1/pw,/list/01/pw,/list/-")];
        assert_eq!(
            values(&cfg, &[r#"{"a/b":{"c~d":"x"},"list":[{"pw":"p0"},{"pw":"p1"}]}"#]),
            vec![r#"{"a/b":{"c~d":"***"},"list":[{"pw":"p0"},{"pw":"***"}]}"#]
        );
    }

    #[test]
    fn overlapping_fields_are_redacted_once() {
        assert_eq!(
            values(&[("fields", "/u/email,/u")], &[r#"{"u":{"email":"e"}}"#]),
            vec![r#"{"u":"***"}"#]
        );
        let remove = [("fields", "/u,/u/email"), ("mode", "remove")];
        assert_eq!(values(&remove, &[r#"{"u":{"email":"e"},"v":1}"#]), vec![r#"{"v":1}"#]);
    }

    #[test]
    fn invalid_values_pass_drop_or_fail() {
        let input = ["not json", r#"{"card":"1"}"#, "{\"card\":1} trailing"];
        assert_eq!(
            values(&[("fields", "/card")], &input),
            vec!["not json", r#"{"card":"***"}"#, "{\"card\":1} trailing"]
        );
        let drop = [("fields", "/card"), ("on_invalid", "drop")];
        assert_eq!(values(&drop, &input), vec![r#"{"card":"***"}"#]);
        let fail = [("fields", "/card"), ("on_invalid", "fail")];
        let err = run(&fail, &input).unwrap_err();
        assert!(err.starts_with("record at offset 10: value is not JSON"), "{err}");
    }

    #[test]
    fn lone_surrogate_in_a_key_on_the_path_is_invalid_json() {
        let drop = [("fields", "/a/b"), ("on_invalid", "drop")];
        assert!(values(&drop, &[r#"{"a":{"\ud800":1}}"#]).is_empty());
    }

    #[test]
    fn config_errors_are_clear() {
        let err = |pairs: &[(&str, &str)]| parse_config(&config(pairs)).unwrap_err();
        assert!(err(&[]).contains("missing required config `fields`"));
        assert!(err(&[("fields", "user.email")]).contains("must start with '/'"));
        assert!(err(&[("fields", "/a,,/b")]).contains("empty entry"));
        assert!(err(&[("fields", "")]).contains("empty entry"));
        assert!(err(&[("fields", "/a~2")]).contains("'~' must be followed by 0 or 1"));
        assert!(err(&[("fields", "/a"), ("mode", "hash")]).contains("unknown `mode` `hash`"));
        assert!(err(&[("fields", "/a"), ("on_invalid", "skip")]).contains("(pass, drop, fail)"));
        assert!(err(&[("fields", "/a"), ("on_invlaid", "fail")]).contains("unknown config `on_invlaid`"));
    }
}
