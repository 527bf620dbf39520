//! Segment objects: one partition's batches for an offset range, as stored
//! in the object store, with an index footer for range reads.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! batch*   := header(24 B) payload
//! header   := base_offset u64 | count u32 | len u32 | crc32c(payload) u32 | 0 u32
//! index    := (base_offset u64 | pos u64 | count u32 | len u32
//!              | max_timestamp_ms u64)*                           -- one per batch
//! footer   := magic "SLSEGv02" | batches u32 | index_crc u32 | first_offset u64
//!             | end_offset u64 | index_pos u64 | footer_crc u32 | 0 u32   (48 B)
//! ```
//!
//! `max_timestamp_ms` is the largest record timestamp in the batch
//! (`u64::MAX`: unknown), so a search by time reads only the batch it needs.
//! Objects written before it existed carry magic "SLSEGv01" and 24-byte
//! index entries without it; they are read as well, every batch's largest
//! timestamp unknown.
//!
//! The payload is a record batch in the WAL's record encoding (no progress
//! trailer). Invariants: batches are in offset order, non-overlapping, and
//! inside `first_offset..end_offset`; an upload's segment is contiguous, a
//! compacted one may have gaps between batches (offsets are preserved, so
//! removed records leave holes); every payload and the index carry a CRC,
//! checked on every read. A reader fetches the footer and index once (both
//! positions are in the manifest) and then range-reads only the batches it
//! needs.

use bytes::{BufMut, Bytes, BytesMut};

use crate::log::record;

pub const MAGIC: &[u8; 8] = b"SLSEGv02";
/// The magic of objects written before index entries carried timestamps.
pub const MAGIC_V1: &[u8; 8] = b"SLSEGv01";
pub const BATCH_HEADER_LEN: usize = 24;
pub const INDEX_ENTRY_LEN: usize = 32;
pub const INDEX_ENTRY_LEN_V1: usize = 24;
pub const FOOTER_LEN: usize = 48;

/// The index entry length of an object whose footer starts with `magic`.
pub fn entry_len(magic: &[u8]) -> Option<usize> {
    match magic {
        m if m == MAGIC => Some(INDEX_ENTRY_LEN),
        m if m == MAGIC_V1 => Some(INDEX_ENTRY_LEN_V1),
        _ => None,
    }
}

/// One batch as listed in a segment's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub base_offset: u64,
    /// Byte position of the batch header in the object.
    pub pos: u64,
    pub count: u32,
    /// Payload length (without the header).
    pub len: u32,
    /// At or above every record timestamp in the batch (`u64::MAX`:
    /// unknown).
    pub max_timestamp_ms: u64,
}

impl IndexEntry {
    /// The offset after the batch (saturating: parsed entries are checked
    /// not to overflow).
    pub fn end(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.count))
    }

    /// Byte range of header and payload in the object (saturating, as
    /// [`IndexEntry::end`]).
    pub fn byte_range(&self) -> std::ops::Range<u64> {
        self.pos..self.pos.saturating_add(BATCH_HEADER_LEN as u64 + u64::from(self.len))
    }
}

/// What the footer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub batches: u32,
    pub first_offset: u64,
    pub end_offset: u64,
    pub index_pos: u64,
    index_crc: u32,
}

/// Builds a segment object incrementally: each `push` returns the bytes to
/// append to the object, `finish` returns the index and footer.
#[derive(Debug, Default)]
pub struct SegmentWriter {
    index: Vec<IndexEntry>,
    pos: u64,
    /// With gaps allowed: the range's first offset.
    gapped_from: Option<u64>,
}

impl SegmentWriter {
    /// A writer of contiguous batches (an upload).
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer for the range starting at `first_offset` whose batches may
    /// leave gaps (compaction output).
    pub fn with_gaps(first_offset: u64) -> Self {
        SegmentWriter {
            gapped_from: Some(first_offset),
            ..Self::default()
        }
    }

    /// Appends one batch: it must start where the previous one ended (or,
    /// with gaps allowed, anywhere after it).
    pub fn push(&mut self, base_offset: u64, count: u32, payload: &[u8]) -> Result<Bytes, String> {
        let floor = self.index.last().map(|e| e.end()).or(self.gapped_from);
        match (floor, self.gapped_from) {
            (Some(end), None) if base_offset != end => {
                return Err(format!("batch at {base_offset} does not follow {end}"));
            }
            (Some(end), Some(_)) if base_offset < end => {
                return Err(format!("batch at {base_offset} overlaps offsets below {end}"));
            }
            _ => {}
        }
        if count == 0 {
            return Err(format!("empty batch at {base_offset}"));
        }
        let len = u32::try_from(payload.len()).map_err(|_| "batch larger than 4 GiB".to_string())?;
        let mut b = BytesMut::with_capacity(BATCH_HEADER_LEN + payload.len());
        b.put_u64_le(base_offset);
        b.put_u32_le(count);
        b.put_u32_le(len);
        b.put_u32_le(crc32c::crc32c(payload));
        b.put_u32_le(0);
        b.put_slice(payload);
        // Unknown if the payload is not a record batch this node decodes
        // (its bytes are kept as they are either way).
        let max_timestamp_ms = record::max_timestamp(payload, count).ok().flatten().unwrap_or(u64::MAX);
        self.index.push(IndexEntry {
            base_offset,
            pos: self.pos,
            count,
            len,
            max_timestamp_ms,
        });
        self.pos += b.len() as u64;
        Ok(b.freeze())
    }

    /// The largest record timestamp among the batches pushed so far, if
    /// every batch's is known.
    pub fn max_timestamp(&self) -> Option<u64> {
        let max = self.index.iter().map(|e| e.max_timestamp_ms).max()?;
        (max != u64::MAX).then_some(max)
    }

    /// The index and footer that close the object, plus the footer's facts.
    pub fn finish(self) -> (Bytes, Footer) {
        let end = self.index.last().map_or(0, |e| e.end());
        self.finish_at(end)
    }

    /// Like [`SegmentWriter::finish`] for a range that ends at `end_offset`
    /// (at or after the last batch; a compacted range may end in a gap).
    pub fn finish_at(self, end_offset: u64) -> (Bytes, Footer) {
        let mut b = BytesMut::with_capacity(self.index.len() * INDEX_ENTRY_LEN + FOOTER_LEN);
        for e in &self.index {
            put_entry(&mut b, e);
        }
        let index_crc = crc32c::crc32c(&b);
        let first_offset = self
            .gapped_from
            .or(self.index.first().map(|e| e.base_offset))
            .unwrap_or(end_offset);
        let footer = Footer {
            batches: self.index.len() as u32,
            first_offset,
            end_offset: end_offset.max(self.index.last().map_or(0, |e| e.end())),
            index_pos: self.pos,
            index_crc,
        };
        let start = b.len();
        b.put_slice(MAGIC);
        b.put_u32_le(footer.batches);
        b.put_u32_le(index_crc);
        b.put_u64_le(footer.first_offset);
        b.put_u64_le(footer.end_offset);
        b.put_u64_le(footer.index_pos);
        let crc = crc32c::crc32c(&b[start..]);
        b.put_u32_le(crc);
        b.put_u32_le(0);
        (b.freeze(), footer)
    }
}

fn put_entry(b: &mut BytesMut, e: &IndexEntry) {
    b.put_u64_le(e.base_offset);
    b.put_u64_le(e.pos);
    b.put_u32_le(e.count);
    b.put_u32_le(e.len);
    b.put_u64_le(e.max_timestamp_ms);
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses the bytes from `index_pos` to the end of the object: index then
/// footer. Checks both CRCs and that the index is contiguous.
pub fn parse_tail(tail: &[u8]) -> Result<(Footer, Vec<IndexEntry>), String> {
    if tail.len() < FOOTER_LEN {
        return Err(format!("tail of {} bytes is shorter than the footer", tail.len()));
    }
    let f = &tail[tail.len() - FOOTER_LEN..];
    let entry_len = entry_len(&f[..8]).ok_or("bad footer magic")?;
    if crc32c::crc32c(&f[..40]) != u32_at(f, 40) || u32_at(f, 44) != 0 {
        return Err("footer checksum mismatch".into());
    }
    let footer = Footer {
        batches: u32_at(f, 8),
        index_crc: u32_at(f, 12),
        first_offset: u64_at(f, 16),
        end_offset: u64_at(f, 24),
        index_pos: u64_at(f, 32),
    };
    let index = &tail[..tail.len() - FOOTER_LEN];
    if index.len() as u64 != u64::from(footer.batches) * entry_len as u64 {
        return Err(format!("index of {} bytes for {} batches", index.len(), footer.batches));
    }
    if crc32c::crc32c(index) != footer.index_crc {
        return Err("index checksum mismatch".into());
    }
    let entries: Vec<IndexEntry> = index
        .chunks_exact(entry_len)
        .map(|c| IndexEntry {
            base_offset: u64_at(c, 0),
            pos: u64_at(c, 8),
            count: u32_at(c, 16),
            len: u32_at(c, 20),
            max_timestamp_ms: if entry_len == INDEX_ENTRY_LEN {
                u64_at(c, 24)
            } else {
                u64::MAX
            },
        })
        .collect();
    // Offsets and byte positions both increase, without overlaps, and every
    // batch lies before the index: a crafted index cannot make a reader
    // wrap, underflow or read past the batches.
    let (mut next, mut next_pos) = (footer.first_offset, 0u64);
    for e in &entries {
        if e.base_offset < next || e.count == 0 {
            return Err(format!("index out of order at offset {}", e.base_offset));
        }
        let end = e
            .base_offset
            .checked_add(u64::from(e.count))
            .ok_or_else(|| format!("index entry at offset {} runs past the last offset", e.base_offset))?;
        let bytes_end = e
            .pos
            .checked_add(BATCH_HEADER_LEN as u64 + u64::from(e.len))
            .filter(|b| e.pos >= next_pos && *b <= footer.index_pos)
            .ok_or_else(|| {
                format!(
                    "index entry at offset {} lies outside the object's batches",
                    e.base_offset
                )
            })?;
        (next, next_pos) = (end, bytes_end);
    }
    if next > footer.end_offset {
        return Err("index runs past the footer's end offset".into());
    }
    Ok((footer, entries))
}

/// Splits a byte range fetched from `first.pos` on into the payloads of the
/// listed batches (consecutive index entries), checking each header and CRC.
pub fn split_batches(bytes: &Bytes, entries: &[IndexEntry]) -> Result<Vec<Bytes>, String> {
    let Some(first) = entries.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let at = usize::try_from(e.pos.saturating_sub(first.pos)).unwrap_or(usize::MAX);
        let end = at.saturating_add(BATCH_HEADER_LEN).saturating_add(e.len as usize);
        if end > bytes.len() {
            return Err(format!("batch at offset {} cut short", e.base_offset));
        }
        let h = &bytes[at..at + BATCH_HEADER_LEN];
        if u64_at(h, 0) != e.base_offset || u32_at(h, 8) != e.count || u32_at(h, 12) != e.len || u32_at(h, 20) != 0 {
            return Err(format!(
                "batch header at offset {} disagrees with the index",
                e.base_offset
            ));
        }
        let payload = bytes.slice(at + BATCH_HEADER_LEN..end);
        if crc32c::crc32c(&payload) != u32_at(h, 16) {
            return Err(format!("batch at offset {} fails its checksum", e.base_offset));
        }
        out.push(payload);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(batches: &[(u64, u32, &[u8])]) -> (Vec<u8>, Footer) {
        let mut w = SegmentWriter::new();
        let mut obj = Vec::new();
        for (base, count, payload) in batches {
            obj.extend_from_slice(&w.push(*base, *count, payload).unwrap());
        }
        let (tail, footer) = w.finish();
        obj.extend_from_slice(&tail);
        (obj, footer)
    }

    #[test]
    fn round_trips_index_and_batches() {
        let (obj, footer) = build(&[(10, 2, b"ab"), (12, 1, b"cde"), (13, 5, b"")]);
        assert_eq!((footer.first_offset, footer.end_offset, footer.batches), (10, 18, 3));
        let (f2, index) = parse_tail(&obj[footer.index_pos as usize..]).unwrap();
        assert_eq!(f2, footer);
        assert_eq!(
            index.iter().map(|e| e.base_offset).collect::<Vec<_>>(),
            vec![10, 12, 13]
        );
        let range = index[1].pos as usize..index[2].byte_range().end as usize;
        let payloads = split_batches(&Bytes::copy_from_slice(&obj[range]), &index[1..]).unwrap();
        assert_eq!(payloads, vec![Bytes::from_static(b"cde"), Bytes::new()]);
    }

    fn records(stamps: &[u64]) -> Bytes {
        let recs: Vec<_> = stamps
            .iter()
            .map(|t| crate::Record {
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Vec::new(),
                timestamp_ms: *t,
            })
            .collect();
        record::encode_batch(&recs).unwrap()
    }

    #[test]
    fn each_batch_keeps_its_largest_timestamp() {
        let (a, b) = (records(&[50, 70, 60]), records(&[10]));
        let (obj, footer) = build(&[(0, 3, &a[..]), (3, 1, &b[..])]);
        let (_, index) = parse_tail(&obj[footer.index_pos as usize..]).unwrap();
        let maxima: Vec<_> = index.iter().map(|e| e.max_timestamp_ms).collect();
        assert_eq!(maxima, vec![70, 10]);
        let mut w = SegmentWriter::new();
        w.push(0, 3, &a).unwrap();
        w.push(3, 1, &b).unwrap();
        assert_eq!(w.max_timestamp(), Some(70));
        // A payload that is not a record batch: unknown, for the batch and
        // for the segment.
        w.push(4, 1, b"x").unwrap();
        assert_eq!(w.index[2].max_timestamp_ms, u64::MAX);
        assert_eq!(w.max_timestamp(), None);
        assert_eq!(SegmentWriter::new().max_timestamp(), None);
    }

    /// Objects written before index entries carried timestamps still read.
    #[test]
    fn a_version_1_object_reads_with_unknown_timestamps() {
        let (obj, footer) = build(&[(10, 2, b"ab"), (12, 1, b"cde")]);
        let (_, index) = parse_tail(&obj[footer.index_pos as usize..]).unwrap();
        // The same object as the previous version wrote it.
        let mut old = obj[..footer.index_pos as usize].to_vec();
        let mut ix = BytesMut::new();
        for e in &index {
            ix.put_u64_le(e.base_offset);
            ix.put_u64_le(e.pos);
            ix.put_u32_le(e.count);
            ix.put_u32_le(e.len);
        }
        old.extend_from_slice(&ix);
        let mut f = BytesMut::new();
        f.put_slice(MAGIC_V1);
        f.put_u32_le(2);
        f.put_u32_le(crc32c::crc32c(&ix));
        f.put_u64_le(10);
        f.put_u64_le(13);
        f.put_u64_le(footer.index_pos);
        let crc = crc32c::crc32c(&f);
        f.put_u32_le(crc);
        f.put_u32_le(0);
        old.extend_from_slice(&f);
        let (f1, index1) = parse_tail(&old[footer.index_pos as usize..]).unwrap();
        assert_eq!((f1.first_offset, f1.end_offset, f1.batches), (10, 13, 2));
        let unknown: Vec<_> = index
            .iter()
            .map(|e| IndexEntry {
                max_timestamp_ms: u64::MAX,
                ..*e
            })
            .collect();
        assert_eq!(index1, unknown);
        let payloads = split_batches(&Bytes::copy_from_slice(&old[..footer.index_pos as usize]), &index1).unwrap();
        assert_eq!(payloads, vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")]);
    }

    #[test]
    fn a_gapped_segment_keeps_its_range_and_offsets() {
        let mut w = SegmentWriter::with_gaps(100);
        let mut obj = Vec::new();
        obj.extend_from_slice(&w.push(103, 2, b"ab").unwrap());
        assert!(w.push(104, 1, b"x").is_err(), "overlap accepted");
        obj.extend_from_slice(&w.push(110, 1, b"c").unwrap());
        let (tail, footer) = w.finish_at(120);
        obj.extend_from_slice(&tail);
        assert_eq!((footer.first_offset, footer.end_offset), (100, 120));
        let (_, index) = parse_tail(&obj[footer.index_pos as usize..]).unwrap();
        assert_eq!(
            index.iter().map(|e| (e.base_offset, e.count)).collect::<Vec<_>>(),
            vec![(103, 2), (110, 1)]
        );
        // Everything removed: an empty range is still a valid segment.
        let (tail, footer) = SegmentWriter::with_gaps(7).finish_at(9);
        assert_eq!((footer.first_offset, footer.end_offset, footer.batches), (7, 9, 0));
        assert!(parse_tail(&tail).unwrap().1.is_empty());
    }

    /// An index with valid checksums but crafted entries (positions going
    /// back, a batch past the index, offsets that overflow) is refused.
    #[test]
    fn a_crafted_index_is_refused_not_trusted() {
        let craft = |tamper: &dyn Fn(&mut Vec<IndexEntry>)| {
            let mut w = SegmentWriter::new();
            let mut obj = Vec::new();
            for (base, payload) in [(0u64, &b"hello"[..]), (1, b"world")] {
                obj.extend_from_slice(&w.push(base, 1, payload).unwrap());
            }
            tamper(&mut w.index);
            let (tail, _) = w.finish_at(2);
            parse_tail(&tail)
        };
        assert!(craft(&|_| {}).is_ok());
        let back = craft(&|ix| ix[1].pos = 0).unwrap_err();
        assert!(back.contains("outside"), "{back}");
        let past = craft(&|ix| ix[1].len = 1 << 20).unwrap_err();
        assert!(past.contains("outside"), "{past}");
        let wrap = craft(&|ix| {
            ix[1].base_offset = u64::MAX;
            ix[1].count = 2;
        })
        .unwrap_err();
        assert!(wrap.contains("last offset"), "{wrap}");
    }

    #[test]
    fn refuses_gaps_and_detects_corruption() {
        let mut w = SegmentWriter::new();
        w.push(0, 3, b"x").unwrap();
        assert!(w.push(4, 1, b"y").is_err(), "gap accepted");
        let (obj, footer) = build(&[(0, 1, b"hello"), (1, 1, b"world")]);
        for i in 0..obj.len() {
            let mut bad = obj.clone();
            bad[i] ^= 0x40;
            let tail = &bad[footer.index_pos as usize..];
            let ok_tail = parse_tail(tail);
            let ok_data = parse_tail(&obj[footer.index_pos as usize..])
                .and_then(|(_, idx)| split_batches(&Bytes::copy_from_slice(&bad[..footer.index_pos as usize]), &idx));
            assert!(ok_tail.is_err() || ok_data.is_err(), "flip at byte {i} undetected");
        }
    }
}
