//! Kafka requests run through the handlers of a real node: the frame goes
//! through the connection's dispatcher (`kafka::harness`) to a node opened
//! on a scratch directory, holding a stream with records in three
//! partitions, so that requests reach partitions and batches that exist
//! (the corpus' own requests create topics, groups and commits), and a
//! token, so that SASL exchanges (PLAIN, SCRAM, OAUTHBEARER) run.
//!
//! What must hold for any frame: no panic; an answer carries the request's
//! correlation id and decodes, at the request's version, as that API's
//! response with nothing left over (a client can read every answer the
//! node writes); a connection is never closed because the node could not
//! encode its own answer. Every request is bounded by
//! [`REQUEST_TIME`]: a long-poll or a group join that waits longer is
//! dropped, as a client that closes its connection drops it.
//!
//! State carries over from one input to the next (topics created, records
//! produced), as it does for a node serving many clients.

// A fuzz target reports a broken rule by panicking (libFuzzer keeps the
// input); nothing here is compiled into the node.
#![allow(clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::config::Settings;
use crate::kafka::dispatch;
use crate::kafka::harness::{Outcome, Session};
use crate::log::record::Record;
use crate::node::Host;

/// The node's token: SASL PLAIN, SCRAM and OAUTHBEARER exchanges run
/// against it (the connection itself counts as authenticated, as one with
/// a client certificate does, so every other request is served too).
pub const TOKEN: &str = "fuzz-token";

/// Longest one request may take before it is dropped.
const REQUEST_TIME: Duration = Duration::from_millis(25);

/// The stream with records every harness starts with (the topic the
/// seed requests name), and its partitions.
pub const STREAM: &str = "events";
const PARTITIONS: u32 = 3;

/// A node on a scratch directory and one connection to its Kafka face.
pub struct Harness {
    rt: tokio::runtime::Runtime,
    host: Host,
    session: Session,
    dir: PathBuf,
}

impl Harness {
    /// Opens a node on a fresh scratch directory, with [`STREAM`]'s three
    /// partitions holding records.
    ///
    /// # Panics
    /// If the node cannot be opened or its streams made (a harness fault,
    /// not an input's).
    pub fn new() -> Harness {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-fuzz-kafka-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzz harness runtime: {e}"));
        let settings = Settings {
            data_dir: dir.clone(),
            auth_token: Some(TOKEN.to_string()),
            ..Settings::default()
        };
        let host = rt.block_on(async {
            let host = Host::open(settings)
                .await
                .unwrap_or_else(|e| panic!("fuzz harness node: {e}"));
            seed(&host).await;
            host
        });
        let session = Session::new(&host, true).unwrap_or_else(|e| panic!("fuzz harness listener: {e}"));
        Harness { rt, host, session, dir }
    }

    /// Runs one request frame, checks what the node did with it, and says
    /// what that was.
    ///
    /// # Panics
    /// On a broken rule of the module doc.
    pub fn request(&mut self, frame: &[u8]) -> Seen {
        let Some(request) = Asked::of(frame) else {
            return Seen::Skipped;
        };
        let session = &mut self.session;
        let frame = Bytes::copy_from_slice(frame);
        let outcome = self
            .rt
            .block_on(async { tokio::time::timeout(REQUEST_TIME, session.request(frame)).await });
        match outcome {
            Err(_) => {
                self.assert_not_wedged(&request);
                Seen::TimedOut
            }
            Ok(Outcome::Nothing) => Seen::Silent,
            Ok(Outcome::Closed(why)) => {
                assert!(
                    !why.starts_with("cannot encode") && !why.contains("deferred twice"),
                    "{:?} v{}: the node closed the connection for its own fault: {why}",
                    request.api,
                    request.version
                );
                Seen::Closed
            }
            Ok(Outcome::Answer(answer)) => {
                request.check(answer);
                Seen::Answered(request.api)
            }
        }
    }
}

impl Harness {
    /// After a request that did not finish in time: the node still answers
    /// requests that take the stream list's, the groups' and a partition's
    /// locks (a request left holding one would wedge every later client).
    fn assert_not_wedged(&mut self, after: &Asked) {
        for (api, frame) in probes() {
            let session = &mut self.session;
            let answered = self
                .rt
                .block_on(async { tokio::time::timeout(PROBE_TIME, session.request(frame)).await });
            assert!(
                matches!(answered, Ok(Outcome::Answer(_))),
                "after {:?} v{} ran past {REQUEST_TIME:?}, {api:?} got {answered:?}",
                after.api,
                after.version
            );
        }
    }
}

/// Longest a probe may take on a node that is not wedged.
const PROBE_TIME: Duration = Duration::from_secs(5);

/// Requests that answer at once on any node: Metadata of every topic,
/// ListGroups, and ListOffsets of the seed stream's partition 0.
fn probes() -> [(ApiKey, Bytes); 3] {
    let metadata = kafka_protocol::messages::MetadataRequest::default();
    let groups = kafka_protocol::messages::ListGroupsRequest::default();
    let mut offsets = kafka_protocol::messages::ListOffsetsRequest::default();
    let mut topic = kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default();
    topic.name = kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_static_str(STREAM));
    let mut partition = kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default();
    partition.timestamp = -1;
    topic.partitions = vec![partition];
    offsets.topics = vec![topic];
    [
        (ApiKey::Metadata, probe(ApiKey::Metadata, 12, &metadata)),
        (ApiKey::ListGroups, probe(ApiKey::ListGroups, 5, &groups)),
        (ApiKey::ListOffsets, probe(ApiKey::ListOffsets, 8, &offsets)),
    ]
}

/// A probe's frame. Encoding these fixed requests cannot fail; an empty
/// frame would be closed, and the probe's assertion says so.
fn probe<R: Encodable>(api: ApiKey, version: i16, request: &R) -> Bytes {
    Bytes::from(request_frame(api, version, -7, request).unwrap_or_default())
}

/// A request frame (without its length prefix) as a client named `fuzz`
/// sends it; `None` if `request` cannot be encoded at `version`.
pub(super) fn request_frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Option<Vec<u8>> {
    let mut header = kafka_protocol::messages::RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(kafka_protocol::protocol::StrBytes::from_static_str("fuzz"));
    let mut buf = bytes::BytesMut::new();
    header.encode(&mut buf, api.request_header_version(version)).ok()?;
    request.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

/// What the node did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Too short for a header, or an unknown API key: not sent.
    Skipped,
    /// Still running after [`REQUEST_TIME`] (dropped).
    TimedOut,
    /// No answer (acks=0).
    Silent,
    /// Closed the connection.
    Closed,
    /// Answered, and the answer decoded.
    Answered(ApiKey),
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let host = self.host.clone();
        self.rt.block_on(async move { host.shutdown().await });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the frame asked, as the dispatcher reads it.
pub(super) struct Asked {
    pub(super) api: ApiKey,
    pub(super) version: i16,
    pub(super) correlation_id: i32,
}

impl Asked {
    /// The API, version and correlation id of a frame the dispatcher gets
    /// past its first checks; `None` for one it closes the connection on
    /// before any handler runs.
    fn of(frame: &[u8]) -> Option<Asked> {
        let head: [u8; 8] = frame.get(..8)?.try_into().ok()?;
        let api = ApiKey::try_from(i16::from_be_bytes([head[0], head[1]])).ok()?;
        Some(Asked {
            api,
            version: i16::from_be_bytes([head[2], head[3]]),
            correlation_id: i32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        })
    }

    /// Panics unless `answer` is a well-formed answer to this request.
    pub(super) fn check(&self, answer: Bytes) {
        let Asked {
            api,
            version,
            correlation_id,
        } = *self;
        if api == ApiKey::Produce && dispatch::LEGACY_PRODUCE.contains(&version) {
            // Answered by the legacy reader in a version kafka-protocol
            // no longer decodes: only the correlation id is checked.
            let id = answer.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            assert_eq!(id, Some(correlation_id), "Produce v{version}: answer's correlation id");
            return;
        }
        let supported = dispatch::SUPPORTED
            .iter()
            .any(|&(k, lo, hi)| k == api && (lo..=hi).contains(&version));
        // ApiVersions of an unknown version is answered in v0.
        let version = if supported { version } else { 0 };
        let mut buf = answer;
        let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
            .unwrap_or_else(|e| panic!("{api:?} v{version}: answer's header does not decode: {e}"));
        assert_eq!(
            header.correlation_id, correlation_id,
            "{api:?} v{version}: correlation id"
        );
        if let Err(e) = ResponseKind::decode(api, &mut buf, version) {
            panic!("{api:?} v{version}: answer does not decode: {e}");
        }
        assert!(
            buf.is_empty(),
            "{api:?} v{version}: {} bytes left after the answer",
            buf.len()
        );
    }
}

/// The streams and records every harness starts with.
async fn seed(host: &Host) {
    host.create_stream(STREAM, PARTITIONS)
        .await
        .unwrap_or_else(|e| panic!("fuzz harness stream: {e}"));
    for partition in 0..PARTITIONS {
        let records: Vec<Record> = (0..20u64)
            .map(|i| Record {
                key: (i % 3 != 0).then(|| Bytes::from(format!("key-{}", i % 5))),
                value: (i % 7 != 6).then(|| Bytes::from(format!("value {partition}/{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
                timestamp_ms: 1_700_000_000_000 + i * 1_000,
            })
            .collect();
        host.append(STREAM, partition, &records)
            .await
            .unwrap_or_else(|e| panic!("fuzz harness records: {e}"));
    }
}

/// One harness per process for the fuzz target (state carries over).
fn shared() -> &'static Mutex<Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    HARNESS.get_or_init(|| Mutex::new(Harness::new()))
}

/// One Kafka request frame (without its length prefix) run through the
/// handlers of a real node (see the module doc).
pub fn kafka_handle(data: &[u8]) {
    let mut harness = shared().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = harness.request(data);
}
