//! Byte layout of WAL segment headers, entries and the trim marker.
//!
//! All integers are little-endian. Every segment file starts with a
//! 40-byte header; entries follow back to back.
//!
//! ```text
//! segment header (40 bytes)
//! +--------+---------+--------+-----------+----------+------------+
//! | magic  | version | crc32c | first_lsn | trim_lsn | created_ms |
//! | 8 B    | u32     | u32    | u64       | u64      | u64        |
//! +--------+---------+--------+-----------+----------+------------+
//!   magic = "SLUICEWL"; crc covers bytes 0..12 and 16..40;
//!   version 1, or 2 in a recycled file (bytes after the last entry may be
//!   the file's earlier contents).
//!
//! entry (40-byte header + payload)
//! +-----+--------+-----+------+--------+--------+-----------+-------+---------+
//! | len | crc32c | lsn | kind | 3 x 0  | stream | partition | base  | count   | payload
//! | u32 | u32    | u64 | u8   | pad    | u32    | u32       | u64   | u32     | len-32 B
//! +-----+--------+-----+------+--------+--------+-----------+-------+---------+
//!   len = bytes from `lsn` to the end of the payload (32 + payload length)
//!   crc = CRC32C of exactly those `len` bytes
//!
//! trim marker file `wal/trim` (20 bytes)
//! +-----------+----------+--------+
//! | "SLTRIM01"| trim_lsn | crc32c |  crc covers bytes 0..16
//! +-----------+----------+--------+
//! ```
//!
//! Invariant: an entry is valid only if its length is in range, its CRC
//! matches, and its LSN is exactly one more than the previous entry's.

use super::error::Corruption;

/// Size of a segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 40;
/// Size of an entry header (len, crc and the fixed fields) in bytes.
pub const ENTRY_HEADER_LEN: usize = 40;
/// Bytes of an entry covered by `len` and the CRC that are not payload.
const ENTRY_FIXED_LEN: u32 = 32;
/// Hard upper bound on one entry's payload, whatever the configuration.
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024 * 1024;

const SEGMENT_MAGIC: &[u8; 8] = b"SLUICEWL";
const SEGMENT_VERSION: u32 = 1;
/// The version of a segment written into a recycled file: the same layout,
/// but the bytes after its last entry may be the file's earlier contents.
const SEGMENT_VERSION_RECYCLED: u32 = 2;
const TRIM_MAGIC: &[u8; 8] = b"SLTRIM01";
/// Size of the trim marker file.
pub const TRIM_LEN: usize = 20;

/// What an entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// A batch of records for one partition.
    Records = 1,
    /// A metadata change (stream created, deleted, ...) encoded by the log layer.
    Control = 2,
    /// A batch of records followed by a 16-byte progress trailer (pipeline id
    /// u32, input partition u32, next input offset u64): a pipeline's output
    /// and its input position become durable together, in one entry.
    RecordsWithProgress = 3,
    /// A batch of records followed by a 14-byte producer trailer (producer
    /// id i64, epoch i16, base sequence i32): an idempotent producer's batch.
    RecordsWithProducer = 4,
}

impl EntryKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Records),
            2 => Some(Self::Control),
            3 => Some(Self::RecordsWithProgress),
            4 => Some(Self::RecordsWithProducer),
            _ => None,
        }
    }
}

/// The fixed fields of an entry, apart from framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    pub kind: EntryKind,
    pub stream: u32,
    pub partition: u32,
    pub base_offset: u64,
    pub count: u32,
}

/// A decoded entry header: the payload follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    pub lsn: u64,
    pub crc: u32,
    pub payload_len: usize,
    pub meta: EntryMeta,
}

/// Total on-disk size of an entry with a payload of `payload_len` bytes.
pub fn entry_len(payload_len: usize) -> usize {
    ENTRY_HEADER_LEN + payload_len
}

/// Appends one framed entry to `out`.
pub fn encode_entry(out: &mut Vec<u8>, lsn: u64, meta: &EntryMeta, payload: &[u8]) {
    encode_entry_header(out, lsn, meta, payload);
    out.extend_from_slice(payload);
}

/// Appends the 40-byte header of the entry that frames `payload` (its CRC
/// covers the payload) to `out`; the payload must follow it on disk.
pub fn encode_entry_header(out: &mut Vec<u8>, lsn: u64, meta: &EntryMeta, payload: &[u8]) {
    let start = out.len();
    let len = ENTRY_FIXED_LEN + payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // crc, patched below
    out.extend_from_slice(&lsn.to_le_bytes());
    out.push(meta.kind as u8);
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(&meta.stream.to_le_bytes());
    out.extend_from_slice(&meta.partition.to_le_bytes());
    out.extend_from_slice(&meta.base_offset.to_le_bytes());
    out.extend_from_slice(&meta.count.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start + 8..]), payload);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes an entry header. Does not check the CRC (it covers the payload).
pub fn decode_entry_header(buf: &[u8; ENTRY_HEADER_LEN]) -> Result<EntryHeader, Corruption> {
    let len = u32_at(buf, 0);
    if len < ENTRY_FIXED_LEN || (len - ENTRY_FIXED_LEN) as usize > MAX_PAYLOAD_LEN {
        return Err(Corruption::BadLength(len));
    }
    let kind = EntryKind::from_u8(buf[16]).ok_or(Corruption::BadKind(buf[16]))?;
    Ok(EntryHeader {
        crc: u32_at(buf, 4),
        lsn: u64_at(buf, 8),
        payload_len: (len - ENTRY_FIXED_LEN) as usize,
        meta: EntryMeta {
            kind,
            stream: u32_at(buf, 20),
            partition: u32_at(buf, 24),
            base_offset: u64_at(buf, 28),
            count: u32_at(buf, 36),
        },
    })
}

/// Checks the CRC of an entry given its header bytes and payload.
pub fn entry_crc_ok(header: &EntryHeader, raw_header: &[u8; ENTRY_HEADER_LEN], payload: &[u8]) -> bool {
    let mut hasher = crc32c::crc32c(&raw_header[8..]);
    hasher = crc32c::crc32c_append(hasher, payload);
    hasher == header.crc
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub first_lsn: u64,
    pub trim_lsn: u64,
    pub created_ms: u64,
    /// Written into a recycled file (version 2): what follows the last
    /// entry may be entries and bytes of the file's earlier life.
    pub recycled: bool,
}

pub fn encode_segment_header(h: &SegmentHeader) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[0..8].copy_from_slice(SEGMENT_MAGIC);
    let version = if h.recycled {
        SEGMENT_VERSION_RECYCLED
    } else {
        SEGMENT_VERSION
    };
    out[8..12].copy_from_slice(&version.to_le_bytes());
    out[16..24].copy_from_slice(&h.first_lsn.to_le_bytes());
    out[24..32].copy_from_slice(&h.trim_lsn.to_le_bytes());
    out[32..40].copy_from_slice(&h.created_ms.to_le_bytes());
    let crc = segment_header_crc(&out);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_segment_header(buf: &[u8; SEGMENT_HEADER_LEN]) -> Result<SegmentHeader, Corruption> {
    if &buf[0..8] != SEGMENT_MAGIC {
        return Err(Corruption::BadMagic);
    }
    let version = u32_at(buf, 8);
    if version != SEGMENT_VERSION && version != SEGMENT_VERSION_RECYCLED {
        return Err(Corruption::UnsupportedVersion(version));
    }
    if u32_at(buf, 12) != segment_header_crc(buf) {
        return Err(Corruption::BadCrc);
    }
    Ok(SegmentHeader {
        first_lsn: u64_at(buf, 16),
        trim_lsn: u64_at(buf, 24),
        created_ms: u64_at(buf, 32),
        recycled: version == SEGMENT_VERSION_RECYCLED,
    })
}

fn segment_header_crc(buf: &[u8; SEGMENT_HEADER_LEN]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&buf[0..12]), &buf[16..40])
}

pub fn encode_trim(trim_lsn: u64) -> [u8; TRIM_LEN] {
    let mut out = [0u8; TRIM_LEN];
    out[0..8].copy_from_slice(TRIM_MAGIC);
    out[8..16].copy_from_slice(&trim_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&out[0..16]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the trim marker; `None` if it is not a valid marker.
pub fn decode_trim(buf: &[u8]) -> Option<u64> {
    if buf.len() != TRIM_LEN || &buf[0..8] != TRIM_MAGIC {
        return None;
    }
    (crc32c::crc32c(&buf[0..16]) == u32_at(buf, 16)).then(|| u64_at(buf, 8))
}

pub(super) fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(super) fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta() -> EntryMeta {
        EntryMeta {
            kind: EntryKind::Records,
            stream: 7,
            partition: 3,
            base_offset: 99,
            count: 4,
        }
    }

    proptest! {
        #[test]
        fn entry_round_trip(lsn: u64, stream: u32, partition: u32, base: u64, count: u32,
                            payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let m = EntryMeta { kind: EntryKind::Control, stream, partition, base_offset: base, count };
            let mut out = Vec::new();
            encode_entry(&mut out, lsn, &m, &payload);
            prop_assert_eq!(out.len(), entry_len(payload.len()));
            let raw: [u8; ENTRY_HEADER_LEN] = out[..ENTRY_HEADER_LEN].try_into().unwrap();
            let h = decode_entry_header(&raw).unwrap();
            prop_assert_eq!(h.lsn, lsn);
            prop_assert_eq!(h.meta, m);
            prop_assert_eq!(h.payload_len, payload.len());
            prop_assert!(entry_crc_ok(&h, &raw, &out[ENTRY_HEADER_LEN..]));
        }

        #[test]
        fn any_flipped_bit_is_detected(bit in 0usize..(8 * (ENTRY_HEADER_LEN + 16))) {
            let mut out = Vec::new();
            encode_entry(&mut out, 5, &meta(), &[1u8; 16]);
            out[bit / 8] ^= 1 << (bit % 8);
            let raw: [u8; ENTRY_HEADER_LEN] = out[..ENTRY_HEADER_LEN].try_into().unwrap();
            let ok = match decode_entry_header(&raw) {
                Err(_) => false,
                Ok(h) => h.payload_len == 16 && entry_crc_ok(&h, &raw, &out[ENTRY_HEADER_LEN..]),
            };
            prop_assert!(!ok, "flip of bit {} went unnoticed", bit);
        }
    }

    #[test]
    fn segment_header_round_trip_and_crc() {
        let h = SegmentHeader {
            first_lsn: 42,
            trim_lsn: 7,
            created_ms: 1234,
            recycled: false,
        };
        let recycled = SegmentHeader { recycled: true, ..h };
        let raw = encode_segment_header(&recycled);
        assert_eq!(u32::from_le_bytes(raw[8..12].try_into().unwrap()), 2);
        assert_eq!(decode_segment_header(&raw).unwrap(), recycled);
        let mut raw = encode_segment_header(&h);
        assert_eq!(u32::from_le_bytes(raw[8..12].try_into().unwrap()), 1);
        assert_eq!(decode_segment_header(&raw).unwrap(), h);
        raw[20] ^= 0x10;
        assert_eq!(decode_segment_header(&raw), Err(Corruption::BadCrc));
        raw[0] = b'X';
        assert_eq!(decode_segment_header(&raw), Err(Corruption::BadMagic));
    }

    #[test]
    fn trim_marker_round_trip_and_corruption() {
        let raw = encode_trim(1 << 40);
        assert_eq!(decode_trim(&raw), Some(1 << 40));
        let mut bad = raw;
        bad[9] ^= 1;
        assert_eq!(decode_trim(&bad), None);
        assert_eq!(decode_trim(&raw[..19]), None);
    }

    #[test]
    fn oversized_length_is_corruption() {
        let mut out = Vec::new();
        encode_entry(&mut out, 1, &meta(), b"x");
        out[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let raw: [u8; ENTRY_HEADER_LEN] = out[..ENTRY_HEADER_LEN].try_into().unwrap();
        assert!(matches!(decode_entry_header(&raw), Err(Corruption::BadLength(_))));
    }
}
