//! Kafka record batches (magic 2) to and from Sluice records.
//!
//! Produce: every batch of a partition's record set is checked before
//! anything of it is used — length, magic, CRC-32C, record count against the
//! bytes that could hold it, a bounded decompression (`compress`) — then its
//! records become [`Record`]s: key (absent stays absent), value (null stays
//! null, distinct from empty), headers in order with duplicates kept (null
//! values stay null), and the record's create time (the node's
//! clock for log-append-time batches or a negative timestamp).
//!
//! Fetch answers are written by `encode`.
//!
//! The record-level codec is written here rather than taken from
//! `kafka-protocol`: that crate's record model keeps headers in a map, which
//! drops repeated header keys that Kafka and Sluice both allow. Its batch
//! decoder checks this module's output in the tests.

use bytes::{Buf, Bytes};
use kafka_protocol::records::Compression;

use super::compress::{Inflate, inflate};
use crate::node::Record;

/// Bytes before a batch's records: base offset (8), length (4), then the
/// 49 bytes the length counts up to the records.
pub(crate) const HEADER_LEN: usize = 61;
/// Bytes of a batch counted by its length field, before the records.
const LENGTH_COUNTED_HEADER: usize = HEADER_LEN - 12;
/// Where the CRC-covered part starts (attributes onwards).
pub(crate) const CRC_START: usize = 21;
/// The smallest record: seven one-byte varints and the attributes byte.
const MIN_RECORD_LEN: usize = 7;

const ATTR_COMPRESSION: i16 = 0x7;
const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// Why a produced record set was refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BatchError {
    /// Framing, CRC or record encoding is wrong (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// The batch is, or decompresses to, more than the node takes (MESSAGE_TOO_LARGE).
    #[error("record batch too large: {0}")]
    TooLarge(String),
    /// Well-formed, but not something this node stores (INVALID_RECORD or
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("{0}")]
    Unsupported(String),
}

impl From<Inflate> for BatchError {
    fn from(e: Inflate) -> Self {
        match e {
            Inflate::TooLarge { .. } => BatchError::TooLarge(e.to_string()),
            Inflate::Corrupt { .. } => BatchError::Corrupt(e.to_string()),
        }
    }
}

/// The idempotent-producer fields of a batch (`producer_id` -1: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// One decoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Produced {
    pub records: Vec<Record>,
    pub producer: ProducerFields,
    /// The batch as sent, when it reads back exactly as its records are
    /// stored (offset deltas 0, 1, ...; create times, none negative): a
    /// fetch may then send these bytes.
    pub verbatim: Option<Bytes>,
}

/// The size of each batch of a record set as sent (its length field plus
/// the 12 bytes before it), as far as the set holds whole batches.
pub(crate) fn sent_sizes(data: &[u8]) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut rest = data;
    while let Some(length) = rest.get(8..12) {
        let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        let Some(total) = usize::try_from(length).ok().and_then(|l| l.checked_add(12)) else {
            break;
        };
        let Some(after) = rest.get(total..) else {
            break;
        };
        sizes.push(total);
        rest = after;
    }
    sizes
}

/// Decodes every batch of a produce request's record set. `cap` bounds one
/// batch's size, compressed and decompressed.
pub(crate) fn decode_batches(data: &Bytes, cap: usize, now_ms: u64) -> Result<Vec<Produced>, BatchError> {
    let mut rest = data.clone();
    let mut out = Vec::new();
    if rest.is_empty() {
        return Err(BatchError::Corrupt("the record set is empty".into()));
    }
    while !rest.is_empty() {
        if rest.len() < HEADER_LEN {
            return Err(BatchError::Corrupt(format!(
                "{} bytes left, a batch header needs {HEADER_LEN}",
                rest.len()
            )));
        }
        let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l >= LENGTH_COUNTED_HEADER)
            .ok_or_else(|| BatchError::Corrupt(format!("batch length {length}")))?;
        let total = length
            .checked_add(12)
            .ok_or_else(|| BatchError::Corrupt("batch length overflows".into()))?;
        if total > cap {
            return Err(BatchError::TooLarge(format!(
                "a batch of {total} bytes; the limit is {cap}"
            )));
        }
        if total > rest.len() {
            return Err(BatchError::Corrupt(format!(
                "batch length {length} runs past the record set ({} bytes left)",
                rest.len()
            )));
        }
        let batch = rest.split_to(total);
        out.push(decode_one(batch, cap, now_ms)?);
    }
    Ok(out)
}

fn decode_one(batch: Bytes, cap: usize, now_ms: u64) -> Result<Produced, BatchError> {
    let mut h = &batch[12..HEADER_LEN];
    let _partition_leader_epoch = h.get_i32();
    let magic = h.get_i8();
    if magic != 2 {
        return Err(BatchError::Unsupported(format!(
            "record batches of magic {magic} are not supported (only 2, Kafka 0.11 and later)"
        )));
    }
    let crc = h.get_u32();
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if crc != actual {
        return Err(BatchError::Corrupt(format!(
            "CRC mismatch: the batch says {crc:#010x}, its bytes give {actual:#010x}"
        )));
    }
    let attributes = h.get_i16();
    let last_offset_delta = h.get_i32();
    let base_timestamp = h.get_i64();
    let _max_timestamp = h.get_i64();
    let producer = ProducerFields {
        producer_id: h.get_i64(),
        producer_epoch: h.get_i16(),
        base_sequence: h.get_i32(),
    };
    let count = h.get_i32();
    if attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL) != 0 {
        return Err(BatchError::Unsupported(
            "transactional and control batches are not supported (transactions are not)".into(),
        ));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c >= 1)
        .ok_or_else(|| BatchError::Corrupt(format!("record count {count}")))?;
    if i64::from(last_offset_delta) != i64::try_from(count).unwrap_or(i64::MAX) - 1 {
        return Err(BatchError::Corrupt(format!(
            "last offset delta {last_offset_delta} does not match {count} records"
        )));
    }
    let codec = match attributes & ATTR_COMPRESSION {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => return Err(BatchError::Corrupt(format!("unknown compression codec {other}"))),
    };
    let body = inflate(&batch.slice(HEADER_LEN..), codec, cap)?;
    let log_append = attributes & ATTR_LOG_APPEND_TIME != 0;
    let mut exact = !log_append;
    if count.checked_mul(MIN_RECORD_LEN).is_none_or(|min| min > body.len()) {
        return Err(BatchError::Corrupt(format!(
            "{count} records cannot fit in {} bytes",
            body.len()
        )));
    }
    let mut reader = Reader { buf: body };
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        let (record, as_sent) = reader
            .record(base_timestamp, log_append, now_ms, i)
            .map_err(|e| BatchError::Corrupt(format!("record {i}: {e}")))?;
        exact &= as_sent;
        records.push(record);
    }
    if !reader.buf.is_empty() {
        return Err(BatchError::Corrupt(format!(
            "{} bytes after the last of {count} records",
            reader.buf.len()
        )));
    }
    Ok(Produced {
        records,
        producer,
        verbatim: exact.then_some(batch),
    })
}

/// Reads records off a decompressed body, slicing keys and values without copies.
struct Reader {
    buf: Bytes,
}

impl Reader {
    /// The record at `index`, and whether it reads back as sent (see
    /// [`Produced::verbatim`]).
    fn record(
        &mut self,
        base_timestamp: i64,
        log_append: bool,
        now_ms: u64,
        index: usize,
    ) -> Result<(Record, bool), String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "negative record length".to_string())?;
        if len > self.buf.len() {
            return Err(format!("length {len} runs past the batch"));
        }
        let mut rec = Reader {
            buf: self.buf.split_to(len),
        };
        let _attributes = rec.byte()?;
        let ts_delta = rec.varlong()?;
        let offset_delta = rec.varint()?;
        let key = rec.bytes()?;
        let value = rec.bytes()?;
        let mut as_sent = usize::try_from(offset_delta).is_ok_and(|d| d == index);
        let header_count = usize::try_from(rec.varint()?).map_err(|_| "negative header count".to_string())?;
        if header_count > rec.buf.len() / 2 {
            return Err(format!("{header_count} headers cannot fit in the record"));
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let name = rec.bytes()?.ok_or("a header without a name")?;
            let name = String::from_utf8(name.to_vec()).map_err(|_| "a header name is not UTF-8".to_string())?;
            headers.push((name, rec.bytes()?));
        }
        if !rec.buf.is_empty() {
            return Err(format!("{} bytes after the record's headers", rec.buf.len()));
        }
        let timestamp = base_timestamp.checked_add(ts_delta).filter(|t| *t >= 0 && !log_append);
        as_sent &= timestamp.is_some();
        let timestamp_ms = timestamp.and_then(|t| u64::try_from(t).ok()).unwrap_or(now_ms);
        let record = Record {
            key,
            value,
            headers,
            timestamp_ms,
        };
        Ok((record, as_sent))
    }

    fn byte(&mut self) -> Result<u8, String> {
        if self.buf.is_empty() {
            return Err("truncated".into());
        }
        Ok(self.buf.get_u8())
    }

    fn varlong(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn varint(&mut self) -> Result<i32, String> {
        i32::try_from(self.varlong()?).map_err(|_| "varint out of 32-bit range".to_string())
    }

    /// A varint length then that many bytes; -1 is null.
    fn bytes(&mut self) -> Result<Option<Bytes>, String> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| format!("length {len}"))?;
        if len > self.buf.len() {
            return Err(format!("length {len} runs past the record"));
        }
        Ok(Some(self.buf.split_to(len)))
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
