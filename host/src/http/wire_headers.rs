//! A record's headers in JSON.
//!
//! A record's headers are an ordered list in which a name may repeat, as in
//! Kafka. JSON gives them two shapes:
//!
//! - an object, `{"name": value, ...}`: names unique, in the record's order;
//! - a list, `[{"name": "...", "value": ...}, ...]`: any headers, exactly.
//!
//! Both are accepted on input; an object that names a header twice is an
//! error (JSON parsers would keep only one of them, so the client meant
//! something the object cannot say). A read writes the object when the
//! record's names are unique and the list otherwise, so nothing is lost;
//! `headers=list` on a read asks for the list for every record, so a client
//! never has to guess. Values are byte fields or `null` ([`HeaderValue`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use bytes::Bytes;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::wire::{BytesJson, HeaderValue};

/// A record's headers as they travel in JSON (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadersJson {
    /// The headers, in order.
    pub entries: Vec<(String, HeaderValue)>,
    /// Written as the list form (always true when a name repeats).
    pub as_list: bool,
}

impl HeadersJson {
    /// The headers of a stored record as a read writes them: the list form
    /// when `force_list` or when a name repeats, else the object form.
    pub fn for_read(headers: &[(String, Option<Bytes>)], force_base64: bool, force_list: bool) -> Self {
        let entries: Vec<(String, HeaderValue)> = headers
            .iter()
            .map(|(n, v)| {
                let value = v.as_ref().map(|v| BytesJson::from_bytes(v, force_base64));
                (n.clone(), HeaderValue(value))
            })
            .collect();
        let as_list = force_list || repeats(entries.iter().map(|(n, _)| n.as_str()));
        HeadersJson { entries, as_list }
    }
}

/// Whether a name occurs more than once.
fn repeats<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> bool {
    if names.len() < 2 {
        return false;
    }
    let mut seen = HashSet::with_capacity(names.len());
    names.into_iter().any(|n| !seen.insert(n))
}

/// One header in the list form.
#[derive(Serialize)]
struct EntryOut<'a> {
    name: &'a str,
    value: &'a HeaderValue,
}

/// One header in the list form, as posted: both fields required (`value`
/// may be `null`, a null value), nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFields {
    name: String,
    #[serde(deserialize_with = "present")]
    value: HeaderValue,
}

/// [`EntryFields`] from a JSON object only (serde's derive would also take
/// `["name", "value"]`, a shape the API does not document).
struct EntryIn(EntryFields);

impl<'de> Deserialize<'de> for EntryIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> Visitor<'de> for ObjectOnly {
            type Value = EntryIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a header {"name": "...", "value": ...}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EntryIn, A::Error> {
                EntryFields::deserialize(de::value::MapAccessDeserializer::new(map)).map(EntryIn)
            }
        }
        d.deserialize_map(ObjectOnly)
    }
}

/// A field that must be present, though it may be `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderValue, D::Error> {
    HeaderValue::deserialize(d)
}

impl Serialize for HeadersJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.as_list {
            let mut seq = s.serialize_seq(Some(self.entries.len()))?;
            for (name, value) in &self.entries {
                seq.serialize_element(&EntryOut { name, value })?;
            }
            seq.end()
        } else {
            let mut map = s.serialize_map(Some(self.entries.len()))?;
            for (name, value) in &self.entries {
                map.serialize_entry(name, value)?;
            }
            map.end()
        }
    }
}

impl<'de> Deserialize<'de> for HeadersJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeadersVisitor)
    }
}

struct HeadersVisitor;

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = HeadersJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an object {"name": value} or a list [{"name": "...", "value": ...}]"#)
    }

    fn visit_unit<E: de::Error>(self) -> Result<HeadersJson, E> {
        Ok(HeadersJson::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<HeadersJson, E> {
        Ok(HeadersJson::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeadersJson, A::Error> {
        let mut entries: Vec<(String, HeaderValue)> = Vec::new();
        let mut seen = HashSet::new();
        while let Some((name, value)) = map.next_entry::<String, HeaderValue>()? {
            if !seen.insert(name.clone()) {
                return Err(de::Error::custom(format!(
                    "header `{name:.40}` is named twice in the object; give headers as a list \
                     [{{\"name\": ..., \"value\": ...}}] to repeat a name"
                )));
            }
            entries.push((name, value));
        }
        Ok(HeadersJson {
            entries,
            as_list: false,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeadersJson, A::Error> {
        let mut entries = Vec::new();
        while let Some(EntryIn(e)) = seq.next_element::<EntryIn>()? {
            entries.push((e.name, e.value));
        }
        Ok(HeadersJson { entries, as_list: true })
    }
}

// Documentation-only shapes: utoipa cannot see through the hand-written
// serde above, so these describe it (`tests_openapi` checks that the
// schema offers both forms).

/// A record's headers: an object `{"name": value}` (names unique, in the
/// record's order), or a list `[{"name": "...", "value": ...}]` that may
/// repeat a name. Reads give the list when a name repeats, or always with
/// `headers=list`.
#[derive(utoipa::ToSchema)]
#[schema(as = Headers)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum HeadersDoc {
    Object(BTreeMap<String, HeaderValue>),
    List(Vec<HeaderEntryDoc>),
}

/// One header in the list form; `value` is required and may be `null`.
#[derive(utoipa::ToSchema)]
#[schema(as = HeaderEntry)]
#[allow(dead_code)]
pub struct HeaderEntryDoc {
    pub name: String,
    #[schema(required = true)]
    pub value: HeaderValue,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn parse(v: Value) -> Result<HeadersJson, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    fn text(s: &str) -> HeaderValue {
        HeaderValue(Some(BytesJson::Text(s.to_string())))
    }

    #[test]
    fn both_forms_parse_in_order() {
        // From text, as the server parses a body.
        let obj: HeadersJson = serde_json::from_str(r#"{"z": "1", "a": null}"#).unwrap();
        assert_eq!(
            obj.entries,
            vec![("z".into(), text("1")), ("a".into(), HeaderValue(None))]
        );
        assert!(!obj.as_list);
        let list = parse(json!([{"name": "h", "value": "1"}, {"name": "a", "value": null},
                                {"name": "h", "value": {"base64": "AP8="}}]))
        .unwrap();
        let names: Vec<&str> = list.entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["h", "a", "h"]);
        assert_eq!(list.entries[1].1, HeaderValue(None));
        assert!(list.as_list);
        assert_eq!(parse(json!(null)).unwrap(), HeadersJson::default());
        assert_eq!(parse(json!([])).unwrap().entries, vec![]);
    }

    #[test]
    fn ambiguous_or_malformed_headers_are_refused() {
        // serde_json hands a repeated object key to the visitor twice.
        let twice: Result<HeadersJson, _> = serde_json::from_str(r#"{"h": "1", "h": "2"}"#);
        let err = twice.unwrap_err().to_string();
        assert!(err.contains("named twice"), "{err}");
        for bad in [
            json!([{"name": "h"}]),
            json!([{"name": "h", "value": "1", "extra": 1}]),
            json!([["h", "1"]]),
            json!("h=1"),
            json!([{"name": 1, "value": "1"}]),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_write_the_list_when_a_name_repeats_or_when_asked() {
        let stored = vec![
            ("h".to_string(), Some(Bytes::from_static(b"1"))),
            ("n".to_string(), None),
            ("h".to_string(), Some(Bytes::from_static(b"\xff"))),
        ];
        let out = serde_json::to_value(HeadersJson::for_read(&stored, false, false)).unwrap();
        assert_eq!(
            out,
            json!([{"name": "h", "value": "1"}, {"name": "n", "value": null},
                   {"name": "h", "value": {"base64": "/w=="}}])
        );
        let unique = &stored[..2];
        let obj = serde_json::to_string(&HeadersJson::for_read(unique, false, false)).unwrap();
        assert_eq!(obj, r#"{"h":"1","n":null}"#);
        let forced = serde_json::to_value(HeadersJson::for_read(unique, true, true)).unwrap();
        assert_eq!(
            forced,
            json!([{"name": "h", "value": {"base64": "MQ=="}}, {"name": "n", "value": null}])
        );
        // The object keeps the record's order, not the names' order.
        let rev = vec![("z".to_string(), None), ("a".to_string(), None)];
        let obj = serde_json::to_string(&HeadersJson::for_read(&rev, false, false)).unwrap();
        assert_eq!(obj, r#"{"z":null,"a":null}"#);
        // Whatever is written parses back to the same headers.
        for (hs, list) in [(&stored[..], false), (unique, false), (unique, true)] {
            let written = HeadersJson::for_read(hs, false, list);
            let back = parse(serde_json::to_value(&written).unwrap()).unwrap();
            assert_eq!(back, written);
        }
    }
}
