//! Corpus replay and the seed inputs of the fuzz targets.

use std::path::Path;

use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiVersionsRequest, FetchRequest, FindCoordinatorRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions};

use super::*;
use crate::cluster::wire::{BatchHead, Fragment};
use crate::log::producers::ProducerBatch;
use crate::tier::segment::SegmentWriter;
use crate::wal::format::{SegmentHeader, encode_entry, encode_segment_header, encode_trim};
use crate::wal::object_format::encode_object;

type Target = fn(&[u8]);
/// Named inputs of one target.
pub(super) type Seeds = Vec<(&'static str, Vec<u8>)>;

const TARGETS: [(&str, Target); 6] = [
    ("wal_entry", wal_entry),
    ("object_wal", object_wal),
    ("tier_segment", tier_segment),
    ("replication_fetch", replication_fetch),
    ("kafka_request", kafka_request),
    ("wire_batch", wire_batch),
];

pub(super) fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// A target's committed inputs, in name order (never none).
pub(super) fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} is missing: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files.sort();
    files
}

/// Every committed corpus input of every target runs without a panic:
/// what the fuzzers found (and the crashes fixed since) stays covered
/// by the ordinary test run.
#[test]
fn replay_fuzz_corpus() {
    for (name, target) in TARGETS {
        for file in corpus_files(name) {
            let data = std::fs::read(&file).unwrap();
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name} panicked on {}", file.display());
        }
    }
}

fn records(n: usize) -> Vec<record::Record> {
    (0..n)
        .map(|i| record::Record {
            key: (i % 2 == 0).then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value {i}"))),
            headers: if i == 1 {
                vec![
                    ("h".into(), Some(Bytes::from_static(b"v"))),
                    ("h".into(), Some(Bytes::new())),
                    ("n".into(), None),
                ]
            } else {
                Vec::new()
            },
            timestamp_ms: 1_700_000_000_000 + i as u64,
        })
        .collect()
}

fn batch(n: usize) -> Vec<u8> {
    record::encode_batch(&records(n)).unwrap().to_vec()
}

fn meta(kind: EntryKind, base_offset: u64, count: u32) -> EntryMeta {
    EntryMeta {
        kind,
        stream: 1,
        partition: 0,
        base_offset,
        count,
    }
}

/// Entries of every kind, as the log writes them.
fn entries() -> Vec<(EntryMeta, Vec<u8>)> {
    let create = br#"{"op":"create_stream","id":1,"name":"events","partitions":2,"created_ms":1}"#;
    assert!(serde_json::from_slice::<ControlOp>(create).is_ok());
    let truncate = serde_json::to_vec(&ControlOp::Truncate {
        id: 1,
        partition: 0,
        offset: 2,
    })
    .unwrap();
    let mut with_progress = batch(2);
    with_progress.extend_from_slice(&progress::encode(&progress::Progress {
        pipeline: 1,
        input_partition: 0,
        next_offset: 9,
    }));
    let mut with_producer = batch(1);
    with_producer.extend_from_slice(&producers::encode(&ProducerBatch {
        producer_id: 7,
        epoch: 1,
        base_sequence: 0,
    }));
    vec![
        (meta(EntryKind::Control, 0, 0), create.to_vec()),
        (meta(EntryKind::Records, 0, 3), batch(3)),
        (meta(EntryKind::RecordsWithProgress, 3, 2), with_progress),
        (meta(EntryKind::RecordsWithProducer, 5, 1), with_producer),
        (meta(EntryKind::Control, 0, 0), truncate),
    ]
}

fn wal_seeds() -> Seeds {
    let mut seg = encode_segment_header(&SegmentHeader {
        first_lsn: 1,
        trim_lsn: 0,
        created_ms: 5,
        recycled: false,
    })
    .to_vec();
    for (i, (m, payload)) in entries().iter().enumerate() {
        encode_entry(&mut seg, 1 + i as u64, m, payload);
    }
    let empty = encode_segment_header(&SegmentHeader {
        first_lsn: 100,
        trim_lsn: 99,
        created_ms: 5,
        recycled: true,
    })
    .to_vec();
    vec![
        ("segment", seg),
        ("empty-segment", empty),
        ("trim", encode_trim(42).to_vec()),
    ]
}

fn object_wal_seeds() -> Seeds {
    let entries = entries();
    let list: Vec<(EntryMeta, &[u8])> = entries.iter().map(|(m, p)| (*m, p.as_slice())).collect();
    vec![
        ("object", encode_object(3, 10, 1, 5, &list)),
        ("one-entry", encode_object(1, 1, 0, 5, &list[1..2])),
    ]
}

fn tier_seeds() -> Seeds {
    let build = |mut w: SegmentWriter, batches: &[(u64, usize)], end: Option<u64>| {
        let mut obj = Vec::new();
        for (base, n) in batches {
            obj.extend_from_slice(&w.push(*base, *n as u32, &batch(*n)).unwrap());
        }
        let (tail, _) = match end {
            Some(e) => w.finish_at(e),
            None => w.finish(),
        };
        obj.extend_from_slice(&tail);
        obj
    };
    vec![
        (
            "contiguous",
            build(SegmentWriter::new(), &[(10, 2), (12, 1), (13, 3)], None),
        ),
        (
            "gapped",
            build(SegmentWriter::with_gaps(100), &[(103, 2), (110, 1)], Some(120)),
        ),
    ]
}

fn fetch_seeds() -> Seeds {
    let (a, b) = (batch(2), batch(1));
    let header = FetchHeader {
        leader: 1,
        leader_epoch: 2,
        history: vec![(1, 0), (2, 5)],
        high_watermark: 3,
        log_end: 3,
        in_sync: vec![1, 2],
        batches: vec![
            BatchHead {
                base_offset: 0,
                count: 2,
                len: a.len() as u32,
                crc: crc32c::crc32c(&a),
                producer: None,
            },
            BatchHead {
                base_offset: 2,
                count: 1,
                len: b.len() as u32,
                crc: crc32c::crc32c(&b),
                producer: Some(ProducerBatch {
                    producer_id: 7,
                    epoch: 1,
                    base_sequence: 0,
                }),
            },
        ],
        ..FetchHeader::default()
    };
    let batches = FetchResponse {
        header,
        data: Bytes::from([a.clone(), b].concat()),
    };
    let fragment = FetchResponse {
        header: FetchHeader {
            fragment: Some(Fragment {
                base_offset: 0,
                count: 2,
                total_len: a.len() as u64,
                total_crc: crc32c::crc32c(&a),
                index: 0,
                of: 1,
                len: a.len() as u32,
                crc: crc32c::crc32c(&a),
                producer: None,
            }),
            ..FetchHeader::default()
        },
        data: Bytes::from(a),
    };
    let diverged = FetchResponse {
        header: FetchHeader {
            diverged: Some(4),
            not_leader: true,
            ..FetchHeader::default()
        },
        data: Bytes::new(),
    };
    vec![
        ("batches", batches.encode().unwrap()),
        ("fragment", fragment.encode().unwrap()),
        ("diverged", diverged.encode().unwrap()),
    ]
}

pub(super) fn kafka_frame<R: Encodable>(api: ApiKey, version: i16, request: &R) -> Vec<u8> {
    kafka_handle::request_frame(api, version, 7, request).unwrap()
}

fn kafka_batch(compression: Compression) -> Bytes {
    let records: Vec<KRecord> = (0..3)
        .map(|i| KRecord {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i,
            key: (i != 1).then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value {i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce(version: i16, compression: Compression) -> Vec<u8> {
    let mut partition = kafka_protocol::messages::produce_request::PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(kafka_batch(compression));
    let mut topic = kafka_protocol::messages::produce_request::TopicProduceData::default();
    topic.name = TopicName(StrBytes::from_static_str("events"));
    topic.partition_data = vec![partition];
    let mut req = ProduceRequest::default();
    req.acks = 1;
    req.timeout_ms = 1000;
    req.topic_data = vec![topic];
    kafka_frame(ApiKey::Produce, version, &req)
}

fn kafka_seeds() -> Seeds {
    let mut versions = ApiVersionsRequest::default();
    versions.client_software_name = StrBytes::from_static_str("fuzz");
    versions.client_software_version = StrBytes::from_static_str("1");
    let mut metadata = MetadataRequest::default();
    let mut topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    topic.name = Some(TopicName(StrBytes::from_static_str("events")));
    metadata.topics = Some(vec![topic]);
    let mut fetch = FetchRequest::default();
    let mut ft = kafka_protocol::messages::fetch_request::FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_static_str("events"));
    ft.partitions = vec![kafka_protocol::messages::fetch_request::FetchPartition::default()];
    fetch.topics = vec![ft];
    fetch.max_wait_ms = 100;
    let mut coordinator = FindCoordinatorRequest::default();
    coordinator.coordinator_keys = vec![StrBytes::from_static_str("group")];
    // Produce v2: the legacy reader (message sets are skipped, not parsed).
    let mut legacy = BytesMut::new();
    legacy.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 9, 0, 3, b'c', b'l', b'i', 0, 1, 0, 0, 3, 232]);
    legacy.extend_from_slice(&[
        0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, b'x', b'y', b'z',
    ]);
    vec![
        ("api-versions-v3", kafka_frame(ApiKey::ApiVersions, 3, &versions)),
        ("metadata-v12", kafka_frame(ApiKey::Metadata, 12, &metadata)),
        ("metadata-v1", kafka_frame(ApiKey::Metadata, 1, &metadata)),
        ("fetch-v12", kafka_frame(ApiKey::Fetch, 12, &fetch)),
        (
            "find-coordinator-v4",
            kafka_frame(ApiKey::FindCoordinator, 4, &coordinator),
        ),
        ("produce-v9-none", produce(9, Compression::None)),
        ("produce-v9-gzip", produce(9, Compression::Gzip)),
        ("produce-v8-snappy", produce(8, Compression::Snappy)),
        ("produce-v3-lz4", produce(3, Compression::Lz4)),
        ("produce-v9-zstd", produce(9, Compression::Zstd)),
        ("produce-v2-legacy", legacy.to_vec()),
    ]
}

fn wire_seeds() -> Seeds {
    let mut w = sluice_wire::BatchWriter::default();
    for (i, r) in records(3).iter().enumerate() {
        let headers = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
        // The second record's value is null.
        let value = (i != 1).then(|| r.value_bytes());
        w.push_nullable(40 + i as u64, r.timestamp_ms, r.key.as_deref(), value, headers)
            .unwrap();
    }
    let mut bodies = 3u32.to_le_bytes().to_vec();
    bodies.extend_from_slice(&batch(3));
    vec![("batch", w.finish()), ("record-bodies", bodies)]
}

/// The valid inputs each target's corpus started from, built with the
/// crate's own encoders, and each one accepted by its decoder.
fn seeds() -> Vec<(&'static str, Seeds)> {
    vec![
        ("wal_entry", wal_seeds()),
        ("object_wal", object_wal_seeds()),
        ("tier_segment", tier_seeds()),
        ("replication_fetch", fetch_seeds()),
        ("kafka_request", kafka_seeds()),
        ("wire_batch", wire_seeds()),
    ]
}

#[test]
fn seeds_decode() {
    let (_, seg) = &wal_seeds()[0];
    let dir = Scratch::new();
    std::fs::write(dir.0.join(segment_name(1)), seg).unwrap();
    let r = recover(&dir.0, &mut |_| {}).unwrap();
    assert_eq!((r.entries, r.tail_len, r.cut.is_none()), (5, seg.len() as u64, true));
    for (_, s) in object_wal_seeds() {
        assert!(decode_object(&s).is_ok());
    }
    for (_, s) in tier_seeds() {
        let f = s.len() - FOOTER_LEN;
        let index_pos = le64(&s, f + 32).unwrap() as usize;
        assert!(tier_seg::parse_tail(&s[index_pos..]).is_ok());
    }
    for (_, s) in fetch_seeds() {
        assert!(FetchResponse::decode(Bytes::from(s), 1 << 20).is_ok());
    }
    for (name, s) in kafka_seeds().into_iter().filter(|(n, _)| n.starts_with("produce-v9")) {
        let mut frame = Bytes::from(s);
        RequestHeader::decode(&mut frame, 2).unwrap();
        let RequestKind::Produce(req) = RequestKind::decode(ApiKey::Produce, &mut frame, 9).unwrap() else {
            panic!("{name}: not a produce request");
        };
        let records = req.topic_data[0].partition_data[0].records.clone().unwrap();
        assert!(kafka_batch::decode_batches(&records, MAX_BATCH, 0).is_ok(), "{name}");
    }
    for (_, s) in wire_seeds() {
        wire_batch(&s);
    }
}

/// Writes the seed inputs into `fuzz/corpus/<target>/` (run by hand:
/// `cargo test -p sluice-host --lib fuzz_api::tests::write_seeds -- --ignored`).
#[test]
#[ignore = "writes into fuzz/corpus"]
fn write_seeds() {
    for (target, list) in seeds() {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in list {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}
