//! fan-out: splits a record whose JSON value holds an array into one record per element.
//!
//! Config:
//! * `path`: JSON pointer (RFC 6901) to the array, e.g. `/items`; default `""`, meaning the
//!   whole value is the array.
//! * `max_elements`: the most elements one record may fan out to (default 10000). A record with
//!   more fails the batch with an error naming the count, so the output of a batch stays bounded.
//! * `on_invalid`: what to do with a record whose value is not JSON or has no array at `path`:
//!   `drop` (default), `pass` (keep the record unchanged) or `fail` (fail the batch).
//!
//! Each element becomes a record with the input record's key, headers and timestamp, a header
//! `sluice-fanout-index` holding the element's index as decimal text (replacing any the input
//! already had, e.g. from an earlier fan-out), and the element as compact JSON for its value:
//! whitespace outside strings is removed, and everything else (numbers, string escapes, key
//! order) is exactly as in the input. An empty array produces no record. Unknown config keys are
//! refused, so a misspelt option cannot silently fall back to its default.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use sluice_sdk::json_pointer::{self, PointerError, array_index};
use sluice_sdk::{Config, Output, Record, transform};

/// The header carrying each output record's index in the input array.
const INDEX_HEADER: &str = "sluice-fanout-index";

const KNOWN: &[&str] = &["path", "max_elements", "on_invalid"];
const DEFAULT_MAX_ELEMENTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnInvalid {
    Drop,
    Pass,
    Fail,
}

#[derive(Debug)]
struct FanOut {
    /// `path` as written, for messages.
    pointer: String,
    /// `path`'s reference tokens, unescaped.
    tokens: Vec<String>,
    max_elements: usize,
    on_invalid: OnInvalid,
}

impl FanOut {
    /// What `path` names, for messages.
    fn target(&self) -> String {
        if self.tokens.is_empty() {
            "the value".to_string()
        } else {
            format!("`{}`", self.pointer)
        }
    }
}

static FAN_OUT: OnceLock<FanOut> = OnceLock::new();

fn parse_config(config: &Config) -> Result<FanOut, String> {
    if let Some((key, _)) = config.iter().find(|(k, _)| !KNOWN.contains(k)) {
        return Err(format!("unknown config `{key}` (known: {})", KNOWN.join(", ")));
    }
    let pointer = config.get("path").unwrap_or("").to_string();
    let tokens = parse_pointer(&pointer).map_err(|e| format!("`path`: {e}"))?;
    let max_elements = match config.get("max_elements") {
        None => DEFAULT_MAX_ELEMENTS,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "`max_elements` must be a whole number of at least 1, got `{text}`"
                ));
            }
        },
    };
    let on_invalid = match config.get("on_invalid").unwrap_or("drop") {
        "drop" => OnInvalid::Drop,
        "pass" => OnInvalid::Pass,
        "fail" => OnInvalid::Fail,
        other => return Err(format!("unknown `on_invalid` `{other}` (drop, pass, fail)")),
    };
    Ok(FanOut {
        pointer,
        tokens,
        max_elements,
        on_invalid,
    })
}

/// The reference tokens of a JSON pointer, unescaped (`""` has none).
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    json_pointer::tokens(pointer).map_err(|e| match e {
        PointerError::NoLeadingSlash => {
            format!("`{pointer}` is not a JSON pointer: it must be empty or start with '/' (e.g. `/items`)")
        }
        PointerError::BadEscape => format!("`{pointer}` is not a valid JSON pointer: '~' must be followed by 0 or 1"),
    })
}

/// The value `tokens` names in `doc`, if any (the last of duplicate keys wins, as in serde_json).
fn find<'a>(doc: &'a RawValue, tokens: &[String]) -> Result<Option<&'a RawValue>, serde_json::Error> {
    let mut cur = doc;
    for token in tokens {
        let text: &'a str = cur.get();
        let next = match text.as_bytes().first() {
            Some(b'{') => serde_json::from_str::<BTreeMap<String, &'a RawValue>>(text)?.remove(token.as_str()),
            Some(b'[') => match array_index(token) {
                Some(i) => serde_json::from_str::<Vec<&'a RawValue>>(text)?.get(i).copied(),
                None => None,
            },
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

fn init(config: &Config) -> Result<(), String> {
    let f = parse_config(config)?;
    let _ = FAN_OUT.set(f);
    Ok(())
}

/// The elements of the array at `path`, or why there is none.
fn elements<'a>(f: &FanOut, value: &'a [u8]) -> Result<Vec<&'a RawValue>, String> {
    let not_json = |e: serde_json::Error| format!("value is not JSON: {e}");
    let doc = serde_json::from_slice::<&'a RawValue>(value).map_err(not_json)?;
    let Some(found) = find(doc, &f.tokens).map_err(not_json)? else {
        return Err(format!("value has nothing at `{}`", f.pointer));
    };
    if !found.get().starts_with('[') {
        return Err(format!("{} is not a JSON array", f.target()));
    }
    serde_json::from_str::<Vec<&'a RawValue>>(found.get()).map_err(not_json)
}

/// `json` (valid JSON) without whitespace outside strings.
fn compact(json: &str) -> Cow<'_, [u8]> {
    let bytes = json.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t')) {
        return Cow::Borrowed(bytes);
    }
    // Whitespace, quotes and backslashes are ASCII, which never occurs inside a multi-byte
    // UTF-8 sequence, so a byte scan is exact.
    let mut out = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    Cow::Owned(out)
}

fn apply(f: &FanOut, record: &Record, out: &mut Output) -> Result<(), String> {
    let items = match elements(f, record.value()) {
        Ok(items) => items,
        Err(why) => {
            return match f.on_invalid {
                OnInvalid::Drop => Ok(()),
                OnInvalid::Pass => {
                    out.keep(record);
                    Ok(())
                }
                OnInvalid::Fail => Err(why),
            };
        }
    };
    if items.len() > f.max_elements {
        return Err(format!(
            "{} has {} elements, more than `max_elements` ({})",
            f.target(),
            items.len(),
            f.max_elements
        ));
    }
    let inherited: Vec<(&str, &[u8])> = record.headers().iter().filter(|(n, _)| *n != INDEX_HEADER).collect();
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let mut headers = Vec::with_capacity(inherited.len() + 1);
        headers.extend_from_slice(&inherited);
        headers.push((INDEX_HEADER, index.as_bytes()));
        out.emit(record.key(), &compact(item.get()), &headers)
            .map_err(|e| format!("element {i}: {e}"))?;
    }
    Ok(())
}

#[transform(init = init)]
fn fan_out(record: &Record, out: &mut Output) -> Result<(), String> {
    let f = FAN_OUT.get().ok_or("fan-out was not initialized with a config")?;
    apply(f, record, out)
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
        headers: Vec<(String, String)>,
    }

    /// Runs fan-out with `pairs` over records valued `values` (offsets from 10, keys `k0`..,
    /// timestamps from 1000, a `trace` header).
    fn run(pairs: &[(&str, &str)], values: &[&str]) -> Result<Vec<Out>, String> {
        let f = parse_config(&config(pairs)).expect("valid config");
        let mut w = sluice_wire::BatchWriter::default();
        for (i, v) in values.iter().enumerate() {
            let key = format!("k{i}");
            w.push(
                10 + i as u64,
                1000 + i as u64,
                Some(key.as_bytes()),
                v.as_bytes(),
                [("trace", &b"t"[..])],
            )
            .unwrap();
        }
        let out = sluice_sdk::run_transform_on(&w.finish(), |rec, out| apply(&f, rec, out))?;
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
                    .map(|(n, v)| (n.to_string(), String::from_utf8(v.to_vec()).unwrap()))
                    .collect(),
            })
            .collect())
    }

    fn values(pairs: &[(&str, &str)], input: &[&str]) -> Vec<String> {
        run(pairs, input).unwrap().into_iter().map(|o| o.value).collect()
    }

    #[test]
    fn whole_value_array_becomes_one_record_per_element() {
        let out = run(
            &[],
            &[
                r#"[1, "two", {"b": 2, "a": [true, null]}, 12345678901234567890123]"#,
                "[]",
                r#"["x"]"#,
            ],
        )
        .unwrap();
        let got: Vec<(u64, u64, &[u8], &str, &str)> = out
            .iter()
            .map(|o| {
                assert_eq!(o.headers[0], ("trace".to_string(), "t".to_string()));
                assert_eq!(o.headers.len(), 2);
                assert_eq!(o.headers[1].0, INDEX_HEADER);
                (
                    o.offset,
                    o.timestamp_ms,
                    o.key.as_deref().unwrap(),
                    o.value.as_str(),
                    o.headers[1].1.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (10, 1000, &b"k0"[..], "1", "0"),
                (10, 1000, &b"k0"[..], r#""two""#, "1"),
                (10, 1000, &b"k0"[..], r#"{"b":2,"a":[true,null]}"#, "2"),
                (10, 1000, &b"k0"[..], "12345678901234567890123", "3"),
                (12, 1002, &b"k2"[..], r#""x""#, "0"),
            ]
        );
    }

    #[test]
    fn path_selects_a_nested_array_and_strings_keep_their_spaces() {
        let cfg = [("path", "/order/items")];
        let input = [r#"{"order": {"id": 7, "items": [ {"sku": "a b", "q": "\" x"}, {"sku":"c"} ]}}"#];
        assert_eq!(
            values(&cfg, &input),
            vec![r#"{"sku":"a b","q":"\" x"}"#, r#"{"sku":"c"}"#]
        );
        let cfg = [("path", "/0/a~1b")];
        assert_eq!(values(&cfg, &[r#"[{"a/b":[1,2]}]"#]), vec!["1", "2"]);
    }

    #[test]
    fn an_earlier_index_header_is_replaced() {
        let f = parse_config(&config(&[])).unwrap();
        let mut w = sluice_wire::BatchWriter::default();
        w.push(1, 5, None, b"[7]", [(INDEX_HEADER, &b"3"[..]), ("h", &b"v"[..])])
            .unwrap();
        let out = sluice_sdk::run_transform_on(&w.finish(), |rec, out| apply(&f, rec, out)).unwrap();
        let got = sluice_wire::decode_batch(&out).unwrap();
        let headers: Vec<_> = got[0].record.headers().iter().collect();
        assert_eq!(headers, vec![("h", &b"v"[..]), (INDEX_HEADER, &b"0"[..])]);
        assert_eq!(got[0].record.key, None);
    }

    #[test]
    fn invalid_records_drop_pass_or_fail() {
        let input = [
            "not json",
            r#"{"items":"nope"}"#,
            r#"{"other":[1]}"#,
            r#"{"items":[1]}"#,
            "[1]",
        ];
        assert_eq!(values(&[("path", "/items")], &input), vec!["1"]);
        assert_eq!(
            values(&[("path", "/items"), ("on_invalid", "pass")], &input),
            vec!["not json", r#"{"items":"nope"}"#, r#"{"other":[1]}"#, "1", "[1]"]
        );
        let fail = [("path", "/items"), ("on_invalid", "fail")];
        let err = run(&fail, &input).unwrap_err();
        assert!(err.starts_with("record at offset 10: value is not JSON"), "{err}");
        let err = run(&fail, &input[1..]).unwrap_err();
        assert_eq!(err, "record at offset 10: `/items` is not a JSON array");
        let err = run(&fail, &input[2..]).unwrap_err();
        assert_eq!(err, "record at offset 10: value has nothing at `/items`");
        let err = run(&[("on_invalid", "fail")], &[r#"{"a":1}"#]).unwrap_err();
        assert_eq!(err, "record at offset 10: the value is not a JSON array");
    }

    #[test]
    fn more_than_max_elements_fails_whatever_on_invalid_says() {
        assert_eq!(values(&[("max_elements", "3")], &["[1,2,3]"]).len(), 3);
        for on in ["drop", "pass", "fail"] {
            let err = run(&[("max_elements", "3"), ("on_invalid", on)], &["[1,2,3,4]"]).unwrap_err();
            assert_eq!(
                err,
                "record at offset 10: the value has 4 elements, more than `max_elements` (3)"
            );
        }
        let big = format!("[{}0]", "0,".repeat(DEFAULT_MAX_ELEMENTS));
        let err = run(&[], &[&big]).unwrap_err();
        assert!(
            err.contains("10001 elements, more than `max_elements` (10000)"),
            "{err}"
        );
    }

    #[test]
    fn compact_removes_only_whitespace_outside_strings() {
        assert_eq!(&*compact("{ \"a b\" :\t[ 1 ,\n\"\\\" \" ] }"), br#"{"a b":[1,"\" "]}"#);
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
        assert_eq!(&*compact("\"é ü\" "), "\"é ü\"".as_bytes());
    }

    #[test]
    fn config_errors_are_clear() {
        let err = |pairs: &[(&str, &str)]| parse_config(&config(pairs)).unwrap_err();
        assert!(err(&[("path", "items")]).contains("must be empty or start with '/'"));
        assert!(err(&[("path", "/a~")]).contains("'~' must be followed by 0 or 1"));
        assert!(err(&[("max_elements", "0")]).contains("at least 1, got `0`"));
        assert!(err(&[("max_elements", "lots")]).contains("got `lots`"));
        assert!(err(&[("on_invalid", "skip")]).contains("(drop, pass, fail)"));
        assert!(err(&[("pth", "/a")]).contains("unknown config `pth`"));
        let ok = parse_config(&config(&[])).unwrap();
        assert_eq!(
            (ok.tokens.len(), ok.max_elements, ok.on_invalid),
            (0, 10_000, OnInvalid::Drop)
        );
    }
}
