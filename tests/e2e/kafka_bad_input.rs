//! Bad Kafka input over raw TCP: truncated and garbage frames, oversized
//! frames, unknown API keys and versions, wrong CRCs, too-large and
//! misdirected batches. Each gets its error code or closes only its own
//! connection; the node keeps serving and loses nothing. Also over raw
//! frames: a retried idempotent batch (the one case a real client rarely
//! hits on cue) is stored once, before and after a kill -9.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use crate::kafka_support::{kcat, kcat_read_all};
use crate::support::{self, Server, ServerOptions};

pub(crate) fn send_raw(s: &mut TcpStream, frame: &[u8]) {
    s.write_all(&(frame.len() as i32).to_be_bytes()).expect("write length");
    s.write_all(frame).expect("write frame");
}

/// The next answer's body after the correlation id, or `None` if the
/// server closed the connection.
pub(crate) fn answer(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}

fn header(api: i16, version: i16, correlation: i32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(api);
    b.put_i16(version);
    b.put_i32(correlation);
    b.put_i16(-1); // no client id
    b
}

fn api_versions_ok(s: &mut TcpStream) {
    let mut f = header(18, 0, 1);
    f.truncate(10);
    send_raw(s, &f);
    let mut a = answer(s).expect("ApiVersions answered");
    assert_eq!(a.get_i32(), 1);
    assert_eq!(a.get_i16(), 0, "error code");
}

fn batch(value_len: usize) -> BytesMut {
    producer_batch(value_len, -1, -1, -1)
}

pub(crate) fn producer_batch(value_len: usize, producer_id: i64, epoch: i16, sequence: i32) -> BytesMut {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(vec![7u8; value_len])),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &opts).expect("encode batch");
    buf
}

/// Sends one request and decodes its answer.
pub(crate) fn call<Req: Encodable, Resp: Decodable>(s: &mut TcpStream, api: ApiKey, version: i16, req: &Req) -> Resp {
    let mut h = RequestHeader::default();
    h.request_api_key = api as i16;
    h.request_api_version = version;
    h.correlation_id = 9;
    h.client_id = Some(StrBytes::from_static_str("raw"));
    let mut buf = BytesMut::new();
    h.encode(&mut buf, api.request_header_version(version)).expect("header");
    req.encode(&mut buf, version).expect("request");
    send_raw(s, &buf);
    let mut a = answer(s).unwrap_or_else(|| panic!("{api:?} answered"));
    assert_eq!(a.get_i32(), 9, "correlation id");
    if api.response_header_version(version) >= 1 {
        // Tagged fields of the flexible response header (none expected).
        assert_eq!(a.get_u8(), 0);
    }
    Resp::decode(&mut a, version).expect("decode the answer")
}

/// A Produce v7 request (acks=1) of `records` to `topic` partition `partition`.
fn produce(s: &mut TcpStream, topic: &str, partition: i32, records: Bytes) -> ProduceResponse {
    produce_acks(s, topic, partition, records, 1)
}

/// [`produce`] with `acks`.
pub(crate) fn produce_acks(
    s: &mut TcpStream,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceResponse {
    produce_at(s, topic, partition, records, acks, 7)
}

/// [`produce_acks`] at Produce `version`.
pub(crate) fn produce_at(
    s: &mut TcpStream,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    version: i16,
) -> ProduceResponse {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(records);
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    call(s, ApiKey::Produce, version, &req)
}

fn error_of(r: &ProduceResponse) -> i16 {
    r.responses[0].partition_responses[0].error_code
}

pub(crate) fn offset_of(r: &ProduceResponse) -> (i16, i64) {
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The same idempotent batch sent again — also after kill -9 — is answered
/// with its first offsets and stored once; a gap and an old epoch are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_idempotent_batch_is_stored_once_also_after_kill_9() {
    let mut server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "t", 1).await;
    let l = Listener(server.kafka());
    let pid = 4242;
    let first = tokio::task::spawn_blocking(move || {
        let mut s = l.connect();
        let a = offset_of(&produce(&mut s, "t", 0, producer_batch(5, pid, 0, 0).freeze()));
        let b = offset_of(&produce(&mut s, "t", 0, producer_batch(6, pid, 0, 1).freeze()));
        let retry = offset_of(&produce(&mut s, "t", 0, producer_batch(5, pid, 0, 0).freeze()));
        let gap = error_of(&produce(&mut s, "t", 0, producer_batch(7, pid, 0, 5).freeze()));
        (a, b, retry, gap)
    })
    .await
    .expect("join");
    assert_eq!(
        first,
        ((0, 0), (0, 1), (0, 0), 45),
        "OUT_OF_ORDER_SEQUENCE_NUMBER is 45"
    );
    server.kill();
    server.restart().await;
    let l = Listener(server.kafka());
    let after = tokio::task::spawn_blocking(move || {
        let mut s = l.connect();
        let retry = offset_of(&produce(&mut s, "t", 0, producer_batch(6, pid, 0, 1).freeze()));
        let next = offset_of(&produce(&mut s, "t", 0, producer_batch(8, pid, 0, 2).freeze()));
        let then = error_of(&produce(&mut s, "t", 0, producer_batch(9, pid, 0, 3).freeze()));
        let bumped = offset_of(&produce(&mut s, "t", 0, producer_batch(9, pid, 1, 0).freeze()));
        let old = error_of(&produce(&mut s, "t", 0, producer_batch(9, pid, 0, 4).freeze()));
        (retry, next, then, bumped, old)
    })
    .await
    .expect("join");
    assert_eq!(after, ((0, 1), (0, 2), 0, (0, 4), 47), "INVALID_PRODUCER_EPOCH is 47");
    let out = kcat_read_all(
        &server.kafka(),
        "t",
        0,
        "%o:%S
",
    );
    assert_eq!(out, "0:5\n1:6\n2:8\n3:9\n4:9\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_their_error_or_close_only_their_connection() {
    let server = Server::start_with(ServerOptions {
        config: Some("max_batch_bytes = \"64KiB\"\nkafka_max_frame_bytes = \"1MiB\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    support::create_stream(&c, &server, "t", 1).await;
    let b = server.kafka();
    kcat(&["-b", &b, "-P", "-t", "t", "-p", "0"], b"before\n");

    let listener = Listener(server.kafka());
    tokio::task::spawn_blocking(move || run_bad_input(&listener))
        .await
        .expect("bad input checks");

    // Nothing lost, nothing extra: the one good record and one more after.
    kcat(&["-b", &b, "-P", "-t", "t", "-p", "0"], b"after\n");
    let out = kcat_read_all(
        &b, "t", 0, "%o:%s
",
    );
    assert_eq!(out, "0:before\n1:after\n");
    let resp = c.get(server.url("/health")).send().await.expect("health");
    assert!(resp.status().is_success());
}

fn run_bad_input(server: &Listener) {
    let mut good = server.connect();
    api_versions_ok(&mut good);

    // Shorter than a header; an unknown API key; a version nobody has.
    for frame in [vec![0u8, 1, 2], header(999, 0, 5).to_vec(), header(1, 99, 5).to_vec()] {
        let mut s = server.connect();
        send_raw(&mut s, &frame);
        assert!(closed(&mut s), "frame {frame:?} should close its connection");
    }
    // Garbage after a valid Metadata header.
    let mut s = server.connect();
    let mut f = header(3, 9, 5);
    f.put_slice(&[0xff; 40]);
    send_raw(&mut s, &f);
    assert!(closed(&mut s));
    // Lengths that claim more than the frame holds: a Metadata v0 topics
    // array of i32::MAX entries (14 bytes that once asked for a 154 GB
    // allocation and aborted the node), the same as a compact array (v9),
    // and a client id string longer than the frame.
    let mut huge_array = header(3, 0, 6);
    huge_array.put_i32(i32::MAX);
    let mut huge_compact = header(3, 9, 7);
    huge_compact.put_u8(0); // no tagged fields in the header
    huge_compact.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut huge_string = BytesMut::new();
    huge_string.put_slice(&[0, 3, 0, 0, 0, 0, 0, 8]);
    huge_string.put_i16(i16::MAX);
    for frame in [huge_array, huge_compact, huge_string] {
        let mut s = server.connect();
        send_raw(&mut s, &frame);
        assert!(closed(&mut s), "frame {frame:?} should close its connection");
    }
    api_versions_ok(&mut good);
    // A frame over kafka_max_frame_bytes is refused from its length alone.
    let mut s = server.connect();
    s.write_all(&(64 * 1024 * 1024i32).to_be_bytes()).expect("write");
    assert!(closed(&mut s));
    // A frame cut short by the client.
    let mut s = server.connect();
    s.write_all(&100i32.to_be_bytes()).expect("write");
    s.write_all(&[0u8; 10]).expect("write");
    drop(s);

    // ApiVersions of an unknown version: a v0 answer with UNSUPPORTED_VERSION.
    let mut s = server.connect();
    let mut f = header(18, 99, 3);
    f.truncate(10);
    send_raw(&mut s, &f);
    let mut a = answer(&mut s).expect("answered");
    assert_eq!(a.get_i32(), 3);
    assert_eq!(a.get_i16(), 35);
    assert!(a.get_i32() >= 10, "the supported list comes along");
    // v4 (what Kafka 4 clients ask first) is answered as it is.
    let mut req = kafka_protocol::messages::ApiVersionsRequest::default();
    req.client_software_name = StrBytes::from_static_str("raw");
    req.client_software_version = StrBytes::from_static_str("1");
    let got: kafka_protocol::messages::ApiVersionsResponse = call(&mut server.connect(), ApiKey::ApiVersions, 4, &req);
    assert_eq!(got.error_code, 0);
    let listed = got.api_keys.iter().find(|k| k.api_key == ApiKey::ApiVersions as i16);
    assert_eq!(listed.map(|k| (k.min_version, k.max_version)), Some((0, 4)));

    // Produce v2 (message sets): UNSUPPORTED_VERSION per partition.
    let mut f = header(0, 2, 4);
    f.put_i16(1);
    f.put_i32(1000);
    f.put_i32(1);
    f.put_i16(1);
    f.put_slice(b"t");
    f.put_i32(1);
    f.put_i32(0);
    f.put_i32(0);
    send_raw(&mut s, &f);
    let mut a = answer(&mut s).expect("answered");
    assert_eq!(a.get_i32(), 4);
    assert_eq!(a.get_i32(), 1);
    let name_len = a.get_i16() as usize;
    a.advance(name_len);
    assert_eq!((a.get_i32(), a.get_i32(), a.get_i16()), (1, 0, 35));

    // Produce v7 on one connection: wrong CRC, too large, unknown topic and
    // partition, then a good batch: each answered, the connection kept.
    let mut bad_crc = batch(10);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    assert_eq!(
        error_of(&produce(&mut s, "t", 0, bad_crc.freeze())),
        2,
        "CORRUPT_MESSAGE"
    );
    assert_eq!(
        error_of(&produce(&mut s, "t", 0, batch(100 * 1024).freeze())),
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        error_of(&produce(&mut s, "nope", 0, batch(10).freeze())),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        error_of(&produce(&mut s, "t", 7, batch(10).freeze())),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        error_of(&produce(&mut s, "t", 0, Bytes::from_static(&[1, 2, 3]))),
        2,
        "CORRUPT_MESSAGE"
    );

    // ListOffsets naming partition 0 twice: INVALID_REQUEST for both, as
    // from Kafka; another partition in the request is still answered.
    let asked = [("t", 0, -1i64), ("t", 0, -2), ("nope", 0, -1)];
    let answered: Vec<(i16, i64)> = list_offsets(&mut s, &asked);
    assert_eq!(answered, [(42, -1), (42, -1), (3, -1)]);
    assert_eq!(list_offsets(&mut s, &asked[..1]), [(0, 1)], "the end, once asked once");

    // The first connection was never disturbed.
    api_versions_ok(&mut good);
}

/// (error, offset) per (topic, partition, timestamp) asked in one
/// ListOffsets v7, each asked topic its own entry.
fn list_offsets(s: &mut TcpStream, asked: &[(&str, i32, i64)]) -> Vec<(i16, i64)> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
    let mut req = ListOffsetsRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    for (topic, partition, timestamp) in asked {
        let mut p = ListOffsetsPartition::default();
        p.partition_index = *partition;
        p.timestamp = *timestamp;
        let mut t = ListOffsetsTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partitions = vec![p];
        req.topics.push(t);
    }
    let r: ListOffsetsResponse = call(s, ApiKey::ListOffsets, 7, &req);
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.error_code, p.offset)))
        .collect()
}

/// The Kafka listener's address.
pub(crate) struct Listener(pub(crate) String);

impl Listener {
    pub(crate) fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.0).expect("connect to the Kafka listener");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s
    }
}

/// A Fetch (v11) of `topic` partition 0 from `offset` (naming `current` as
/// the leader epoch; -1: none) over raw frames; its partition's answer.
/// A sessionless Fetch at `version` (13+: topics by id) of partition 0 of
/// the topic whose id is `id` (32 hex digits), from offset 0, naming
/// `current` as the leader epoch.
pub(crate) fn raw_fetch_by_id(
    kafka: &str,
    id: &str,
    current: i32,
    version: i16,
) -> kafka_protocol::messages::FetchResponse {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.current_leader_epoch = current;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic_id = uuid::Uuid::parse_str(id).expect("uuid");
    t.partitions = vec![p];
    let mut req = kafka_protocol::messages::FetchRequest::default();
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    call(&mut Listener(kafka.to_string()).connect(), ApiKey::Fetch, version, &req)
}

pub(crate) fn raw_fetch(
    s: &mut TcpStream,
    topic: &str,
    offset: i64,
    current: i32,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse};
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.current_leader_epoch = current;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.min_bytes = 0;
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    let r: FetchResponse = call(s, ApiKey::Fetch, 11, &req);
    r.responses[0].partitions[0].clone()
}

/// Fetch v11 over raw frames: the high watermark and log start offset, a
/// fetch from the middle of a batch, and OFFSET_OUT_OF_RANGE past the end.
type FetchAnswer = (i16, i64, i64, Vec<i64>);

/// kcat produces five records as one batch; then three raw Fetch requests:
/// from offset 2, at the end, past the end.
async fn fetch_answers(server: &Server) -> (FetchAnswer, FetchAnswer, FetchAnswer) {
    support::create_stream(&support::client(), server, "f", 1).await;
    kcat(&["-b", &server.kafka(), "-P", "-t", "f", "-p", "0"], b"a\nb\nc\nd\ne\n");
    let l = Listener(server.kafka());
    tokio::task::spawn_blocking(move || {
        let mut s = l.connect();
        let mut fetch = |offset: i64| {
            let p = raw_fetch(&mut s, "f", offset, -1);
            let mut records = p.records.clone().unwrap_or_default();
            let offsets: Vec<i64> = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)
                .expect("record batches")
                .into_iter()
                .flat_map(|set| set.records)
                .map(|r| r.offset)
                .collect();
            (p.error_code, p.high_watermark, p.log_start_offset, offsets)
        };
        (fetch(2), fetch(5), fetch(9))
    })
    .await
    .expect("join")
}

/// Fetch from the middle of a batch, at the end and past it. From the fetch
/// cache (the produced batch, whole, as Kafka answers) and, with the cache
/// off, converted from the log (from the fetch offset on); clients skip
/// offsets below the one they asked for either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reports_watermarks_and_offset_out_of_range() {
    let cached = Server::start().await;
    let answers = fetch_answers(&cached).await;
    assert_eq!(
        answers.0,
        (0, 5, 0, vec![0, 1, 2, 3, 4]),
        "the whole batch holding offset 2"
    );
    assert_eq!(answers.1, (0, 5, 0, vec![]), "at the end: nothing, no error");
    assert_eq!(answers.2.0, 1, "OFFSET_OUT_OF_RANGE past the end");
    assert!(fetch_cache_hits(&cached).await >= 1.0, "answered from the fetch cache");

    let uncached = Server::start_with(ServerOptions {
        config: Some("kafka_fetch_cache_bytes = 0\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let answers = fetch_answers(&uncached).await;
    assert_eq!(answers.0, (0, 5, 0, vec![2, 3, 4]), "from the fetch offset on");
    assert_eq!(answers.1, (0, 5, 0, vec![]), "at the end: nothing, no error");
    assert_eq!(answers.2.0, 1, "OFFSET_OUT_OF_RANGE past the end");
    assert_eq!(fetch_cache_hits(&uncached).await, 0.0);
}

/// Partition fetches the node answered from its fetch cache so far.
async fn fetch_cache_hits(server: &Server) -> f64 {
    crate::kafka_support::metric_sum(server, "sluice_kafka_fetch_cache_total", "result=\"hit\"").await
}

/// Connection limits: over `kafka_max_connections` a client waits in the
/// accept queue; `kafka_idle_timeout` closes idle connections, which lets it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_the_cap_queues_the_rest() {
    let server = Server::start_with(ServerOptions {
        config: Some("kafka_max_connections = 2\nkafka_idle_timeout = \"2s\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let l = Listener(server.kafka());
    tokio::task::spawn_blocking(move || {
        let mut idle: Vec<TcpStream> = (0..2).map(|_| l.connect()).collect();
        for s in &mut idle {
            api_versions_ok(s);
        }
        // The third is accepted by the kernel but not served while two are open.
        let mut third = l.connect();
        let mut f = header(18, 0, 1);
        f.truncate(10);
        send_raw(&mut third, &f);
        third
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut b = [0u8; 1];
        assert!(third.read(&mut b).is_err(), "served over the connection cap");
        // The idle two are closed after the idle timeout; then the third is served.
        for s in &mut idle {
            assert!(closed(s), "an idle connection stayed open");
        }
        third.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut a = answer(&mut third).expect("served once the idle ones closed");
        assert_eq!(a.get_i32(), 1);
    })
    .await
    .expect("connection limits");
}
