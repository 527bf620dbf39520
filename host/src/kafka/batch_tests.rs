//! The record batch codec against `kafka-protocol`'s, both ways, and the
//! checks on bad input.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::node::{OffsetRecord, RecordRun};

/// What a fetch writes for `records`: runs of consecutive offsets, stored
/// as the log stores them, through the fetch encoder.
fn encode_batches(out: &mut BytesMut, records: &[OffsetRecord], leader_epoch: i32) {
    let mut runs: Vec<(u64, Vec<Record>)> = Vec::new();
    for r in records {
        match runs.last_mut() {
            Some((first, rs)) if *first + rs.len() as u64 == r.offset => rs.push(r.record.clone()),
            _ => runs.push((r.offset, vec![r.record.clone()])),
        }
    }
    let runs: Vec<RecordRun> = runs
        .into_iter()
        .map(|(first_offset, rs)| RecordRun {
            first_offset,
            count: rs.len() as u32,
            bodies: super::super::encode::tests::bodies(&rs),
        })
        .collect();
    crate::kafka::encode::encode_runs(out, &runs, u64::MAX, leader_epoch, &[], usize::MAX, true).unwrap();
}

fn kafka_record(i: i64, key: Option<&str>, value: Option<&str>, headers: &[(&str, Option<&str>)]) -> KRecord {
    let mut h = IndexMap::new();
    for (k, v) in headers {
        h.insert(
            StrBytes::from_string(k.to_string()),
            v.map(|v| Bytes::from(v.to_string())),
        );
    }
    KRecord {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: 7,
        producer_epoch: 1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: 100 + i as i32,
        timestamp: 1_700_000_000_000 + i * 10,
        key: key.map(|k| Bytes::from(k.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        headers: h,
    }
}

fn kafka_encode(records: &[KRecord], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

#[test]
fn batches_from_the_kafka_crate_decode_with_every_codec() {
    let records: Vec<KRecord> = (0..50)
        .map(|i| {
            let key = (i % 3 != 0).then_some(if i % 3 == 1 { "" } else { "k" });
            kafka_record(i, key, (i != 4).then_some("value"), &[("h1", Some("a")), ("h2", None)])
        })
        .collect();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let data = kafka_encode(&records, codec);
        let batches = decode_batches(&data, 1 << 20, 5).unwrap();
        assert_eq!(batches.len(), 1, "{codec:?}");
        let b = &batches[0];
        assert_eq!(
            b.producer,
            ProducerFields {
                producer_id: 7,
                producer_epoch: 1,
                base_sequence: 100
            }
        );
        assert_eq!(b.records.len(), 50);
        for (i, r) in b.records.iter().enumerate() {
            let want_key = match i % 3 {
                0 => None,
                1 => Some(Bytes::new()),
                _ => Some(Bytes::from_static(b"k")),
            };
            assert_eq!(r.key, want_key, "{codec:?} record {i}");
            // Record 4's value is null and stays null.
            let want_value = (i != 4).then(|| Bytes::from("value"));
            assert_eq!(r.value, want_value, "{codec:?} record {i}");
            assert_eq!(r.timestamp_ms, 1_700_000_000_000 + i as u64 * 10);
            // h2's value is null and stays null.
            assert_eq!(
                r.headers,
                vec![("h1".to_string(), Some(Bytes::from("a"))), ("h2".to_string(), None)]
            );
        }
    }
}

#[test]
fn fetched_batches_decode_with_the_kafka_crate_and_keep_repeated_headers() {
    let records: Vec<OffsetRecord> = [10u64, 11, 15, 16]
        .iter()
        .enumerate()
        .map(|(i, offset)| OffsetRecord {
            offset: *offset,
            record: Record {
                key: (i != 1).then(|| Bytes::from(format!("key{i}"))),
                value: Some(Bytes::from(vec![i as u8; 300])),
                headers: vec![
                    ("a".into(), Some(Bytes::from("1"))),
                    ("a".into(), Some(Bytes::from("2"))),
                ],
                timestamp_ms: 1_000 + (3 - i as u64) * 7,
            },
        })
        .collect();
    let mut out = BytesMut::new();
    encode_batches(&mut out, &records, 3);
    let mut buf = out.clone().freeze();
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
    let decoded: Vec<&KRecord> = sets.iter().flat_map(|s| &s.records).collect();
    assert_eq!(decoded.len(), 4);
    for (d, r) in decoded.iter().zip(&records) {
        assert_eq!(d.offset as u64, r.offset);
        assert_eq!(d.key, r.record.key);
        assert_eq!(d.value.as_ref(), r.record.value.as_ref());
        assert_eq!(d.timestamp as u64, r.record.timestamp_ms);
        assert_eq!(d.partition_leader_epoch, 3);
    }
    // Our decoder keeps both `a` headers (the crate's map keeps one). The
    // produce side wants offset deltas 0..n, so encode a dense copy.
    let dense: Vec<OffsetRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| OffsetRecord {
            offset: i as u64,
            record: r.record.clone(),
        })
        .collect();
    let mut d = BytesMut::new();
    encode_batches(&mut d, &dense, 0);
    let again = d.freeze();
    let back = decode_batches(&again, 1 << 20, 0).unwrap();
    let back: Vec<Record> = back.into_iter().flat_map(|b| b.records).collect();
    let want: Vec<Record> = records.into_iter().map(|r| r.record).collect();
    assert_eq!(back, want);
}

/// A batch marked verbatim reads back, through the crate's decoder, as
/// the records stored from it do through the fetch encoder: a fetch may
/// send either. Batches that would not read back as sent are not marked.
#[test]
fn only_batches_that_read_back_as_sent_are_verbatim() {
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let records: Vec<KRecord> = (0..20)
            .map(|i| {
                let key = (i % 3 != 0).then_some(if i % 3 == 1 { "" } else { "k" });
                kafka_record(
                    i,
                    key,
                    (i % 5 != 2).then_some("value"),
                    &[("h", Some("a")), ("h2", Some("")), ("h3", None)],
                )
            })
            .collect();
        let sent = kafka_encode(&records, compression);
        let produced = decode_batches(&sent, 1 << 20, 5).unwrap();
        assert_eq!(produced.len(), 1);
        let verbatim = produced[0].verbatim.clone().expect("verbatim");
        assert_eq!(verbatim, sent);
        let stored: Vec<OffsetRecord> = produced[0]
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| OffsetRecord {
                offset: i as u64,
                record: r.clone(),
            })
            .collect();
        let mut converted = BytesMut::new();
        encode_batches(&mut converted, &stored, 0);
        let mut a = verbatim.clone();
        let mut b = converted.freeze();
        let from_sent = RecordBatchDecoder::decode_all(&mut a).unwrap();
        let from_stored = RecordBatchDecoder::decode_all(&mut b).unwrap();
        let fields = |sets: &[kafka_protocol::records::RecordSet]| -> Vec<_> {
            sets.iter()
                .flat_map(|s| &s.records)
                .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone(), r.headers.clone()))
                .collect()
        };
        assert_eq!(fields(&from_sent), fields(&from_stored), "{compression:?}");
    }

    let not_as_sent = |records: Vec<KRecord>| {
        let sent = kafka_encode(&records, Compression::None);
        let produced = decode_batches(&sent, 1 << 20, 5).unwrap();
        produced.iter().all(|p| p.verbatim.is_none())
    };
    let ok = |i| kafka_record(i, Some("k"), Some("v"), &[]);
    assert!(!not_as_sent((0..3).map(ok).collect()), "the control case is verbatim");
    // A null value is stored as null: the batch reads back as sent.
    assert!(!not_as_sent(vec![ok(0), kafka_record(1, None, None, &[]), ok(2)]));
    // So is a null header value.
    assert!(!not_as_sent(vec![
        ok(0),
        kafka_record(1, None, Some("v"), &[("h", None)])
    ]));
    // A negative timestamp is replaced by the node's clock.
    let mut early = ok(1);
    early.timestamp = -5;
    assert!(not_as_sent(vec![early]));
    // Log-append time: the node's clock too. (The crate's encoder does not
    // write that attribute: set it and the CRC here.)
    let mut appended = BytesMut::from(&kafka_encode(&(0..2).map(ok).collect::<Vec<_>>(), Compression::None)[..]);
    appended[22] |= 1 << 3;
    let crc = crc32c::crc32c(&appended[CRC_START..]);
    appended[17..21].copy_from_slice(&crc.to_be_bytes());
    let produced = decode_batches(&appended.freeze(), 1 << 20, 5).unwrap();
    assert!(produced[0].verbatim.is_none());
}

#[test]
fn bad_batches_are_refused_with_the_right_kind() {
    let good = kafka_encode(&[kafka_record(0, Some("k"), Some("v"), &[])], Compression::None);
    assert!(decode_batches(&good, 1 << 20, 0).is_ok());

    let mut crc = good.to_vec();
    let last = crc.len() - 1;
    crc[last] ^= 1;
    assert!(matches!(decode_batches(&crc.into(), 1 << 20, 0), Err(BatchError::Corrupt(m)) if m.contains("CRC")));

    for cut in [0, 5, 30, good.len() - 1] {
        let r = decode_batches(&good.slice(..cut), 1 << 20, 0);
        assert!(matches!(r, Err(BatchError::Corrupt(_))), "cut at {cut}: {r:?}");
    }
    assert!(matches!(decode_batches(&good, 20, 0), Err(BatchError::TooLarge(_))));

    let mut magic = good.to_vec();
    magic[16] = 1;
    assert!(matches!(
        decode_batches(&magic.into(), 1 << 20, 0),
        Err(BatchError::Unsupported(_))
    ));

    // A record count no bytes could hold (with a valid CRC) is refused
    // before anything is allocated for it.
    let mut count = good.to_vec();
    count[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    count[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    let crc = crc32c::crc32c(&count[CRC_START..]);
    count[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        decode_batches(&count.into(), 1 << 20, 0),
        Err(BatchError::Corrupt(_))
    ));

    let mut txn = kafka_record(0, None, Some("v"), &[]);
    txn.transactional = true;
    let txn = kafka_encode(&[txn], Compression::None);
    assert!(matches!(
        decode_batches(&txn, 1 << 20, 0),
        Err(BatchError::Unsupported(_))
    ));
}

proptest::proptest! {
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = decode_batches(&Bytes::from(data), 1 << 16, 0);
    }

    #[test]
    fn encode_then_decode_is_identity(
        values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..20),
        ts in 0u64..4_000_000_000_000,
    ) {
        let records: Vec<OffsetRecord> = values.iter().enumerate().map(|(i, v)| OffsetRecord {
            offset: i as u64,
            record: Record {
                key: (i % 2 == 0).then(|| Bytes::from(v.clone())),
                value: Some(Bytes::from(v.clone())),
                headers: vec![("x".into(), Some(Bytes::from(v.clone())))],
                timestamp_ms: ts + i as u64,
            },
        }).collect();
        let mut out = BytesMut::new();
        encode_batches(&mut out, &records, 0);
        let back = decode_batches(&out.freeze(), 1 << 20, 0).unwrap();
        let back: Vec<Record> = back.into_iter().flat_map(|b| b.records).collect();
        let want: Vec<Record> = records.into_iter().map(|r| r.record).collect();
        proptest::prop_assert_eq!(back, want);
    }
}

#[test]
fn sent_sizes_count_whole_batches_only() {
    let one = |len: i32| {
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&len.to_be_bytes());
        b.extend(std::iter::repeat_n(0u8, len as usize));
        b
    };
    let mut set = one(49);
    set.extend(one(100));
    assert_eq!(sent_sizes(&set), vec![61, 112]);
    set.extend(&one(300)[..50]);
    assert_eq!(sent_sizes(&set), vec![61, 112], "a cut batch is not counted");
    let mut bad = one(10);
    bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(sent_sizes(&bad).is_empty());
    assert!(sent_sizes(&[1, 2, 3]).is_empty());
}
