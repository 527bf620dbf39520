//! Fuzz target bodies: one function per decoder of untrusted bytes, shared
//! by the cargo-fuzz targets in `fuzz/` and by the corpus replay test below,
//! which runs every committed input in an ordinary `cargo test`.
//!
//! Owns nothing else. Each function takes arbitrary bytes and asserts only
//! what must hold for any input: no panic, no arithmetic overflow, no
//! allocation out of proportion to the input, and cheap invariants (decoded
//! lengths within the input, re-encoding reproduces the bytes). Compiled
//! with the `fuzzing` feature (and in this crate's tests); not an API.
//!
//! Checksums stop a blind fuzzer at the first CRC. So that the code behind
//! them is reached too, a target that decodes checksummed framing runs
//! twice: on the input as it is, and on a copy whose CRCs were recomputed
//! (the `repair_*` functions), which exercises everything a checksum does
//! not protect against (a crafted file or a hostile peer).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::cluster::wire::{FetchHeader, FetchResponse, Reassembly};
use crate::kafka::{batch as kafka_batch, dispatch, legacy};
use crate::log::meta::{ControlOp, Snapshot};
use crate::log::{producers, progress, record};
use crate::tier::segment::{self as tier_seg, BATCH_HEADER_LEN, FOOTER_LEN, INDEX_ENTRY_LEN};
use crate::wal::format::{
    ENTRY_HEADER_LEN, EntryKind, EntryMeta, SEGMENT_HEADER_LEN, TRIM_LEN, decode_entry_header, decode_segment_header,
    decode_trim,
};
use crate::wal::object_format::{OBJECT_HEADER_LEN, decode_header, decode_object};
use crate::wal::recovery::recover;
use crate::wal::segment::segment_name;

/// Bound on one decoded batch in the targets (the node's own default is
/// larger; the fuzzer's memory limit is not).
const MAX_BATCH: usize = 1 << 20;

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

// ---------------------------------------------------------------- WAL ----

/// The local WAL: recovery of a segment file holding `data` (the real
/// [`recover`], on a scratch directory), then every entry's payload decoded
/// as the log's replay and reads decode it; plus the header and trim-marker
/// decoders on the raw bytes.
pub fn wal_entry(data: &[u8]) {
    wal_entry_once(data);
    let mut fixed = data.to_vec();
    repair_segment(&mut fixed);
    if fixed != data {
        wal_entry_once(&fixed);
    }
}

fn wal_entry_once(data: &[u8]) {
    if decode_trim(data).is_some() {
        assert_eq!(data.len(), TRIM_LEN);
    }
    if let Some(raw) = data.get(..SEGMENT_HEADER_LEN).and_then(|b| b.try_into().ok()) {
        let _ = decode_segment_header(raw);
    }
    if let Some(raw) = data.get(SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + ENTRY_HEADER_LEN)
        && let Ok(raw) = <&[u8; ENTRY_HEADER_LEN]>::try_from(raw)
        && let Ok(h) = decode_entry_header(raw)
    {
        assert!(h.payload_len <= crate::wal::format::MAX_PAYLOAD_LEN);
    }
    let dir = Scratch::new();
    let first_lsn = le64(data, 16).unwrap_or(crate::wal::FIRST_LSN);
    if std::fs::write(dir.0.join(segment_name(first_lsn)), data).is_err() {
        return;
    }
    let mut seen: Vec<(u64, EntryMeta, Vec<u8>)> = Vec::new();
    let recovered = recover(&dir.0, &mut |e| {
        assert_eq!(e.location.len as usize, ENTRY_HEADER_LEN + e.payload.len());
        assert!(e.location.pos as usize + e.location.len as usize <= data.len());
        seen.push((e.lsn, e.meta, e.payload.to_vec()));
    });
    let Ok(r) = recovered else { return };
    assert_eq!(r.entries, seen.len() as u64);
    assert!(r.tail_len <= data.len() as u64);
    for w in seen.windows(2) {
        assert_eq!(w[0].0.checked_add(1), Some(w[1].0), "recovered LSNs are consecutive");
    }
    let mut snap = Snapshot::new();
    for (lsn, meta, payload) in &seen {
        entry_payload(&mut snap, *lsn, meta, payload);
    }
}

/// Decodes an entry payload by its kind, as log replay and reads do.
fn entry_payload(snap: &mut Snapshot, lsn: u64, meta: &EntryMeta, payload: &[u8]) {
    let trailer = match meta.kind {
        EntryKind::Control => {
            if let Ok(op) = serde_json::from_slice::<ControlOp>(payload) {
                snap.apply(lsn, &op);
            }
            return;
        }
        EntryKind::Records => 0,
        EntryKind::RecordsWithProgress => match progress::decode(payload) {
            Some(_) => progress::LEN,
            None => return,
        },
        EntryKind::RecordsWithProducer => match producers::decode(payload) {
            Some(_) => producers::LEN,
            None => return,
        },
    };
    record_batch(&payload[..payload.len() - trailer], meta.base_offset, meta.count);
}

/// A record batch as the log stores it: decodes, and re-encodes to the same bytes.
fn record_batch(body: &[u8], base_offset: u64, count: u32) {
    let batch = Bytes::copy_from_slice(body);
    let Ok(records) = record::decode_batch(&batch, base_offset, count) else {
        return;
    };
    assert_eq!(records.len(), count as usize);
    let plain: Vec<record::Record> = records.into_iter().map(|r| r.record).collect();
    let again = record::encode_batch(&plain);
    assert_eq!(again.as_deref(), Ok(body), "a decoded batch re-encodes to its bytes");
}

/// Recomputes the CRCs of a segment header and of the entries after it.
fn repair_segment(buf: &mut [u8]) {
    if buf.len() >= SEGMENT_HEADER_LEN {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[0..12]), &buf[16..SEGMENT_HEADER_LEN]);
        put32(buf, 12, crc);
    }
    repair_entries(buf, SEGMENT_HEADER_LEN);
}

/// Recomputes each entry's CRC, walking the framing from `pos` while it holds.
fn repair_entries(buf: &mut [u8], mut pos: usize) {
    while let Some(len) = le32(buf, pos) {
        let Some(end) = pos.checked_add(8).and_then(|p| p.checked_add(len as usize)) else {
            return;
        };
        if len < 32 || end > buf.len() {
            return;
        }
        let crc = crc32c::crc32c(&buf[pos + 8..end]);
        put32(buf, pos + 4, crc);
        pos = end;
    }
}

/// A fresh, empty directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// --------------------------------------------------------- object WAL ----

/// The object WAL: an object's header and whole-object decoding, then the
/// payloads as replay decodes them.
pub fn object_wal(data: &[u8]) {
    object_wal_once(data);
    let mut fixed = data.to_vec();
    if fixed.len() >= OBJECT_HEADER_LEN {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed[0..12]), &fixed[16..OBJECT_HEADER_LEN]);
        put32(&mut fixed, 12, crc);
    }
    repair_entries(&mut fixed, OBJECT_HEADER_LEN);
    if fixed != data {
        object_wal_once(&fixed);
    }
}

fn object_wal_once(data: &[u8]) {
    let header = decode_header(data);
    let Ok((h, entries)) = decode_object(data) else {
        return;
    };
    assert_eq!(header.ok(), Some(h));
    assert_eq!(entries.len(), h.entries as usize);
    let mut snap = Snapshot::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(h.first_lsn.checked_add(i as u64), Some(e.lsn));
        assert!(e.lsn <= h.last_lsn);
        let payload = &data[e.payload_pos..e.payload_pos + e.payload_len];
        entry_payload(&mut snap, e.lsn, &e.meta, payload);
    }
}

// ---------------------------------------------------- tiered segments ----

/// A segment object: the footer and index (`parse_tail` on the bytes from
/// the footer's `index_pos`, as a cold read fetches them, and on the whole
/// object), the batches a range read returns (`split_batches`), and their
/// record batches.
pub fn tier_segment(data: &[u8]) {
    tier_segment_once(data);
    let mut fixed = data.to_vec();
    repair_tier_segment(&mut fixed);
    if fixed != data {
        tier_segment_once(&fixed);
    }
}

fn tier_segment_once(obj: &[u8]) {
    let _ = tier_seg::parse_tail(obj);
    let Some(index_pos) = obj.len().checked_sub(FOOTER_LEN).and_then(|f| le64(obj, f + 32)) else {
        return;
    };
    let Some(tail) = usize::try_from(index_pos).ok().and_then(|p| obj.get(p..)) else {
        return;
    };
    let Ok((footer, index)) = tier_seg::parse_tail(tail) else {
        return;
    };
    assert_eq!(footer.index_pos, index_pos);
    assert_eq!(index.len(), footer.batches as usize);
    for e in &index {
        assert!(e.byte_range().end <= index_pos, "a batch lies before the index");
        assert!(e.base_offset >= footer.first_offset && e.end() <= footer.end_offset);
    }
    // A cold read fetches a run of consecutive batches with one range read.
    for from in [0, index.len() / 2] {
        let run = &index[from..];
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            continue;
        };
        let bytes = Bytes::copy_from_slice(&obj[first.pos as usize..last.byte_range().end as usize]);
        let Ok(payloads) = tier_seg::split_batches(&bytes, run) else {
            continue;
        };
        assert_eq!(payloads.len(), run.len());
        for (e, p) in run.iter().zip(&payloads) {
            assert_eq!(p.len(), e.len as usize);
            record_batch(p, e.base_offset, e.count);
        }
    }
}

/// Recomputes the batch, index and footer CRCs of a segment object.
fn repair_tier_segment(obj: &mut [u8]) {
    let Some(f) = obj.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let index_pos = le64(obj, f + 32)
        .and_then(|p| usize::try_from(p).ok())
        .unwrap_or(usize::MAX);
    let entry_len = tier_seg::entry_len(&obj[f..f + 8]).unwrap_or(INDEX_ENTRY_LEN);
    if index_pos <= f && (f - index_pos).is_multiple_of(entry_len) {
        for at in (index_pos..f).step_by(entry_len) {
            let (Some(pos), Some(len)) = (le64(obj, at + 8), le32(obj, at + 20)) else {
                continue;
            };
            let start = usize::try_from(pos).ok().and_then(|p| p.checked_add(BATCH_HEADER_LEN));
            let Some((start, end)) = start.and_then(|s| Some((s, s.checked_add(len as usize)?))) else {
                continue;
            };
            if end <= index_pos {
                let crc = crc32c::crc32c(&obj[start..end]);
                put32(obj, start - BATCH_HEADER_LEN + 16, crc);
            }
        }
        let crc = crc32c::crc32c(&obj[index_pos..f]);
        put32(obj, f + 12, crc);
    }
    let crc = crc32c::crc32c(&obj[f..f + 40]);
    put32(obj, f + 40, crc);
}

// -------------------------------------------------------- replication ----

/// A replication fetch answer as a follower decodes it, then its batches as
/// the follower appends them (record batches decoded, a fragment started
/// and pushed into a reassembly).
pub fn replication_fetch(data: &[u8]) {
    replication_fetch_once(data);
    if let Some(fixed) = repair_fetch(data)
        && fixed != data
    {
        replication_fetch_once(&fixed);
    }
}

fn replication_fetch_once(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    let _ = FetchResponse::decode(body.clone(), 64);
    let Ok(resp) = FetchResponse::decode(body, MAX_BATCH as u64) else {
        return;
    };
    assert!(resp.data.len() <= data.len());
    let mut total = 0usize;
    for (head, bytes) in resp.batches() {
        assert_eq!(bytes.len(), head.len as usize);
        total += bytes.len();
        record_batch(&bytes, head.base_offset, head.count);
    }
    if let Some(f) = resp.header.fragment {
        assert_eq!(resp.data.len(), f.len as usize);
        if let Ok(mut asm) = Reassembly::start(&f, MAX_BATCH as u64)
            && let Ok(Some(whole)) = asm.push(&f, &resp.data)
        {
            assert_eq!(whole.len() as u64, f.total_len);
            record_batch(&whole, f.base_offset, f.count);
        }
    } else {
        assert_eq!(total, resp.data.len());
    }
}

/// Re-encodes an answer with the CRCs its header should carry.
fn repair_fetch(data: &[u8]) -> Option<Vec<u8>> {
    let head_len = le32(data, 5)? as usize;
    let head = data.get(9..9usize.checked_add(head_len)?)?;
    let mut header: FetchHeader = serde_json::from_slice(head).ok()?;
    let rest = &data[9 + head_len..];
    let mut at = 0usize;
    for b in &mut header.batches {
        let Some(bytes) = at.checked_add(b.len as usize).and_then(|end| rest.get(at..end)) else {
            break;
        };
        b.crc = crc32c::crc32c(bytes);
        at += bytes.len();
    }
    if let Some(f) = &mut header.fragment {
        f.crc = crc32c::crc32c(rest);
        if f.index == 0 && f.of == 1 && f.total_len == rest.len() as u64 {
            f.total_crc = f.crc;
        }
    }
    let mut out = FetchResponse {
        header,
        data: Bytes::new(),
    }
    .encode()
    .ok()?;
    out.extend_from_slice(rest);
    out[..5].copy_from_slice(data.get(..5)?);
    Some(out)
}

// -------------------------------------------------------------- Kafka ----

/// One Kafka request frame (without its length prefix), decoded in the
/// order the connection's dispatcher decodes it: API key and version
/// checked against what this node speaks, Produce v0–v2 through the legacy
/// reader, then the request header and body (`kafka-protocol`), and a
/// Produce request's record sets through this node's batch decoder (also
/// with their CRCs repaired).
pub fn kafka_request(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return;
    };
    let Some(&(_, lo, hi)) = dispatch::SUPPORTED.iter().find(|(k, _, _)| *k == api) else {
        return;
    };
    let mut frame = Bytes::copy_from_slice(data);
    if api == ApiKey::Produce && dispatch::LEGACY_PRODUCE.contains(&version) {
        let _ = legacy::answer(frame, version);
        return;
    }
    if version < lo || version > hi {
        return;
    }
    let Ok(header) = RequestHeader::decode(&mut frame, api.request_header_version(version)) else {
        return;
    };
    assert_eq!((header.request_api_key, header.request_api_version), (key, version));
    let Ok(request) = RequestKind::decode(api, &mut frame, version) else {
        return;
    };
    if let RequestKind::Produce(req) = request {
        for topic in &req.topic_data {
            for p in &topic.partition_data {
                if let Some(records) = &p.records {
                    kafka_record_set(records);
                }
            }
        }
    }
}

/// A Produce record set: decoded as is, and with every batch's CRC repaired.
fn kafka_record_set(records: &Bytes) {
    if let Ok(batches) = kafka_batch::decode_batches(records, MAX_BATCH, 0) {
        assert!(!batches.is_empty());
    }
    let mut fixed = records.to_vec();
    let mut pos = 0usize;
    while let Some(len) = fixed.get(pos + 8..pos + 12) {
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let Some(end) = usize::try_from(len).ok().and_then(|l| l.checked_add(pos + 12)) else {
            break;
        };
        if end > fixed.len() || end < pos + kafka_batch::HEADER_LEN {
            break;
        }
        let crc = crc32c::crc32c(&fixed[pos + kafka_batch::CRC_START..end]);
        fixed[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
    if fixed != records[..] {
        let _ = kafka_batch::decode_batches(&Bytes::from(fixed), MAX_BATCH, 0);
    }
}

// ---------------------------------------------------------- wire codec ----

/// The plugin batch codec (`sluice_wire`): a plugin batch, and the same
/// bytes as a count and that many record bodies. Whatever decodes
/// re-encodes to the same bytes, from its raw bodies and from its parts.
pub fn wire_batch(data: &[u8]) {
    if let Ok(batch) = sluice_wire::decode_batch(data) {
        let mut raw = sluice_wire::BatchWriter::default();
        let mut parts = sluice_wire::BatchWriter::default();
        for r in &batch {
            let v = &r.record;
            assert!(v.raw.len() <= data.len());
            let headers: Vec<(&str, Option<&[u8]>)> = v.headers().iter_nullable().collect();
            assert_eq!(headers.len(), v.headers().len());
            assert_eq!(v.headers().iter().count(), headers.len());
            if let Some((name, _)) = headers.first() {
                assert!(v.headers().get(name).is_some());
            }
            assert!(raw.push_raw(r.offset, v).is_ok());
            assert!(
                parts
                    .push_nullable(r.offset, v.timestamp_ms, v.key, v.value_opt(), headers)
                    .is_ok()
            );
        }
        assert_eq!(raw.len() as usize, batch.len());
        assert_eq!(raw.finish(), data, "push_raw reproduces the batch");
        assert_eq!(parts.finish(), data, "encoding the parts reproduces the batch");
    }
    if let Some(count) = le32(data, 0) {
        let bodies = &data[4..];
        if let Ok(views) = sluice_wire::decode_records(bodies, count) {
            assert_eq!(views.len(), count as usize);
            let mut out = Vec::with_capacity(bodies.len());
            for v in &views {
                assert!(
                    sluice_wire::encode_record_nullable(
                        &mut out,
                        v.timestamp_ms,
                        v.key,
                        v.value_opt(),
                        v.headers().iter_nullable()
                    )
                    .is_ok()
                );
            }
            assert_eq!(out, bodies, "record bodies re-encode to their bytes");
        }
    }
}

mod kafka_handle;
pub use kafka_handle::{Harness as KafkaHarness, Seen as KafkaSeen, kafka_handle};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_kafka_handle;
