//! Tests of `encode`: varint widths, runs cut at the high watermark, byte
//! budgets (unit and property tests), epoch labels and view batches.

use super::*;
use crate::node::{OffsetRecord, Record};

/// Records as the log stores them: `sluice_wire` bodies back to back.
pub(in crate::kafka) fn bodies(records: &[Record]) -> bytes::Bytes {
    let mut out = Vec::new();
    for r in records {
        let headers = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
        sluice_wire::encode_record_nullable(&mut out, r.timestamp_ms, r.key.as_deref(), r.value.as_deref(), headers)
            .unwrap();
    }
    out.into()
}

#[test]
fn varint_lengths_match_what_is_written() {
    for v in [
        0i64,
        1,
        -1,
        63,
        -64,
        64,
        -65,
        8191,
        8192,
        i32::MAX as i64,
        i64::MAX,
        i64::MIN,
    ] {
        let mut out = BytesMut::new();
        put_varlong(&mut out, v);
        assert_eq!(varlong_len(v), out.len(), "{v}");
    }
}

#[test]
fn records_at_or_past_the_end_are_not_written_and_bad_runs_are_errors() {
    let records: Vec<Record> = (0..5)
        .map(|i| Record {
            value: Some(bytes::Bytes::from(vec![i as u8; 10])),
            timestamp_ms: 100 + i,
            ..Record::default()
        })
        .collect();
    let run = RecordRun {
        first_offset: 40,
        count: 5,
        bodies: bodies(&records),
    };
    let mut out = BytesMut::new();
    encode_runs(&mut out, std::slice::from_ref(&run), 43, 0, &[], usize::MAX, true).unwrap();
    let mut buf = out.freeze();
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
    let offsets: Vec<i64> = sets.iter().flat_map(|s| &s.records).map(|r| r.offset).collect();
    assert_eq!(offsets, [40, 41, 42]);

    let bad = RecordRun { count: 6, ..run };
    let mut out = BytesMut::new();
    assert!(encode_runs(&mut out, &[bad], u64::MAX, 0, &[], usize::MAX, true).is_err());
}

/// Records of `sizes` (value bytes) with `stamps`, from offset 10.
fn run_of(sizes: &[usize], stamps: &[u64]) -> RecordRun {
    let records: Vec<Record> = sizes
        .iter()
        .zip(stamps)
        .map(|(&n, &ts)| Record {
            key: (n % 3 == 0).then(|| bytes::Bytes::from(vec![b'k'; n % 7])),
            value: Some(bytes::Bytes::from(vec![b'v'; n])),
            headers: if n % 2 == 0 {
                vec![("h".to_string(), Some(bytes::Bytes::from_static(b"x")))]
            } else {
                vec![]
            },
            timestamp_ms: ts,
        })
        .collect();
    RecordRun {
        first_offset: 10,
        count: records.len() as u32,
        bodies: bodies(&records),
    }
}

fn offsets_in(out: BytesMut) -> Vec<i64> {
    let mut buf = out.freeze();
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
    sets.iter().flat_map(|s| &s.records).map(|r| r.offset).collect()
}

#[test]
fn a_budget_counts_batch_bytes_and_keeps_one_record_only_when_asked() {
    // Twenty five-byte records: each takes 12 bytes (length, attributes,
    // timestamp and offset deltas, null key, value length, 5 bytes,
    // header count) after a 61-byte batch header: 16 fit in 256.
    let run = run_of(&[5; 20], &[1_000; 20]);
    let mut out = BytesMut::new();
    encode_runs(&mut out, std::slice::from_ref(&run), u64::MAX, 0, &[], 256, true).unwrap();
    assert!(out.len() <= 256, "{} bytes", out.len());
    let offsets = offsets_in(out);
    assert_eq!(offsets, (10..26).collect::<Vec<_>>());

    // A record bigger than the budget: alone when it may be, else nothing.
    let big = run_of(&[1_000, 5], &[1, 2]);
    let mut out = BytesMut::new();
    encode_runs(&mut out, std::slice::from_ref(&big), u64::MAX, 0, &[], 256, true).unwrap();
    assert_eq!(offsets_in(out), [10]);
    let mut out = BytesMut::new();
    encode_runs(&mut out, std::slice::from_ref(&big), u64::MAX, 0, &[], 256, false).unwrap();
    assert!(out.is_empty());
}

#[test]
fn each_batch_carries_the_epoch_its_records_were_written_in() {
    // Offsets 10..30; epoch 0 from 0, 2 from 15, 5 from 25, 7 from 40.
    let run = run_of(&[3; 20], &[5; 20]);
    let epochs = [(0, 0), (2, 15), (5, 25), (7, 40)];
    let mut out = BytesMut::new();
    encode_runs(
        &mut out,
        std::slice::from_ref(&run),
        u64::MAX,
        7,
        &epochs,
        usize::MAX,
        true,
    )
    .unwrap();
    let mut buf = out.freeze();
    let got: Vec<(i64, i32)> = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .iter()
        .flat_map(|s| &s.records)
        .map(|r| (r.offset, r.partition_leader_epoch))
        .collect();
    let want: Vec<(i64, i32)> = (10..30)
        .map(|o| (o, [0, 2, 5][usize::from(o >= 15) + usize::from(o >= 25)]))
        .collect();
    assert_eq!(got, want);
    // Without a history (not replicated) or before its first entry:
    // the epoch given.
    for epochs in [&[][..], &[(3, 20)][..]] {
        let mut out = BytesMut::new();
        encode_runs(&mut out, std::slice::from_ref(&run), 15, 4, epochs, usize::MAX, true).unwrap();
        let mut buf = out.freeze();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
        assert!(
            sets.iter()
                .flat_map(|s| &s.records)
                .all(|r| r.partition_leader_epoch == 4)
        );
    }
}

/// A view's batch within a budget: it ends before the first record
/// that does not fit, so the client reads on from that record.
#[test]
fn a_view_batch_ends_before_the_record_that_does_not_fit() {
    let records: Vec<OffsetRecord> = [3u64, 5, 9]
        .iter()
        .map(|&offset| OffsetRecord {
            offset,
            record: Record {
                value: Some(bytes::Bytes::from(vec![b'v'; 40])),
                timestamp_ms: 7,
                ..Record::default()
            },
        })
        .collect();
    let batch = |budget: usize, at_least_one: bool| {
        let mut out = BytesMut::new();
        encode_view(&mut out, &records, 0, 12, 2, budget, at_least_one);
        let bytes = out.freeze();
        // Where the client reads on from: base offset + last offset delta.
        let next = (bytes.len() >= 27).then(|| {
            let base = i64::from_be_bytes(bytes[..8].try_into().unwrap());
            base + i64::from(i32::from_be_bytes(bytes[23..27].try_into().unwrap())) + 1
        });
        let mut buf = bytes.clone();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
        let offsets: Vec<i64> = sets.iter().flat_map(|s| &s.records).map(|r| r.offset).collect();
        (bytes.len(), offsets, next)
    };
    // Each record takes 47 bytes after the 61-byte header.
    assert_eq!(batch(usize::MAX, true), (202, vec![3, 5, 9], Some(12)));
    assert_eq!(batch(170, false), (155, vec![3, 5], Some(9)));
    assert_eq!(batch(10, true), (108, vec![3], Some(5)));
    assert_eq!(batch(10, false), (0, vec![], None));
}

proptest::proptest! {
    /// Whatever the records and their timestamps, the answer is a
    /// prefix of them within the budget (but for a lone first record),
    /// and with timestamps in order one more record would not fit but
    /// for the bound's slack: up to a length-varint byte and two
    /// timestamp bytes a record.
    #[test]
    fn answers_stay_within_their_budget(
        records in proptest::collection::vec((0usize..300, 0u64..100_000), 1..40),
        budget in 0usize..4_000,
        at_least_one: bool,
        ordered: bool,
        mut starts in proptest::collection::vec(0u64..60, 0..4),
    ) {
        starts.sort_unstable();
        let epochs: Vec<(u32, u64)> = starts.iter().enumerate().map(|(e, s)| (e as u32 * 2, *s)).collect();
        let epoch_of = |o: i64| epochs.iter().rev().find(|(_, s)| *s as i64 <= o).map_or(9, |(e, _)| *e as i32);
        let sizes: Vec<usize> = records.iter().map(|r| r.0).collect();
        let mut stamps: Vec<u64> = records.iter().map(|r| r.1).collect();
        if ordered {
            stamps.sort_unstable();
        }
        let run = run_of(&sizes, &stamps);
        let mut out = BytesMut::new();
        encode_runs(&mut out, std::slice::from_ref(&run), u64::MAX, 9, &epochs, budget, at_least_one).unwrap();
        let len = out.len();
        let mut buf = out.clone().freeze();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
        for r in sets.iter().flat_map(|s| &s.records) {
            proptest::prop_assert_eq!(r.partition_leader_epoch, epoch_of(r.offset), "offset {}", r.offset);
        }
        let offsets = offsets_in(out);
        let n = offsets.len();
        proptest::prop_assert_eq!(&offsets, &(10..10 + n as i64).collect::<Vec<_>>());
        proptest::prop_assert!(len <= budget || (n == 1 && at_least_one), "{} bytes > {}", len, budget);
        if at_least_one {
            proptest::prop_assert!(n >= 1);
        }
        if ordered && n < sizes.len() && n > 0 {
            let more = run_of(&sizes[..=n], &stamps[..=n]);
            let mut out = BytesMut::new();
            encode_runs(&mut out, std::slice::from_ref(&more), u64::MAX, 9, &epochs, usize::MAX, true).unwrap();
            let slack = 3 * (n + 1);
            proptest::prop_assert!(out.len() + slack > budget, "{} bytes with one more, budget {}", out.len(), budget);
        }
    }
}
