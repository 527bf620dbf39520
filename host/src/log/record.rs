//! Records and the batch encoding stored in WAL entries (and, later, in
//! segment objects and replication responses).
//!
//! A batch is the records of one append, back to back; offsets are implicit
//! (`base_offset + index`, from the WAL entry). Little-endian:
//!
//! ```text
//! record
//! +--------------+-----------+-----+-----------+-------+-----------+---------+
//! | timestamp_ms | key_len+1 | key | value_len | value | n_headers | headers |
//! | u64          | u32       |     | u32       |       | u16       |         |
//! +--------------+-----------+-----+-----------+-------+-----------+---------+
//!   key_len+1 = 0 means "no key" (distinct from an empty key)
//! header: name_len u16 | name (UTF-8) | value_len u32 | value
//! ```
//!
//! Decoding never panics on bad input: it returns [`DecodeError`], and
//! decoded byte fields share the batch buffer (no copy).

use bytes::{BufMut, Bytes};

/// One record as produced and consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A record read back from a partition, with its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub offset: u64,
    pub record: Record,
}

/// Largest header name, in bytes.
pub const MAX_HEADER_NAME: usize = u16::MAX as usize;
/// Most headers on one record.
pub const MAX_HEADERS: usize = u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("batch ends inside record {index}")]
    Truncated { index: u32 },
    #[error("header name of record {index} is not UTF-8")]
    HeaderName { index: u32 },
    #[error("batch has {extra} bytes after its {count} records")]
    Trailing { count: u32, extra: usize },
}

impl Record {
    /// Bytes this record counts for in read limits: key + value + headers.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.len()
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }

    fn encoded_len(&self) -> usize {
        8 + 4 + 4 + 2 + self.size() + self.headers.len() * 6
    }
}

/// Checks limits the encoding imposes; returns a description of the problem.
pub fn validate(record: &Record) -> Result<(), String> {
    if record.headers.len() > MAX_HEADERS {
        return Err(format!(
            "a record has {} headers; at most {MAX_HEADERS}",
            record.headers.len()
        ));
    }
    for (name, _) in &record.headers {
        if name.len() > MAX_HEADER_NAME {
            return Err(format!("header name of {} bytes exceeds {MAX_HEADER_NAME}", name.len()));
        }
    }
    let too_big = |n: usize| n >= u32::MAX as usize;
    if too_big(record.value.len()) || record.key.as_ref().is_some_and(|k| too_big(k.len())) {
        return Err("a key or value exceeds 4 GiB".into());
    }
    Ok(())
}

/// Encodes records (already [`validate`]d) into one batch payload.
pub fn encode_batch(records: &[Record]) -> Bytes {
    let mut out = Vec::with_capacity(records.iter().map(Record::encoded_len).sum());
    for r in records {
        out.put_u64_le(r.timestamp_ms);
        match &r.key {
            None => out.put_u32_le(0),
            Some(k) => {
                out.put_u32_le(k.len() as u32 + 1);
                out.put_slice(k);
            }
        }
        out.put_u32_le(r.value.len() as u32);
        out.put_slice(&r.value);
        out.put_u16_le(r.headers.len() as u16);
        for (name, value) in &r.headers {
            out.put_u16_le(name.len() as u16);
            out.put_slice(name.as_bytes());
            out.put_u32_le(value.len() as u32);
            out.put_slice(value);
        }
    }
    Bytes::from(out)
}

/// Decodes a batch of `count` records starting at `base_offset`.
pub fn decode_batch(batch: &Bytes, base_offset: u64, count: u32) -> Result<Vec<OffsetRecord>, DecodeError> {
    let mut r = Reader { buf: batch, pos: 0 };
    let mut out = Vec::with_capacity(count as usize);
    for index in 0..count {
        let t = DecodeError::Truncated { index };
        let timestamp_ms = r.u64().ok_or(t.clone())?;
        let key = match r.u32().ok_or(t.clone())? {
            0 => None,
            n => Some(r.bytes(n as usize - 1).ok_or(t.clone())?),
        };
        let value_len = r.u32().ok_or(t.clone())?;
        let value = r.bytes(value_len as usize).ok_or(t.clone())?;
        let n_headers = r.u16().ok_or(t.clone())?;
        let mut headers = Vec::with_capacity(n_headers as usize);
        for _ in 0..n_headers {
            let name_len = r.u16().ok_or(t.clone())?;
            let name = r.bytes(name_len as usize).ok_or(t.clone())?;
            let name = String::from_utf8(name.to_vec()).map_err(|_| DecodeError::HeaderName { index })?;
            let vlen = r.u32().ok_or(t.clone())?;
            headers.push((name, r.bytes(vlen as usize).ok_or(t.clone())?));
        }
        out.push(OffsetRecord {
            offset: base_offset + index as u64,
            record: Record {
                key,
                value,
                headers,
                timestamp_ms,
            },
        });
    }
    if r.pos != batch.len() {
        return Err(DecodeError::Trailing {
            count,
            extra: batch.len() - r.pos,
        });
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn bytes(&mut self, n: usize) -> Option<Bytes> {
        let start = self.pos;
        self.take(n)?;
        Some(self.buf.slice(start..self.pos))
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        Some(u64::from_le_bytes(b))
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
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
        )
            .prop_map(|(ts, key, value, headers)| Record {
                timestamp_ms: ts,
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                headers: headers.into_iter().map(|(n, v)| (n, Bytes::from(v))).collect(),
            })
    }

    proptest! {
        #[test]
        fn batch_round_trip(records in proptest::collection::vec(arb_record(), 0..20), base: u32) {
            let enc = encode_batch(&records);
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
            let enc = encode_batch(&records);
            let cut = cut.index(enc.len());
            let res = decode_batch(&enc.slice(..cut), 0, records.len() as u32);
            prop_assert!(res.is_err());
        }
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
        let dec = decode_batch(&encode_batch(&[a.clone(), b.clone()]), 0, 2).unwrap();
        assert_eq!(dec[0].record, a);
        assert_eq!(dec[1].record, b);
    }
}
