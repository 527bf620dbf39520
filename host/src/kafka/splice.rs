//! Fetch answers written without copying their records into the frame.
//!
//! The codec writes a response into one buffer, which for a Fetch means
//! copying every partition's records (up to many MiB) once more. Instead,
//! big records are swapped for a short marker, the rest of the answer is
//! encoded (a few hundred bytes), and the frame goes out as parts: the
//! encoded pieces between the markers, each records field's length prefix
//! and the records' own bytes. A partition's records may also come as
//! several buffers (cached batches, [`Parts`]), never joined.
//!
//! Invariants: the parts are byte for byte what the codec would have
//! written (the tests compare); a marker is accepted only where the codec
//! put one — in order, with the length prefix of a marker-sized field in
//! front — and anything else falls back to the plain encoding.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::protocol::Encodable;

/// Records fields at least this big go out as their own part.
const SPLICE_MIN: usize = 64 * 1024;
/// Marker bytes: 12 random bytes (per process) and a 4-byte index.
const MARKER_LEN: usize = 16;
/// The first version with compact (varint-prefixed) bytes.
const FLEXIBLE_FROM: i16 = 12;

fn marker_prefix() -> &'static [u8; 12] {
    static PREFIX: OnceLock<[u8; 12]> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let state = std::collections::hash_map::RandomState::new();
        let mut a = state.build_hasher();
        a.write_u64(0x534c_5549_4345);
        let mut b = state.build_hasher();
        b.write_u64(a.finish());
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&a.finish().to_le_bytes());
        out[8..].copy_from_slice(&b.finish().to_le_bytes()[..4]);
        out
    })
}

fn marker(index: u32) -> Bytes {
    let mut m = BytesMut::with_capacity(MARKER_LEN);
    m.put_slice(marker_prefix());
    m.put_u32(index);
    m.freeze()
}

/// Records of a Fetch answer kept out of it, as several buffers: by
/// (topic, partition) position in the answer, whose own records field is
/// then `None`.
pub(crate) type Parts = HashMap<(usize, usize), Vec<Bytes>>;

/// Puts each partition's [`Parts`] into its records field, joined (for
/// the plain encoding).
pub(super) fn join(r: &mut FetchResponse, parts: &Parts) {
    for (&(t, p), bufs) in parts {
        if let Some(part) = r.responses.get_mut(t).and_then(|t| t.partitions.get_mut(p)) {
            let mut out = BytesMut::with_capacity(bufs.iter().map(Bytes::len).sum());
            for b in bufs {
                out.extend_from_slice(b);
            }
            part.records = Some(out.freeze());
        }
    }
}

/// `r` encoded after `head` (the response header) as parts, when it has
/// records worth sending apart (or `parts`); `None`: [`join`] and encode
/// it the plain way.
pub(super) fn encode_fetch(head: &BytesMut, r: &FetchResponse, parts: &Parts, version: i16) -> Option<Vec<Bytes>> {
    let mut shell = r.clone();
    let mut big: Vec<Vec<Bytes>> = Vec::new();
    for (t, topic) in shell.responses.iter_mut().enumerate() {
        for (p, part) in topic.partitions.iter_mut().enumerate() {
            let bufs = match (parts.get(&(t, p)), part.records.as_ref()) {
                (Some(bufs), _) => bufs.clone(),
                (None, Some(records)) if records.len() >= SPLICE_MIN => vec![records.clone()],
                _ => continue,
            };
            let index = u32::try_from(big.len()).ok()?;
            big.push(bufs);
            part.records = Some(marker(index));
        }
    }
    if big.is_empty() {
        return None;
    }
    let mut buf = head.clone();
    shell.encode(&mut buf, version).ok()?;
    let buf = buf.freeze();
    let prefix = marker_prefix();
    let flexible = version >= FLEXIBLE_FROM;
    let mut out = Vec::with_capacity(big.len() * 3 + 1);
    let mut from = 0usize;
    let mut found = 0usize;
    let mut at = 0usize;
    while let Some(off) = find(&buf[at..], prefix) {
        let pos = at + off;
        let index = buf.get(pos + 12..pos + MARKER_LEN)?;
        if u32::from_be_bytes(index.try_into().ok()?) as usize != found {
            return None;
        }
        let records = big.get(found)?;
        let records_len = records.iter().map(Bytes::len).fold(0usize, usize::saturating_add);
        let len_start = if flexible {
            // Compact bytes: unsigned varint of length + 1 (17: one byte).
            (pos.checked_sub(1)?, buf[pos.checked_sub(1)?] == (MARKER_LEN as u8 + 1))
        } else {
            let start = pos.checked_sub(4)?;
            (start, buf[start..pos] == (MARKER_LEN as i32).to_be_bytes())
        };
        let (len_at, prefix_ok) = len_start;
        if !prefix_ok || len_at < from {
            return None;
        }
        out.push(buf.slice(from..len_at));
        let mut len = BytesMut::with_capacity(10);
        if flexible {
            put_unsigned_varint(&mut len, u64::try_from(records_len).ok()?.checked_add(1)?);
        } else {
            len.put_i32(i32::try_from(records_len).ok()?);
        }
        out.push(len.freeze());
        out.extend(records.iter().cloned());
        from = pos + MARKER_LEN;
        at = from;
        found += 1;
    }
    if found != big.len() {
        return None;
    }
    out.push(buf.slice(from..));
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn put_unsigned_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn response(sizes: &[usize]) -> FetchResponse {
        let mut r = FetchResponse::default();
        for (t, chunk) in sizes.chunks(2).enumerate() {
            let mut topic = FetchableTopicResponse::default();
            topic.topic = TopicName(StrBytes::from_string(format!("topic-{t}")));
            for (i, &size) in chunk.iter().enumerate() {
                let mut p = PartitionData::default();
                p.partition_index = i as i32;
                p.high_watermark = 1_000_000 + size as i64;
                p.records = (size > 0).then(|| Bytes::from(vec![(size % 251) as u8; size]));
                topic.partitions.push(p);
            }
            r.responses.push(topic);
        }
        r
    }

    #[test]
    fn parts_are_what_the_codec_writes_in_every_version() {
        let cases: [&[usize]; 4] = [
            &[SPLICE_MIN, 0, 10, 3 * SPLICE_MIN],
            &[5 << 20],
            &[SPLICE_MIN + 1, SPLICE_MIN - 1, 0],
            &[200_000, 300_000, 400_000, 17],
        ];
        for version in 4..=12 {
            for sizes in cases {
                let r = response(sizes);
                let mut head = BytesMut::new();
                head.put_i32(42);
                let mut plain = head.clone();
                r.encode(&mut plain, version).unwrap();
                let parts = encode_fetch(&head, &r, &Parts::new(), version).expect("spliced");
                let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                assert_eq!(joined, plain.to_vec(), "v{version} {sizes:?}");
            }
        }
    }

    #[test]
    fn records_in_several_buffers_go_out_unjoined_as_the_joined_encoding() {
        for version in 4..=12 {
            let mut r = response(&[10, 0, 200_000]);
            let bufs: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 100 + usize::from(i)])).collect();
            let mut parts = Parts::new();
            parts.insert((0, 1), bufs.clone());
            let spliced = encode_fetch(&BytesMut::new(), &r, &parts, version).expect("spliced");
            assert!(spliced.iter().any(|p| p.as_ptr() == bufs[3].as_ptr()), "not copied");
            join(&mut r, &parts);
            let mut plain = BytesMut::new();
            r.encode(&mut plain, version).unwrap();
            let joined: Vec<u8> = spliced.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(joined, plain.to_vec(), "v{version}");
        }
    }

    #[test]
    fn small_answers_are_left_to_the_codec() {
        assert!(encode_fetch(&BytesMut::new(), &response(&[100, SPLICE_MIN - 1]), &Parts::new(), 12).is_none());
    }

    #[test]
    fn a_marker_where_the_codec_did_not_put_one_falls_back() {
        // The high watermark and last stable offset of a partition spell
        // marker 0, ahead of the real one: the prefix check refuses it.
        let mut r = response(&[SPLICE_MIN]);
        let m = marker(0);
        let p = &mut r.responses[0].partitions[0];
        p.high_watermark = i64::from_be_bytes(m[..8].try_into().unwrap());
        p.last_stable_offset = i64::from_be_bytes(m[8..].try_into().unwrap());
        for version in [4, 11, 12] {
            assert!(
                encode_fetch(&BytesMut::new(), &r, &Parts::new(), version).is_none(),
                "v{version}"
            );
        }
    }
}
