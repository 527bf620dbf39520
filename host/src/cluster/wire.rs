//! The replication fetch protocol's messages.
//!
//! A follower POSTs a JSON [`FetchRequest`] to its leader's
//! `/internal/replication/fetch`; the answer body is binary:
//! `b"SLRF"`, a version byte, a little-endian `u32` header length, the JSON
//! [`FetchHeader`], then the bytes the header describes (whole batches, or
//! one fragment of a batch larger than the fetch limit).
//!
//! Invariants: a decoder never trusts a length it has not checked against
//! the bytes it holds and the limits it was given; every batch and fragment
//! carries a CRC32C, and a reassembled batch carries the CRC of the whole.

use bytes::{Buf, Bytes};
use serde::{Deserialize, Serialize};

use super::error::ClusterError;
use crate::log::producers::ProducerBatch;

pub const MAGIC: &[u8; 4] = b"SLRF";
pub const VERSION: u8 = 1;
/// Most batches in one answer (bounds the header).
pub const MAX_BATCHES: usize = 1000;
/// Room for the header on top of the data in one answer.
pub const HEADER_ROOM: usize = 256 * 1024;

/// What a follower asks for. Fields a leader does not know are ignored,
/// so a follower of a newer build can fetch from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FetchRequest {
    pub stream: String,
    /// The stream's creation time: its identity across nodes.
    pub created_ms: u64,
    pub partition: u32,
    /// The follower's node id.
    pub replica: u32,
    /// The follower's log end: it holds everything below.
    pub fetch_offset: u64,
    /// The newest leader epoch the follower knows.
    pub leader_epoch: u32,
    /// The epoch of the follower's last record (`None`: it has none).
    pub last_epoch: Option<u32>,
    /// The next fragment of a batch being reassembled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<FragmentAsk>,
    /// How long the leader may wait for new data when there is none.
    pub wait_ms: u64,
    /// The most data bytes the follower accepts.
    pub max_bytes: u64,
    /// The follower's log start: records below it are deleted there
    /// (`None` from a follower that does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start: Option<u64>,
}

/// Which fragment of which batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FragmentAsk {
    pub base_offset: u64,
    pub index: u32,
}

/// The leader's answer, before its data bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchHeader {
    /// Who leads, as the answering node knows it, and its epoch history.
    pub leader: u32,
    pub leader_epoch: u32,
    pub history: Vec<(u32, u64)>,
    pub high_watermark: u64,
    pub log_start: u64,
    pub log_end: u64,
    /// Node ids in the in-sync set (the leader included).
    pub in_sync: Vec<u32>,
    /// The answering node does not lead this partition.
    #[serde(default)]
    pub not_leader: bool,
    /// The answering node led the partition and hands over to the asker,
    /// which drains its final log (leadership fields are the new ones).
    #[serde(default)]
    pub draining: bool,
    /// The follower's log diverged: it must drop its records from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<u64>,
    /// Whole batches, their bytes in this order after the header.
    #[serde(default)]
    pub batches: Vec<BatchHead>,
    /// Or one fragment of a batch larger than the fetch limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<Fragment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHead {
    pub base_offset: u64,
    pub count: u32,
    pub len: u32,
    pub crc: u32,
    /// An idempotent producer's batch: who wrote it (older nodes omit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    pub base_offset: u64,
    pub count: u32,
    /// The whole batch's length and CRC32C.
    pub total_len: u64,
    pub total_crc: u32,
    /// This fragment: its number (from 0), how many there are, its length.
    pub index: u32,
    pub of: u32,
    pub len: u32,
    pub crc: u32,
    /// As on [`BatchHead`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerBatch>,
}

/// A decoded answer: the header and the data bytes it describes.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    pub header: FetchHeader,
    pub data: Bytes,
}

impl FetchResponse {
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        let head = serde_json::to_vec(&self.header).map_err(|e| ClusterError::bad(format!("header: {e}")))?;
        let head_len = u32::try_from(head.len()).map_err(|_| ClusterError::bad("header too large".into()))?;
        let mut out = Vec::with_capacity(9 + head.len() + self.data.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&head_len.to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    /// Decodes and checks an answer: lengths add up to the body, CRCs match,
    /// no data beyond `max_data` bytes.
    pub fn decode(mut body: Bytes, max_data: u64) -> Result<FetchResponse, ClusterError> {
        let bad = |m: &str| ClusterError::bad(m.into());
        if body.len() < 9 || &body[..4] != MAGIC {
            return Err(bad("not a fetch answer (no SLRF magic)"));
        }
        if body[4] != VERSION {
            return Err(ClusterError::bad(format!(
                "fetch answer version {} is not {VERSION}",
                body[4]
            )));
        }
        body.advance(5);
        let head_len = body.get_u32_le() as usize;
        if head_len > body.len() || head_len > HEADER_ROOM {
            return Err(bad("fetch answer header length exceeds the body"));
        }
        let head = body.split_to(head_len);
        let header: FetchHeader =
            serde_json::from_slice(&head).map_err(|e| ClusterError::bad(format!("fetch answer header: {e}")))?;
        let data = body;
        if data.len() as u64 > max_data {
            return Err(ClusterError::bad(format!(
                "fetch answer holds {} data bytes, more than the {max_data} asked for",
                data.len()
            )));
        }
        let expected: u64 = match &header.fragment {
            Some(f) => {
                if !header.batches.is_empty() || f.of == 0 || f.index >= f.of || f.total_len == 0 {
                    return Err(bad("fetch answer fragment is inconsistent"));
                }
                f.len as u64
            }
            None => header.batches.iter().map(|b| b.len as u64).sum(),
        };
        if expected != data.len() as u64 {
            return Err(ClusterError::bad(format!(
                "fetch answer is truncated or padded: header says {expected} bytes, body has {}",
                data.len()
            )));
        }
        if header.batches.len() > MAX_BATCHES {
            return Err(bad("fetch answer has too many batches"));
        }
        let mut at = 0usize;
        for b in &header.batches {
            let bytes = &data[at..at + b.len as usize];
            if b.count == 0 || crc32c::crc32c(bytes) != b.crc {
                return Err(ClusterError::bad(format!(
                    "batch at offset {} fails its CRC",
                    b.base_offset
                )));
            }
            at += b.len as usize;
        }
        if let Some(f) = &header.fragment
            && crc32c::crc32c(&data) != f.crc
        {
            return Err(ClusterError::bad(format!(
                "fragment {} of the batch at offset {} fails its CRC",
                f.index, f.base_offset
            )));
        }
        Ok(FetchResponse { header, data })
    }

    /// The whole batches as `(head, bytes)`.
    pub fn batches(&self) -> impl Iterator<Item = (BatchHead, Bytes)> + '_ {
        let mut at = 0usize;
        self.header.batches.iter().map(move |b| {
            let bytes = self.data.slice(at..at + b.len as usize);
            at += b.len as usize;
            (*b, bytes)
        })
    }
}

/// Fragments of one batch larger than the fetch limit, as they arrive.
#[derive(Debug)]
pub struct Reassembly {
    pub base_offset: u64,
    pub count: u32,
    pub producer: Option<ProducerBatch>,
    pub total_len: u64,
    pub total_crc: u32,
    pub of: u32,
    pub next: u32,
    buf: Vec<u8>,
}

impl Reassembly {
    /// Starts from fragment 0, refusing batches above `max_len` bytes.
    pub fn start(f: &Fragment, max_len: u64) -> Result<Reassembly, ClusterError> {
        if f.index != 0 {
            return Err(ClusterError::bad(format!("expected fragment 0, got {}", f.index)));
        }
        if f.total_len > max_len {
            return Err(ClusterError::bad(format!(
                "a fragmented batch of {} bytes exceeds max_batch_bytes ({max_len})",
                f.total_len
            )));
        }
        Ok(Reassembly {
            base_offset: f.base_offset,
            count: f.count,
            producer: f.producer,
            total_len: f.total_len,
            total_crc: f.total_crc,
            of: f.of,
            next: 0,
            buf: Vec::with_capacity(f.total_len as usize),
        })
    }

    /// Adds the next fragment; returns the whole batch once complete and
    /// its CRC matches.
    pub fn push(&mut self, f: &Fragment, data: &[u8]) -> Result<Option<Bytes>, ClusterError> {
        if f.base_offset != self.base_offset
            || f.index != self.next
            || f.of != self.of
            || f.total_len != self.total_len
            || f.total_crc != self.total_crc
        {
            return Err(ClusterError::bad(format!(
                "fragment {} of {} at offset {} does not continue fragment {} of {} at offset {}",
                f.index, f.of, f.base_offset, self.next, self.of, self.base_offset
            )));
        }
        if self.buf.len() as u64 + data.len() as u64 > self.total_len {
            return Err(ClusterError::bad("fragments exceed the batch's length".into()));
        }
        self.buf.extend_from_slice(data);
        self.next += 1;
        if self.next < self.of {
            return Ok(None);
        }
        if self.buf.len() as u64 != self.total_len || crc32c::crc32c(&self.buf) != self.total_crc {
            return Err(ClusterError::bad(format!(
                "reassembled batch at offset {} fails its length or CRC",
                self.base_offset
            )));
        }
        Ok(Some(Bytes::from(std::mem::take(&mut self.buf))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(batches: &[&[u8]]) -> FetchResponse {
        let header = FetchHeader {
            batches: batches
                .iter()
                .enumerate()
                .map(|(i, b)| BatchHead {
                    base_offset: i as u64 * 10,
                    count: 10,
                    len: b.len() as u32,
                    crc: crc32c::crc32c(b),
                    producer: (i == 1).then_some(ProducerBatch {
                        producer_id: 77,
                        epoch: 2,
                        base_sequence: 30,
                    }),
                })
                .collect(),
            ..FetchHeader::default()
        };
        FetchResponse {
            header,
            data: Bytes::from(batches.concat()),
        }
    }

    #[test]
    fn answers_round_trip_and_damage_is_refused() {
        let a = answer(&[b"first batch", b"second"]);
        let body = Bytes::from(a.encode().unwrap());
        let back = FetchResponse::decode(body.clone(), 1 << 20).unwrap();
        let got: Vec<Bytes> = back.batches().map(|(_, b)| b).collect();
        assert_eq!(
            got,
            vec![Bytes::from_static(b"first batch"), Bytes::from_static(b"second")]
        );
        // Producer fields travel with their batch; a header without them
        // (an older node's) reads as none.
        let producers: Vec<_> = back
            .header
            .batches
            .iter()
            .map(|b| b.producer.map(|p| p.producer_id))
            .collect();
        assert_eq!(producers, vec![None, Some(77)]);
        let old: BatchHead = serde_json::from_str(r#"{"base_offset":1,"count":2,"len":3,"crc":4}"#).unwrap();
        assert_eq!(old.producer, None);
        // Truncated anywhere: refused, never a panic.
        for cut in 0..body.len() {
            assert!(
                FetchResponse::decode(body.slice(..cut), 1 << 20).is_err(),
                "cut at {cut}"
            );
        }
        // A flipped data byte fails the CRC; garbage is refused.
        let mut flipped = body.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(FetchResponse::decode(Bytes::from(flipped), 1 << 20).is_err());
        assert!(FetchResponse::decode(Bytes::from_static(b"<html>oops</html>"), 1 << 20).is_err());
        // More data than asked for.
        assert!(FetchResponse::decode(body, 4).is_err());
    }

    #[test]
    fn fragments_reassemble_in_order_only() {
        let whole: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        let frag = |index: u32| {
            let part = &whole[index as usize * 1000..((index as usize + 1) * 1000).min(whole.len())];
            (
                Fragment {
                    base_offset: 7,
                    count: 3,
                    total_len: whole.len() as u64,
                    total_crc: crc32c::crc32c(&whole),
                    index,
                    of: 3,
                    len: part.len() as u32,
                    crc: crc32c::crc32c(part),
                    producer: Some(ProducerBatch {
                        producer_id: 5,
                        epoch: 0,
                        base_sequence: 0,
                    }),
                },
                part.to_vec(),
            )
        };
        let (f0, d0) = frag(0);
        let mut r = Reassembly::start(&f0, 10_000).unwrap();
        assert_eq!(r.producer.map(|p| p.producer_id), Some(5));
        assert!(Reassembly::start(&frag(1).0, 10_000).is_err());
        assert!(Reassembly::start(&f0, 100).is_err(), "over max_batch_bytes");
        assert_eq!(r.push(&f0, &d0).unwrap(), None);
        let (f2, d2) = frag(2);
        assert!(r.push(&f2, &d2).is_err(), "skipped fragment 1");
        let mut r = Reassembly::start(&f0, 10_000).unwrap();
        r.push(&f0, &d0).unwrap();
        let (f1, d1) = frag(1);
        r.push(&f1, &d1).unwrap();
        assert_eq!(r.push(&f2, &d2).unwrap().unwrap().to_vec(), whole);
        // A damaged fragment fails the whole batch's CRC.
        let mut r = Reassembly::start(&f0, 10_000).unwrap();
        r.push(&f0, &d0).unwrap();
        let mut bad = d1.clone();
        bad[0] ^= 1;
        r.push(&f1, &bad).unwrap();
        assert!(r.push(&f2, &d2).is_err());
    }
}
