//! Fetch answers: runs of stored record bodies written as uncompressed
//! Kafka record batches (magic 2) with their own offsets; gaps left by
//! compaction fall between runs, each run its own batches. No record is
//! built: each field is copied once, from the stored body straight into the
//! answer.
//!
//! Invariants: one batch never spans more offsets than its 32-bit offset
//! delta holds; every batch's length and CRC-32C cover exactly what was
//! written; each record's length is computed before it is written, so
//! nothing goes through a scratch buffer.

use bytes::{BufMut, Bytes, BytesMut};
use sluice_wire::{Headers, NullableHeaderIter, WireError, decode_record};

use super::batch::{CRC_START, HEADER_LEN};
use crate::node::{OffsetRecord, RecordRun};

/// One record to write, borrowed from a decoded record or a stored body.
#[derive(Clone, Copy)]
struct Rec<'a> {
    offset: u64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: Hdrs<'a>,
}

/// A record's headers: still encoded in a stored body, or built.
#[derive(Clone, Copy)]
enum Hdrs<'a> {
    Stored(Headers<'a>),
    Built(&'a [(String, Option<Bytes>)]),
}

impl<'a> Hdrs<'a> {
    fn len(self) -> usize {
        match self {
            Hdrs::Stored(h) => h.len(),
            Hdrs::Built(h) => h.len(),
        }
    }

    fn iter(self) -> HdrIter<'a> {
        match self {
            Hdrs::Stored(h) => HdrIter::Stored(h.iter_nullable()),
            Hdrs::Built(h) => HdrIter::Built(h.iter()),
        }
    }
}

enum HdrIter<'a> {
    Stored(NullableHeaderIter<'a>),
    Built(std::slice::Iter<'a, (String, Option<Bytes>)>),
}

impl<'a> Iterator for HdrIter<'a> {
    type Item = (&'a str, Option<&'a [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HdrIter::Stored(i) => i.next(),
            HdrIter::Built(i) => i.next().map(|(n, v)| (n.as_str(), v.as_deref())),
        }
    }
}

fn timestamp(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Appends the records of `runs` below `end` (the high watermark) as
/// uncompressed batches, one or more per run, each record in a batch
/// labelled with the leader epoch it was written in (`epochs`, as
/// `Host::epoch_starts`; records before its first entry, or all when it is
/// empty, get `leader_epoch`), as many as fit in `budget`
/// bytes of answer (batch headers included, as Kafka counts a partition's
/// bytes). With `at_least_one`, the first record is written whatever its
/// size (a big record never blocks a consumer); without, a first record
/// that does not fit leaves nothing written. A run that does not decode is
/// an error and nothing of it is written.
pub(super) fn encode_runs(
    out: &mut BytesMut,
    runs: &[RecordRun],
    end: u64,
    leader_epoch: i32,
    epochs: &[(u32, u64)],
    budget: usize,
    at_least_one: bool,
) -> Result<(), WireError> {
    let epoch_of = |offset: u64| match epochs.partition_point(|(_, start)| *start <= offset) {
        0 => leader_epoch,
        n => epochs
            .get(n - 1)
            .map_or(leader_epoch, |(e, _)| i32::try_from(*e).unwrap_or(i32::MAX)),
    };
    let start = out.len();
    let mut recs = Vec::new();
    for run in runs {
        recs.clear();
        let mut bound = BatchBound::default();
        // The epoch of the records in `recs`: a record of another ends
        // their batch.
        let mut epoch = leader_epoch;
        let mut full = false;
        let mut pos = 0;
        for i in 0..run.count {
            let offset = run.first_offset.saturating_add(u64::from(i));
            if offset >= end {
                break;
            }
            let v = decode_record(&run.bodies, &mut pos, i)?;
            let rec = Rec {
                offset,
                timestamp: timestamp(v.timestamp_ms),
                key: v.key,
                value: v.value_opt(),
                headers: Hdrs::Stored(v.headers()),
            };
            let its_epoch = epoch_of(offset);
            if its_epoch != epoch && !recs.is_empty() {
                encode_recs(out, &recs, epoch);
                recs.clear();
                bound = BatchBound::default();
            }
            epoch = its_epoch;
            let written = out.len() - start;
            let first = written == 0 && recs.is_empty();
            if written.saturating_add(bound.with(&rec)) > budget && !(first && at_least_one) {
                full = true;
                break;
            }
            bound.add(&rec);
            recs.push(rec);
        }
        encode_recs(out, &recs, epoch);
        if full {
            break;
        }
    }
    Ok(())
}

/// An upper bound of the bytes one batch of the records added so far takes
/// as `encode_one` writes it: exact but for the timestamp deltas (each
/// counted at the width of the batch's timestamp span) and the record
/// length varints (counted as if those deltas took ten bytes). A batch
/// split because its offsets span more than 32 bits would add a header;
/// reads are limited far below that.
#[derive(Default)]
struct BatchBound {
    /// The first record's offset: the batch's base.
    base: Option<u64>,
    min_ts: i64,
    max_ts: i64,
    /// Records' bytes without their timestamp deltas, length varints included.
    rest: usize,
    records: usize,
}

impl BatchBound {
    /// The bound with `r` added.
    fn with(&self, r: &Rec<'_>) -> usize {
        let base = self.base.unwrap_or(r.offset);
        let (min_ts, max_ts) = if self.records == 0 {
            (r.timestamp, r.timestamp)
        } else {
            (self.min_ts.min(r.timestamp), self.max_ts.max(r.timestamp))
        };
        let ts = varlong_len(max_ts.wrapping_sub(min_ts));
        let records = self.records.saturating_add(1);
        HEADER_LEN
            .saturating_add(self.rest)
            .saturating_add(Self::rest_of(r, base))
            .saturating_add(records.saturating_mul(ts))
    }

    fn add(&mut self, r: &Rec<'_>) {
        let base = *self.base.get_or_insert(r.offset);
        if self.records == 0 {
            (self.min_ts, self.max_ts) = (r.timestamp, r.timestamp);
        } else {
            self.min_ts = self.min_ts.min(r.timestamp);
            self.max_ts = self.max_ts.max(r.timestamp);
        }
        self.rest = self.rest.saturating_add(Self::rest_of(r, base));
        self.records = self.records.saturating_add(1);
    }

    /// `r`'s bytes but its timestamp delta: `record_len` with a zero delta
    /// (one byte, taken off), plus its length varint at the widest delta.
    fn rest_of(r: &Rec<'_>, base: u64) -> usize {
        let at_zero = record_len(&Rec { timestamp: 0, ..*r }, 0, base) - 1;
        varlong_len(at_zero.saturating_add(10) as i64).saturating_add(at_zero)
    }
}

/// Appends a view's read: the records below `next` (output records carry
/// their input record's offset) in one batch from `from` whose last offset
/// is `next - 1`, so a client moves past filtered-out offsets, trailing
/// ones included, even when nothing passed (an empty batch, as compaction
/// leaves them). Nothing is written when `next <= from`. Within `budget`
/// bytes as `encode_runs`: the batch then ends before the first record
/// that does not fit (the client reads on from it).
pub(super) fn encode_view(
    out: &mut BytesMut,
    records: &[OffsetRecord],
    from: u64,
    next: u64,
    leader_epoch: i32,
    budget: usize,
    at_least_one: bool,
) {
    let mut recs: Vec<Rec<'_>> = records
        .iter()
        .filter(|r| r.offset >= from && r.offset < next)
        .map(|r| Rec {
            offset: r.offset,
            timestamp: timestamp(r.record.timestamp_ms),
            key: r.record.key.as_deref(),
            value: r.record.value.as_deref(),
            headers: Hdrs::Built(&r.record.headers),
        })
        .collect();
    let mut bound = BatchBound {
        base: Some(from),
        ..BatchBound::default()
    };
    let mut next = next;
    for (i, r) in recs.iter().enumerate() {
        if bound.with(r) > budget && !(i == 0 && at_least_one) {
            next = r.offset;
            recs.truncate(i);
            break;
        }
        bound.add(r);
    }
    if recs.is_empty() && HEADER_LEN > budget && !at_least_one {
        return;
    }
    let Some(span) = next.checked_sub(from).and_then(|n| n.checked_sub(1)) else {
        return;
    };
    match i32::try_from(span) {
        Ok(last_delta) => encode_one(out, &recs, from, last_delta, leader_epoch),
        // Wider than one batch can say: the records alone, as streams are.
        Err(_) => encode_recs(out, &recs, leader_epoch),
    }
}

fn encode_recs(out: &mut BytesMut, recs: &[Rec<'_>], leader_epoch: i32) {
    let mut rest = recs;
    while let Some(first) = rest.first() {
        let fits = rest
            .iter()
            .take_while(|r| i32::try_from(r.offset.saturating_sub(first.offset)).is_ok())
            .count();
        let (batch, tail) = rest.split_at(fits.max(1));
        let last = batch.last().map_or(0, |l| l.offset.saturating_sub(first.offset));
        encode_one(out, batch, first.offset, last as i32, leader_epoch);
        rest = tail;
    }
}

fn put_varlong(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Bytes of a zigzag varint.
fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Bytes of a length-prefixed field (`None`: the -1 length alone).
fn bytes_len(b: Option<&[u8]>) -> usize {
    b.map_or(1, |b| varlong_len(b.len() as i64) + b.len())
}

fn put_bytes(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.put_slice(b);
        }
    }
}

/// Bytes of one record after its length varint, as `encode_one` writes it.
fn record_len(r: &Rec<'_>, base_ts: i64, base_offset: u64) -> usize {
    let mut headers = 0usize;
    for (n, v) in r.headers.iter() {
        headers += bytes_len(Some(n.as_bytes())) + bytes_len(v);
    }
    1 + varlong_len(r.timestamp.wrapping_sub(base_ts))
        + varlong_len(r.offset.saturating_sub(base_offset) as i64)
        + bytes_len(r.key)
        + bytes_len(r.value)
        + varlong_len(r.headers.len() as i64)
        + headers
}

/// One batch at offset `base` covering `base ..= base + last_delta`; every
/// record's offset is in that range (callers ensure it).
fn encode_one(out: &mut BytesMut, recs: &[Rec<'_>], base: u64, last_delta: i32, leader_epoch: i32) {
    let base_ts = recs.iter().map(|r| r.timestamp).min().unwrap_or(-1);
    let max_ts = recs.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let lens: Vec<usize> = recs.iter().map(|r| record_len(r, base_ts, base)).collect();
    let body: usize = lens.iter().map(|&l| varlong_len(l as i64) + l).sum();
    out.reserve(HEADER_LEN + body);
    let start = out.len();
    out.put_i64(base as i64);
    out.put_i32(0); // length, filled in below
    out.put_i32(leader_epoch);
    out.put_i8(2);
    out.put_u32(0); // CRC, filled in below
    out.put_i16(0); // attributes: uncompressed, create time
    out.put_i32(last_delta);
    out.put_i64(base_ts);
    out.put_i64(max_ts);
    out.put_i64(-1); // producer id
    out.put_i16(-1); // producer epoch
    out.put_i32(-1); // base sequence
    out.put_i32(recs.len() as i32);
    for (r, len) in recs.iter().zip(lens) {
        put_varlong(out, len as i64);
        out.put_u8(0);
        put_varlong(out, r.timestamp.wrapping_sub(base_ts));
        put_varlong(out, r.offset.saturating_sub(base) as i64);
        put_bytes(out, r.key);
        put_bytes(out, r.value);
        put_varlong(out, r.headers.len() as i64);
        for (n, v) in r.headers.iter() {
            put_bytes(out, Some(n.as_bytes()));
            put_bytes(out, v);
        }
    }
    let length = (out.len() - start - 12) as i32;
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + CRC_START..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
#[path = "encode_tests.rs"]
pub(super) mod tests;
