//! Prometheus metrics: the names of every series the node exports, the
//! process-wide recorder, and rendering for `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen (the `metrics`
//! crate's macros are cheap no-ops while no recorder is installed); gauges
//! that describe state (WAL size, upload lag, pipeline lag) are set from the
//! node's state at each scrape, so they are never stale. Series that must
//! be able to go away — per-stream counters, per-partition state — are kept
//! and rendered by [`text`] instead of the recorder, which cannot remove a
//! series: a deleted stream's series go with it.
//!
//! Invariants: the recorder is installed at most once per process, the first
//! time a node opens; an embedding application that installed its own
//! recorder first keeps it (the node's `/metrics` then answers 503 and the
//! series go to the application's recorder). Histogram samples are folded
//! into buckets at every scrape and every `UPKEEP_EVERY`, so memory stays
//! bounded when nobody scrapes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod text;
pub use text::{StreamCounter, add, forget_stream, header, render_stream_counters, sample};

/// Records appended (label `stream`).
pub const APPEND_RECORDS: &str = "sluice_append_records_total";
/// Bytes of record batches appended (label `stream`).
pub const APPEND_BYTES: &str = "sluice_append_bytes_total";
/// Time from an append call to its durable acknowledgement.
pub const APPEND_SECONDS: &str = "sluice_append_seconds";
/// Appends that failed (label `stream`).
pub const APPEND_ERRORS: &str = "sluice_append_errors_total";
/// Records returned by reads (label `stream`).
pub const READ_RECORDS: &str = "sluice_read_records_total";
/// WAL group commits (one fdatasync each) and their duration.
pub const WAL_FSYNCS: &str = "sluice_wal_fsyncs_total";
pub const WAL_FSYNC_SECONDS: &str = "sluice_wal_fsync_seconds";
/// WAL segment rolls put off because no file descriptor was left.
pub const WAL_ROLLS_PUT_OFF: &str = "sluice_wal_rolls_put_off_total";
/// Bytes and segment files of the WAL on disk (at scrape).
pub const WAL_BYTES: &str = "sluice_wal_bytes";
pub const WAL_SEGMENTS: &str = "sluice_wal_segments";
/// Object-store WAL: objects uploading now, seconds per upload, seconds
/// from append to acknowledgement, bytes written, failed trim deletes, and
/// 1 once a newer writer fenced this one.
pub const WAL_OBJECTS_IN_FLIGHT: &str = "sluice_wal_objects_in_flight";
pub const WAL_OBJECT_UPLOAD_SECONDS: &str = "sluice_wal_object_upload_seconds";
pub const WAL_ACK_SECONDS: &str = "sluice_wal_ack_seconds";
pub const WAL_OBJECT_BYTES: &str = "sluice_wal_object_bytes_total";
pub const WAL_OBJECT_DELETE_ERRORS: &str = "sluice_wal_object_delete_errors_total";
pub const WAL_FENCED: &str = "sluice_wal_fenced";
/// Start-up: how long the last recovery took and how many entries it replayed.
pub const WAL_RECOVERY_SECONDS: &str = "sluice_wal_recovery_seconds";
pub const WAL_RECOVERED_ENTRIES: &str = "sluice_wal_recovered_entries";
/// WAL bytes and records not yet in the object store (labels `stream`,
/// `partition`; at scrape).
pub const UPLOAD_LAG_BYTES: &str = "sluice_upload_lag_bytes";
pub const UPLOAD_LAG_RECORDS: &str = "sluice_upload_lag_records";
/// Segment objects uploaded, their bytes, and failed upload attempts.
pub const UPLOADS: &str = "sluice_uploads_total";
pub const UPLOAD_BYTES: &str = "sluice_upload_bytes_total";
pub const UPLOAD_ERRORS: &str = "sluice_upload_errors_total";
/// Plugin export calls and their duration (label `plugin`).
pub const PLUGIN_CALLS: &str = "sluice_plugin_calls_total";
pub const PLUGIN_CALL_SECONDS: &str = "sluice_plugin_call_seconds";
/// Plugin calls that ended the instance: a trap, the time limit or the
/// memory limit (labels `plugin`, `reason`).
pub const PLUGIN_TRAPS: &str = "sluice_plugin_traps_total";
/// Plugin calls that returned the plugin's own error (label `plugin`).
pub const PLUGIN_ERRORS: &str = "sluice_plugin_errors_total";
/// Input records a pipeline has not processed yet (label `pipeline`; at
/// scrape).
pub const PIPELINE_LAG_RECORDS: &str = "sluice_pipeline_lag_records";
/// Records after a consumer group's committed offset (labels `group`,
/// `stream`, `partition`; at scrape).
pub const CONSUMER_LAG_RECORDS: &str = "sluice_consumer_lag_records";
/// Finished and failed compaction runs (label `stream`).
pub const COMPACTION_RUNS: &str = "sluice_compaction_runs_total";
pub const COMPACTION_ERRORS: &str = "sluice_compaction_errors_total";
/// Per replica of a led partition: records it misses (labels `stream`,
/// `partition`, `replica`; at scrape, on the leader).
pub const REPLICA_LAG_RECORDS: &str = "sluice_replica_lag_records";
/// Size of a led partition's in-sync set (labels `stream`, `partition`).
pub const ISR_SIZE: &str = "sluice_isr_size";
/// Per cluster peer: 1 when this node's calls found it down (label `node`;
/// at scrape).
pub const PEER_DOWN: &str = "sluice_cluster_peer_down";
/// Changes a node missed that the stream sync took from another node
/// (labels `what`: `settings`, `partitions`, `delete`; `result`: `ok`, or
/// `error` when it could not be applied).
pub const SYNC_CHANGES: &str = "sluice_cluster_sync_changes_total";
/// Follower fetches that failed (label `stream`).
pub const REPLICATION_FETCH_ERRORS: &str = "sluice_replication_fetch_errors_total";
/// Bytes a follower appended from its leader (label `stream`).
pub const REPLICATION_BYTES: &str = "sluice_replication_bytes_total";
/// Open Kafka connections; Kafka requests by API and their duration.
pub const KAFKA_CONNECTIONS: &str = "sluice_kafka_connections";
/// When the certificates of each `[tls]` file expire, in seconds since the
/// epoch (label `file`: `cert`, `ca`, `client_ca`).
pub const TLS_CERT_EXPIRY: &str = "sluice_tls_certificate_expiry_seconds";
/// Kafka fetch sessions open (KIP-227), all listeners.
pub const KAFKA_FETCH_SESSIONS: &str = "sluice_kafka_fetch_sessions";
/// `[tls]` files reloaded after they changed (label `result`: `ok`, or
/// `error` when they did not load and the last good ones stay in use).
pub const TLS_RELOADS: &str = "sluice_tls_reloads_total";
pub const KAFKA_REQUESTS: &str = "sluice_kafka_requests_total";
pub const KAFKA_REQUEST_SECONDS: &str = "sluice_kafka_request_seconds";
/// Kafka fetches of a partition answered from the fetch cache or not, and
/// the bytes the cache holds.
pub const KAFKA_FETCH_CACHE: &str = "sluice_kafka_fetch_cache_total";
pub const KAFKA_FETCH_CACHE_BYTES: &str = "sluice_kafka_fetch_cache_bytes";
/// HTTP requests by route template, method and status, and their duration.
pub const HTTP_REQUESTS: &str = "sluice_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "sluice_http_request_seconds";

/// Latency buckets (seconds) of every `*_seconds` histogram: 50 µs to 10 s.
const BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often histogram samples are folded into buckets without a scrape.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The node's recorder, installed as the process's global recorder on the
/// first call; `None` when another recorder was installed first.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("a metrics recorder is already installed; /metrics stays off");
                    None
                }
            }
        })
        .clone()
}

/// HELP lines for the series (units follow the Prometheus conventions).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        APPEND_SECONDS,
        "Seconds from an append call to its durable acknowledgement"
    );
    describe_counter!(WAL_FSYNCS, "WAL group commits (one fdatasync each)");
    describe_counter!(
        WAL_ROLLS_PUT_OFF,
        "WAL segment rolls put off because no file descriptor was left"
    );
    describe_histogram!(WAL_FSYNC_SECONDS, "Seconds per WAL group commit write and fdatasync");
    describe_gauge!(WAL_OBJECTS_IN_FLIGHT, "Object-store WAL objects uploading now");
    describe_histogram!(WAL_OBJECT_UPLOAD_SECONDS, "Seconds per object-store WAL object upload");
    describe_histogram!(
        WAL_ACK_SECONDS,
        "Seconds from an object-store WAL append to its acknowledgement"
    );
    describe_counter!(WAL_OBJECT_BYTES, "Bytes written as object-store WAL objects");
    describe_counter!(
        WAL_OBJECT_DELETE_ERRORS,
        "Trimmed object-store WAL objects whose delete failed (left, ignored by recovery)"
    );
    describe_gauge!(WAL_FENCED, "1 once a newer writer fenced this node's object-store WAL");
    describe_gauge!(
        WAL_RECOVERY_SECONDS,
        "Seconds the last start-up recovery of the WAL took"
    );
    describe_gauge!(WAL_RECOVERED_ENTRIES, "WAL entries the last start-up recovery replayed");
    describe_gauge!(WAL_BYTES, "Bytes of WAL segment files on disk");
    describe_gauge!(WAL_SEGMENTS, "WAL segment files on disk");
    describe_counter!(UPLOADS, "Segment objects uploaded");
    describe_counter!(UPLOAD_BYTES, "Bytes of segment objects uploaded");
    describe_counter!(UPLOAD_ERRORS, "Failed upload attempts");
    describe_counter!(PLUGIN_CALLS, "Plugin export calls");
    describe_histogram!(PLUGIN_CALL_SECONDS, "Seconds per plugin export call");
    describe_counter!(PLUGIN_TRAPS, "Plugin calls that trapped or hit a limit");
    describe_counter!(PLUGIN_ERRORS, "Plugin calls that returned the plugin's error");
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered");
    describe_gauge!(KAFKA_CONNECTIONS, "Open Kafka protocol connections");
    describe_gauge!(KAFKA_FETCH_SESSIONS, "Kafka fetch sessions open (KIP-227)");
    describe_gauge!(
        TLS_CERT_EXPIRY,
        "When the earliest certificate of each [tls] file expires (seconds since the epoch)"
    );
    describe_counter!(
        TLS_RELOADS,
        "TLS files reloaded after a change (result ok, or error: the last good ones stay in use)"
    );
    describe_counter!(
        SYNC_CHANGES,
        "Changes this node missed, taken from another node by the stream sync (what, result)"
    );
    describe_counter!(KAFKA_REQUESTS, "Kafka requests answered, by API");
    describe_histogram!(KAFKA_REQUEST_SECONDS, "Time to answer a Kafka request, by API");
    describe_counter!(
        KAFKA_FETCH_CACHE,
        "Kafka partition fetches answered from the fetch cache (hit) or from the log (miss)"
    );
    describe_gauge!(
        KAFKA_FETCH_CACHE_BYTES,
        "Bytes of record batches in the Kafka fetch cache"
    );
    describe_histogram!(HTTP_REQUEST_SECONDS, "Seconds per HTTP request");
}

/// Folds histogram samples into buckets every [`UPKEEP_EVERY`] until the
/// returned task is aborted.
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Counts a Kafka connection opening (`1`) or closing (`-1`).
pub fn kafka_connections(delta: i8) {
    metrics::gauge!(KAFKA_CONNECTIONS).increment(f64::from(delta));
}

/// Counts one reload of changed `[tls]` files.
pub fn tls_reload(ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(TLS_RELOADS, "result" => result).increment(1);
}

/// A change the stream sync took (`what`: settings, partitions, delete).
pub fn sync_change(what: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(SYNC_CHANGES, "what" => what, "result" => result).increment(1);
}

/// Fetch sessions opened (`delta` 1) or ended (-1).
pub fn kafka_fetch_sessions(delta: i32) {
    metrics::gauge!(KAFKA_FETCH_SESSIONS).increment(f64::from(delta));
}

/// When the certificates of `[tls]` file `file` expire.
pub fn tls_certificate_expiry(file: &'static str, unix_seconds: i64) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(TLS_CERT_EXPIRY, "file" => file).set(unix_seconds as f64);
}
