//! From a request frame to its answer: the header, the versions this node
//! speaks ([`SUPPORTED`]), the authentication gate, and the handler.
//!
//! As Kafka brokers do, a request this node cannot decode — a frame shorter
//! than its header, an unknown API key, a version outside [`SUPPORTED`], a
//! body that does not parse — closes its connection (the client reconnects
//! and asks ApiVersions). Two exceptions answer instead: ApiVersions of an
//! unknown version gets a v0 answer with UNSUPPORTED_VERSION and the list,
//! and Produce v0–v2 (advertised because librdkafka requires it) gets
//! UNSUPPORTED_VERSION per partition.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::conn::Conn;
use super::{Ctx, apis, legacy, splice};

/// The APIs and versions this node answers: (API, lowest, highest).
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::ListTransactions, 0, 1),
];

/// Produce versions advertised but answered with UNSUPPORTED_VERSION
/// (they carry message sets, not record batches).
pub(crate) const LEGACY_PRODUCE: std::ops::RangeInclusive<i16> = 0..=2;

/// What the connection does with a request.
pub(super) enum Reply {
    /// Write this answer (response header and body, without the length).
    Send(Bytes),
    /// Write this answer, in parts (`splice`), without the length.
    SendParts(Vec<Bytes>),
    /// No answer (Produce with acks=0).
    Nothing,
    /// Close the connection, for this reason (logged).
    Close(String),
}

fn supported(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// A request under way: resolves to what the connection does with it.
pub(super) type Step = Pin<Box<dyn Future<Output = Reply> + Send>>;

fn now(reply: Reply) -> Step {
    Box::pin(std::future::ready(reply))
}

/// Starts a request: decodes it, runs what must happen in request order
/// (authentication, queueing appends) and returns the rest as a [`Step`].
pub(super) async fn handle(ctx: &Arc<Ctx>, conn: &mut Conn, frame: Bytes) -> Step {
    match start(ctx, conn, frame).await {
        Started::Done(reply) => now(reply),
        Started::Running(answer, request) => match answer {
            apis::Answer::Later(rest) => Box::pin(async move { request.finish(rest.await) }),
            answer => now(request.finish(answer)),
        },
    }
}

enum Started {
    Done(Reply),
    Running(apis::Answer, Request),
}

/// What the answer to a started request needs.
struct Request {
    api: ApiKey,
    correlation_id: i32,
    version: i16,
    started: Instant,
}

impl Request {
    fn finish(self, answer: apis::Answer) -> Reply {
        let Request {
            api,
            correlation_id,
            version,
            started,
        } = self;
        finish(answer, api, correlation_id, version, started)
    }
}

fn finish(answer: apis::Answer, api: ApiKey, correlation_id: i32, version: i16, started: Instant) -> Reply {
    let name = api_name(api);
    metrics::counter!(crate::metrics::KAFKA_REQUESTS, "api" => name).increment(1);
    metrics::histogram!(crate::metrics::KAFKA_REQUEST_SECONDS, "api" => name).record(started.elapsed().as_secs_f64());
    match answer {
        apis::Answer::Respond(body) => encode(correlation_id, api.response_header_version(version), version, &body),
        apis::Answer::Fetch(r, parts) => encode_fetch(
            correlation_id,
            api.response_header_version(version),
            version,
            *r,
            &parts,
        ),
        apis::Answer::Silent => Reply::Nothing,
        apis::Answer::Close(why) => Reply::Close(why),
        apis::Answer::Later(_) => Reply::Close(format!("{api:?}: an answer deferred twice")),
    }
}

async fn start(ctx: &Arc<Ctx>, conn: &mut Conn, mut frame: Bytes) -> Started {
    let close = |why: String| Started::Done(Reply::Close(why));
    if frame.len() < 8 {
        return close(format!("a request of {} bytes is shorter than its header", frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return close(format!("unknown API key {key}"));
    };
    let Some((lo, hi)) = supported(api) else {
        return close(format!("{api:?} (key {key}) is not supported by this node"));
    };
    if api == ApiKey::Produce && LEGACY_PRODUCE.contains(&version) {
        if !conn.authenticated {
            return close("Produce before authentication".into());
        }
        return Started::Done(legacy::produce(ctx, conn, frame, version));
    }
    if version < lo || version > hi {
        if api == ApiKey::ApiVersions {
            return Started::Done(encode(correlation_id, 0, 0, &apis::versions::unsupported()));
        }
        return close(format!("{api:?} v{version} is not supported (v{lo} to v{hi} are)"));
    }
    let header = match RequestHeader::decode(&mut frame, api.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return close(format!("malformed {api:?} v{version} request header: {e}")),
    };
    if !conn.authenticated
        && !matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        return close(format!(
            "{api:?} before authentication: this node has a token, so clients authenticate with SASL PLAIN \
             (any user name, the token as password) first, or show a client certificate where the node asks \
             for one (`[tls] client_ca`)"
        ));
    }
    let request = match RequestKind::decode(api, &mut frame, version) {
        Ok(r) => r,
        Err(e) => return close(format!("malformed {api:?} v{version} request: {e}")),
    };
    let started = Instant::now();
    let answer = apis::handle(ctx, conn, &header, request, version).await;
    let request = Request {
        api,
        correlation_id,
        version,
        started,
    };
    Started::Running(answer, request)
}

/// A Fetch answer: in parts (`splice`), or joined and encoded plainly.
fn encode_fetch(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    mut r: FetchResponse,
    parts: &splice::Parts,
) -> Reply {
    let head = match response_header(correlation_id, header_version) {
        Ok(head) => head,
        Err(reply) => return reply,
    };
    if let Some(out) = splice::encode_fetch(&head, &r, parts, version) {
        return Reply::SendParts(out);
    }
    splice::join(&mut r, parts);
    encode_body(head, version, &ResponseKind::Fetch(r))
}

/// The response header, encoded (`Err`: the connection closes).
fn response_header(correlation_id: i32, header_version: i16) -> Result<BytesMut, Reply> {
    let mut buf = BytesMut::with_capacity(256);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    match header.encode(&mut buf, header_version) {
        Ok(()) => Ok(buf),
        Err(e) => Err(Reply::Close(format!("cannot encode a response header: {e}"))),
    }
}

/// The response header and body, encoded.
pub(super) fn encode(correlation_id: i32, header_version: i16, version: i16, body: &ResponseKind) -> Reply {
    match response_header(correlation_id, header_version) {
        Ok(head) => encode_body(head, version, body),
        Err(reply) => reply,
    }
}

/// `body` encoded after the response header already in `buf`.
fn encode_body(mut buf: BytesMut, version: i16, body: &ResponseKind) -> Reply {
    if let ResponseKind::Fetch(r) = body {
        // Sized up front, the answer is written once instead of copied
        // through every doubling of the buffer.
        buf.reserve(r.compute_size(version).unwrap_or(0));
    }
    match body.encode(&mut buf, version) {
        Ok(()) => Reply::Send(buf.freeze()),
        Err(e) => Reply::Close(format!("cannot encode the answer (v{version}): {e}")),
    }
}

/// A metric label per supported API.
fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "produce",
        ApiKey::Fetch => "fetch",
        ApiKey::ListOffsets => "list_offsets",
        ApiKey::ElectLeaders => "elect_leaders",
        ApiKey::DescribeProducers => "describe_producers",
        ApiKey::DescribeCluster => "describe_cluster",
        ApiKey::Metadata => "metadata",
        ApiKey::ApiVersions => "api_versions",
        ApiKey::CreateTopics => "create_topics",
        ApiKey::DeleteTopics => "delete_topics",
        ApiKey::DescribeConfigs => "describe_configs",
        ApiKey::AlterConfigs => "alter_configs",
        ApiKey::CreatePartitions => "create_partitions",
        ApiKey::DeleteRecords => "delete_records",
        ApiKey::DescribeLogDirs => "describe_log_dirs",
        ApiKey::IncrementalAlterConfigs => "incremental_alter_configs",
        ApiKey::SaslHandshake => "sasl_handshake",
        ApiKey::SaslAuthenticate => "sasl_authenticate",
        ApiKey::InitProducerId => "init_producer_id",
        ApiKey::FindCoordinator => "find_coordinator",
        ApiKey::OffsetCommit => "offset_commit",
        ApiKey::OffsetFetch => "offset_fetch",
        ApiKey::OffsetDelete => "offset_delete",
        ApiKey::OffsetForLeaderEpoch => "offset_for_leader_epoch",
        ApiKey::JoinGroup => "join_group",
        ApiKey::SyncGroup => "sync_group",
        ApiKey::Heartbeat => "heartbeat",
        ApiKey::LeaveGroup => "leave_group",
        ApiKey::ListGroups => "list_groups",
        ApiKey::DescribeGroups => "describe_groups",
        ApiKey::DeleteGroups => "delete_groups",
        ApiKey::ConsumerGroupHeartbeat => "consumer_group_heartbeat",
        ApiKey::ConsumerGroupDescribe => "consumer_group_describe",
        ApiKey::DescribeAcls => "describe_acls",
        ApiKey::CreateAcls => "create_acls",
        ApiKey::DeleteAcls => "delete_acls",
        ApiKey::ListTransactions => "list_transactions",
        _ => "other",
    }
}
