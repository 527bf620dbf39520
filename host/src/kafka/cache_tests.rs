//! The fetch cache: offsets and epochs rewritten, lookups only of whole
//! contiguous batches below the end, epochs, overlaps and the byte bound.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;

const KEY: Key = (7, 0);

/// A batch of `n` records as a producer sends it (base offset 0).
fn produced(n: i64, value_len: usize) -> Bytes {
    let batch = encode_records(n, value_len);
    assert_eq!(
        i32::from_be_bytes(batch[57..61].try_into().unwrap()) as i64,
        n,
        "one batch"
    );
    batch
}

fn encode_records(n: i64, value_len: usize) -> Bytes {
    let records: Vec<KRecord> = (0..n)
        .map(|i| KRecord {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // Consecutive, or the crate's encoder writes a batch per record.
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: None,
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// The batches of a hit, joined.
fn joined(parts: Vec<Bytes>) -> Bytes {
    parts.concat().into()
}

/// Offsets of the records in `parts`, checking every batch's CRC.
fn offsets(parts: &[Bytes]) -> Vec<i64> {
    let mut b = joined(parts.to_vec());
    let sets = RecordBatchDecoder::decode_all(&mut b).unwrap();
    sets.iter().flat_map(|s| &s.records).map(|r| r.offset).collect()
}

fn epoch_of(parts: &[Bytes]) -> i32 {
    i32::from_be_bytes(parts[0][12..16].try_into().unwrap())
}

#[test]
fn a_produced_batch_is_served_at_its_offsets_with_a_good_crc_from_any_offset_in_it() {
    let cache = FetchCache::new(1 << 20);
    cache.insert_produced(KEY, 3, 100, 104, &produced(5, 10));
    for offset in 100..=104 {
        let hit = cache.get(KEY, 3, offset, 105, 1 << 20, true).unwrap();
        assert_eq!(offsets(&hit), [100, 101, 102, 103, 104], "fetch at {offset}");
        assert_eq!(epoch_of(&hit), 3);
    }
    assert!(cache.get(KEY, 3, 99, 105, 1 << 20, true).is_none());
    assert!(cache.get(KEY, 3, 105, 106, 1 << 20, true).is_none());
    // Not all of it below the end (a replicated partition's high
    // watermark): the log is read instead.
    assert!(cache.get(KEY, 3, 100, 104, 1 << 20, true).is_none());
    // Another stream, another partition: nothing.
    assert!(cache.get((8, 0), 3, 100, 105, 1 << 20, true).is_none());
    assert!(cache.get((7, 1), 3, 100, 105, 1 << 20, true).is_none());
}

#[test]
fn contiguous_batches_are_joined_up_to_the_budget_and_a_gap_ends_them() {
    let cache = FetchCache::new(1 << 20);
    let one = produced(2, 100);
    cache.insert_produced(KEY, 0, 0, 1, &one);
    cache.insert_produced(KEY, 0, 2, 3, &one);
    cache.insert_produced(KEY, 0, 4, 5, &one);
    cache.insert_produced(KEY, 0, 10, 11, &one);
    let all = cache.get(KEY, 0, 1, 100, 1 << 20, true).unwrap();
    assert_eq!(offsets(&all), [0, 1, 2, 3, 4, 5]);
    let two = cache.get(KEY, 0, 0, 100, 2 * one.len(), true).unwrap();
    assert_eq!(offsets(&two), [0, 1, 2, 3]);
    // The first partition of an answer gets one batch however small its
    // budget; a later one gets nothing from the cache.
    let first = cache.get(KEY, 0, 0, 100, 1, true).unwrap();
    assert_eq!(offsets(&first), [0, 1]);
    assert!(cache.get(KEY, 0, 0, 100, 1, false).is_none());
    assert_eq!(offsets(&cache.get(KEY, 0, 10, 100, 1 << 20, true).unwrap()), [10, 11]);
    assert!(cache.get(KEY, 0, 6, 100, 1 << 20, true).is_none());
}

#[test]
fn a_newer_leader_epoch_empties_the_partition_and_an_older_one_is_ignored() {
    let cache = FetchCache::new(1 << 20);
    cache.insert_produced(KEY, 2, 0, 4, &produced(5, 10));
    assert!(cache.get(KEY, 1, 0, 5, 1 << 20, true).is_none());
    cache.insert_produced(KEY, 1, 5, 9, &produced(5, 10));
    assert!(
        cache.get(KEY, 2, 5, 10, 1 << 20, true).is_none(),
        "an older epoch's insert is ignored"
    );
    assert!(cache.get(KEY, 2, 0, 5, 1 << 20, true).is_some());
    assert!(cache.get(KEY, 3, 0, 5, 1 << 20, true).is_none());
    assert_eq!(cache.bytes(), 0);
    assert!(cache.get(KEY, 2, 0, 5, 1 << 20, true).is_none(), "gone for good");
}

#[test]
fn overlapping_inserts_are_dropped() {
    let cache = FetchCache::new(1 << 20);
    let five = produced(5, 10);
    cache.insert_produced(KEY, 0, 10, 14, &five);
    let held = cache.bytes();
    cache.insert_produced(KEY, 0, 12, 16, &five);
    cache.insert_produced(KEY, 0, 6, 10, &five);
    cache.insert_produced(KEY, 0, 10, 14, &five);
    assert_eq!(cache.bytes(), held);
    cache.insert_produced(KEY, 0, 5, 9, &five);
    cache.insert_produced(KEY, 0, 15, 19, &five);
    assert_eq!(cache.bytes(), 3 * held);
    assert_eq!(
        offsets(&cache.get(KEY, 0, 5, 20, 1 << 20, true).unwrap()),
        (5..20).collect::<Vec<_>>()
    );
}

#[test]
fn produced_batches_push_out_the_oldest_and_converted_ones_only_take_free_room() {
    let batch = produced(1, 1000);
    let cap = 3 * batch.len();
    let cache = FetchCache::new(cap);
    for offset in 0..5 {
        cache.insert_produced(KEY, 0, offset, offset, &batch);
        assert!(cache.bytes() <= cap);
    }
    assert!(
        cache.get(KEY, 0, 1, 10, 1 << 20, true).is_none(),
        "the oldest were evicted"
    );
    assert_eq!(offsets(&cache.get(KEY, 0, 2, 10, 1 << 20, true).unwrap()), [2, 3, 4]);

    // A converted answer (as `encode` writes it) with no room: not kept.
    let mut converted = BytesMut::new();
    converted.extend_from_slice(&batch);
    converted[0..8].copy_from_slice(&20i64.to_be_bytes());
    let converted = converted.freeze();
    cache.insert_converted((9, 0), 0, &converted);
    assert!(cache.get((9, 0), 0, 20, 30, 1 << 20, true).is_none());
    assert_eq!(offsets(&cache.get(KEY, 0, 2, 10, 1 << 20, true).unwrap()), [2, 3, 4]);

    // With room it is kept, batch by batch.
    let roomy = FetchCache::new(cap);
    let mut two = BytesMut::from(&converted[..]);
    let mut second = BytesMut::from(&batch[..]);
    second[0..8].copy_from_slice(&21i64.to_be_bytes());
    two.extend_from_slice(&second);
    let two = two.freeze();
    roomy.insert_converted((9, 0), 0, &two);
    assert_eq!(offsets(&roomy.get((9, 0), 0, 21, 30, 1 << 20, true).unwrap()), [21]);
    assert_eq!(offsets(&roomy.get((9, 0), 0, 20, 30, 1 << 20, true).unwrap()), [20, 21]);
    // Not whole batches: nothing kept.
    roomy.insert_converted((10, 0), 0, &two.slice(..two.len() - 1));
    assert!(roomy.get((10, 0), 0, 20, 30, 1 << 20, true).is_none());
}

#[test]
fn a_cache_of_zero_bytes_holds_nothing() {
    let cache = FetchCache::new(0);
    cache.insert_produced(KEY, 0, 0, 4, &produced(5, 10));
    cache.insert_converted(KEY, 0, &produced(5, 10));
    assert_eq!(cache.bytes(), 0);
    assert!(cache.get(KEY, 0, 0, 5, 1 << 20, true).is_none());
}

#[test]
fn partitions_of_deleted_streams_are_forgotten() {
    let batch = produced(1, 1000);
    let cache = FetchCache::new(1 << 20);
    let gone: Key = (8, 1);
    for offset in 0..3 {
        cache.insert_produced(KEY, 0, offset, offset, &batch);
        cache.insert_produced(gone, 0, offset, offset, &batch);
    }
    assert_eq!(cache.bytes(), 6 * batch.len());
    cache.retain_streams(|id| id == KEY.0);
    assert_eq!(cache.bytes(), 3 * batch.len());
    assert!(cache.get(gone, 0, 0, 3, 1 << 20, true).is_none());
    assert_eq!(offsets(&cache.get(KEY, 0, 0, 3, 1 << 20, true).unwrap()), [0, 1, 2]);
    // Eviction goes on in order among what is left.
    let small = FetchCache::new(3 * batch.len());
    small.insert_produced(gone, 0, 0, 0, &batch);
    for offset in 0..2 {
        small.insert_produced(KEY, 0, offset, offset, &batch);
    }
    small.retain_streams(|id| id == KEY.0);
    for offset in 2..4 {
        small.insert_produced(KEY, 0, offset, offset, &batch);
    }
    assert_eq!(small.bytes(), 3 * batch.len());
    assert!(
        small.get(KEY, 0, 0, 4, 1 << 20, true).is_none(),
        "the oldest went first"
    );
    assert_eq!(offsets(&small.get(KEY, 0, 1, 4, 1 << 20, true).unwrap()), [1, 2, 3]);
}
