//! Records and the batch encoding stored in WAL entries, segment objects
//! and replication responses.
//!
//! A batch is the record bodies of one append, back to back; offsets are
//! implicit (`base_offset + index`, from the WAL entry). The body encoding is
//! `sluice_wire`'s (diagram in docs/FORMATS.md), shared with plugins.
//! Decoded byte fields share the batch buffer (no copy).

use bytes::Bytes;
use sluice_wire::{HEADER_FRAMING, RECORD_FRAMING, decode_records, encode_record_nullable};

/// One record as produced and consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Bytes>,
    /// `None` is a null value (a Kafka tombstone), distinct from an empty
    /// one.
    pub value: Option<Bytes>,
    /// Names and values in order, repeats kept; `None` is a null value.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A record read back from a partition, with its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub offset: u64,
    pub record: Record,
}

pub use sluice_wire::WireError as DecodeError;

impl Record {
    /// The value's bytes; empty when the value is null.
    pub fn value_bytes(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }

    /// Bytes this record counts for in read limits: key + value + headers.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value_bytes().len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.as_ref().map_or(0, Bytes::len))
                .sum::<usize>()
    }

    fn encoded_len(&self) -> usize {
        RECORD_FRAMING + self.size() + self.headers.len() * HEADER_FRAMING
    }
}

fn encode_one(out: &mut Vec<u8>, r: &Record) -> Result<(), DecodeError> {
    encode_record_nullable(
        out,
        r.timestamp_ms,
        r.key.as_deref(),
        r.value.as_deref(),
        r.headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())),
    )
}

/// Encodes records into one batch payload.
pub fn encode_batch(records: &[Record]) -> Result<Bytes, String> {
    let mut out = Vec::with_capacity(records.iter().map(Record::encoded_len).sum());
    for r in records {
        encode_one(&mut out, r).map_err(|e| e.to_string())?;
    }
    Ok(Bytes::from(out))
}

/// Decodes a batch of `count` records starting at `base_offset`.
pub fn decode_batch(batch: &Bytes, base_offset: u64, count: u32) -> Result<Vec<OffsetRecord>, DecodeError> {
    if base_offset.checked_add(u64::from(count)).is_none() {
        let (what, len) = ("record count past the last offset", count as usize);
        return Err(DecodeError::TooLong { what, len });
    }
    let views = decode_records(batch, count)?;
    Ok(views
        .into_iter()
        .enumerate()
        .map(|(i, v)| OffsetRecord {
            offset: base_offset + i as u64,
            record: from_view(batch, &v),
        })
        .collect())
}

/// The largest timestamp among a batch's `count` records (`None` for an
/// empty batch).
pub fn max_timestamp(batch: &[u8], count: u32) -> Result<Option<u64>, DecodeError> {
    let mut pos = 0;
    let mut max = None;
    for i in 0..count {
        let v = sluice_wire::decode_record(batch, &mut pos, i)?;
        max = max.max(Some(v.timestamp_ms));
    }
    Ok(max)
}

/// The record `v` decoded from `batch`, its byte fields sharing `batch`.
pub fn from_view(batch: &Bytes, v: &sluice_wire::RecordView<'_>) -> Record {
    Record {
        key: v.key.map(|k| batch.slice_ref(k)),
        value: v.value_opt().map(|val| batch.slice_ref(val)),
        headers: v
            .headers()
            .iter_nullable()
            .map(|(n, val)| (n.to_string(), val.map(|val| batch.slice_ref(val))))
            .collect(),
        timestamp_ms: v.timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<u64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            proptest::collection::vec(
                (
                    "[a-z]{0,8}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                ),
                0..4,
            ),
        )
            .prop_map(|(ts, key, value, headers)| Record {
                timestamp_ms: ts,
                key: key.map(Bytes::from),
                value: value.map(Bytes::from),
                headers: headers.into_iter().map(|(n, v)| (n, v.map(Bytes::from))).collect(),
            })
    }

    proptest! {
        #[test]
        fn batch_round_trip(records in proptest::collection::vec(arb_record(), 0..20), base: u32) {
            let enc = encode_batch(&records).unwrap();
            let dec = decode_batch(&enc, base as u64, records.len() as u32).unwrap();
            prop_assert_eq!(dec.len(), records.len());
            for (i, (d, r)) in dec.iter().zip(&records).enumerate() {
                prop_assert_eq!(d.offset, base as u64 + i as u64);
                prop_assert_eq!(&d.record, r);
            }
        }

        #[test]
        fn truncated_batches_are_errors_not_panics(records in proptest::collection::vec(arb_record(), 1..5),
                                                    cut in any::<prop::sample::Index>()) {
            let enc = encode_batch(&records).unwrap();
            let cut = cut.index(enc.len());
            let res = decode_batch(&enc.slice(..cut), 0, records.len() as u32);
            prop_assert!(res.is_err());
        }
    }

    #[test]
    fn null_value_differs_from_empty_value() {
        let a = Record {
            value: Some(Bytes::new()),
            ..Default::default()
        };
        let b = Record {
            value: None,
            ..Default::default()
        };
        let dec = decode_batch(&encode_batch(&[a.clone(), b.clone()]).unwrap(), 0, 2).unwrap();
        assert_eq!(dec[0].record.value.as_deref(), Some(&b""[..]));
        assert_eq!(dec[1].record.value, None);
        assert_eq!(b.value_bytes(), b"");
    }

    #[test]
    fn empty_key_differs_from_no_key() {
        let a = Record {
            key: Some(Bytes::new()),
            ..Default::default()
        };
        let b = Record {
            key: None,
            ..Default::default()
        };
        let dec = decode_batch(&encode_batch(&[a.clone(), b.clone()]).unwrap(), 0, 2).unwrap();
        assert_eq!(dec[0].record, a);
        assert_eq!(dec[1].record, b);
    }
}
