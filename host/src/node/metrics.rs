//! `GET /metrics`: the recorder's series plus the ones the node renders
//! itself (per-stream counters and the state gauges of this scrape).
//!
//! Invariant: a scrape costs O(partitions with upload lag + replicated
//! partitions this node leads + pipelines + committed group offsets), never
//! O(every partition): idle partitions have no state series (an absent
//! upload-lag series means nothing to upload), so a node with hundreds of
//! thousands of partitions answers a scrape as fast as one with a few.

use crate::error::{Error, ErrorKind};
use crate::metrics::{self as m, header, sample};

use super::Host;
use crate::task::blocking;

impl Host {
    /// The Prometheus text exposition of every series, with the state gauges
    /// (WAL size, upload lag, replication, pipeline and consumer lag) as of now.
    pub async fn render_metrics(&self) -> Result<String, Error> {
        let Some(handle) = self.inner.metrics.clone() else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "metrics_unavailable",
                "another metrics recorder was installed in this process before the node opened",
            ));
        };
        let wal = self.inner.log.wal();
        let (bytes, files) = if wal.is_object() {
            (0, wal.segments().len() as u64)
        } else {
            let dir = wal.dir().to_path_buf();
            blocking(move || crate::fsutil::dir_size(&dir)).await?
        };
        ::metrics::gauge!(m::WAL_BYTES).set(bytes as f64);
        ::metrics::gauge!(m::WAL_SEGMENTS).set(files as f64);
        handle.run_upkeep();
        let mut out = handle.render();
        m::render_stream_counters(&mut out);
        self.render_state(&mut out).await;
        Ok(out)
    }

    async fn render_state(&self, out: &mut String) {
        let lagging = self.inner.tier.lagging();
        if !lagging.is_empty() {
            header(
                out,
                m::UPLOAD_LAG_BYTES,
                "gauge",
                "WAL bytes not yet in the object store",
            );
            for (stream, p, lag) in &lagging {
                sample(
                    out,
                    m::UPLOAD_LAG_BYTES,
                    &[("stream", stream), ("partition", &p.to_string())],
                    lag.bytes,
                );
            }
            header(
                out,
                m::UPLOAD_LAG_RECORDS,
                "gauge",
                "Records not yet in the object store",
            );
            for (stream, p, lag) in &lagging {
                let labels = [("stream", stream.as_str()), ("partition", &p.to_string())];
                sample(out, m::UPLOAD_LAG_RECORDS, &labels, lag.records);
            }
        }
        let led = self
            .inner
            .cluster
            .as_ref()
            .map(|c| c.statuses(true))
            .unwrap_or_default();
        if !led.is_empty() {
            header(out, m::ISR_SIZE, "gauge", "Replicas in a led partition's in-sync set");
            for (stream, p, st) in &led {
                let labels = [("stream", stream.as_str()), ("partition", &p.to_string())];
                sample(out, m::ISR_SIZE, &labels, st.in_sync.len() as u64);
            }
            let help = "Records a replica misses up to its leader's end";
            header(out, m::REPLICA_LAG_RECORDS, "gauge", help);
            for (stream, p, st) in &led {
                for r in &st.replicas {
                    let labels = [
                        ("stream", stream.as_str()),
                        ("partition", &p.to_string()),
                        ("replica", &r.node.to_string()),
                    ];
                    sample(out, m::REPLICA_LAG_RECORDS, &labels, r.lag);
                }
            }
        }
        if let Some(c) = &self.inner.cluster {
            let help = "1 when this node's last call to the peer was refused a connection, within 30 s, and none \
                        reached it since (Kafka Metadata then leaves it out)";
            header(out, m::PEER_DOWN, "gauge", help);
            for node in c.peer_ids() {
                sample(
                    out,
                    m::PEER_DOWN,
                    &[("node", &node.to_string())],
                    u64::from(c.peer_down(node)),
                );
            }
        }
        let pipelines = self.list_pipelines().await;
        if !pipelines.is_empty() {
            let help = "Input records a pipeline has not processed";
            header(out, m::PIPELINE_LAG_RECORDS, "gauge", help);
            for p in &pipelines {
                let lag = p.partitions.iter().fold(0u64, |sum, q| sum.saturating_add(q.lag));
                sample(out, m::PIPELINE_LAG_RECORDS, &[("pipeline", &p.name)], lag);
            }
        }
        let mut consumers = Vec::new();
        for (group, c) in self.loaded_offsets().await {
            if let Ok(end) = self.stream_end(&c.stream, c.partition) {
                consumers.push((group, c.stream, c.partition, end.saturating_sub(c.offset)));
            }
        }
        if !consumers.is_empty() {
            let help = "Records after a consumer group's committed offset";
            header(out, m::CONSUMER_LAG_RECORDS, "gauge", help);
            for (group, stream, p, lag) in &consumers {
                let labels = [
                    ("group", group.as_str()),
                    ("stream", stream.as_str()),
                    ("partition", &p.to_string()),
                ];
                sample(out, m::CONSUMER_LAG_RECORDS, &labels, *lag);
            }
        }
    }
}
