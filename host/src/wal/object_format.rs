//! Byte layout and key names of the object-store WAL's objects (see
//! docs/design/0004-object-wal.md). One object holds one group of
//! consecutive entries, framed exactly as in a local segment
//! ([`super::format::encode_entry`]), behind a 64-byte header:
//!
//! ```text
//! +--------+---------+--------+-------+-----------+----------+----------+---------+-----+------------+
//! | magic  | version | crc32c | epoch | first_lsn | last_lsn | trim_lsn | entries | pad | created_ms |
//! | 8 B    | u32     | u32    | u64   | u64       | u64      | u64      | u32     | u32 | u64        |
//! +--------+---------+--------+-------+-----------+----------+----------+---------+-----+------------+
//!   magic = "SLUICEWO"; crc covers bytes 0..12 and 16..64.
//! ```
//!
//! Key: `<first_lsn:020>-<epoch:010>.obj`, so a listing sorts by LSN and a
//! fenced writer's object never collides with its successor's.
//!
//! Invariants checked by [`decode_object`]: the header's CRC matches; the
//! entries are exactly `entries` many, their LSNs run from `first_lsn` to
//! `last_lsn` without a gap, each entry's CRC matches, and no byte follows
//! the last entry. Anything else is corruption, never a partial answer.

use super::error::Corruption;
use super::format::{ENTRY_HEADER_LEN, EntryMeta, decode_entry_header, encode_entry, entry_crc_ok, u32_at, u64_at};

/// Size of an object header in bytes.
pub const OBJECT_HEADER_LEN: usize = 64;
const OBJECT_MAGIC: &[u8; 8] = b"SLUICEWO";
const OBJECT_VERSION: u32 = 1;

/// What an object's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHeader {
    /// The writer's epoch (its fencing token).
    pub epoch: u64,
    pub first_lsn: u64,
    pub last_lsn: u64,
    /// The WAL's trim point when the object was written: entries below it
    /// are not live, in this object or any older one.
    pub trim_lsn: u64,
    pub entries: u32,
    pub created_ms: u64,
}

/// One entry's place in a decoded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectEntry {
    pub lsn: u64,
    pub meta: EntryMeta,
    /// Byte range of the payload within the object.
    pub payload_pos: usize,
    pub payload_len: usize,
}

/// Encodes an object of consecutive entries starting at `first_lsn`
/// (at least one entry).
pub fn encode_object(
    epoch: u64,
    first_lsn: u64,
    trim_lsn: u64,
    created_ms: u64,
    entries: &[(EntryMeta, &[u8])],
) -> Vec<u8> {
    let size: usize = entries.iter().map(|(_, p)| ENTRY_HEADER_LEN + p.len()).sum();
    let mut out = Vec::with_capacity(OBJECT_HEADER_LEN + size);
    let header = ObjectHeader {
        epoch,
        first_lsn,
        last_lsn: first_lsn + entries.len().saturating_sub(1) as u64,
        trim_lsn,
        entries: entries.len() as u32,
        created_ms,
    };
    out.extend_from_slice(&encode_header(&header));
    for (i, (meta, payload)) in entries.iter().enumerate() {
        encode_entry(&mut out, first_lsn + i as u64, meta, payload);
    }
    out
}

pub fn encode_header(h: &ObjectHeader) -> [u8; OBJECT_HEADER_LEN] {
    let mut out = [0u8; OBJECT_HEADER_LEN];
    out[0..8].copy_from_slice(OBJECT_MAGIC);
    out[8..12].copy_from_slice(&OBJECT_VERSION.to_le_bytes());
    out[16..24].copy_from_slice(&h.epoch.to_le_bytes());
    out[24..32].copy_from_slice(&h.first_lsn.to_le_bytes());
    out[32..40].copy_from_slice(&h.last_lsn.to_le_bytes());
    out[40..48].copy_from_slice(&h.trim_lsn.to_le_bytes());
    out[48..52].copy_from_slice(&h.entries.to_le_bytes());
    out[56..64].copy_from_slice(&h.created_ms.to_le_bytes());
    let crc = header_crc(&out);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and checks a header (the first [`OBJECT_HEADER_LEN`] bytes).
pub fn decode_header(buf: &[u8]) -> Result<ObjectHeader, Corruption> {
    let buf: &[u8; OBJECT_HEADER_LEN] = buf
        .get(..OBJECT_HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(Corruption::Truncated)?;
    if &buf[0..8] != OBJECT_MAGIC {
        return Err(Corruption::BadMagic);
    }
    let version = u32_at(buf, 8);
    if version != OBJECT_VERSION {
        return Err(Corruption::UnsupportedVersion(version));
    }
    if u32_at(buf, 12) != header_crc(buf) {
        return Err(Corruption::BadCrc);
    }
    let h = ObjectHeader {
        epoch: u64_at(buf, 16),
        first_lsn: u64_at(buf, 24),
        last_lsn: u64_at(buf, 32),
        trim_lsn: u64_at(buf, 40),
        entries: u32_at(buf, 48),
        created_ms: u64_at(buf, 56),
    };
    if h.entries == 0 || h.last_lsn.checked_sub(h.first_lsn) != Some(h.entries as u64 - 1) {
        return Err(Corruption::LsnGap {
            expected: h.first_lsn.saturating_add((h.entries as u64).saturating_sub(1)),
            found: h.last_lsn,
        });
    }
    Ok(h)
}

/// Decodes a whole object and checks every entry (see the module doc).
pub fn decode_object(buf: &[u8]) -> Result<(ObjectHeader, Vec<ObjectEntry>), Corruption> {
    let header = decode_header(buf)?;
    let mut entries = Vec::with_capacity(header.entries.min(1 << 20) as usize);
    let mut pos = OBJECT_HEADER_LEN;
    let mut expected = Some(header.first_lsn);
    while pos < buf.len() {
        let raw: &[u8; ENTRY_HEADER_LEN] = buf
            .get(pos..pos + ENTRY_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(Corruption::Truncated)?;
        let h = decode_entry_header(raw)?;
        let payload = buf
            .get(pos + ENTRY_HEADER_LEN..pos + ENTRY_HEADER_LEN + h.payload_len)
            .ok_or(Corruption::Truncated)?;
        if !entry_crc_ok(&h, raw, payload) {
            return Err(Corruption::BadCrc);
        }
        if Some(h.lsn) != expected || h.lsn > header.last_lsn {
            let expected = expected.unwrap_or(u64::MAX);
            return Err(Corruption::LsnGap { expected, found: h.lsn });
        }
        entries.push(ObjectEntry {
            lsn: h.lsn,
            meta: h.meta,
            payload_pos: pos + ENTRY_HEADER_LEN,
            payload_len: h.payload_len,
        });
        // None past u64::MAX: no entry can follow.
        expected = h.lsn.checked_add(1);
        pos += ENTRY_HEADER_LEN + h.payload_len;
    }
    if entries.len() != header.entries as usize {
        return Err(Corruption::Truncated);
    }
    Ok((header, entries))
}

/// The object key (below the WAL's prefix) of a group.
pub fn object_key(first_lsn: u64, epoch: u64) -> String {
    format!("{first_lsn:020}-{epoch:010}.obj")
}

/// `(first_lsn, epoch)` of an object key; `None` for any other name.
pub fn parse_object_key(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".obj")?;
    let (lsn, epoch) = stem.split_once('-')?;
    if lsn.len() != 20 || epoch.len() != 10 || !(lsn.bytes().chain(epoch.bytes()).all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some((lsn.parse().ok()?, epoch.parse().ok()?))
}

fn header_crc(buf: &[u8; OBJECT_HEADER_LEN]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&buf[0..12]), &buf[16..64])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wal::format::EntryKind;

    fn meta(i: u32) -> EntryMeta {
        EntryMeta {
            kind: EntryKind::Records,
            stream: 7,
            partition: i % 3,
            base_offset: i as u64 * 10,
            count: 10,
        }
    }

    fn sample() -> Vec<u8> {
        let payloads: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 50 + i as usize * 30]).collect();
        let entries: Vec<(EntryMeta, &[u8])> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (meta(i as u32), p.as_slice()))
            .collect();
        encode_object(3, 100, 42, 1_700_000_000_000, &entries)
    }

    #[test]
    fn an_object_round_trips_and_any_damage_is_refused() {
        let obj = sample();
        let (h, entries) = decode_object(&obj).unwrap();
        assert_eq!(
            (h.epoch, h.first_lsn, h.last_lsn, h.trim_lsn, h.entries),
            (3, 100, 103, 42, 4)
        );
        assert_eq!(
            entries.iter().map(|e| e.lsn).collect::<Vec<_>>(),
            vec![100, 101, 102, 103]
        );
        let e = entries[2];
        assert_eq!(&obj[e.payload_pos..e.payload_pos + e.payload_len], &vec![2u8; 110][..]);
        assert_eq!(e.meta, meta(2));
        for cut in 0..obj.len() {
            assert!(decode_object(&obj[..cut]).is_err(), "cut at {cut} accepted");
        }
        for at in (0..obj.len()).step_by(7) {
            let mut bad = obj.clone();
            bad[at] ^= 0x40;
            assert!(decode_object(&bad).is_err(), "flip at {at} accepted");
        }
        let mut padded = obj.clone();
        padded.extend_from_slice(&[0u8; ENTRY_HEADER_LEN]);
        assert!(decode_object(&padded).is_err(), "trailing bytes accepted");
    }

    #[test]
    fn a_header_that_disagrees_with_its_entries_is_refused() {
        let obj = sample();
        let (h, _) = decode_object(&obj).unwrap();
        // Claims one entry more (valid CRC): the entries do not add up.
        let mut more = obj.clone();
        more[..OBJECT_HEADER_LEN].copy_from_slice(&encode_header(&ObjectHeader {
            entries: 5,
            last_lsn: 104,
            ..h
        }));
        assert!(decode_object(&more).is_err());
        // Starts at another LSN than its first entry.
        let mut shifted = obj.clone();
        shifted[..OBJECT_HEADER_LEN].copy_from_slice(&encode_header(&ObjectHeader {
            first_lsn: 99,
            last_lsn: 102,
            ..h
        }));
        assert!(matches!(decode_object(&shifted), Err(Corruption::LsnGap { .. })));
        // An inconsistent range in the header alone.
        let bad = encode_header(&ObjectHeader { last_lsn: 200, ..h });
        assert!(decode_header(&bad).is_err());
    }

    #[test]
    fn keys_sort_by_lsn_and_parse_back() {
        let mut keys = [
            object_key(10, 2),
            object_key(9, 5),
            object_key(100, 1),
            object_key(10, 3),
        ];
        keys.sort();
        let parsed: Vec<(u64, u64)> = keys.iter().map(|k| parse_object_key(k).unwrap()).collect();
        assert_eq!(parsed, vec![(9, 5), (10, 2), (10, 3), (100, 1)]);
        assert_eq!(
            parse_object_key(&object_key(u64::MAX, 4_000_000_000)),
            Some((u64::MAX, 4_000_000_000))
        );
        for bad in [
            "",
            "x.obj",
            "00000000000000000010-0000000002",
            "0000000000000000001-0000000002.obj",
            "0000000000000000001a-0000000002.obj",
            "epochs/0000000001",
        ] {
            assert_eq!(parse_object_key(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn random_groups_round_trip(
            first in 0u64..u64::MAX / 2,
            epoch in any::<u64>(),
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
        ) {
            let entries: Vec<(EntryMeta, &[u8])> =
                payloads.iter().enumerate().map(|(i, p)| (meta(i as u32), p.as_slice())).collect();
            let obj = encode_object(epoch, first, first / 2, 0, &entries);
            let (h, got) = decode_object(&obj).unwrap();
            prop_assert_eq!(h.first_lsn, first);
            prop_assert_eq!(h.epoch, epoch);
            prop_assert_eq!(got.len(), payloads.len());
            for (e, p) in got.iter().zip(&payloads) {
                prop_assert_eq!(&obj[e.payload_pos..e.payload_pos + e.payload_len], p.as_slice());
            }
        }
    }
}
